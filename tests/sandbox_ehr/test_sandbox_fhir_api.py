"""The sandbox's FHIR API: a bearer token from the sandbox on every call, SMART scopes and the patient
compartment enforced; every refusal is an OperationOutcome."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from tests.helpers import assert_outcome
from tests.sandbox_ehr.flows import BASE, FHIR_BASE, REDIRECT_URI, authorize_by_hand, query_of, token_request

pytestmark = pytest.mark.anyio


async def patient_token(http: httpx.AsyncClient, patient: str, scope: str) -> dict[str, Any]:
    """A standalone patient login for ``patient`` with ``scope``: the token response."""
    response, verifier = await authorize_by_hand(http, patient=patient, scope=scope)
    code = query_of(response.headers["location"])["code"]
    token = await token_request(
        http,
        {
            "grant_type": "authorization_code",
            "code": code,
            "code_verifier": verifier,
            "redirect_uri": REDIRECT_URI,
            "client_id": "mecr-public",
        },
    )
    assert token.status_code == 200, token.text
    return token.json()


def bearer(token: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {token['access_token']}"}


def observation(patient: str) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "subject": {"reference": f"Patient/{patient}"},
        "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}]},
        "effectiveDateTime": "2025-08-01",
        "valueQuantity": {"value": 90.5, "unit": "kg", "system": "http://unitsofmeasure.org", "code": "kg"},
    }


async def test_metadata_is_public_and_everything_else_needs_a_token(http: httpx.AsyncClient) -> None:
    assert (await http.get(f"{FHIR_BASE}/metadata")).status_code == 200
    response = await http.get(f"{FHIR_BASE}/Patient/pat-1001")
    assert_outcome(response, 401, "login")
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert_outcome(
        await http.get(f"{FHIR_BASE}/Patient", headers={"Authorization": "Basic eDp5"}), 401, "login"
    )
    garbage = await http.get(f"{FHIR_BASE}/Patient", headers={"Authorization": "Bearer not-a-token"})
    assert_outcome(garbage, 401, "login")
    assert 'error="invalid_token"' in garbage.headers["www-authenticate"]
    assert_outcome(await http.get(f"{BASE}/docs"), 404, "not-found")  # the engine's own pages are not served


async def test_expired_access_token_is_refused(sandbox, http: httpx.AsyncClient) -> None:
    token = await patient_token(http, "pat-1001", "patient/Patient.rs")
    assert token["expires_in"] == 3600
    assert (await http.get(f"{FHIR_BASE}/Patient/pat-1001", headers=bearer(token))).status_code == 200
    sandbox.clock.advance(3601)
    expired = await http.get(f"{FHIR_BASE}/Patient/pat-1001", headers=bearer(token))
    body = assert_outcome(expired, 401, "login")
    assert "expired" in body["issue"][0]["diagnostics"]


async def test_tokens_meant_for_something_else_are_refused(sandbox, http: httpx.AsyncClient) -> None:
    token = await patient_token(http, "pat-1001", "openid fhirUser patient/Patient.rs")
    assert_outcome(
        await http.get(f"{FHIR_BASE}/Patient/pat-1001", headers=bearer({"access_token": token["id_token"]})),
        401,
    )
    signer = sandbox.app.state.sandbox.server.signer
    now = int(time.time())
    claims = {
        "iss": BASE,
        "aud": "http://127.0.0.1:9999/fhir",
        "sub": "Patient/pat-1001",
        "kind": "patient",
        "scope": "patient/*.rs",
        "patient": "pat-1001",
        "iat": now,
        "exp": now + 60,
    }
    other_aud = signer.sign(claims, typ="at+jwt")
    assert_outcome(
        await http.get(f"{FHIR_BASE}/Patient/pat-1001", headers={"Authorization": f"Bearer {other_aud}"}), 401
    )
    claims.update(aud=FHIR_BASE)
    assert (
        await http.get(
            f"{FHIR_BASE}/Patient/pat-1001",
            headers={"Authorization": f"Bearer {signer.sign(claims, typ='at+jwt')}"},
        )
    ).status_code == 200


@pytest.mark.parametrize(
    "path",
    [
        "/Patient/pat-1002",
        "/Observation/obs-pat-1002-wt-1",
        "/Condition/cond-pat-1002-1",
        "/Observation?patient=pat-1002",
        "/Observation?subject=Patient/pat-1002",
        f"/Observation?subject={FHIR_BASE}/Patient/pat-1002",
        "/Observation?patient=pat-1001,pat-1002",
        "/Patient?_id=pat-1002",
        "/Patient/pat-1002/$everything",
        "/Patient/pat-1002/_history",
        "/Observation/_history",
        "/Patient?_id=pat-1001&_revinclude=Observation:subject",
        "?_type=Patient",
    ],
)
async def test_patient_token_cannot_reach_another_patient(http: httpx.AsyncClient, path: str) -> None:
    token = await patient_token(http, "pat-1001", "launch/patient patient/*.rs")
    assert token["patient"] == "pat-1001"
    assert_outcome(await http.get(FHIR_BASE + path, headers=bearer(token)), 403, "forbidden")


async def test_patient_token_reads_and_searches_its_own_record(http: httpx.AsyncClient) -> None:
    token = await patient_token(http, "pat-1001", "launch/patient patient/*.rs")
    headers = bearer(token)
    for path in ("/Patient/pat-1001", "/Observation/obs-pat-1001-wt-1", "/Patient/pat-1001/$everything"):
        assert (await http.get(FHIR_BASE + path, headers=headers)).status_code == 200, path
    everything = await http.get(f"{FHIR_BASE}/Patient/pat-1001/$everything", headers=headers)
    assert {e["resource"]["resourceType"] for e in everything.json()["entry"]} >= {
        "Patient",
        "Observation",
        "Condition",
    }
    patients = (await http.get(f"{FHIR_BASE}/Patient", headers=headers)).json()
    assert [e["resource"]["id"] for e in patients["entry"]] == ["pat-1001"]
    weights = (await http.get(f"{FHIR_BASE}/Observation", params={"code": "29463-7"}, headers=headers)).json()
    assert weights["total"] == 3
    # Practitioners are not in the compartment: a patient sees the ones their record names (their GP), not the
    # practice's whole staff list (docs/security.md).
    coaches = (await http.get(f"{FHIR_BASE}/Practitioner", headers=headers)).json()
    me = (await http.get(f"{FHIR_BASE}/Patient/pat-1001", headers=headers)).json()
    assert [f"Practitioner/{e['resource']['id']}" for e in coaches["entry"]] == [
        g["reference"] for g in me["generalPractitioner"]
    ]


async def test_patient_writes_stay_inside_the_compartment(http: httpx.AsyncClient) -> None:
    token = await patient_token(
        http, "pat-1003", "launch/patient patient/Observation.cruds patient/Patient.rs"
    )
    headers = bearer(token)
    created = await http.post(f"{FHIR_BASE}/Observation", json=observation("pat-1003"), headers=headers)
    assert created.status_code == 201, created.text
    own = created.json()
    assert_outcome(
        await http.post(f"{FHIR_BASE}/Observation", json=observation("pat-1004"), headers=headers),
        403,
        "forbidden",
    )
    moved = {**own, "subject": {"reference": "Patient/pat-1004"}}
    assert_outcome(
        await http.put(f"{FHIR_BASE}/Observation/{own['id']}", json=moved, headers=headers), 403, "forbidden"
    )
    assert_outcome(
        await http.delete(f"{FHIR_BASE}/Observation/obs-pat-1004-wt-1", headers=headers), 403, "forbidden"
    )
    assert_outcome(
        await http.put(
            f"{FHIR_BASE}/Patient/pat-1003",
            json={"resourceType": "Patient", "id": "pat-1003"},
            headers=headers,
        ),
        403,
        "forbidden",
    )  # no patient/Patient.u
    assert (await http.delete(f"{FHIR_BASE}/Observation/{own['id']}", headers=headers)).status_code in (
        200,
        204,
    )


async def test_scopes_limit_types_and_interactions(http: httpx.AsyncClient) -> None:
    token = await patient_token(http, "pat-1001", "launch/patient patient/Patient.r")
    headers = bearer(token)
    assert (await http.get(f"{FHIR_BASE}/Patient/pat-1001", headers=headers)).status_code == 200
    assert_outcome(await http.get(f"{FHIR_BASE}/Patient", headers=headers), 403, "forbidden")  # no "s"
    assert_outcome(await http.get(f"{FHIR_BASE}/Observation/obs-pat-1001-wt-1", headers=headers), 403)
    assert_outcome(await http.get(f"{FHIR_BASE}/Practitioner/coach-dana", headers=headers), 403)
