"""Demo coaching data as FHIR transaction Bundles: every coaching feature on a few people, deterministic.

:func:`demo_coaching_bundles` returns Bundles to POST to ``/fhir`` in order. Relative to ``today``:

* Ana (``America/New_York``) has a steps goal (>= 8000 /d) and a sleep goal (>= 7 h), and a habit plan with
  a daily walk (coded with LOINC steps, 8000 /d, so wearable days count), "screens off by 22:00" **paused**
  for travel ten days ago, and a Mon/Wed/Fri stretching habit.
* Her walk has been checked in every day for 60 days except five days ago: a **repaired** streak.
* Daily steps average about 5,600 for 30 days, then a PDSA change ("walk after lunch with a colleague",
  recorded on the walk habit 30 days ago) lifts them to about 8,600: a **shift** signal after the change.
* Ana, Ben and Cara attend a **group session** (one group-level Encounter, one per person ``partOf`` it,
  each with a session note); Ana also had an individual video follow-up.

Everything is built with the same builders the service uses (:mod:`~fhir_ecr.coaching.fhir_io`), so the demo
is what the service would have written.
"""

from __future__ import annotations

import math
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from fhir_ecr.coaching import fhir_io as io
from fhir_ecr.coaching.progress import AchievementStatus
from fhir_ecr.coaching.schedule import CheckInStatus
from fhir_ecr.coaching.sessions import MODALITIES, SESSION_TYPES, SessionNote, session_note_document

__all__ = ["demo_coaching_bundles"]

_TZ = "America/New_York"
_LOINC = "http://loinc.org"


def _put(resource: dict[str, Any]) -> dict[str, Any]:
    return {"fullUrl": f"{resource['resourceType']}/{resource['id']}", "resource": resource,
            "request": {"method": "PUT", "url": f"{resource['resourceType']}/{resource['id']}"}}


def _bundle(resources: list[dict[str, Any]]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": "transaction", "entry": [_put(r) for r in resources]}


def _steps(day_index: int, shifted: bool) -> int:
    # A deterministic wobble around the mean (no random module: the demo is the same every time).
    wobble = 900 * math.sin(day_index * 2.3) + 400 * math.cos(day_index * 0.7)
    return int(round((8600 if shifted else 5600) + wobble))


def _encounter(eid: str, pid: str, kind: str, modality: str, start: datetime, end: datetime,
               part_of: str | None) -> dict[str, Any]:
    cls = MODALITIES[modality]
    enc: dict[str, Any] = {
        "resourceType": "Encounter", "id": eid, "meta": {"profile": [io.SESSION_PROFILE]},
        "extension": [{"url": io.MODALITY_URL, "valueCoding": {"system": io.MODALITY_SYSTEM, "code": modality}}],
        "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": cls},
        "type": [{"coding": [{"system": io.MECR_CODES, "code": SESSION_TYPES[kind]}]}],
        "subject": {"reference": f"Patient/{pid}"},
        "participant": [{"type": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                                               "code": "PPRF"}]}],
                         "individual": {"reference": "PractitionerRole/demo-coach"}}],
        "period": {"start": start.isoformat(timespec="seconds"), "end": end.isoformat(timespec="seconds")},
        "length": {"value": int((end - start).total_seconds() // 60), "unit": "min",
                   "system": "http://unitsofmeasure.org", "code": "min"},
        "serviceProvider": {"reference": "Organization/demo-clinic"},
    }
    if part_of:
        enc["partOf"] = {"reference": f"Encounter/{part_of}"}
    return enc


def demo_coaching_bundles(today: date, *, prefix: str = "demo") -> list[dict[str, Any]]:
    """Transaction Bundles (people, goals and plan, daily data, sessions) for a demo as of ``today``."""
    p = prefix
    ana, ben, cara = f"{p}-ana", f"{p}-ben", f"{p}-cara"
    plan_id, steps_goal, sleep_goal = f"{p}-ana-habits", f"{p}-goal-steps", f"{p}-goal-sleep"
    start = today - timedelta(days=60)
    change_day = today - timedelta(days=30)
    tz_ext = [{"url": io.TIMEZONE_URL, "valueCode": _TZ}]
    people: list[dict[str, Any]] = [
        {"resourceType": "Organization", "id": f"{p}-clinic", "name": "Riverside Family Practice"},
        {"resourceType": "Practitioner", "id": f"{p}-coach-person", "name": [{"family": "Okafor", "given": ["Jo"]}]},
        {"resourceType": "PractitionerRole", "id": f"{p}-coach", "meta": {"profile": [io.COACH_PROFILE]},
         "active": True, "practitioner": {"reference": f"Practitioner/{p}-coach-person"},
         "organization": {"reference": f"Organization/{p}-clinic"},
         "code": [{"coding": [{"system": io.MECR_CODES, "code": "health-and-wellness-coach"}]}]},
    ]
    for pid, given in ((ana, "Ana"), (ben, "Ben"), (cara, "Cara")):
        people.append({"resourceType": "Patient", "id": pid, "extension": tz_ext,
                       "name": [{"family": "Demo", "given": [given]}]})
    people.append({"resourceType": "Group", "id": f"{p}-walking-group", "type": "person", "actual": True,
                   "name": "Tuesday walking group",
                   "member": [{"entity": {"reference": f"Patient/{x}"}} for x in (ana, ben, cara)]})

    def goal(gid: str, text: str, category: str, code: str, value: float, unit: str,
             status: AchievementStatus) -> dict[str, Any]:
        return {"resourceType": "Goal", "id": gid, "meta": {"profile": [io.GOAL_PROFILE]},
                "lifecycleStatus": "active", "achievementStatus": {"coding": [status.coding()]},
                "category": [{"coding": [{"system": io.GOAL_CATEGORY_SYSTEM, "code": category}]}],
                "description": {"text": text}, "subject": {"reference": f"Patient/{ana}"},
                "startDate": start.isoformat(), "expressedBy": {"reference": f"Patient/{ana}"},
                "priority": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/goal-priority",
                                         "code": "high-priority"}]},
                "target": [{"measure": {"coding": [{"system": _LOINC, "code": code}]},
                            "detailQuantity": {**io.quantity(value, unit), "comparator": ">="},
                            "dueDate": (today + timedelta(days=60)).isoformat()}]}

    walk = io.habit_activity("walk", "Walk after lunch", io.timing_repeat("daily"), start, goal_id=steps_goal,
                             code=[{"system": _LOINC, "code": "41950-7"}],
                             daily_amount=io.quantity(8000, "/d", "steps/day"))
    walk["progress"] = [io.pdsa_annotation(change_day, "Walk after lunch with a colleague",
                                           plan="A colleague joins the walk; predict +2000 steps/day",
                                           do="Started walking with Sam after lunch",
                                           author=f"PractitionerRole/{p}-coach")]
    screens = io.habit_activity("screens-off", "Screens off by 22:00", io.timing_repeat("daily"), start,
                                goal_id=sleep_goal)
    paused_from = today - timedelta(days=10)
    screens["detail"]["status"] = "on-hold"
    screens["detail"]["statusReason"] = {"coding": [{"system": io.PAUSE_REASON_SYSTEM, "code": "travel"}]}
    screens["extension"].append(io.pause_extension(io.Pause(paused_from, None, "travel")))
    stretch = io.habit_activity("stretch", "Stretch 10 minutes", io.timing_repeat("weekdays", weekdays=["mon", "wed",
                                "fri"]), start)
    plan = {"resourceType": "CarePlan", "id": plan_id, "meta": {"profile": [io.PLAN_PROFILE]}, "status": "active",
            "intent": "plan", "category": [{"coding": [{"system": io.MECR_CODES, "code": "habit-plan"}]}],
            "title": "Ana's habits", "subject": {"reference": f"Patient/{ana}"}, "period": {"start": start.isoformat()},
            "author": {"reference": f"PractitionerRole/{p}-coach"},
            "goal": [{"reference": f"Goal/{steps_goal}"}, {"reference": f"Goal/{sleep_goal}"}],
            "activity": [walk, screens, stretch]}
    plans = [goal(steps_goal, "Walk 8,000 steps a day", "physical-activity", "41950-7", 8000, "/d",
                  AchievementStatus.IMPROVING),
             goal(sleep_goal, "Sleep at least 7 hours", "sleep", "93832-4", 7, "h", AchievementStatus.IN_PROGRESS),
             plan]

    habits = {h.habit_id: h for h in io.habits_of_plan(plan)}
    data: list[dict[str, Any]] = []
    missed = today - timedelta(days=5)
    for n in range(61):
        day = start + timedelta(days=n)
        if day >= today:
            break
        steps = _steps(n, day >= change_day)
        reading = {"resourceType": "Observation", "id": f"{p}-steps-{day.isoformat()}",
                   "meta": {"profile": [f"{io.CANONICAL}/StructureDefinition/mecr-daily-steps"],
                            "source": "urn:mecr:demo"},
                   "status": "final",
                   "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                             "code": "activity"}]},
                                {"coding": [{"system": "http://hl7.org/fhir/us/physical-activity/CodeSystem/"
                                                       "pa-temporary-codes", "code": "PhysicalActivity"}]}],
                   "code": {"coding": [{"system": _LOINC, "code": "41950-7",
                                        "display": "Number of steps in 24 hour Measured"}]},
                   "subject": {"reference": f"Patient/{ana}"}, "effectiveDateTime": day.isoformat(),
                   "valueQuantity": io.quantity(steps, "/d", "steps/day")}
        data.append(reading)
        if day != missed:
            status = CheckInStatus.DONE if steps >= 6000 else CheckInStatus.PARTLY
            obs = io.checkin_observation(habits["walk"], ana, day, status,
                                         quantity=io.quantity(steps, "/d", "steps/day"))
            obs["id"] = f"{p}-checkin-walk-{day.isoformat()}"
            data.append(obs)
        if day < paused_from:
            obs = io.checkin_observation(habits["screens-off"], ana, day,
                                         CheckInStatus.DONE if n % 4 else CheckInStatus.NOT_DONE)
            obs["id"] = f"{p}-checkin-screens-{day.isoformat()}"
            data.append(obs)

    zone = ZoneInfo(_TZ)
    g_start = datetime.combine(today - timedelta(days=3), datetime.min.time(), zone).replace(hour=12)
    g_end = g_start + timedelta(minutes=60)
    sessions: list[dict[str, Any]] = [_encounter(f"{p}-group-session", ana, "group", "in-person", g_start, g_end,
                                                 None)]
    for pid in (ana, ben, cara):
        eid = f"{p}-group-session-{pid}"
        sessions.append(_encounter(eid, pid, "group", "in-person", g_start, g_end, f"{p}-group-session"))
        note = session_note_document(pid, eid, f"PractitionerRole/{p}-coach", g_start, g_end,
                                     SessionNote("Walking routes and step goals", "Bad weather",
                                                 "Try the mall walk on rainy days"), [])
        note["id"] = f"{p}-note-{eid}"
        sessions.append(note)
    v_start = datetime.combine(change_day - timedelta(days=1), datetime.min.time(), zone).replace(hour=16)
    sessions.append(_encounter(f"{p}-video-session", ana, "follow-up", "video", v_start,
                               v_start + timedelta(minutes=32), None))
    for r in sessions:
        if r["resourceType"] == "Encounter":
            r["participant"][0]["individual"]["reference"] = f"PractitionerRole/{p}-coach"
            r["serviceProvider"]["reference"] = f"Organization/{p}-clinic"
    return [_bundle(people), _bundle(plans), _bundle(data), _bundle(sessions)]
