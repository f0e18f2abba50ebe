"""The CapabilityStatement describes mECR's security, and agrees with ``.well-known/smart-configuration``."""

from __future__ import annotations

from typing import Any

from fhir_ecr.fhir.capability import OAUTH_URIS, security_component

SERVICE = "http://terminology.hl7.org/CodeSystem/restful-security-service"
FIELDS = {
    "authorize": "authorization_endpoint",
    "token": "token_endpoint",
    "revoke": "revocation_endpoint",
    "introspect": "introspection_endpoint",
    "register": "registration_endpoint",
    "manage": "management_endpoint",
}


def _oauth_uris(security: dict[str, Any]) -> dict[str, str]:
    (ext,) = [e for e in security["extension"] if e["url"] == OAUTH_URIS]
    return {sub["url"]: sub["valueUri"] for sub in ext["extension"]}


def test_metadata_and_smart_configuration_agree(secure_client: Any) -> None:
    """Both are public; the oauth-uris extension holds exactly the configuration's endpoints."""
    metadata = secure_client.get("/fhir/metadata")
    config = secure_client.get("/fhir/.well-known/smart-configuration")
    assert metadata.status_code == 200 and config.status_code == 200
    security = metadata.json()["rest"][0]["security"]
    codings = [c for s in security["service"] for c in s["coding"]]
    assert {"system": SERVICE, "code": "SMART-on-FHIR", "display": "SMART-on-FHIR"} in codings
    uris = _oauth_uris(security)
    assert uris == {name: config.json()[field] for name, field in FIELDS.items() if field in config.json()}
    assert uris["token"] == "http://127.0.0.1:8000/auth/token"
    assert security["cors"] is True


def test_the_token_endpoint_in_the_metadata_issues_tokens(secure_client: Any) -> None:
    """The advertised token endpoint is a real one: a request without a client assertion is an OAuth error."""
    token = _oauth_uris(secure_client.get("/fhir/metadata").json()["rest"][0]["security"])["token"]
    resp = secure_client.post(
        token.removeprefix("http://127.0.0.1:8000"), data={"grant_type": "client_credentials"}
    )
    assert resp.status_code in (400, 401) and "error" in resp.json()


def test_every_endpoint_of_a_configuration_is_listed() -> None:
    config = {
        "authorization_endpoint": "https://x/authorize",
        "token_endpoint": "https://x/token",
        "revocation_endpoint": "https://x/revoke",
        "grant_types_supported": ["authorization_code"],
    }
    assert _oauth_uris(security_component(config)) == {
        "authorize": "https://x/authorize",
        "token": "https://x/token",
        "revoke": "https://x/revoke",
    }


def test_no_security_is_claimed_when_authorization_is_off(client: Any) -> None:
    assert "security" not in client.get("/fhir/metadata").json()["rest"][0]
