"""The fuzzer's world: two patients, A and B, each with a record, and B's data marked so a leak is visible.

Every resource of B carries a marker (:func:`marker`: :data:`B_MARKER` and its type, in a name, a note, a text)
and has a fixed, known id (listed in :attr:`Seeded.b_ids`), so the fuzzer can aim at it and the oracle can
recognise it, and tell its type, in any response body. A shared Group holds both patients; B's Device is
referenced by B's Observations.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from fhir_ecr.coaching import resources as res
from fhir_ecr.coaching.service import CoachingService

__all__ = ["A", "B", "B_MARKER", "A_MARKER", "NOW", "Seeded", "marker", "seed_world"]

A = "fuzz-a"
B = "fuzz-b"
#: Strings that appear only in B's resources: seeing one in a response to A is a compartment leak.
B_MARKER = "Zebulon7Qx"
A_MARKER = "Anselm3Kw"
NOW = datetime(2026, 3, 20, 18, 0, tzinfo=UTC)
LOINC_STEPS = {"system": "http://loinc.org", "code": "41950-7"}
LOINC_WEIGHT = {"system": "http://loinc.org", "code": "29463-7"}


def marker(base: str, rtype: str) -> str:
    """The marker written into a patient's resources of ``rtype``, e.g. ``Zebulon7Qx-Device``."""
    return f"{base}-{rtype}"


@dataclass
class Seeded:
    """Ids written by :func:`seed_world` (type -> ids), per patient."""

    a_ids: dict[str, list[str]] = field(default_factory=dict)
    b_ids: dict[str, list[str]] = field(default_factory=dict)
    shared: dict[str, list[str]] = field(default_factory=dict)
    coach: str = "fuzz-coach"
    plan_a: str = ""
    goal_a: str = ""

    def __repr__(self) -> str:
        return f"Seeded(A={A}, B={B})"

    def all_b_ids(self) -> set[str]:
        return {i for ids in self.b_ids.values() for i in ids}

    def b_tokens(self) -> set[str]:
        """B's ids and typed markers: the strings that show B's data."""
        return self.all_b_ids() | {marker(B_MARKER, t) for t in self.b_ids}


def _put(repo: Any, resource: dict[str, Any], out: dict[str, list[str]]) -> str:
    stored = repo.update(resource["resourceType"], resource["id"], resource).stored
    out.setdefault(stored.resource_type, []).append(stored.id)
    return str(stored.id)


def _patient_record(repo: Any, pid: str, base: str, out: dict[str, list[str]], coach: str) -> tuple[str, str]:
    """A Patient with Observations, a Goal, a habit plan, Communications, an Encounter and a Device."""
    p = pid.rsplit("-", 1)[-1]

    def tag(rtype: str) -> str:
        return marker(base, rtype)

    _put(
        repo,
        {
            "resourceType": "Patient",
            "id": pid,
            "active": True,
            "name": [{"family": tag("Patient"), "given": [tag("Patient")]}],
            "identifier": [{"system": "urn:fuzz:mrn", "value": tag("Patient")}],
            "telecom": [{"system": "email", "value": f"{tag('Patient').lower()}@example.org"}],
            "birthDate": "1980-02-29",
            "extension": [{"url": res.TIMEZONE_URL, "valueCode": "America/New_York"}],
        },
        out,
    )
    device = _put(
        repo,
        {
            "resourceType": "Device",
            "id": f"fz{p}-dev",
            "patient": {"reference": f"Patient/{pid}"},
            "deviceName": [{"name": tag("Device"), "type": "user-friendly-name"}],
        },
        out,
    )
    for day in range(1, 6):
        _put(
            repo,
            {
                "resourceType": "Observation",
                "id": f"fz{p}-obs-{day}",
                "status": "final",
                "code": {"coding": [LOINC_STEPS], "text": tag("Observation")},
                "subject": {"reference": f"Patient/{pid}"},
                "device": {"reference": f"Device/{device}"},
                "effectiveDateTime": f"2026-03-{day:02d}",
                "valueQuantity": res.quantity(7000 + 500 * day, "/d", "steps/day"),
                "note": [{"text": tag("Observation")}],
            },
            out,
        )
    _put(
        repo,
        {
            "resourceType": "Observation",
            "id": f"fz{p}-obs-weight",
            "status": "final",
            "code": {"coding": [LOINC_WEIGHT]},
            "subject": {"reference": f"Patient/{pid}"},
            "effectiveDateTime": "2026-03-10T08:30:00-05:00",
            "valueQuantity": {
                "value": 81.5,
                "unit": "kg",
                "system": "http://unitsofmeasure.org",
                "code": "kg",
            },
            "performer": [{"reference": f"Patient/{pid}"}],
            "note": [{"text": tag("Observation")}],
        },
        out,
    )
    _put(
        repo,
        {
            "resourceType": "Encounter",
            "id": f"fz{p}-enc",
            "status": "finished",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "VR"},
            "subject": {"reference": f"Patient/{pid}"},
            "participant": [{"individual": {"reference": f"Practitioner/{coach}"}}],
            "period": {"start": "2026-03-05T10:00:00Z", "end": "2026-03-05T10:30:00Z"},
            "reasonCode": [{"text": tag("Encounter")}],
        },
        out,
    )
    for n, (sender, recipient) in enumerate(
        ((f"Practitioner/{coach}", f"Patient/{pid}"), (f"Patient/{pid}", f"Practitioner/{coach}")), start=1
    ):
        _put(
            repo,
            {
                "resourceType": "Communication",
                "id": f"fz{p}-msg-{n}",
                "status": "completed",
                "subject": {"reference": f"Patient/{pid}"},
                "sender": {"reference": sender},
                "recipient": [{"reference": recipient}],
                "sent": f"2026-03-0{n}T12:00:00Z",
                "payload": [{"contentString": tag("Communication")}],
            },
            out,
        )
    svc = CoachingService(repo)
    goal = svc.create_goal(
        pid,
        description=tag("Goal"),
        category="physical-activity",
        measure=LOINC_STEPS,
        at_least=8000,
        unit="/d",
        due=date(2026, 6, 1),
    )
    out.setdefault("Goal", []).append(goal.id)
    walk = res.habit_activity(
        "walk",
        tag("CarePlan"),
        res.timing_repeat("daily"),
        date(2026, 3, 1),
        goal_id=goal.id,
        code=[LOINC_STEPS],
        daily_amount=res.quantity(8000, "/d", "steps/day"),
    )
    plan = svc.create_plan(
        pid, tag("CarePlan"), [walk], author=f"Practitioner/{coach}", plan_id=f"fz{p}-plan"
    )
    out.setdefault("CarePlan", []).append(plan.id)
    return goal.id, plan.id


def seed_world(repo: Any) -> Seeded:
    """Write the fuzzer's world into an empty store (through the unguarded repository) at a pinned clock."""
    repo.clock = lambda: int(NOW.timestamp() * 1_000_000)
    world = Seeded()
    _put(
        repo, {"resourceType": "Practitioner", "id": world.coach, "name": [{"family": "Coach"}]}, world.shared
    )
    world.goal_a, world.plan_a = _patient_record(repo, A, A_MARKER, world.a_ids, world.coach)
    _patient_record(repo, B, B_MARKER, world.b_ids, world.coach)
    _put(
        repo,
        {
            "resourceType": "Group",
            "id": "group-ab",
            "type": "person",
            "actual": True,
            "name": "Walking group",
            "member": [{"entity": {"reference": f"Patient/{A}"}}, {"entity": {"reference": f"Patient/{B}"}}],
        },
        world.shared,
    )
    return world
