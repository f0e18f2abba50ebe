"""The referral workflow on the FHIR API: PUT, PATCH and transactions of referral Tasks go through the state
machine, consent gates 'requested', each transition leaves a Provenance; organisations see only their referrals
and the minimum of the patient (security tests)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.auth.support import bearer, coach, login
from tests.referrals.world import consent, organisation, seed, task


@pytest.fixture
def world(secure_services: Any) -> Any:
    seed(secure_services.repo)
    return secure_services


def _as_coach(client: Any, services: Any) -> dict[str, str]:
    return bearer(services, coach())


def _put(client: Any, headers: dict[str, str], body: dict[str, Any]) -> Any:
    return client.put(f"/fhir/{body['resourceType']}/{body['id']}", json=body, headers=headers)


def _status(services: Any, tid: str = "t1") -> str:
    return str(services.repo.read("Task", tid).content["status"])


def _provenance(services: Any, tid: str = "t1") -> list[str]:
    found = services.repo.search_params("Provenance", [("target", f"Task/{tid}")])
    return [s.content["activity"]["text"] for s in found.matches]


def _send(client: Any, services: Any, with_consent: bool = True) -> None:
    h = _as_coach(client, services)
    if with_consent:
        assert client.post("/fhir/Consent", json=consent("p1"), headers=h).status_code == 201
    r = _put(client, h, task("t1", "sr1", "p1", "requested"))
    assert r.status_code == 200, r.text


def test_no_consent_no_request_and_nothing_shared(secure_client: Any, world: Any) -> None:
    h = _as_coach(secure_client, world)
    r = _put(secure_client, h, task("t1", "sr1", "p1", "requested"))
    assert r.status_code == 409
    assert "Consent" in r.json()["issue"][0]["diagnostics"]
    assert _status(world) == "draft" and _provenance(world) == []
    org = bearer(world, organisation("food-bank"))
    assert (
        secure_client.get("/fhir/Task/t1", headers=org).status_code == 404
    )  # a draft never left the practice
    assert secure_client.get("/fhir/Task", headers=org).json().get("total", 0) == 0
    assert secure_client.get("/fhir/Patient/p1", headers=org).status_code == 404
    assert secure_client.get("/fhir/ServiceRequest/sr1", headers=org).status_code == 404


def test_a_consent_for_another_organisation_does_not_count(secure_client: Any, world: Any) -> None:
    h = _as_coach(secure_client, world)
    assert (
        secure_client.post("/fhir/Consent", json=consent("p1", org="housing-help"), headers=h).status_code
        == 201
    )
    assert _put(secure_client, h, task("t1", "sr1", "p1", "requested")).status_code == 409


def test_consent_and_request_in_one_transaction(secure_client: Any, world: Any) -> None:
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": "urn:uuid:8f0b6c1e-0000-4000-8000-000000000001",
                "resource": consent("p1"),
                "request": {"method": "POST", "url": "Consent"},
            },
            {
                "resource": task("t1", "sr1", "p1", "requested"),
                "request": {"method": "PUT", "url": "Task/t1"},
            },
        ],
    }
    r = secure_client.post("/fhir", json=bundle, headers=_as_coach(secure_client, world))
    assert r.status_code == 200, r.text
    assert _status(world) == "requested"
    assert _provenance(world) == ["draft → requested"]


def test_the_organisation_moves_its_referral_and_every_step_is_recorded(
    secure_client: Any, world: Any
) -> None:
    _send(secure_client, world)
    org = bearer(world, organisation("food-bank"))
    got = secure_client.get("/fhir/Task/t1", headers=org)
    assert got.status_code == 200
    accepted = {**got.json(), "status": "accepted"}
    assert _put(secure_client, org, accepted).status_code == 200
    # illegal: back to requested (the practice's), and from accepted to received
    for status in ("requested", "received", "draft"):
        r = _put(secure_client, org, {**accepted, "status": status})
        assert r.status_code == 409, r.text
        assert "allowed: in-progress, on-hold, completed, failed" in r.json()["issue"][0]["diagnostics"]
    # the owner is the practice's to set
    r = _put(secure_client, org, {**accepted, "owner": {"reference": "Organization/housing-help"}})
    assert r.status_code in (403, 422), r.text  # 422: for this caller, housing-help does not exist
    r = _put(secure_client, org, {**accepted, "priority": "urgent"})
    assert r.status_code == 403, r.text
    # what was provided, as a Procedure, then completed with it as output (PATCH)
    proc = {
        "resourceType": "Procedure",
        "status": "completed",
        "subject": {"reference": "Patient/p1"},
        "code": {"text": "Enrolled in the food pantry"},
        "performedDateTime": "2026-03-03",
        "performer": [{"actor": {"reference": "Organization/food-bank"}}],
    }
    pr = secure_client.post("/fhir/Procedure", json=proc, headers=org)
    assert pr.status_code == 201, pr.text
    patch = [
        {"op": "replace", "path": "/status", "value": "completed"},
        {
            "op": "add",
            "path": "/output",
            "value": [
                {
                    "type": {
                        "coding": [
                            {
                                "system": "http://hl7.org/fhir/us/sdoh-clinicalcare/CodeSystem/"
                                "SDOHCC-CodeSystemTemporaryCodes",
                                "code": "resulting-activity",
                            }
                        ]
                    },
                    "valueReference": {"reference": f"Procedure/{pr.json()['id']}"},
                }
            ],
        },
    ]
    r = secure_client.patch(
        "/fhir/Task/t1", json=patch, headers={**org, "Content-Type": "application/json-patch+json"}
    )
    assert r.status_code == 200, r.text
    assert _status(world) == "completed"
    assert _provenance(world) == ["draft → requested", "requested → accepted", "accepted → completed"]
    prov = world.repo.search_params("Provenance", [("target", "Task/t1")]).matches[-1].content
    assert prov["agent"][0]["onBehalfOf"] == {"reference": "Organization/food-bank"}
    assert prov["recorded"]
    # ended: nothing follows
    r = _put(secure_client, org, {**world.repo.read("Task", "t1").content, "status": "in-progress"})
    assert r.status_code == 409 and "referral has ended" in r.text


def test_organisations_are_isolated_and_see_no_chart(secure_client: Any, world: Any) -> None:
    _send(secure_client, world)
    h = _as_coach(secure_client, world)
    assert (
        secure_client.post("/fhir/Consent", json=consent("p2", org="housing-help"), headers=h).status_code
        == 201
    )
    assert _put(secure_client, h, task("t2", "sr2", "p2", "requested", org="housing-help")).status_code == 200
    # even with wide scopes, an organisation's client sees its own referrals only
    a = bearer(world, organisation("food-bank", scopes="system/*.cruds"))
    b = bearer(world, organisation("housing-help", scopes="system/*.cruds"))
    assert secure_client.get("/fhir/Task/t1", headers=a).status_code == 200
    assert secure_client.get("/fhir/Task/t1", headers=b).status_code == 404
    assert secure_client.get("/fhir/Task/t2", headers=a).status_code == 404
    ids = [e["resource"]["id"] for e in secure_client.get("/fhir/Task", headers=a).json().get("entry", [])]
    assert ids == ["t1"]
    stolen = {**world.repo.read("Task", "t2").content, "status": "accepted"}
    assert _put(secure_client, a, stolen).status_code == 404  # cannot update B's referral
    assert _status(world, "t2") == "requested"
    assert secure_client.get("/fhir/Patient/p2", headers=a).status_code == 404
    assert secure_client.get("/fhir/ServiceRequest/sr2", headers=a).status_code == 404
    for path in (
        "Observation/p1-bp",
        "Condition/p1-dx",
        "Goal/p1-goal",
        "Practitioner/coach1",
        "Organization/housing-help",
    ):
        assert secure_client.get(f"/fhir/{path}", headers=a).status_code == 404, path
    for rtype in ("Observation", "Condition", "Goal", "Consent", "Provenance", "AuditEvent"):
        r = secure_client.get(f"/fhir/{rtype}", headers=a)
        assert r.status_code == 200 and not r.json().get("entry"), rtype
    for path in (
        "/fhir/Observation/_history",
        "/fhir/Task/_history",
        "/fhir/_history",
        "/fhir/Observation/p1-bp/_history",
        "/fhir/Task?_include=Task:patient&_revinclude=Observation:subject",
        "/fhir/Patient/p1/Observation",
        "/fhir/Task?patient.birthdate=1970-01-01",
    ):
        r = secure_client.get(path, headers=a)
        seen = (
            {e["resource"]["resourceType"] for e in r.json().get("entry", [])}
            if r.status_code == 200
            else set()
        )
        assert seen <= {"Task", "Patient"}, (path, seen)
    everything = secure_client.get("/fhir/Patient/p1/$everything", headers=a)
    types = {e["resource"]["resourceType"] for e in everything.json().get("entry", [])}
    assert types <= {"Patient", "Task", "ServiceRequest", "Procedure", "Organization"}, types
    # the patient: name and contact, never the chart (minimum necessary)
    pat = secure_client.get("/fhir/Patient/p1", headers=a).json()
    assert pat["name"][0]["given"] == ["Ada"] and pat["telecom"]
    assert "birthDate" not in pat and "identifier" not in pat and "gender" not in pat
    assert {
        "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue",
        "code": "SUBSETTED",
    } in pat["meta"]["tag"]
    # and writes nothing outside its referrals
    obs = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"text": "x"},
        "subject": {"reference": "Patient/p1"},
        "valueString": "y",
    }
    assert secure_client.post("/fhir/Observation", json=obs, headers=a).status_code == 403
    proc = {
        "resourceType": "Procedure",
        "status": "completed",
        "subject": {"reference": "Patient/p2"},
        "code": {"text": "x"},
        "performer": [{"actor": {"reference": "Organization/food-bank"}}],
    }
    assert secure_client.post("/fhir/Procedure", json=proc, headers=a).status_code in (403, 404, 422)
    assert world.repo.search_params("Procedure", []).matches == []


def test_revoking_consent_hides_the_referral(secure_client: Any, world: Any) -> None:
    _send(secure_client, world)
    a = bearer(world, organisation("food-bank"))
    assert secure_client.get("/fhir/Task/t1", headers=a).status_code == 200
    found = world.repo.search_params("Consent", [("patient", "Patient/p1")]).matches[0].content
    h = _as_coach(secure_client, world)
    assert _put(secure_client, h, {**found, "status": "inactive"}).status_code == 200
    assert secure_client.get("/fhir/Task/t1", headers=a).status_code == 404
    assert secure_client.get("/fhir/Patient/p1", headers=a).status_code == 404


def test_the_practice_cancels_with_a_reason_and_cannot_act_for_the_organisation(
    secure_client: Any, world: Any
) -> None:
    _send(secure_client, world)
    h = _as_coach(secure_client, world)
    r = _put(secure_client, h, task("t1", "sr1", "p1", "accepted"))
    assert r.status_code == 409 and "allowed: cancelled" in r.text
    r = _put(secure_client, h, task("t1", "sr1", "p1", "cancelled"))
    assert r.status_code in (400, 422)  # no reason
    r = _put(secure_client, h, task("t1", "sr1", "p1", "cancelled", statusReason={"text": "patient moved"}))
    assert r.status_code == 200
    assert _provenance(world)[-1] == "requested → cancelled"


def test_a_cookie_session_is_checked_the_same(secure_client: Any, world: Any) -> None:
    csrf = login(secure_client, world, coach())
    r = secure_client.put(
        "/fhir/Task/t1", json=task("t1", "sr1", "p1", "completed"), headers={"X-CSRF-Token": csrf}
    )
    assert r.status_code == 409


def test_a_client_registered_for_an_organisation_gets_a_confined_token(
    secure_client: Any, world: Any
) -> None:
    """`mecr client add … --organization ORG`: the token endpoint binds the client's tokens to the Organization."""
    import time

    from fhir_ecr.auth.registry import RegistryError, add_client
    from smart_launch import ClientKeySet, build_client_assertion

    keys = ClientKeySet.generate()
    with pytest.raises(RegistryError):
        add_client(
            world, client_id="bad", scope="system/Task.rs", jwks=keys.public_jwks(), organization="no/pe"
        )
    add_client(
        world,
        client_id="food-bank-platform",
        scope="system/Task.rus system/Patient.r",
        jwks=keys.public_jwks(),
        organization="food-bank",
    )
    _send(secure_client, world)
    assertion = build_client_assertion(
        keys,
        client_id="food-bank-platform",
        token_url=f"{world.settings.base_url}/auth/token",
        now=time.time(),
    )
    r = secure_client.post(
        "/auth/token",
        data={
            "grant_type": "client_credentials",
            "scope": "system/Task.rus system/Patient.r",
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": assertion,
        },
    )
    assert r.status_code == 200, r.text
    h = {"Authorization": f"Bearer {r.json()['access_token']}"}
    assert [e["resource"]["id"] for e in secure_client.get("/fhir/Task", headers=h).json()["entry"]] == ["t1"]
    assert secure_client.get("/fhir/Task/t2", headers=h).status_code == 404
    assert world.auth_store.client("food-bank-platform")["organization"] == "food-bank"
