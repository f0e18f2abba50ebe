"""The per-patient data version: every write path that touches a patient's compartment bumps it, once per
unit of work, in the same transaction; reads, no-op writes and other patients' writes leave it alone."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from fhir_ecr.outcomes import FhirError


def patient(**extra: Any) -> dict[str, Any]:
    return {"resourceType": "Patient", "name": [{"family": "Doe"}], **extra}


def steps(pid: str, value: int, day: str = "2026-11-01") -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "41950-7"}]},
        "subject": {"reference": f"Patient/{pid}"},
        "effectiveDateTime": day,
        "valueQuantity": {"value": value, "system": "http://unitsofmeasure.org", "code": "/d"},
    }


def upserts(repo: Any) -> list[str]:
    """Record the patient_version statements the repository sends (to count them)."""
    seen: list[str] = []

    @sa.event.listens_for(repo.engine, "before_cursor_execute")
    def _record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.startswith("INSERT INTO patient_version"):
            seen.append(statement)

    return seen


@pytest.fixture
def two(repo: Any) -> tuple[str, str]:
    return repo.create(patient()).stored.id, repo.create(patient()).stored.id


def test_new_patient_has_a_version_and_unknown_is_zero(repo: Any) -> None:
    assert repo.patient_version("nobody") == 0
    pid = repo.create(patient()).stored.id
    assert repo.patient_version(pid) > 0


def test_every_single_write_path_bumps_only_that_patient(repo: Any, two: tuple[str, str]) -> None:
    a, b = two

    def bumped(action: Any) -> bool:
        before_a, before_b = repo.patient_version(a), repo.patient_version(b)
        action()
        assert repo.patient_version(b) == before_b, "another patient's version changed"
        return bool(repo.patient_version(a) > before_a)

    obs: dict[str, Any] = {}
    assert bumped(lambda: obs.update(s=repo.create(steps(a, 100)).stored))
    oid = obs["s"].id
    assert bumped(lambda: repo.update("Observation", oid, {**steps(a, 200), "id": oid}))
    assert not bumped(
        lambda: repo.update("Observation", oid, {**steps(a, 200), "id": oid})
    )  # unchanged: no-op
    assert bumped(
        lambda: repo.patch("Observation", oid, [{"op": "replace", "path": "/status", "value": "amended"}])
    )
    assert bumped(
        lambda: repo.update("Observation", "chosen-id", {**steps(a, 5), "id": "chosen-id"})
    )  # PUT-create
    assert bumped(lambda: repo.conditional_update("Observation", "_id=chosen-id", {**steps(a, 6)}))
    assert bumped(lambda: repo.delete("Observation", oid))
    assert not bumped(lambda: repo.delete("Observation", oid))  # already deleted: nothing written
    assert bumped(lambda: repo.conditional_delete("Observation", "_id=chosen-id"))
    assert bumped(
        lambda: repo.update("Patient", a, {**patient(gender="female"), "id": a})
    )  # the Patient itself
    assert not bumped(lambda: repo.read("Patient", a))
    assert not bumped(lambda: repo.search_params("Observation", [("subject", f"Patient/{a}")]))
    assert not bumped(lambda: repo.create({"resourceType": "Organization", "name": "Clinic"}))


def test_moving_a_resource_to_another_patient_bumps_both(repo: Any, two: tuple[str, str]) -> None:
    a, b = two
    oid = repo.create(steps(a, 100)).stored.id
    va, vb = repo.patient_version(a), repo.patient_version(b)
    repo.update("Observation", oid, {**steps(b, 100), "id": oid})
    assert repo.patient_version(a) > va and repo.patient_version(b) > vb


def test_a_unit_bumps_each_patient_once_for_many_writes(repo: Any, two: tuple[str, str]) -> None:
    a, b = two
    statements = upserts(repo)
    before = repo.patient_version(a), repo.patient_version(b)
    with repo.unit() as uow:  # a bulk import: buffered creates flushed in bulk
        for day in range(1, 29):
            uow.create(steps(a, day, f"2026-02-{day:02d}"))
        uow.flush()
        for day in range(1, 4):
            uow.create(steps(b, day, f"2026-03-{day:02d}"))
    assert len(statements) == 1  # one statement for the unit (both patients)
    assert repo.patient_version(a) > before[0] and repo.patient_version(b) > before[1]


def test_the_version_rolls_back_with_the_unit(repo: Any, two: tuple[str, str]) -> None:
    a, _ = two
    before = repo.patient_version(a)
    with pytest.raises(RuntimeError), repo.unit() as uow:
        uow.create(steps(a, 1))
        uow.flush()
        raise RuntimeError("crash mid-unit")
    assert repo.patient_version(a) == before


def test_versions_never_repeat(repo: Any, two: tuple[str, str]) -> None:
    a, _ = two
    seen = {repo.patient_version(a)}
    for n in range(5):
        repo.create(steps(a, n))
        seen.add(repo.patient_version(a))
    assert len(seen) == 6


def test_a_compartment_resource_referencing_by_absolute_url_counts(repo: Any, two: tuple[str, str]) -> None:
    a, _ = two
    before = repo.patient_version(a)
    base = repo.fhir_base
    assert base
    repo.create({**steps(a, 1), "subject": {"reference": f"{base}/Patient/{a}"}})
    assert repo.patient_version(a) > before


def test_transaction_bundle_and_failed_write_paths(client: Any, repo: Any, two: tuple[str, str]) -> None:
    a, b = two
    va, vb = repo.patient_version(a), repo.patient_version(b)
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"resource": steps(a, 1), "request": {"method": "POST", "url": "Observation"}},
            {"resource": steps(b, 2), "request": {"method": "POST", "url": "Observation"}},
        ],
    }
    assert client.post("/fhir", json=bundle).status_code == 200
    assert repo.patient_version(a) > va and repo.patient_version(b) > vb
    va = repo.patient_version(a)
    bad = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"resource": steps(a, 1), "request": {"method": "POST", "url": "Observation"}},
            {
                "resource": {"resourceType": "Observation"},
                "request": {"method": "POST", "url": "Observation"},
            },
        ],
    }
    assert client.post("/fhir", json=bad).status_code >= 400
    assert repo.patient_version(a) == va  # the failed transaction wrote nothing, not even the version
    with pytest.raises(FhirError):
        repo.update("Observation", "nope", {**steps(a, 1), "id": "nope"}, expected_version=3)
    assert repo.patient_version(a) == va


def test_audit_events_do_not_change_the_version(repo: Any, two: tuple[str, str]) -> None:
    a, _ = two
    before = repo.patient_version(a)
    repo.create(
        {
            "resourceType": "AuditEvent",
            "type": {"code": "rest"},
            "recorded": "2026-11-28T10:00:00Z",
            "agent": [{"requestor": True, "who": {"display": "x"}}],
            "source": {"observer": {"display": "mECR"}},
            "entity": [{"what": {"reference": f"Patient/{a}"}}],
        }
    )
    assert repo.patient_version(a) == before
