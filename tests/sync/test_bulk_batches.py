"""A Bulk Data pull loads its NDJSON files in batches through the store's write path (docs/sync.md, "Pull"):
each batch's Patients linked in one unit of work, each resource validated once, a resource the store refuses left
out alone (the rest of its batch is written), provenance on every copy, and a re-pull of what is stored neither
validates nor writes anything. The EMR is faked at its edge with respx (tests/sync/test_faults.py)."""

from __future__ import annotations

from typing import Any

import pytest

from fhir_ecr.auth import linking
from fhir_ecr.sync.mapping import local_id
from tests.sync.support import local, patient, register, weight
from tests.sync.test_faults import BASE, bulk_pull


def test_bulk_pull_in_batches_rejects_bad_resources_alone_and_marks_provenance(
    services: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    register(services, BASE, pull="Patient, Observation", push="", mode="bulk")
    services.settings = services.settings.model_copy(update={"sync_batch_size": 4})
    # An MRN mECR set on a coachee before sync: that EHR record is linked to it, by the one-at-a-time path.
    services.repo.update(
        "Patient",
        "known",
        {
            "resourceType": "Patient",
            "id": "known",
            "birthDate": "1970-01-01",
            "identifier": [
                {
                    "system": "urn:oid:1.2.3.4.5.1",
                    "value": "MRN-3",
                    "extension": [
                        {
                            "url": "https://mecr.dev/fhir/StructureDefinition/identifier-source",
                            "valueCode": "mecr",
                        }
                    ],
                }
            ],
        },
    )
    single: list[str] = []
    original = linking.link_resource

    def counted(repo: Any, ehr_id: str, remote: dict[str, Any]) -> str:
        single.append(str(remote["id"]))
        return original(repo, ehr_id, remote)

    patients = [patient(f"p{i}", f"MRN-{i}", f"Family{i}") for i in range(1, 6)]
    observations = [weight(f"w{i}", f"p{1 + i % 5}", f"{70 + i}.5") for i in range(10)]
    observations[2]["status"] = "not-a-status"  # a required binding broken: the store refuses it (422)
    observations[7]["valueQuantity"]["value"] = "heavy"  # not a decimal: refused (400)
    monkeypatch.setattr("fhir_ecr.sync.pull.link_resource", counted)
    counts = bulk_pull(services, {"Patient": patients, "Observation": observations})
    assert counts is not None
    assert (counts.fetched, counts.created, counts.rejected) == (15, 13, 2), counts
    assert any("refused by the store" in r for r in counts.reasons)
    assert single == ["p3"]  # only the business-identifier match went one at a time
    stored = {o["id"]: o for o in local(services, "Observation")}
    assert set(stored) == {local_id("emr", "Observation", f"w{i}") for i in range(10) if i not in (2, 7)}
    linked = {p["id"] for p in local(services, "Patient")}
    assert len(linked) == 5 and "known" in linked
    for i, obs in ((0, stored[local_id("emr", "Observation", "w0")]),):
        assert obs["meta"]["source"] == f"{BASE}/Observation/w{i}"
        assert obs["meta"]["tag"][0]["code"] == "ehr"
        assert {"system": "urn:mecr:ehr:emr:Observation", "value": "w0"} in obs["identifier"]
        assert obs["subject"]["reference"].startswith("Patient/") and "p1" not in obs["subject"]["reference"]
    links = services.sync_store.by_remote("emr", "Patient", [f"p{i}" for i in range(1, 6)])
    assert len(links) == 5 and links["p3"] == "known"
    assert len(services.sync_store.by_remote("emr", "Observation", [f"w{i}" for i in range(10)])) == 8

    # The same export again: everything is what is stored — nothing validated, nothing written.
    calls: list[str] = []
    validator = services.repo.validator

    def watched(resource: dict[str, Any]) -> None:
        calls.append(str(resource.get("resourceType")))
        validator(resource)

    services.repo.validator = watched
    versions = {o["id"]: o["meta"]["versionId"] for o in local(services, "Observation")}
    services.sync_store.put_mark("emr", "*", high_water=None)
    again = bulk_pull(services, {"Patient": patients, "Observation": observations})
    assert again is not None and (again.unchanged, again.created, again.rejected) == (13, 0, 2), again
    assert calls.count("Observation") == 2  # only the two refused ones, tried again
    assert {o["id"]: o["meta"]["versionId"] for o in local(services, "Observation")} == versions


def test_patients_sharing_an_identifier_in_one_batch_are_linked_one_at_a_time(services: Any) -> None:
    register(services, BASE, pull="Patient", push="", mode="bulk")
    twins = [patient("a1", "MRN-9", "Same"), patient("a2", "MRN-9", "Other", born="1980-02-02")]
    linked, rest = linking.link_batch(services.repo, "emr", [*twins, patient("a3", "MRN-10", "Alone")])
    assert list(linked) == ["a3"] and [r["id"] for r in rest] == ["a1", "a2"]
    assert linking.link_resource(services.repo, "emr", rest[0])
    try:
        linking.link_resource(services.repo, "emr", rest[1])
    except linking.LinkConflict:
        pass  # another birth date under the same MRN: a conflict, never a merge
    else:
        raise AssertionError("expected an identity conflict")
    # linked before: found by the link identifier, demographics refreshed, in the batch path
    moved = patient("a3", "MRN-10", "Renamed")
    again, rest = linking.link_batch(services.repo, "emr", [moved])
    assert again == linked and rest == []
    assert services.repo.read("Patient", linked["a3"]).content["name"][0]["family"] == "Renamed"
