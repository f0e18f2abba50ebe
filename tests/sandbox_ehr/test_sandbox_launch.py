"""Full SMART flows against the sandbox EHR with the smart_launch client library: EHR launch, standalone patient
launch, each client authentication method, refresh rotation, Backend Services."""

from __future__ import annotations

import re

import httpx
import pytest
from joserfc import jwt

from smart_launch import BackendServicesClient, TokenError, fetch_smart_configuration
from tests.sandbox_ehr.flows import (
    BASE,
    COACH_LAUNCH_SCOPE,
    FHIR_BASE,
    PATIENT_SCOPE,
    approve,
    basic,
    front_page_launch,
    jwt_auth,
    launch_client,
    public,
    query_of,
)

pytestmark = pytest.mark.anyio


async def test_discovery_document_is_complete_and_public(http: httpx.AsyncClient) -> None:
    response = await http.get(f"{FHIR_BASE}/.well-known/smart-configuration", headers={"Accept": "text/html"})
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "*"
    doc = response.json()
    assert doc["issuer"] == BASE
    assert doc["jwks_uri"] == f"{BASE}/.well-known/jwks.json"
    assert doc["authorization_endpoint"] == f"{BASE}/authorize"
    assert doc["token_endpoint"] == f"{BASE}/token"
    assert doc["code_challenge_methods_supported"] == ["S256"]
    for capability in (
        "launch-ehr",
        "launch-standalone",
        "client-public",
        "client-confidential-symmetric",
        "client-confidential-asymmetric",
        "context-ehr-patient",
        "context-standalone-patient",
        "sso-openid-connect",
        "permission-v2",
        "permission-v1",
    ):
        assert capability in doc["capabilities"]
    assert {"authorization_code", "refresh_token", "client_credentials"} <= set(doc["grant_types_supported"])
    assert {"client_secret_basic", "private_key_jwt"} <= set(doc["token_endpoint_auth_methods_supported"])
    assert "system/*.rs" in doc["scopes_supported"]
    config = await fetch_smart_configuration(http, FHIR_BASE)  # the client library accepts it
    assert config.supports("launch-ehr") and config.issuer == BASE
    oidc = (await http.get(f"{BASE}/.well-known/openid-configuration")).json()
    assert oidc["issuer"] == BASE and oidc["jwks_uri"] == doc["jwks_uri"]


async def test_front_page_lists_coaches_patients_and_the_patient_login(http: httpx.AsyncClient) -> None:
    page = await http.get(f"{BASE}/")
    assert page.status_code == 200
    assert "Dana Whitfield" in page.text and "Marcus Chen" in page.text
    assert "Ana Lopez" in page.text and "MRN-1001" in page.text
    assert 'action="http://127.0.0.1:8000/sandbox-ehr/launch"' in page.text
    assert 'href="http://127.0.0.1:8000/smart/login?ehr=sandbox"' in page.text
    assert re.search(r'<label for="patient-1">', page.text)  # every control has a label


async def test_ehr_launch_as_public_client(sandbox, http: httpx.AsyncClient) -> None:
    launch = await front_page_launch(http, "mecr-public", coach="coach-dana", patient="pat-1002")
    assert launch["iss"] == FHIR_BASE and launch["launch"]
    client = launch_client(http, public(), sandbox.clock)
    redirect = await client.begin_ehr_launch(launch, session_id="browser-1", scope=COACH_LAUNCH_SCOPE)
    callback = await approve(
        http,
        redirect,
        expect=(
            'Signed in as <strong id="signed-in">Dana Whitfield, NBC-HWC</strong>',
            "Brian Okafor",
            "Allow",
            "Deny",
        ),
    )
    assert callback["state"] == redirect.state and callback["iss"] == BASE
    result = await client.handle_callback(callback, session_id="browser-1")

    assert result.patient == "pat-1002"
    assert str(result.scope) == COACH_LAUNCH_SCOPE  # everything asked for was registered, so granted
    assert result.token.need_patient_banner is True
    assert result.token.smart_style_url == f"{BASE}/smart-style.json"
    assert [item.reference for item in result.token.fhir_context] == ["PractitionerRole/role-coach-dana"]
    assert result.token.refresh_token  # online_access
    assert result.id_token is not None
    assert result.fhir_user == f"{FHIR_BASE}/Practitioner/coach-dana"
    assert result.id_token.issuer == BASE and result.id_token.audience == ("mecr-public",)
    assert result.id_token.nonce is not None

    patient = await http.get(f"{FHIR_BASE}/Patient/{result.patient}", auth=result.auth())
    assert patient.status_code == 200, patient.text
    assert patient.json()["name"][0]["family"] == "Okafor"
    coach = await http.get(result.fhir_user, auth=result.auth())
    assert coach.status_code == 403  # user/Practitioner was not granted
    other = await http.get(f"{FHIR_BASE}/Patient/pat-1003", auth=result.auth())
    assert other.status_code == 200  # user/ scopes: the coach sees the practice's patients
    vitals = await http.get(
        f"{FHIR_BASE}/Observation", params={"patient": "pat-1002", "code": "29463-7"}, auth=result.auth()
    )
    assert vitals.status_code == 200 and vitals.json()["total"] == 2


async def test_standalone_patient_launch_with_client_secret_basic(sandbox, http: httpx.AsyncClient) -> None:
    from tests.sandbox_ehr.conftest import SECRET

    client = launch_client(http, basic(SECRET), sandbox.clock)
    redirect = await client.authorize(FHIR_BASE, session_id="phone", scope=PATIENT_SCOPE)
    assert "launch" not in redirect.params
    callback = await approve(
        http, redirect, patient="pat-1005", expect=("Patient portal sign-in", "Elena Rossi")
    )
    result = await client.handle_callback(callback, session_id="phone")
    assert result.patient == "pat-1005"
    assert result.fhir_user == f"{FHIR_BASE}/Patient/pat-1005"
    assert result.token.fhir_context == ()
    assert result.token.refresh_token  # offline_access
    own = await http.get(f"{FHIR_BASE}/Patient/pat-1005", auth=result.auth())
    assert own.status_code == 200
    observations = await http.get(f"{FHIR_BASE}/Observation", auth=result.auth())
    assert observations.status_code == 200
    subjects = {e["resource"]["subject"]["reference"] for e in observations.json()["entry"]}
    assert subjects == {"Patient/pat-1005"}  # the search is confined to the patient's own record


async def test_patient_may_grant_fewer_scopes_than_asked(sandbox, http: httpx.AsyncClient) -> None:
    client = launch_client(http, public(), sandbox.clock)
    redirect = await client.authorize(FHIR_BASE, session_id="s", scope=PATIENT_SCOPE)
    callback = await approve(
        http,
        redirect,
        patient="pat-1003",
        scopes=["launch/patient", "openid", "fhirUser", "patient/Patient.rs"],
    )
    result = await client.handle_callback(callback, session_id="s")
    assert str(result.scope) == "launch/patient openid fhirUser patient/Patient.rs"
    assert result.token.refresh_token is None  # offline_access was not granted
    denied = await http.get(f"{FHIR_BASE}/Observation", auth=result.auth())
    assert denied.status_code == 403


async def test_client_registration_limits_the_grant(sandbox, http: httpx.AsyncClient) -> None:
    client = launch_client(http, public("narrow"), sandbox.clock)
    redirect = await client.authorize(FHIR_BASE, session_id="s", scope=PATIENT_SCOPE + " user/*.cruds")
    result = await client.handle_callback(await approve(http, redirect, patient="pat-1001"), session_id="s")
    assert str(result.scope) == "launch/patient openid fhirUser patient/Patient.rs"


@pytest.mark.parametrize("algorithm", ["RS384", "ES384"])
async def test_ehr_launch_with_private_key_jwt_from_a_jwks_url(
    sandbox, http: httpx.AsyncClient, algorithm: str
) -> None:
    launch = await front_page_launch(http, "mecr-jwt", coach="coach-marcus", patient="pat-1004")
    client = launch_client(http, jwt_auth(sandbox.keys.app, algorithm=algorithm), sandbox.clock)
    redirect = await client.begin_ehr_launch(launch, session_id="b", scope=COACH_LAUNCH_SCOPE)
    result = await client.handle_callback(await approve(http, redirect), session_id="b")
    assert result.patient == "pat-1004"
    assert result.fhir_user == f"{FHIR_BASE}/Practitioner/coach-marcus"


async def test_private_key_jwt_with_an_inline_jwks(sandbox, http: httpx.AsyncClient) -> None:
    client = launch_client(http, jwt_auth(sandbox.keys.inline, client_id="mecr-inline"), sandbox.clock)
    redirect = await client.authorize(FHIR_BASE, session_id="s", scope=PATIENT_SCOPE)
    result = await client.handle_callback(await approve(http, redirect, patient="pat-1002"), session_id="s")
    assert result.patient == "pat-1002"


async def test_patient_scopes_in_an_ehr_launch_confine_the_coach_to_the_launch_patient(
    sandbox, http: httpx.AsyncClient
) -> None:
    launch = await front_page_launch(http, "mecr-public", patient="pat-1001")
    client = launch_client(http, public(), sandbox.clock)
    redirect = await client.begin_ehr_launch(
        launch, session_id="s", scope="launch openid fhirUser patient/*.rs"
    )
    result = await client.handle_callback(await approve(http, redirect), session_id="s")
    assert (await http.get(f"{FHIR_BASE}/Patient/pat-1001", auth=result.auth())).status_code == 200
    assert (await http.get(f"{FHIR_BASE}/Patient/pat-1002", auth=result.auth())).status_code == 403
    conditions = await http.get(f"{FHIR_BASE}/Condition", auth=result.auth())
    assert conditions.status_code == 200
    assert {e["resource"]["subject"]["reference"] for e in conditions.json()["entry"]} == {"Patient/pat-1001"}


async def test_patient_portal_ehr_launch(sandbox, http: httpx.AsyncClient) -> None:
    """A patient opens the app from the patient portal: an EHR launch whose user is the Patient. Only patient/
    scopes are granted (user/ ones are dropped), the patient is the context, and the token reads only them."""
    response = await http.post(
        f"{BASE}/launch", data={"client_id": "mecr-public", "portal": "1", "patient": "pat-1003"}
    )
    assert response.status_code == 303, response.text
    launch = query_of(response.headers["location"])
    client = launch_client(http, public(), sandbox.clock)
    redirect = await client.begin_ehr_launch(
        launch, session_id="portal", scope="launch openid fhirUser user/Patient.rs patient/Patient.rs"
    )
    callback = await approve(
        http,
        redirect,
        expect=(
            'Signed in to the patient portal as <strong id="signed-in">Chloe Nguyen</strong>',
            "your own record",
        ),
    )
    result = await client.handle_callback(callback, session_id="portal")
    assert result.patient == "pat-1003"
    assert result.fhir_user == f"{FHIR_BASE}/Patient/pat-1003"
    assert str(result.scope) == "launch openid fhirUser patient/Patient.rs"
    assert result.token.fhir_context == ()  # no PractitionerRole: the user is the patient
    assert result.token.need_patient_banner is True
    assert (await http.get(f"{FHIR_BASE}/Patient/pat-1003", auth=result.auth())).status_code == 200
    assert (await http.get(f"{FHIR_BASE}/Patient/pat-1001", auth=result.auth())).status_code == 403


async def test_framed_launch_shows_the_app_inside_the_ehr_page(sandbox, http: httpx.AsyncClient) -> None:
    response = await http.post(
        f"{BASE}/launch",
        data={"client_id": "mecr-public", "practitioner": "coach-dana", "patient": "pat-1001", "frame": "1"},
    )
    assert response.status_code == 200, response.text
    src = re.search(r'<iframe class="app" title="Launched app" src="([^"]+)"', response.text)
    assert src and src.group(1).startswith("http://127.0.0.1:8000/smart/launch?")
    policy = response.headers["content-security-policy"]
    assert "frame-src 'self' http://127.0.0.1:8000" in policy and "frame-ancestors 'self'" in policy
    assert response.headers["x-frame-options"] == "SAMEORIGIN"
    launch = query_of(src.group(1).replace("&amp;", "&"))
    client = launch_client(http, public(), sandbox.clock)
    redirect = await client.begin_ehr_launch(launch, session_id="f", scope=COACH_LAUNCH_SCOPE)
    result = await client.handle_callback(await approve(http, redirect), session_id="f")
    assert result.token.need_patient_banner is False  # the EHR's page around the frame shows the patient


async def test_refresh_rotates_the_refresh_token(sandbox, http: httpx.AsyncClient) -> None:
    client = launch_client(http, public(), sandbox.clock)
    redirect = await client.authorize(FHIR_BASE, session_id="s", scope=PATIENT_SCOPE)
    first = await client.handle_callback(await approve(http, redirect, patient="pat-1001"), session_id="s")
    second = await client.refresh(first)
    assert second.token.refresh_token and second.token.refresh_token != first.token.refresh_token
    assert second.token.access_token != first.token.access_token
    assert second.patient == "pat-1001" and second.fhir_user == first.fhir_user
    assert (await http.get(f"{FHIR_BASE}/Patient/pat-1001", auth=second.auth())).status_code == 200
    narrower = await client.refresh(second, scope="patient/Patient.rs")
    assert str(narrower.scope) == "patient/Patient.rs"
    assert (await http.get(f"{FHIR_BASE}/Observation", auth=narrower.auth())).status_code == 403
    # The old refresh token was replaced; using it again is refused and revokes the whole grant.
    with pytest.raises(TokenError) as replay:
        await client.refresh(first)
    assert replay.value.error == "invalid_grant"
    assert (await http.get(f"{FHIR_BASE}/Patient/pat-1001", auth=narrower.auth())).status_code == 401
    with pytest.raises(TokenError):
        await client.refresh(narrower)


async def test_backend_services_client_credentials(sandbox, http: httpx.AsyncClient) -> None:
    tokens = await BackendServicesClient.from_discovery(
        http,
        FHIR_BASE,
        client_id="sync-backend",
        keys=sandbox.keys.backend,
        scope="system/Patient.rs system/Observation.rs",
    )
    token = await tokens.get_token()
    assert token.refresh_token is None and token.expires_in == 300
    assert token.patient is None
    async with sandbox.http() as fhir:
        fhir.auth = tokens.auth(FHIR_BASE)
        bundle = await fhir.get(f"{FHIR_BASE}/Patient")
        assert bundle.status_code == 200 and bundle.json()["total"] == 5
        assert (await fhir.get(f"{FHIR_BASE}/Condition")).status_code == 403
        write = await fhir.post(f"{FHIR_BASE}/Patient", json={"resourceType": "Patient"})
        assert write.status_code == 403
    claims = jwt.decode(token.access_token, _sandbox_key(sandbox)).claims
    assert claims["aud"] == FHIR_BASE and claims["sub"] == "client:sync-backend"


def _sandbox_key(sandbox):  # the sandbox's signing key, to look inside its JWT access tokens
    return sandbox.app.state.sandbox.server.signer._key


async def test_authorization_request_by_post(sandbox, http: httpx.AsyncClient) -> None:
    client = launch_client(http, public(), sandbox.clock)
    redirect = await client.authorize(FHIR_BASE, session_id="s", scope=PATIENT_SCOPE, prefer_post=True)
    assert redirect.method == "POST"  # the sandbox advertises authorize-post
    result = await client.handle_callback(await approve(http, redirect, patient="pat-1002"), session_id="s")
    assert result.patient == "pat-1002"
