"""Pulling from a real EMR (sekmet-fhir): paged incremental pulls by _lastUpdated, linking, references, read-only
copies, high-water marks; then the same through Bulk Data."""

from __future__ import annotations

from typing import Any

from fhir_ecr.sync import tasks
from fhir_ecr.sync.mapping import local_id
from tests.sync.support import Sekmet, condition, local, patient, register, weight


def _seed(sekmet: Sekmet, n: int = 25) -> None:
    sekmet.put(patient("p1", "MRN-1", "Lopez"))
    sekmet.put(patient("p2", "MRN-2", "Okafor", "1980-05-05"))
    sekmet.put(
        {
            "resourceType": "Encounter",
            "id": "enc1",
            "status": "finished",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
            "subject": {"reference": "Patient/p1"},
        }
    )
    for i in range(n):
        sekmet.put(
            weight(f"w{i}", "p1" if i % 2 else "p2", f"{80 + i}.50", encounter="enc1" if i == 0 else None)
        )
    sekmet.put(condition("c1", "p1"))


def test_paged_pull_copies_links_and_marks(services: Any, sekmet: Sekmet) -> None:
    _seed(sekmet)
    register(
        services, sekmet.base, pull="Patient, Encounter, Condition, Observation?category=vital-signs", push=""
    )
    services.settings = services.settings.model_copy(update={"sync_page_size": 7})
    counts = tasks.pull_now(services, "emr")
    assert counts is not None and counts.rejected == 0, counts
    observations = local(services, "Observation")
    assert len(observations) == 25
    patients = {p["name"][0]["family"]: p for p in local(services, "Patient")}
    assert set(patients) == {"Lopez", "Okafor"}
    lopez = patients["Lopez"]
    # linked as a launch links: the link identifier and the MRN marked as set by the EHR
    assert {"system": "urn:mecr:ehr:emr:Patient", "value": "p1"} in lopez["identifier"]
    w0 = next(o for o in observations if o["id"] == local_id("emr", "Observation", "w0"))
    assert w0["subject"]["reference"] == f"Patient/{patients['Okafor']['id']}"
    assert w0["encounter"]["reference"] == f"Encounter/{local_id('emr', 'Encounter', 'enc1')}"
    assert str(w0["valueQuantity"]["value"]) == "80.50"  # exact numbers
    assert w0["meta"]["source"] == f"{sekmet.base}/Observation/w0"
    assert w0["meta"]["tag"][0]["code"] == "ehr"
    # the high-water mark is the newest lastUpdated the EMR gave
    newest = max(o["meta"]["lastUpdated"] for o in sekmet.search("Observation"))
    assert services.sync_store.mark("emr", "Observation")["high_water"] == newest
    # an unchanged EMR: the next pull writes nothing
    before = services.repo.history("Observation", count=1000).total
    again = tasks.pull_now(services, "emr")
    assert again is not None and again.created == 0 and again.updated == 0
    assert services.repo.history("Observation", count=1000).total == before
    # a change in the EMR comes in, as an update of the same record
    sekmet.put(weight("w3", "p1", "99.25"))
    third = tasks.pull_now(services, "emr")
    assert third is not None and third.updated == 1 and third.created == 0
    changed = services.repo.read("Observation", local_id("emr", "Observation", "w3")).content
    assert str(changed["valueQuantity"]["value"]) == "99.25"
    assert len(local(services, "Observation")) == 25


def test_pulled_resources_are_read_only_in_mecr(services: Any, sekmet: Sekmet, client: Any) -> None:
    _seed(sekmet, 2)
    register(services, sekmet.base, pull="Patient, Observation", push="")
    tasks.pull_now(services, "emr")
    oid = local_id("emr", "Observation", "w1")
    body = services.repo.read("Observation", oid).content
    from tests.helpers import assert_outcome

    assert_outcome(
        client.put(f"/fhir/Observation/{oid}", json={**body, "status": "amended"}), 403, "forbidden"
    )
    assert_outcome(client.delete(f"/fhir/Observation/{oid}"), 403, "forbidden")
    assert_outcome(
        client.patch(
            f"/fhir/Observation/{oid}",
            json=[{"op": "replace", "path": "/status", "value": "amended"}],
            headers={"Content-Type": "application/json-patch+json"},
        ),
        403,
        "forbidden",
    )
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "request": {"method": "PUT", "url": f"Observation/{oid}"},
                "resource": {**body, "status": "amended"},
            }
        ],
    }
    assert_outcome(client.post("/fhir", json=bundle), 403, "forbidden")
    forged = {k: v for k, v in body.items() if k != "id"}
    assert_outcome(client.post("/fhir/Observation", json=forged), 403, "forbidden")
    assert services.repo.read("Observation", oid).version_id == 1


def test_default_pull_brings_allergies_and_medications(services: Any, sekmet: Sekmet) -> None:
    """The default configuration pulls what the coach needs, AllergyIntolerance and MedicationStatement included,
    each as a read-only copy about the linked Patient."""
    sekmet.put(patient("p1", "MRN-1", "Lopez"))
    sekmet.put(
        {
            "resourceType": "AllergyIntolerance",
            "id": "a1",
            "patient": {"reference": "Patient/p1"},
            "code": {
                "coding": [
                    {"system": "http://snomed.info/sct", "code": "91935009", "display": "Allergy to peanut"}
                ]
            },
        }
    )
    sekmet.put(
        {
            "resourceType": "MedicationStatement",
            "id": "m1",
            "status": "active",
            "subject": {"reference": "Patient/p1"},
            "medicationCodeableConcept": {
                "coding": [
                    {
                        "system": "http://www.nlm.nih.gov/research/umls/rxnorm",
                        "code": "860975",
                        "display": "metformin 500 mg",
                    }
                ]
            },
        }
    )
    register(services, sekmet.base, push="")  # the default pull
    counts = tasks.pull_now(services, "emr")
    assert counts is not None and counts.rejected == 0, counts
    pid = local(services, "Patient")[0]["id"]
    allergies = local(services, "AllergyIntolerance", patient=pid)
    meds = local(services, "MedicationStatement", subject=f"Patient/{pid}")
    assert [a["id"] for a in allergies] == [local_id("emr", "AllergyIntolerance", "a1")]
    assert [m["id"] for m in meds] == [local_id("emr", "MedicationStatement", "m1")]
    assert allergies[0]["meta"]["tag"][0]["code"] == "ehr" and meds[0]["meta"]["source"].endswith("/m1")
    marks = {m["res_type"] for m in services.sync_store.marks("emr") if m.get("high_water")}
    assert {"AllergyIntolerance", "MedicationStatement", "Patient"} <= marks


def test_a_deletion_in_the_emr_deletes_the_copy(services: Any, sekmet: Sekmet) -> None:
    """An incremental pull reads the type's history since its mark: a resource the EMR deleted has its copy deleted
    in mECR (a search never returns it); one deleted and created again stays."""
    _seed(sekmet, 4)
    register(services, sekmet.base, pull="Patient, Encounter, Observation", push="")
    tasks.pull_now(services, "emr")
    assert len(local(services, "Observation")) == 4
    assert sekmet.http.delete("/Observation/w2").status_code in (200, 204)
    assert sekmet.http.delete("/Observation/w3").status_code in (200, 204)
    sekmet.put(weight("w3", "p1", "90.00"))  # deleted, then written again
    counts = tasks.pull_now(services, "emr")
    assert counts is not None and counts.deleted == 1, counts
    ids = {o["id"] for o in local(services, "Observation")}
    assert local_id("emr", "Observation", "w2") not in ids and local_id("emr", "Observation", "w3") in ids
    assert services.sync_store.links("emr", "Observation", [local_id("emr", "Observation", "w2")]) == {}
    # a copy others still refer to is kept, and said so
    assert sekmet.http.delete("/Encounter/enc1").status_code in (200, 204)
    again = tasks.pull_now(services, "emr")
    assert again is not None and again.deleted == 0 and again.rejected == 1, again
    assert "still referred to" in again.reasons[0]
    assert services.repo.read("Encounter", local_id("emr", "Encounter", "enc1")).content is not None
