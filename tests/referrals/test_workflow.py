"""The referral Task state machine (fhir_ecr.referrals.workflow), table-driven: every (from, to, role) combination
is tried; the legal ones pass, every illegal one is refused with the allowed statuses named.

The expected table is written out here, independently of the module (Gravity SDOH CC IG referral workflow:
the practice sets draft, requested, cancelled; the organisation the rest; completed, rejected, cancelled and
failed end the Task)."""

from __future__ import annotations

import json
from itertools import product
from pathlib import Path

import pytest

from fhir_ecr.outcomes import FhirError
from fhir_ecr.referrals.workflow import allowed_next, check_transition, is_referral_task

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "fhir" / "gravity-sdoh"
STATUSES = [
    "draft",
    "requested",
    "received",
    "accepted",
    "rejected",
    "cancelled",
    "in-progress",
    "on-hold",
    "failed",
    "completed",
]
PRACTICE = {"draft", "requested", "cancelled"}
LEGAL = {  # from -> to, whoever sets it
    None: {"draft", "requested"},
    "draft": {"requested", "cancelled"},
    "requested": {"received", "accepted", "rejected", "cancelled"},
    "received": {"accepted", "rejected", "cancelled"},
    "accepted": {"in-progress", "on-hold", "completed", "failed", "cancelled"},
    "in-progress": {"on-hold", "completed", "failed", "cancelled"},
    "on-hold": {"in-progress", "completed", "failed", "cancelled"},
    "completed": set(),
    "rejected": set(),
    "cancelled": set(),
    "failed": set(),
}


def task(status: str, **extra: object) -> dict[str, object]:
    t: dict[str, object] = {
        "resourceType": "Task",
        "id": "t1",
        "meta": {"profile": ["https://mecr.dev/fhir/StructureDefinition/mecr-referral-task"]},
        "status": status,
        "intent": "order",
        "focus": {"reference": "ServiceRequest/sr1"},
        "for": {"reference": "Patient/p1"},
        "requester": {"reference": "Practitioner/c1"},
        "owner": {"reference": "Organization/food-bank"},
        "code": {"coding": [{"system": "http://hl7.org/fhir/CodeSystem/task-code", "code": "fulfill"}]},
    }
    if status in ("rejected", "cancelled", "on-hold", "failed"):
        t["statusReason"] = {"text": "why"}
    t.update(extra)
    return t


def may_set(role: str, status: str) -> bool:
    return role == "any" or (status in PRACTICE) == (role in ("practice", "patient"))


CASES = [
    (old, new, role)
    for old, new, role in product([None, *STATUSES], STATUSES, ["practice", "organisation", "patient", "any"])
    if old != new
]


@pytest.mark.parametrize(("old", "new", "role"), CASES)
def test_every_transition(old: str | None, new: str, role: str) -> None:
    creates_as_other = old is None and role in ("organisation", "patient")  # only the practice creates
    legal = new in LEGAL[old] and may_set(role, new) and not creates_as_other
    before = None if old is None else task(old)
    if legal:
        check_transition(before, task(new), role)  # type: ignore[arg-type]
        return
    with pytest.raises(FhirError) as err:
        check_transition(before, task(new), role)  # type: ignore[arg-type]
    text = err.value.outcome["issue"][0]["diagnostics"]
    if creates_as_other:
        assert err.value.status == 403
        return
    assert err.value.status == 409, text
    expected = {s for s in LEGAL[old] if may_set(role, s)}
    named = text.split("allowed: ", 1)[1]
    assert (set(named.split(", ")) == expected) if expected else named.startswith("none")


def test_allowed_next_names_the_organisations_moves() -> None:
    assert allowed_next("requested", "organisation") == ["received", "accepted", "rejected"]
    assert allowed_next("requested", "practice") == ["cancelled"]
    assert allowed_next("completed", "any") == []


@pytest.mark.parametrize("status", ["rejected", "cancelled", "on-hold", "failed"])
def test_a_reason_is_needed(status: str) -> None:
    old = task("accepted") if status != "rejected" else task("requested")
    new = task(status)
    new.pop("statusReason")
    role = "practice" if status == "cancelled" else "organisation"
    with pytest.raises(FhirError) as err:
        check_transition(old, new, role)
    assert err.value.status == 422


def test_the_organisation_changes_only_status_reasons_notes_outputs() -> None:
    old = task("requested")
    check_transition(old, task("accepted", note=[{"text": "we will call"}]), "organisation")
    for field, value in [
        ("owner", {"reference": "Organization/other"}),
        ("priority", "urgent"),
        ("description", "x"),
    ]:
        with pytest.raises(FhirError) as err:
            check_transition(old, task("accepted", **{field: value}), "organisation")
        assert err.value.status == 403
    with pytest.raises(FhirError) as err:  # nobody re-points a referral at another patient
        check_transition(old, task("requested", **{"for": {"reference": "Patient/p2"}}), "practice")
    assert err.value.status == 403
    with pytest.raises(FhirError):  # nor deletes it
        check_transition(old, None, "practice")


def _gravity(name: str) -> dict[str, object]:
    return json.loads((FIXTURES / name).read_text())  # type: ignore[no-any-return]


def test_the_gravity_example_tasks_run_through_the_state_machine() -> None:
    """Gravity's referral Tasks (accepted, completed; order fulfilment and subtask) are reached from requested
    by the organisation, one legal step at a time, and their end is final."""
    examples = [
        _gravity(f"Task-SDOHCC-TaskReferralManagementOrder{n}Example.json")
        for n in ("FulfillmentAccepted", "FulfillmentCompleted", "SubtaskAccepted", "SubtaskCompleted")
    ]
    for example in examples:
        assert is_referral_task(example)
        status = str(example["status"])
        path = {"accepted": ["requested", "accepted"], "completed": ["requested", "accepted", "completed"]}[
            status
        ]
        check_transition(None, {**example, "status": "requested"}, "practice")
        for a, b in zip(path, path[1:], strict=False):
            check_transition({**example, "status": a}, {**example, "status": b}, "organisation")
        if status == "completed":
            with pytest.raises(FhirError) as err:
                check_transition(example, {**example, "status": "in-progress"}, "organisation")
            assert "referral has ended" in err.value.outcome["issue"][0]["diagnostics"]
    patient_tasks = [p.name for p in FIXTURES.glob("Task-SDOHCC-TaskPatient*.json")]
    assert patient_tasks and not any(is_referral_task(_gravity(n)) for n in patient_tasks)
