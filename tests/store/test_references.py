"""Referential integrity (fhir_ecr/store/references.py): dangling local references are refused with one issue each,
transactions resolve to their own entries in any order, deletes of what others refer to are refused unless
``_cascade=delete``, and ``MECR_ENFORCE_REFERENCES=false`` turns it all off."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from fhir_ecr.outcomes import FhirError
from tests.helpers import assert_outcome


def obs(subject: str, **more: Any) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": {"text": "mood"},
        "subject": {"reference": subject},
        **more,
    }


def test_a_dangling_reference_is_422_with_one_issue_each(client: Any) -> None:
    body = obs(
        "Patient/nobody",
        performer=[{"reference": "Practitioner/ghost"}],
        focus=[
            {"reference": "#contained"},
            {"reference": "urn:uuid:1b2c"},
            {"reference": "https://elsewhere.example/fhir/Patient/1"},
        ],
    )
    out = assert_outcome(client.post("/fhir/Observation", json=body), 422, "processing")
    assert [i["expression"] for i in out["issue"]] == [["Observation.subject"], ["Observation.performer[0]"]]
    assert "Patient/nobody" in out["issue"][0]["diagnostics"]
    assert client.get("/fhir/Observation").json()["total"] == 0
    # this server's own absolute URL is a local reference too
    absolute = obs("http://testserver/fhir/Patient/nobody")
    assert_outcome(client.post("/fhir/Observation", json=absolute), 422, "processing")
    client.put("/fhir/Patient/nobody", json={"resourceType": "Patient", "id": "nobody"})
    assert client.post("/fhir/Observation", json=absolute).status_code == 201


def test_an_update_or_patch_may_not_add_one(client: Any) -> None:
    client.put("/fhir/Patient/p", json={"resourceType": "Patient", "id": "p"})
    rid = client.post("/fhir/Observation", json=obs("Patient/p")).json()["id"]
    assert_outcome(
        client.put(f"/fhir/Observation/{rid}", json={**obs("Patient/gone"), "id": rid}), 422, "processing"
    )
    r = client.patch(
        f"/fhir/Observation/{rid}",
        headers={"Content-Type": "application/json-patch+json"},
        json=[{"op": "replace", "path": "/subject/reference", "value": "Patient/gone"}],
    )
    assert_outcome(r, 422, "processing")
    assert client.get(f"/fhir/Observation/{rid}").json()["meta"]["versionId"] == "1"


def test_a_transaction_resolves_to_its_own_entries_in_any_order(client: Any) -> None:
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "resource": obs("Patient/new"),
                "request": {"method": "POST", "url": "Observation"},
            },  # runs first
            {
                "resource": {"resourceType": "Patient", "id": "new"},
                "request": {"method": "PUT", "url": "Patient/new"},
            },
            {
                "fullUrl": "urn:uuid:7f0c",
                "resource": {"resourceType": "Practitioner"},
                "request": {"method": "POST", "url": "Practitioner"},
            },
            {
                "resource": obs("Patient/new", performer=[{"reference": "urn:uuid:7f0c"}]),
                "request": {"method": "POST", "url": "Observation"},
            },
        ],
    }
    r = client.post("/fhir", json=bundle)
    assert r.status_code == 200, r.text
    bundle["entry"][1]["request"]["url"] = "Patient/other"
    bundle["entry"][1]["resource"]["id"] = "other"
    bundle["entry"][0]["resource"] = obs("Patient/missing")
    out = assert_outcome(client.post("/fhir", json=bundle), 422, "processing")
    assert "Patient/missing" in out["issue"][0]["diagnostics"]
    assert client.get("/fhir/Patient/other").status_code == 404  # nothing of it was written


def test_deleting_what_others_refer_to_is_409_unless_cascading(client: Any, services: Any) -> None:
    client.put("/fhir/Patient/p", json={"resourceType": "Patient", "id": "p"})
    ids = [client.post("/fhir/Observation", json=obs("Patient/p")).json()["id"] for _ in range(3)]
    services.repo.create(
        {
            "resourceType": "AuditEvent",
            "recorded": "2026-11-01T00:00:00Z",
            "type": {"code": "rest"},
            "agent": [{"requestor": True, "who": {"display": "x"}}],
            "source": {"observer": {"display": "mECR"}},
            "entity": [{"what": {"reference": "Patient/p"}}],
        }
    )
    out = assert_outcome(client.delete("/fhir/Patient/p"), 409, "conflict")
    assert all(f"Observation/{i}" in out["issue"][0]["diagnostics"] for i in ids)
    assert "AuditEvent" not in out["issue"][0]["diagnostics"]  # the audit trail holds nothing in place
    assert client.get("/fhir/Patient/p").status_code == 200
    assert_outcome(client.delete("/fhir/Patient/p?_cascade=yes"), 400, "invalid")
    assert client.delete("/fhir/Patient/p?_cascade=delete").status_code == 204
    assert client.get("/fhir/Patient/p").status_code == 410
    assert all(client.get(f"/fhir/Observation/{i}").status_code == 410 for i in ids)


def test_a_transaction_may_delete_a_resource_and_its_referrers_together(client: Any) -> None:
    client.put("/fhir/Patient/p", json={"resourceType": "Patient", "id": "p"})
    rid = client.post("/fhir/Observation", json=obs("Patient/p")).json()["id"]
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"request": {"method": "DELETE", "url": "Patient/p"}},
            {"request": {"method": "DELETE", "url": f"Observation/{rid}"}},
        ],
    }
    assert client.post("/fhir", json=bundle).status_code == 200
    client.put("/fhir/Patient/q", json={"resourceType": "Patient", "id": "q"})
    client.post("/fhir/Observation", json=obs("Patient/q"))
    alone = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [{"request": {"method": "DELETE", "url": "Patient/q"}}],
    }
    assert_outcome(client.post("/fhir", json=alone), 409, "conflict")
    alone["entry"][0]["request"]["url"] = "Patient/q?_cascade=delete"
    assert client.post("/fhir", json=alone).status_code == 200
    assert client.get("/fhir/Patient/q").status_code == 410


def test_conditional_delete_cascades_too(client: Any) -> None:
    client.put("/fhir/Patient/p", json={"resourceType": "Patient", "id": "p", "gender": "other"})
    client.post("/fhir/Observation", json=obs("Patient/p"))
    assert_outcome(client.delete("/fhir/Patient?gender=other"), 409, "conflict")
    assert client.delete("/fhir/Patient?gender=other&_cascade=delete").status_code == 204
    assert client.get("/fhir/Observation").json()["total"] == 0


def test_enforcement_can_be_turned_off_for_bulk_loads(repo: Any) -> None:
    with pytest.raises(FhirError) as refused:
        repo.create(obs("Patient/later"))
    assert refused.value.status == 422
    loose = copy.copy(repo)
    loose.enforce_references = False
    loose.create(obs("Patient/later"))
    loose.update("Patient", "later", {"resourceType": "Patient", "id": "later"})
    loose.delete("Patient", "later")  # nothing holds it either
