"""mECR's SMART launch routes against a mocked EHR (respx): the happy paths and every refusal.

The same flows run against a real authorization server in tests/sandbox_ehr (the embedded sandbox EHR)."""

from __future__ import annotations

import html
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
    "capabilities": [
        "launch-ehr",
        "launch-standalone",
        "client-public",
        "context-ehr-patient",
        "permission-v2",
    ],
    "code_challenge_methods_supported": ["S256"],
    "grant_types_supported": ["authorization_code"],
}
EHR_PATIENT = {
    "resourceType": "Patient",
    "id": "p-ehr-1",
    "identifier": [{"system": "urn:oid:1.2.3.4", "value": "MRN-77"}],
    "name": [{"given": ["Ada"], "family": "Lovelace"}],
    "birthDate": "1970-01-02",
    "gender": "female",
}


@pytest.fixture
def ehr(secure_services: Any) -> Any:
    return add_ehr(
        secure_services,
        ehr_id="ehr1",
        iss=ISS,
        client_id="mecr-app",
        launch_scope="launch user/Patient.rs",
        patient_scope="launch/patient patient/Patient.rs",
    )


@pytest.fixture
def mock_ehr() -> Any:
    with respx.mock(assert_all_called=False) as mock:
        mock.get(f"{ISS}/.well-known/smart-configuration").respond(json=CONFIG)
        mock.post("https://ehr.example/token").respond(
            json={
                "access_token": "ehr-at",
                "token_type": "Bearer",
                "expires_in": 3600,
                "scope": "launch user/Patient.rs",
                "patient": "p-ehr-1",
                "need_patient_banner": False,
            }
        )
        mock.get(f"{ISS}/Patient/p-ehr-1").respond(json=EHR_PATIENT)
        yield mock


def _start(client: Any, path: str) -> dict[str, str]:
    r = client.get(path, follow_redirects=False)
    assert r.status_code == 302, r.text
    loc = urlsplit(r.headers["location"])
    assert f"{loc.scheme}://{loc.netloc}{loc.path}" == CONFIG["authorization_endpoint"]
    return {k: v[0] for k, v in parse_qs(loc.query).items()}


def test_ehr_launch_links_the_patient_and_lands_on_their_page(
    secure_client: Any, secure_services: Any, ehr: Any, mock_ehr: Any
) -> None:
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


def test_patient_standalone_launch_lands_on_app_me(
    secure_client: Any, secure_services: Any, ehr: Any, mock_ehr: Any
) -> None:
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
        r = secure_client.get(
            "/smart/launch?iss=https://attacker.example/fhir&launch=x", follow_redirects=False
        )
        assert r.status_code == 400 and "not registered" in r.text
        assert "location" not in r.headers
        assert mock.calls.call_count == 0
    assert secure_client.get("/smart/launch?launch=x").status_code == 400
    assert secure_client.get("/smart/login?ehr=nope").status_code == 404


def test_discovery_without_s256_is_refused(secure_client: Any, ehr: Any) -> None:
    with respx.mock(assert_all_called=False) as mock:
        mock.get(f"{ISS}/.well-known/smart-configuration").respond(
            json={**CONFIG, "code_challenge_methods_supported": ["plain"]}
        )
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


def test_cookies_for_an_ehr_that_embeds_mecr_in_a_cross_site_iframe(
    secure_services: Any, ehr: Any, mock_ehr: Any
) -> None:
    from fastapi.testclient import TestClient

    from fhir_ecr.app import create_app

    settings = secure_services.settings.model_copy(update={"cookie_samesite": "none"})
    secure_services.settings = settings
    with TestClient(
        create_app(settings, services=secure_services), base_url="http://127.0.0.1:8000"
    ) as client:
        r = client.get(f"/smart/launch?iss={ISS}&launch=L", follow_redirects=False)
        cookie = r.headers["set-cookie"].lower()
        assert "samesite=none" in cookie and "secure" in cookie and "httponly" in cookie


# -- the launch cookie: always the server's own value -------------------------------------------------------------


def _launch_cookie(response: Any) -> str:
    header = next(
        v for k, v in response.headers.multi_items() if k == "set-cookie" and v.startswith("mecr_launch=")
    )
    return header.split(";", 1)[0].split("=", 1)[1]


def test_a_planted_launch_cookie_is_replaced_and_the_launch_completes(
    secure_client: Any, ehr: Any, mock_ehr: Any
) -> None:
    """Session fixation: a value the server did not issue is never adopted."""
    secure_client.cookies.set("mecr_launch", "attacker-chosen-value", path="/smart")
    r = secure_client.get(f"/smart/launch?iss={ISS}&launch=L-1", follow_redirects=False)
    assert r.status_code == 302
    issued = _launch_cookie(r)
    assert issued != "attacker-chosen-value" and len(issued) >= 43
    state = parse_qs(urlsplit(r.headers["location"]).query)["state"][0]
    done = secure_client.get(f"/smart/callback?code=C1&state={state}", follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"].startswith("/app/patients/")


def test_two_launches_in_two_tabs_both_complete(
    secure_client: Any, secure_services: Any, ehr: Any, mock_ehr: Any
) -> None:
    """An issued cookie is kept while its launch record lives, so the first tab's state still matches."""
    first = secure_client.get(f"/smart/launch?iss={ISS}&launch=L-1", follow_redirects=False)
    second = secure_client.get(f"/smart/launch?iss={ISS}&launch=L-2", follow_redirects=False)
    assert _launch_cookie(first) == _launch_cookie(second)
    states = [parse_qs(urlsplit(r.headers["location"]).query)["state"][0] for r in (first, second)]
    for code, state in zip(("C1", "C2"), states, strict=True):
        done = secure_client.get(f"/smart/callback?code={code}&state={state}", follow_redirects=False)
        assert done.status_code == 303, done.text
        secure_client.cookies.set("mecr_launch", _launch_cookie(first), path="/smart")  # the other tab's jar


def test_an_expired_launch_record_is_not_kept(
    secure_client: Any, secure_services: Any, ehr: Any, mock_ehr: Any
) -> None:
    from fhir_ecr.auth.routes import _launch_record

    first = _launch_cookie(secure_client.get(f"/smart/launch?iss={ISS}&launch=L-1", follow_redirects=False))
    secure_services.auth_store.put_once(_launch_record(first), "1.0", 2.0)  # long expired
    again = _launch_cookie(secure_client.get(f"/smart/launch?iss={ISS}&launch=L-2", follow_redirects=False))
    assert again != first


# -- cookies in a cross-site EHR frame --------------------------------------------------------------------------


def _client_with(secure_services: Any, **settings: Any) -> Any:
    from fastapi.testclient import TestClient

    from fhir_ecr.app import create_app

    updated = secure_services.settings.model_copy(update=settings)
    secure_services.settings = updated
    base = updated.base_url
    return TestClient(
        create_app(updated, services=secure_services), base_url=base, raise_server_exceptions=False
    )


def test_samesite_none_cookies_are_partitioned(secure_services: Any, ehr: Any, mock_ehr: Any) -> None:
    """CHIPS: with SameSite=None (for an EHR on another site that frames mECR) every cookie mECR sets, and
    every deletion, is Secure and Partitioned, so browsers that block third-party cookies still keep it."""
    with _client_with(secure_services, cookie_samesite="none", base_url="https://127.0.0.1:8000") as client:
        r = client.get(f"/smart/launch?iss={ISS}&launch=L", follow_redirects=False)
        launch = r.headers["set-cookie"]
        assert launch.startswith("mecr_launch=")
        attributes = {a.strip().split("=")[0].lower() for a in launch.split(";")[1:]}
        assert {"httponly", "secure", "samesite", "partitioned", "path", "max-age"} <= attributes
        assert "samesite=none" in launch.lower() and "path=/smart" in launch.lower()
        state = parse_qs(urlsplit(r.headers["location"]).query)["state"][0]
        done = client.get(f"/smart/callback?code=C1&state={state}", follow_redirects=False)
        assert done.status_code == 303, done.text
        cookies = done.headers.get_list("set-cookie")
        session = next(c for c in cookies if c.startswith("mecr_session="))
        cleared = next(c for c in cookies if c.startswith("mecr_launch="))
        for header in (session, cleared):
            assert "; Partitioned" in header and "Secure" in header and "SameSite=none" in header
        logout = client.post(
            "/smart/logout",
            follow_redirects=False,
            headers={
                "X-CSRF-Token": secure_services.sessions.load(
                    done.cookies.get("mecr_session") or client.cookies.get("mecr_session")
                ).csrf_token
            },
        )
        assert "; Partitioned" in logout.headers["set-cookie"] and "Max-Age=0" in logout.headers["set-cookie"]


def test_lax_cookies_are_not_partitioned(secure_client: Any, ehr: Any, mock_ehr: Any) -> None:
    r = secure_client.get(f"/smart/launch?iss={ISS}&launch=L", follow_redirects=False)
    assert "partitioned" not in r.headers["set-cookie"].lower()


@pytest.mark.parametrize(
    ("overrides", "advice"),
    [
        ({}, "set MECR_COOKIE_SAMESITE=none"),
        ({"cookie_samesite": "none"}, "needs mECR on an https address"),
        ({"cookie_samesite": "none", "base_url": "https://127.0.0.1:8000"}, "open mECR in a new window"),
    ],
)
def test_a_launch_cookie_that_never_comes_back_is_named(
    secure_services: Any, ehr: Any, mock_ehr: Any, overrides: dict[str, Any], advice: str
) -> None:
    """The launch started here moments ago (its state is live) but the callback came without the cookie: the
    browser blocked it in the EHR's frame. Said so, with what to do -- not "Sign-in expired"."""
    with _client_with(secure_services, **overrides) as client:
        r = client.get(f"/smart/launch?iss={ISS}&launch=L", follow_redirects=False)
        state = parse_qs(urlsplit(r.headers["location"]).query)["state"][0]
        client.cookies.clear()  # what a browser that blocked the cookie sends back: nothing
        blocked = client.get(f"/smart/callback?code=C1&state={state}")
        assert blocked.status_code == 400
        assert "The browser blocked mECR&#x27;s cookie in this frame" in blocked.text
        assert advice in blocked.text and "Sign-in expired" not in blocked.text
        assert blocked.headers["content-security-policy"]
        # The state was not spent: the same browser with its cookie could still finish.
        assert not any(c.request.url.path == "/token" for c in mock_ehr.calls)


def test_no_cookie_and_no_live_state_is_an_expired_sign_in(
    secure_client: Any, secure_services: Any, ehr: Any, mock_ehr: Any
) -> None:
    r = secure_client.get(f"/smart/launch?iss={ISS}&launch=L", follow_redirects=False)
    state = parse_qs(urlsplit(r.headers["location"]).query)["state"][0]
    secure_client.cookies.clear()
    for query in ("code=C1&state=unknown", "code=C1", f"code=C1&state={state}x"):
        page = secure_client.get(f"/smart/callback?{query}")
        assert page.status_code == 400 and "Sign-in expired" in page.text and "blocked" not in page.text
    # A state already used is not live either.
    secure_client.cookies.set("mecr_launch", _launch_cookie(r), path="/smart")
    assert (
        secure_client.get(f"/smart/callback?code=C1&state={state}", follow_redirects=False).status_code == 303
    )
    secure_client.cookies.clear()
    again = secure_client.get(f"/smart/callback?code=C1&state={state}")
    assert again.status_code == 400 and "Sign-in expired" in again.text


# -- who launched: a patient from the portal, refusals (403) and failing EHRs (502) -----------------------------

PORTAL_ISS = "https://portal.example/fhir"
PORTAL_CONFIG = {
    **CONFIG,
    "issuer": "https://portal.example",
    "jwks_uri": "https://portal.example/jwks",
    "authorization_endpoint": "https://portal.example/authorize",
    "token_endpoint": "https://portal.example/token",
    "capabilities": [*CONFIG["capabilities"], "sso-openid-connect"],
}


@pytest.fixture(scope="module")
def portal_key() -> Any:
    from joserfc.jwk import RSAKey

    return RSAKey.generate_key(2048, parameters={"alg": "RS256", "use": "sig"}, auto_kid=True)


@pytest.fixture
def portal(secure_services: Any) -> Any:
    return add_ehr(
        secure_services,
        ehr_id="portal",
        iss=PORTAL_ISS,
        client_id="mecr-app",
        launch_scope="launch openid fhirUser user/Patient.rs patient/Patient.rs",
        patient_scope="launch/patient openid fhirUser patient/Patient.rs",
    )


def _portal_launch(
    client: Any,
    key: Any,
    *,
    fhir_user: str | None,
    patient: str | None,
    standalone: bool = False,
    reads: dict[str, Any] | None = None,
) -> Any:
    """Run a launch against the mocked portal EHR whose id_token names ``fhir_user``; the callback's response."""
    import time

    from joserfc import jwt
    from joserfc.jwk import KeySet

    with respx.mock(assert_all_called=False) as mock:
        mock.get(f"{PORTAL_ISS}/.well-known/smart-configuration").respond(json=PORTAL_CONFIG)
        mock.get("https://portal.example/jwks").respond(json=KeySet([key]).as_dict(private=False))
        for url, body in (reads or {"Patient/p-ehr-1": EHR_PATIENT}).items():
            if isinstance(body, int):
                mock.get(f"{PORTAL_ISS}/{url}").respond(body)
            else:
                mock.get(f"{PORTAL_ISS}/{url}").respond(json=body)
        path = "/smart/login?ehr=portal" if standalone else f"/smart/launch?iss={PORTAL_ISS}&launch=L-9"
        start = client.get(path, follow_redirects=False)
        assert start.status_code == 302, start.text
        query = {k: v[0] for k, v in parse_qs(urlsplit(start.headers["location"]).query).items()}
        now = int(time.time())
        claims = {
            "iss": "https://portal.example",
            "sub": "u1",
            "aud": "mecr-app",
            "iat": now,
            "exp": now + 300,
            "nonce": query.get("nonce"),
        }
        if fhir_user:
            claims["fhirUser"] = fhir_user
        token = {
            "access_token": "portal-at",
            "token_type": "Bearer",
            "expires_in": 3600,
            "scope": query["scope"],
            "id_token": jwt.encode({"alg": "RS256", "kid": key.kid}, claims, key, algorithms=["RS256"]),
        }
        if patient:
            token["patient"] = patient
        mock.post("https://portal.example/token").respond(json=token)
        return client.get(f"/smart/callback?code=C&state={query['state']}", follow_redirects=False)


def test_patient_portal_ehr_launch_with_a_mocked_ehr(
    secure_client: Any, secure_services: Any, portal: Any, portal_key: Any
) -> None:
    r = _portal_launch(
        secure_client, portal_key, fhir_user=f"{PORTAL_ISS}/Patient/p-ehr-1", patient="p-ehr-1"
    )
    assert r.status_code == 303, r.text
    assert r.headers["location"] == "/app/me"
    session = secure_services.sessions.load(secure_client.cookies.get(SESSION_COOKIE))
    assert session.principal.kind == "patient" and session.principal.display == "Ada Lovelace"


def test_patient_portal_ehr_launch_without_patient_context_uses_the_user(
    secure_client: Any, secure_services: Any, portal: Any, portal_key: Any
) -> None:
    r = _portal_launch(secure_client, portal_key, fhir_user=f"{PORTAL_ISS}/Patient/p-ehr-1", patient=None)
    assert r.status_code == 303 and r.headers["location"] == "/app/me", r.text
    session = secure_services.sessions.load(secure_client.cookies.get(SESSION_COOKIE))
    local = secure_client.get(f"/fhir/Patient/{session.principal.patient_id}").json()
    assert {"system": "urn:mecr:ehr:portal:Patient", "value": "p-ehr-1"} in local["identifier"]


@pytest.mark.parametrize(
    ("fhir_user", "patient", "reads", "standalone", "reason"),
    [
        # A patient whose launch opened someone else's record.
        (
            "Patient/p-ehr-2",
            "p-ehr-1",
            {"Patient/p-ehr-1": EHR_PATIENT, "Patient/p-ehr-2": {**EHR_PATIENT, "id": "p-ehr-2"}},
            False,
            "someone else",
        ),
        # A user mECR has no workspace for.
        (
            "RelatedPerson/r1",
            "p-ehr-1",
            {
                "Patient/p-ehr-1": EHR_PATIENT,
                "RelatedPerson/r1": {
                    "resourceType": "RelatedPerson",
                    "id": "r1",
                    "patient": {"reference": "Patient/p-ehr-1"},
                },
            },
            False,
            "not for a RelatedPerson",
        ),
        # A fhirUser on another server.
        (
            "https://elsewhere.example/fhir/Practitioner/x",
            "p-ehr-1",
            None,
            False,
            "outside its own FHIR server",
        ),
        # A portal sign-in that names nobody must not become a coach.
        (None, None, {}, True, "did not say who you are"),
    ],
)
def test_launches_mecr_refuses_on_purpose_are_403(
    secure_client: Any,
    secure_services: Any,
    portal: Any,
    portal_key: Any,
    fhir_user: str | None,
    patient: str | None,
    reads: Any,
    standalone: bool,
    reason: str,
) -> None:
    if fhir_user and not fhir_user.startswith("https://"):
        fhir_user = f"{PORTAL_ISS}/{fhir_user}"
    r = _portal_launch(
        secure_client, portal_key, fhir_user=fhir_user, patient=patient, reads=reads, standalone=standalone
    )
    assert r.status_code == 403, r.text
    assert reason in html.unescape(r.text)
    assert SESSION_COOKIE not in r.cookies and secure_client.cookies.get(SESSION_COOKIE) is None
    assert secure_services.repo.search_params("Patient", []).total == 0  # refused before linking anything


def test_a_failing_ehr_is_502(secure_client: Any, portal: Any, portal_key: Any) -> None:
    r = _portal_launch(
        secure_client,
        portal_key,
        fhir_user=f"{PORTAL_ISS}/Patient/p-ehr-1",
        patient="p-ehr-1",
        reads={"Patient/p-ehr-1": 500},
    )
    assert r.status_code == 502 and "refused to read Patient (500)" in r.text
    r = _portal_launch(
        secure_client,
        portal_key,
        fhir_user=f"{PORTAL_ISS}/Patient/p-ehr-1",
        patient="p-ehr-1",
        reads={"Patient/p-ehr-1": {"resourceType": "Patient"}},
    )
    assert r.status_code == 502 and "unusable resource" in r.text
