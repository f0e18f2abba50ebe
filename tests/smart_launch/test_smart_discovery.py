"""Discovery (checklist 1.4): URL construction, Accept header, required fields, PKCE policy, relative URLs."""

from __future__ import annotations

import httpx
import pytest
import respx

from smart_launch import (
    DiscoveryError,
    EhrUnavailableError,
    discovery_url,
    fetch_smart_configuration,
    parse_smart_configuration,
)
from tests.smart_launch.conftest import FHIR_BASE, TOKEN_URL, smart_configuration

pytestmark = pytest.mark.anyio


def test_discovery_url_is_appended_even_with_a_path() -> None:
    assert discovery_url("https://ehr.example.org/r4/fhir") == (
        "https://ehr.example.org/r4/fhir/.well-known/smart-configuration"
    )
    assert discovery_url("https://ehr.example.org/r4/fhir/") == (
        "https://ehr.example.org/r4/fhir/.well-known/smart-configuration"
    )


async def test_fetch_sends_accept_json_to_the_path_based_url(
    router: respx.MockRouter, http: httpx.AsyncClient
) -> None:
    route = router.get("https://ehr.example.org/r4/fhir/.well-known/smart-configuration").respond(
        json=smart_configuration(),
        headers={"Content-Type": "text/plain"},  # JSON whatever the type
    )
    config = await fetch_smart_configuration(http, FHIR_BASE)
    assert route.calls.last.request.headers["Accept"] == "application/json"
    assert config.token_endpoint == TOKEN_URL
    assert config.supports("launch-ehr") and config.supports("permission-v2")
    assert config.code_challenge_methods_supported == {"S256"}
    assert config.supports_auth_method("private_key_jwt")
    assert not config.supports_auth_method("client_secret_post")


def test_relative_endpoints_resolve_against_the_fhir_base() -> None:
    doc = smart_configuration(
        authorization_endpoint="auth/authorize",
        token_endpoint="/oauth/token",
        issuer=None,
        jwks_uri=None,
        capabilities=["launch-standalone"],
    )
    config = parse_smart_configuration(doc, FHIR_BASE)
    assert config.authorization_endpoint == "https://ehr.example.org/r4/fhir/auth/authorize"
    assert config.token_endpoint == "https://ehr.example.org/oauth/token"


@pytest.mark.parametrize(
    ("methods", "message"),
    [
        (["plain"], "plain"),
        (["S256", "plain"], "plain"),
        ([], "S256"),
        (None, "code_challenge_methods_supported"),
    ],
)
def test_pkce_policy_refuses_servers_without_s256_or_with_plain(
    methods: list[str] | None, message: str
) -> None:
    doc = smart_configuration(code_challenge_methods_supported=methods)
    with pytest.raises(DiscoveryError, match=message):
        parse_smart_configuration(doc, FHIR_BASE)


@pytest.mark.parametrize("field", ["token_endpoint", "capabilities", "grant_types_supported"])
def test_required_fields(field: str) -> None:
    doc = smart_configuration()
    del doc[field]
    with pytest.raises(DiscoveryError, match=field):
        parse_smart_configuration(doc, FHIR_BASE)


def test_conditional_fields() -> None:
    with pytest.raises(DiscoveryError, match="authorization_endpoint"):
        parse_smart_configuration(smart_configuration(authorization_endpoint=None), FHIR_BASE)
    with pytest.raises(DiscoveryError, match="sso-openid-connect"):
        parse_smart_configuration(smart_configuration(jwks_uri=None), FHIR_BASE)
    with pytest.raises(DiscoveryError, match="authorization_code"):
        parse_smart_configuration(
            smart_configuration(grant_types_supported=["client_credentials"]), FHIR_BASE
        )
    with pytest.raises(DiscoveryError, match="array of strings"):
        parse_smart_configuration(smart_configuration(capabilities="launch-ehr"), FHIR_BASE)


def test_backend_purpose_tolerates_missing_pkce_but_not_plain() -> None:
    # sekmet-fhir's document: client_credentials only, no code_challenge_methods_supported.
    doc = {
        "token_endpoint": "https://emr.example.org/auth/token",
        "grant_types_supported": ["client_credentials"],
        "capabilities": ["client-confidential-asymmetric"],
        "token_endpoint_auth_methods_supported": ["private_key_jwt"],
    }
    config = parse_smart_configuration(doc, "https://emr.example.org/fhir", purpose="backend")
    assert config.authorization_endpoint is None
    with pytest.raises(DiscoveryError):
        parse_smart_configuration(doc, "https://emr.example.org/fhir")  # not for a user launch
    with pytest.raises(DiscoveryError, match="plain"):
        parse_smart_configuration(
            {**doc, "code_challenge_methods_supported": ["plain"]},
            "https://emr.example.org/fhir",
            purpose="backend",
        )


async def test_http_failures(router: respx.MockRouter, http: httpx.AsyncClient) -> None:
    url = discovery_url(FHIR_BASE)
    router.get(url).respond(404, json={"error": "not found"})
    with pytest.raises(DiscoveryError, match="404"):
        await fetch_smart_configuration(http, FHIR_BASE)
    router.get(url).respond(200, text="<html>login</html>")
    with pytest.raises(DiscoveryError, match="JSON"):
        await fetch_smart_configuration(http, FHIR_BASE)
    router.get(url).mock(side_effect=httpx.ConnectError("connection refused"))
    with pytest.raises(EhrUnavailableError, match="could not be reached") as info:
        await fetch_smart_configuration(http, FHIR_BASE)
    assert isinstance(info.value.__cause__, httpx.ConnectError)
    router.get(url).mock(side_effect=httpx.ReadTimeout("slow"))
    with pytest.raises(EhrUnavailableError, match="in time"):
        await fetch_smart_configuration(http, FHIR_BASE)


async def test_endpoints_must_use_tls(router: respx.MockRouter, http: httpx.AsyncClient) -> None:
    router.get(discovery_url(FHIR_BASE)).respond(
        json=smart_configuration(token_endpoint="http://ehr.example.org/token")
    )
    with pytest.raises(DiscoveryError, match="https"):
        await fetch_smart_configuration(http, FHIR_BASE)


async def test_loopback_http_is_allowed_for_a_local_sandbox(
    router: respx.MockRouter, http: httpx.AsyncClient
) -> None:
    base = "http://127.0.0.1:8080/fhir"
    router.get(discovery_url(base)).respond(
        json=smart_configuration(
            issuer=None,
            jwks_uri=None,
            capabilities=["launch-standalone"],
            authorization_endpoint="/auth/authorize",
            token_endpoint="/auth/token",
        )
    )
    config = await fetch_smart_configuration(http, base)
    assert config.token_endpoint == "http://127.0.0.1:8080/auth/token"
