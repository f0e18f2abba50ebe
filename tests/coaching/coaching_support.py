"""Factories for the coaching service tests: a patient, a coach, goals and a habit plan, at a pinned clock."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from fhir_ecr.coaching import resources as res
from fhir_ecr.coaching.service import CoachingService

__all__ = ["NOW", "World", "make_world", "pin_clock", "steps_reading"]

# 2026-03-20 18:00 UTC = 14:00 in New York (EDT since 8 March).
NOW = datetime(2026, 3, 20, 18, 0, tzinfo=UTC)
LOINC_STEPS = {"system": "http://loinc.org", "code": "41950-7"}


def pin_clock(repo: Any, when: datetime = NOW) -> None:
    """Make the repository's clock (and so the service's "now") ``when``."""
    repo.clock = lambda: int(when.timestamp() * 1_000_000)


class World:
    """Ids of the things :func:`make_world` wrote."""

    patient: str
    other_patient: str
    coach: str
    goal: str
    plan: str
    plan_version: int


def make_world(repo: Any, tz: str = "America/New_York", start: date = date(2026, 3, 1)) -> World:
    """A patient (in ``tz``) with a steps goal and a habit plan: a daily walk (8000 /d) and a 3x/week habit."""
    pin_clock(repo)
    svc = CoachingService(repo)
    w = World()
    w.patient = repo.create(
        {
            "resourceType": "Patient",
            "name": [{"family": "Rivera"}],
            "extension": [{"url": res.TIMEZONE_URL, "valueCode": tz}],
        }
    ).stored.id
    w.other_patient = repo.create({"resourceType": "Patient", "name": [{"family": "Other"}]}).stored.id
    org = repo.create({"resourceType": "Organization", "name": "Clinic"}).stored.id
    person = repo.create({"resourceType": "Practitioner", "name": [{"family": "Coach"}]}).stored.id
    w.coach = repo.create(
        {
            "resourceType": "PractitionerRole",
            "meta": {"profile": [res.COACH_PROFILE]},
            "active": True,
            "practitioner": {"reference": f"Practitioner/{person}"},
            "organization": {"reference": f"Organization/{org}"},
            "code": [{"coding": [{"system": res.MECR_CODES, "code": "health-and-wellness-coach"}]}],
        }
    ).stored.id
    w.goal = svc.create_goal(
        w.patient,
        description="Walk 8,000 steps a day",
        category="physical-activity",
        measure=LOINC_STEPS,
        at_least=8000,
        unit="/d",
        due=date(2026, 6, 1),
        priority="high-priority",
    ).id
    walk = res.habit_activity(
        "walk",
        "Walk after lunch",
        res.timing_repeat("daily"),
        start,
        goal_id=w.goal,
        code=[LOINC_STEPS],
        daily_amount=res.quantity(8000, "/d", "steps/day"),
    )
    gym = res.habit_activity("gym", "Gym", res.timing_repeat("per-week", times=3), start)
    plan = svc.create_plan(w.patient, "Habits", [walk, gym], author=f"PractitionerRole/{w.coach}")
    w.plan, w.plan_version = plan.id, plan.version_id
    return w


def steps_reading(patient: str, day: date, steps: int) -> dict[str, Any]:
    """A ``mecr-daily-steps`` Observation for one local day."""
    return {
        "resourceType": "Observation",
        "meta": {"profile": [f"{res.CANONICAL}/StructureDefinition/mecr-daily-steps"], "source": "urn:test"},
        "status": "final",
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                        "code": "activity",
                    }
                ]
            },
            {
                "coding": [
                    {
                        "system": "http://hl7.org/fhir/us/physical-activity/CodeSystem/pa-temporary-codes",
                        "code": "PhysicalActivity",
                    }
                ]
            },
        ],
        "code": {"coding": [{**LOINC_STEPS, "display": "Number of steps in 24 hour Measured"}]},
        "subject": {"reference": f"Patient/{patient}"},
        "effectiveDateTime": day.isoformat(),
        "valueQuantity": res.quantity(steps, "/d", "steps/day"),
    }
