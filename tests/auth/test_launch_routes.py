"""mECR's SMART launch routes against a mocked EHR (respx): the happy paths and every refusal.

The same flows run against a real authorization server in tests/sandbox_ehr (the embedded sandbox EHR)."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import respx

from fhir_ecr.auth.registry import add_ehr
from fhir_ecr.auth.sessions import SESSION_COOKIE

ISS = "https://ehr.example/fhir"
CONFIG = {
    "authorization_endpoint": "https://ehr.example/authorize",
    "token_endpoint": "https://ehr.example/token",
    "capabilities": ["launch-ehr", "launch-standalone", "client-public", "context-ehr-patient",
                     "permission-v2"],
    "code_challenge_methods_supported": ["S256"],
    "grant_types_supported": ["authorization_code"],
}
EHR_PATIENT = {"resourceType": "Patient", "id": "p-ehr-1",
               "identifier": [{"system": "urn:oid:1.2.3.4", "value": "MRN-77"}],
               "name": [{"given": ["Ada"], "family": "Lovelace"}], "birthDate": "1970-01-02", "gender": "female"}


@pytest.fixture
def ehr(secure_services: Any) -> Any:
    return add_ehr(secure_services, ehr_id="ehr1", iss=ISS, client_id="mecr-app",
                   launch_scope="launch user/Patient.rs", patient_scope="launch/patient patient/Patient.rs")


@pytest.fixture
def mock_ehr() -> Any:
    with respx.mock(assert_all_called=False) as mock:
        mock.get(f"{ISS}/.well-known/smart-configuration").respond(json=CONFIG)
        mock.post("https://ehr.example/token").respond(json={
            "access_token": "ehr-at", "token_type": "Bearer", "expires_in": 3600, "scope": "launch user/Patient.rs",
            "patient": "p-ehr-1", "need_patient_banner": False})
        mock.get(f"{ISS}/Patient/p-ehr-1").respond(json=EHR_PATIENT)
        yield mock


def _start(client: Any, path: str) -> dict[str, str]:
    r = client.get(path, follow_redirects=False)
    assert r.status_code == 302, r.text
    loc = urlsplit(r.headers["location"])
    assert f"{loc.scheme}://{loc.netloc}{loc.path}" == CONFIG["authorization_endpoint"]
    return {k: v[0] for k, v in parse_qs(loc.query).items()}


def test_ehr_launch_links_the_patient_and_lands_on_their_page(secure_client: Any, secure_services: Any, ehr: Any,
                                                              mock_ehr: Any) -> None:
    q = _start(secure_client, f"/smart/launch?iss={ISS}&launch=L-123")
    assert q["response_type"] == "code" and q["client_id"] == "mecr-app"
    assert q["redirect_uri"] == "http://127.0.0.1:8000/smart/callback"
    assert q["aud"] == ISS and q["launch"] == "L-123" and q["code_challenge_method"] == "S256"
    assert len(q["state"]) >= 43 and "launch" in q["scope"].split()
    browser = secure_client.cookies.get("mecr_launch")
    r = secure_client.get(f"/smart/callback?code=C1&state={q['state']}", follow_redirects=False)
    assert r.status_code == 303, r.text
    target = r.headers["location"]
    assert target.startswith("/app/patients/")
    local_id = target.rsplit("/", 1)[1]
    token_call = mock_ehr.calls[1].request
    form = parse_qs(token_call.content.decode())
    assert form["grant_type"] == ["authorization_code"] and form["code"] == ["C1"]
    assert len(form["code_verifier"][0]) >= 43 and "client_secret" not in form
    assert mock_ehr.calls[2].request.headers["authorization"] == "Bearer ehr-at"
    cookie = r.cookies.get(SESSION_COOKIE) or secure_client.cookies.get(SESSION_COOKIE)
    assert cookie
    assert "httponly" in r.headers["set-cookie"].lower() and "samesite=lax" in r.headers["set-cookie"].lower()
    local = secure_client.get(f"/fhir/Patient/{local_id}").json()
    assert local["name"][0]["family"] == "Lovelace"
    systems = {i["system"]: i["value"] for i in local["identifier"]}
    assert systems == {"urn:mecr:ehr:ehr1:Patient": "p-ehr-1", "urn:oid:1.2.3.4": "MRN-77"}
    session = secure_services.sessions.load(cookie)
    assert session.principal.kind == "practitioner" and session.principal.patient_id == local_id
    assert session.need_patient_banner is False
    assert secure_services.sessions.ehr_tokens(cookie)["access_token"] == "ehr-at"  # stored, encrypted
    # The callback cannot be replayed, not even from the same browser.
    secure_client.cookies.set("mecr_launch", browser, path="/smart")
    again = secure_client.get(f"/smart/callback?code=C1&state={q['state']}", follow_redirects=False)
    assert again.status_code == 400 and "could not be completed" in again.text
    # A second launch finds the same local patient.
    q2 = _start(secure_client, f"/smart/launch?iss={ISS}&launch=L-124")
    r2 = secure_client.get(f"/smart/callback?code=C2&state={q2['state']}", follow_redirects=False)
    assert r2.headers["location"] == target
    assert secure_services.repo.search_params("Patient", []).total == 1


def test_patient_standalone_launch_lands_on_app_me(secure_client: Any, secure_services: Any, ehr: Any,
                                                   mock_ehr: Any) -> None:
    q = _start(secure_client, "/smart/login?ehr=ehr1")
    assert "launch" not in q and q["scope"] == "launch/patient patient/Patient.rs"
    r = secure_client.get(f"/smart/callback?code=C1&state={q['state']}", follow_redirects=False)
    assert r.headers["location"] == "/app/me"
    session = secure_services.sessions.load(secure_client.cookies.get(SESSION_COOKIE))
    assert session.principal.kind == "patient"
    other = secure_services.repo.create({"resourceType": "Patient"}).stored.id
    assert secure_client.get(f"/fhir/Patient/{session.principal.patient_id}").status_code == 200
    assert secure_client.get(f"/fhir/Patient/{other}").status_code == 404  # as if it did not exist


def test_unregistered_iss_is_refused_without_any_request(secure_client: Any, ehr: Any) -> None:
    with respx.mock(assert_all_called=False) as mock:
        r = secure_client.get("/smart/launch?iss=https://attacker.example/fhir&launch=x", follow_redirects=False)
        assert r.status_code == 400 and "not registered" in r.text
        assert "location" not in r.headers
        assert mock.calls.call_count == 0
    assert secure_client.get("/smart/launch?launch=x").status_code == 400
    assert secure_client.get("/smart/login?ehr=nope").status_code == 404


def test_discovery_without_s256_is_refused(secure_client: Any, ehr: Any) -> None:
    with respx.mock(assert_all_called=False) as mock:
        mock.get(f"{ISS}/.well-known/smart-configuration").respond(
            json={**CONFIG, "code_challenge_methods_supported": ["plain"]})
        r = secure_client.get(f"/smart/launch?iss={ISS}&launch=x", follow_redirects=False)
    assert r.status_code == 502 and "S256" in r.text


def test_ehr_down(secure_client: Any, ehr: Any) -> None:
    with respx.mock(assert_all_called=False) as mock:
        mock.get(f"{ISS}/.well-known/smart-configuration").mock(side_effect=httpx.ConnectError("down"))
        r = secure_client.get(f"/smart/launch?iss={ISS}&launch=x", follow_redirects=False)
    assert r.status_code == 502 and "not answering" in r.text


def test_callback_refusals(secure_client: Any, secure_services: Any, ehr: Any, mock_ehr: Any) -> None:
    assert secure_client.get("/smart/callback?code=x&state=y").status_code == 400  # no launch cookie
    q = _start(secure_client, f"/smart/launch?iss={ISS}&launch=L")
    assert secure_client.get("/smart/callback?code=x&state=forged").status_code == 400
    # Another browser (another launch cookie) cannot use this state.
    secure_client.cookies.set("mecr_launch", "someone-else", path="/smart")
    r = secure_client.get(f"/smart/callback?code=x&state={q['state']}", follow_redirects=False)
    assert r.status_code == 400
    assert not any(c.request.url.path == "/token" for c in mock_ehr.calls)  # no code exchange was attempted


def test_ehr_refusal_and_token_errors(secure_client: Any, ehr: Any, mock_ehr: Any) -> None:
    q = _start(secure_client, f"/smart/launch?iss={ISS}&launch=L")
    r = secure_client.get(f"/smart/callback?error=access_denied&error_description=no&state={q['state']}")
    assert r.status_code == 403 and "did not authorize" in r.text
    mock_ehr.post("https://ehr.example/token").respond(400, json={"error": "invalid_grant"})
    q = _start(secure_client, f"/smart/launch?iss={ISS}&launch=L2")
    r = secure_client.get(f"/smart/callback?code=bad&state={q['state']}", follow_redirects=False)
    assert r.status_code == 502 and SESSION_COOKIE not in r.cookies


def test_cookies_for_an_ehr_that_embeds_mecr_in_a_cross_site_iframe(secure_services: Any, ehr: Any,
                                                                    mock_ehr: Any) -> None:
    from fastapi.testclient import TestClient

    from fhir_ecr.app import create_app

    settings = secure_services.settings.model_copy(update={"cookie_samesite": "none"})
    secure_services.settings = settings
    with TestClient(create_app(settings, services=secure_services), base_url="http://127.0.0.1:8000") as client:
        r = client.get(f"/smart/launch?iss={ISS}&launch=L", follow_redirects=False)
        cookie = r.headers["set-cookie"].lower()
        assert "samesite=none" in cookie and "secure" in cookie and "httponly" in cookie
