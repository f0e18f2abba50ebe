"""Demo coaching data as FHIR transaction Bundles: every coaching feature on three people, deterministic.

:func:`demo_coaching_bundles` returns Bundles to POST to ``/fhir`` in order (people, goals and plans, daily
data, sessions). The three people are the sandbox EHR's first three patients — Ana Lopez, Brian Okafor and
Chloe Nguyen (ids ``demo-ana``, ``demo-ben``, ``demo-cara``), with the EHR's names, sex, birth dates, MRNs and
problem lists — and their coach is the sandbox's Dana Whitfield, so a launch from the sandbox lands on these
records and changes nothing in them. They bill (docs/billing.md): the coach's role carries her NBC-HWC
credential, Ana and Brian have a Coverage with a payer whose Organization holds a payer ID
(``https://mecr.dev/fhir/sid/payer-id``), Chloe pays herself, and each has an address and diagnoses.
Everything is relative to ``today`` (all three live in ``America/New_York``):

* **Ana** has a steps goal (>= 8000 /d) and a sleep goal (>= 7 h), and a habit plan with a daily walk (coded
  with LOINC steps, 8000 /d, so wearable days count), "screens off by 22:00" **paused** for travel ten days
  ago (status on-hold, reason travel, an open ``habit-pause``; an earlier illness pause is in its history),
  and a three-days-a-week stretching habit. Her walk was checked in every day for 60 days except five days
  ago: a **repaired** streak. Daily steps average about 5,600 for 30 days, then a PDSA change ("walk after
  lunch with a colleague", on the walk habit 30 days ago) lifts them to about 8,900: a **shift** signal in
  the run chart after the change, and a goal met every day since (sustaining). Her sleep summaries stay flat
  below target (no-change).
* Ana's weight goal (at most 84 kg) was met on her last weigh-in: achieved.
* **Brian** strength-trains three times a week (a weekly habit, counted in weeks); **Chloe**'s daily walk
  streak keeps breaking. Their goals are not measured (in-progress, no run chart).
* Ana, Brian and Chloe attend a **group session**: one group-level Encounter whose subject is their ``Group``,
  one Encounter per person ``partOf`` it, each with a session note. Ana also had a video follow-up, Brian an
  initial in-person session and Chloe an audio-only follow-up.

Wearable days are daily summaries in the IG's profiles (mecr-daily-steps, -sleep-duration, -body-weight,
-resting-heart-rate). Each goal's stored ``achievementStatus`` is what the service computes from its data.
Everything is built with the builders the service uses (:mod:`~fhir_ecr.coaching.resources`), so the demo is
what the service would have written. Ids name days by how long ago they are (``d001`` is yesterday), never
by date.

**Keeping the demo current.** ``examples/make_demo_data.py`` writes these Bundles once, as of a fixed day,
stamped with the :data:`AS_OF_URL` extension on ``Bundle.meta``. ``mecr demo`` moves every date of a stamped
Bundle forward to the day it runs (:func:`rebase_demo_bundle`), so the demo always ends yesterday: loading
again the same day changes nothing; loading on a later day updates the same resources to the new dates.
"""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Callable, Sequence
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from fhir_ecr.canonical import IDENTIFIER_SOURCE_URL, PAYER_ID_SYSTEM
from fhir_ecr.coaching import resources as res
from fhir_ecr.coaching.progress import AchievementStatus, goal_progress
from fhir_ecr.coaching.schedule import CheckInStatus, Pause, Weekday
from fhir_ecr.coaching.sessions import MODALITIES, SESSION_TYPES, SessionNote, session_note_document

__all__ = ["AS_OF_URL", "DEMO_TZ", "demo_coaching_bundles", "demo_today", "rebase_demo_bundle"]

DEMO_TZ = "America/New_York"
AS_OF_URL = f"{res.CANONICAL}/StructureDefinition/demo-as-of"
_LOINC = "http://loinc.org"
_OBS_CAT = "http://terminology.hl7.org/CodeSystem/observation-category"
_PA_CAT = {
    "coding": [
        {
            "system": "http://hl7.org/fhir/us/physical-activity/CodeSystem/pa-temporary-codes",
            "code": "PhysicalActivity",
        }
    ]
}
_SOURCE = "urn:mecr:demo"
_DAYS = 60


#: Identifier systems of the embedded sandbox EHR (fhir_ecr/sandbox_ehr/seed.py), so that launching from it lands
#: on the demo's records.
SANDBOX_MRN_SYSTEM = "http://sandbox-ehr.mecr.dev/mrn"
NPI_SYSTEM = "http://hl7.org/fhir/sid/us-npi"
#: The demo's people stand for records synced from that EHR: their MRN and NPI are marked as set by the EHR, which
#: is what lets a launch link by them (fhir_ecr/auth/linking.py).
_FROM_EHR = [{"url": IDENTIFIER_SOURCE_URL, "valueCode": "ehr"}]
ICD10_SYSTEM = "http://hl7.org/fhir/sid/icd-10-cm"
COACH_CREDENTIAL_URL = f"{res.CANONICAL}/StructureDefinition/coach-credential"
COACH_CREDENTIAL_SYSTEM = f"{res.CANONICAL}/CodeSystem/coach-credential"
#: The sandbox EHR's pat-1001..1003 (fhir_ecr/sandbox_ehr/seed.py): MRN, name, sex, birth date and problems as the
#: EHR has them, and who pays for their coaching (a payer of the demo, with the member id; None: self-pay).
_PEOPLE = [
    (
        "MRN-1001",
        "Ana",
        "Lopez",
        "female",
        "1978-03-14",
        [("Z71.3", "Dietary counseling and surveillance"), ("E66.9", "Obesity, unspecified")],
        "prairie",
        "PHP-4471020",
    ),
    (
        "MRN-1002",
        "Brian",
        "Okafor",
        "male",
        "1965-11-02",
        [("R73.03", "Prediabetes"), ("I10", "Essential (primary) hypertension")],
        "lakeshore",
        "LKM-88310-01",
    ),
    (
        "MRN-1003",
        "Chloe",
        "Nguyen",
        "female",
        "1990-06-21",
        [("Z71.3", "Dietary counseling and surveillance")],
        None,
        None,
    ),
]


def _put(resource: dict[str, Any]) -> dict[str, Any]:
    return {
        "fullUrl": f"urn:mecr:{resource['resourceType']}/{resource['id']}",
        "resource": resource,
        "request": {"method": "PUT", "url": f"{resource['resourceType']}/{resource['id']}"},
    }


def _bundle(resources: list[dict[str, Any]], today: date) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "meta": {"extension": [{"url": AS_OF_URL, "valueDate": today.isoformat()}]},
        "entry": [_put(r) for r in resources],
    }


def _wobble(n: int, a: float, b: float) -> float:
    # A deterministic wobble (no random module: the demo is the same every time).
    return a * math.sin(n * 2.3) + b * math.cos(n * 0.7)


def _reading(
    rid: str,
    pid: str,
    profile: str,
    code: str,
    display: str,
    value: float,
    unit: str,
    ucum: str,
    category: str,
    effective: dict[str, Any],
) -> dict[str, Any]:
    categories = [{"coding": [{"system": _OBS_CAT, "code": category}]}]
    if category == "activity" and profile != "mecr-sleep-duration":
        categories.append(_PA_CAT)
    return {
        "resourceType": "Observation",
        "id": rid,
        "meta": {"profile": [f"{res.CANONICAL}/StructureDefinition/{profile}"], "source": _SOURCE},
        "status": "final",
        "category": categories,
        "code": {"coding": [{"system": _LOINC, "code": code, "display": display}]},
        "subject": {"reference": f"Patient/{pid}"},
        **effective,
        "valueQuantity": res.quantity(value, ucum, unit),
    }


def _goal(
    gid: str,
    pid: str,
    text: str,
    category: str,
    code: str,
    comparator: str,
    value: float,
    unit: str,
    start: date,
    due: date,
) -> dict[str, Any]:
    return {
        "resourceType": "Goal",
        "id": gid,
        "meta": {"profile": [res.GOAL_PROFILE]},
        "lifecycleStatus": "active",
        "category": [{"coding": [{"system": res.GOAL_CATEGORY_SYSTEM, "code": category}]}],
        "description": {"text": text},
        "subject": {"reference": f"Patient/{pid}"},
        "startDate": start.isoformat(),
        "expressedBy": {"reference": f"Patient/{pid}"},
        "priority": {
            "coding": [
                {"system": "http://terminology.hl7.org/CodeSystem/goal-priority", "code": "high-priority"}
            ]
        },
        # no code: a goal that is not measured (no target)
        **(
            {
                "target": [
                    {
                        "measure": {"coding": [{"system": _LOINC, "code": code}]},
                        "detailQuantity": {**res.quantity(value, unit), "comparator": comparator},
                        "dueDate": due.isoformat(),
                    }
                ]
            }
            if code
            else {}
        ),
    }


def _plan(
    plan_id: str, pid: str, title: str, start: date, coach: str, habits: list[dict[str, Any]]
) -> dict[str, Any]:
    goals = sorted({g["reference"] for h in habits for g in h["detail"].get("goal", [])})
    return {
        "resourceType": "CarePlan",
        "id": plan_id,
        "meta": {"profile": [res.PLAN_PROFILE]},
        "status": "active",
        "intent": "plan",
        "category": [{"coding": [{"system": res.MECR_CODES, "code": "habit-plan", "display": "Habit plan"}]}],
        "title": title,
        "subject": {"reference": f"Patient/{pid}"},
        "period": {"start": start.isoformat()},
        "author": {"reference": coach},
        "goal": [{"reference": g} for g in goals],
        "activity": habits,
    }


def _encounter(
    eid: str,
    subject: str,
    kind: str,
    modality: str,
    start: datetime,
    end: datetime,
    part_of: str | None,
    coach: str,
    clinic: str,
) -> dict[str, Any]:
    cls = MODALITIES[modality]
    enc: dict[str, Any] = {
        "resourceType": "Encounter",
        "id": eid,
        "meta": {"profile": [res.SESSION_PROFILE]},
        "extension": [
            {"url": res.MODALITY_URL, "valueCoding": {"system": res.MODALITY_SYSTEM, "code": modality}}
        ],
        "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": cls},
        "type": [{"coding": [{"system": res.MECR_CODES, "code": SESSION_TYPES[kind]}]}],
        "subject": {"reference": subject},
        "participant": [
            {
                "type": [
                    {
                        "coding": [
                            {
                                "system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                                "code": "PPRF",
                            }
                        ]
                    }
                ],
                "individual": {"reference": coach},
            }
        ],
        "period": {"start": start.isoformat(timespec="seconds"), "end": end.isoformat(timespec="seconds")},
        "length": {
            "value": int((end - start).total_seconds() // 60),
            "unit": "min",
            "system": "http://unitsofmeasure.org",
            "code": "min",
        },
        "serviceProvider": {"reference": clinic},
    }
    if part_of:
        enc["partOf"] = {"reference": f"Encounter/{part_of}"}
    return enc


def _set_status(goal: dict[str, Any], readings: Sequence[dict[str, Any]], today: date) -> None:
    """Store the achievementStatus the service computes from ``readings`` (res.goal_info + goal_progress)."""
    info = res.goal_info(goal)
    assert info.target is not None
    series = res.measurements_by_day(readings, DEMO_TZ, info.unit)
    progress = goal_progress(info.target, series, today=today)
    goal["achievementStatus"] = {"coding": [progress.status.coding()]}


def demo_coaching_bundles(today: date, *, prefix: str = "demo") -> list[dict[str, Any]]:
    """Transaction Bundles (people, goals and plans, daily data, sessions) for a demo as of ``today``."""
    p = prefix
    ana, ben, cara = f"{p}-ana", f"{p}-ben", f"{p}-cara"
    coach, clinic = f"PractitionerRole/{p}-coach", f"Organization/{p}-clinic"
    zone = ZoneInfo(DEMO_TZ)
    start = today - timedelta(days=_DAYS)
    change_day = today - timedelta(days=30)
    tz_ext = [{"url": res.TIMEZONE_URL, "valueCode": DEMO_TZ}]
    people: list[dict[str, Any]] = [
        {"resourceType": "Organization", "id": f"{p}-clinic", "name": "Riverside Family Practice"},
        # the sandbox EHR's coach-dana (same name and NPI): a launch from the sandbox links to this record by NPI
        {
            "resourceType": "Practitioner",
            "id": f"{p}-coach-person",
            "active": True,
            "identifier": [{"system": NPI_SYSTEM, "value": "1234567893", "extension": _FROM_EHR}],
            "name": [{"use": "official", "family": "Whitfield", "given": ["Dana"], "suffix": ["NBC-HWC"]}],
            "telecom": [{"system": "email", "value": "dana.whitfield@riverside.example", "use": "work"}],
        },
        {
            "resourceType": "PractitionerRole",
            "id": f"{p}-coach",
            "meta": {"profile": [res.COACH_PROFILE]},
            # the credential the coaching codes 0591T-0593T ask for (docs/billing.md), valid for five years
            "extension": [
                {
                    "url": COACH_CREDENTIAL_URL,
                    "extension": [
                        {
                            "url": "code",
                            "valueCodeableConcept": {
                                "coding": [{"system": COACH_CREDENTIAL_SYSTEM, "code": "nbc-hwc"}]
                            },
                        },
                        {
                            "url": "period",
                            "valuePeriod": {
                                "start": (today - timedelta(days=700)).isoformat(),
                                "end": (today + timedelta(days=1126)).isoformat(),
                            },
                        },
                    ],
                }
            ],
            "active": True,
            "practitioner": {"reference": f"Practitioner/{p}-coach-person"},
            "organization": {"reference": clinic},
            "code": [{"coding": [{"system": res.MECR_CODES, "code": "health-and-wellness-coach"}]}],
        },
    ]
    payers = {}
    for key, name, payer_id in (
        ("prairie", "Prairie Health Plan", "PHP01"),
        ("lakeshore", "Lakeshore Mutual", "LKM22"),
    ):
        payers[key] = f"{p}-payer-{key}"
        people.append(
            {
                "resourceType": "Organization",
                "id": payers[key],
                "active": True,
                "name": name,
                "type": [
                    {
                        "coding": [
                            {
                                "system": "http://terminology.hl7.org/CodeSystem/organization-type",
                                "code": "ins",
                                "display": "Insurance Company",
                            }
                        ]
                    }
                ],
                "identifier": [{"system": PAYER_ID_SYSTEM, "value": payer_id}],
            }
        )
    for pid, person in ((ana, _PEOPLE[0]), (ben, _PEOPLE[1]), (cara, _PEOPLE[2])):
        mrn, given, family, gender, born, problems, payer, member = person
        # The sandbox EHR's charts pat-1001..1003 are these people (same names, birth dates and MRNs): a launch
        # links to these records by MRN and finds nothing to change.
        people.append(
            {
                "resourceType": "Patient",
                "id": pid,
                "extension": tz_ext,
                "active": True,
                "identifier": [
                    {
                        "use": "usual",
                        "type": {
                            "coding": [
                                {
                                    "system": "http://terminology.hl7.org/CodeSystem/v2-0203",
                                    "code": "MR",
                                    "display": "Medical record number",
                                }
                            ]
                        },
                        "system": SANDBOX_MRN_SYSTEM,
                        "value": mrn,
                        "extension": _FROM_EHR,
                    }
                ],
                "name": [{"use": "official", "family": family, "given": [given]}],
                "gender": gender,
                "birthDate": born,
                "telecom": [{"system": "phone", "value": f"555-01{mrn[-2:]}", "use": "mobile"}],
                "address": [
                    {
                        "use": "home",
                        "line": [f"{40 + int(mrn[-1]) * 7} Mill Street"],
                        "city": "Springfield",
                        "state": "IL",
                        "postalCode": "62704",
                    }
                ],
                "managingOrganization": {"reference": clinic},
                "generalPractitioner": [{"reference": coach}],
            }
        )
        for n, (code, display) in enumerate(problems, start=1):
            people.append(
                {
                    "resourceType": "Condition",
                    "id": f"{pid}-condition-{n}",
                    "clinicalStatus": {
                        "coding": [
                            {
                                "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                                "code": "active",
                            }
                        ]
                    },
                    "verificationStatus": {
                        "coding": [
                            {
                                "system": "http://terminology.hl7.org/CodeSystem/condition-ver-status",
                                "code": "confirmed",
                            }
                        ]
                    },
                    "category": [
                        {
                            "coding": [
                                {
                                    "system": "http://terminology.hl7.org/CodeSystem/condition-category",
                                    "code": "problem-list-item",
                                }
                            ]
                        }
                    ],
                    "code": {
                        "coding": [{"system": ICD10_SYSTEM, "code": code, "display": display}],
                        "text": display,
                    },
                    "subject": {"reference": f"Patient/{pid}"},
                    "recordedDate": (today - timedelta(days=400)).isoformat(),
                }
            )
        if payer:  # Chloe pays herself: no Coverage, her sessions go on a superbill
            people.append(
                {
                    "resourceType": "Coverage",
                    "id": f"{pid}-coverage",
                    "status": "active",
                    "type": {
                        "coding": [
                            {
                                "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                                "code": "HIP",
                                "display": "health insurance plan policy",
                            }
                        ]
                    },
                    "subscriberId": member,
                    "beneficiary": {"reference": f"Patient/{pid}"},
                    "relationship": {
                        "coding": [
                            {
                                "system": "http://terminology.hl7.org/CodeSystem/subscriber-relationship",
                                "code": "self",
                            }
                        ]
                    },
                    "period": {"start": (today - timedelta(days=400)).isoformat()},
                    "payor": [{"reference": f"Organization/{payers[payer]}"}],
                }
            )
    people.append(
        {
            "resourceType": "Group",
            "id": f"{p}-walking-group",
            "type": "person",
            "actual": True,
            "name": "Tuesday walking group",
            "member": [{"entity": {"reference": f"Patient/{x}"}} for x in (ana, ben, cara)],
        }
    )

    due = today + timedelta(days=60)
    goals = {
        "steps": _goal(
            f"{p}-goal-steps",
            ana,
            "Walk 8,000 steps a day",
            "physical-activity",
            "41950-7",
            ">=",
            8000,
            "/d",
            start,
            due,
        ),
        "sleep": _goal(
            f"{p}-goal-sleep", ana, "Sleep at least 7 hours", "sleep", "93832-4", ">=", 7, "h", start, due
        ),
        "weight": _goal(
            f"{p}-goal-weight",
            ana,
            "Weigh 84 kg or less",
            "weight-management",
            "29463-7",
            "<=",
            84,
            "kg",
            start,
            due,
        ),
    }
    # Brian's and Chloe's goals are not measured (no target.measure): they stay in-progress and have no run chart.
    unmeasured = {
        "strength": _goal(
            f"{p}-goal-ben-strength",
            ben,
            "Get stronger: carry the shopping upstairs easily",
            "physical-activity",
            "",
            "",
            0,
            "",
            start,
            due,
        ),
        "cara-walk": _goal(
            f"{p}-goal-cara-walk",
            cara,
            "Walk most days to feel more energetic",
            "physical-activity",
            "",
            "",
            0,
            "",
            start,
            due,
        ),
    }
    for g in unmeasured.values():
        g["achievementStatus"] = {"coding": [AchievementStatus.IN_PROGRESS.coding()]}
    goals["sleep"]["expressedBy"] = {"reference": coach}

    # Ana's habits: a daily walk (wearable steps count), a paused bedtime routine, stretching on three weekdays.
    walk = res.habit_activity(
        "walk",
        "Walk after lunch",
        res.timing_repeat("daily"),
        start,
        goal_id=goals["steps"]["id"],
        code=[{"system": _LOINC, "code": "41950-7"}],
        daily_amount=res.quantity(8000, "/d", "steps/day"),
    )
    walk["progress"] = [
        res.pdsa_annotation(
            change_day,
            "Walk after lunch with a colleague",
            plan="A colleague joins the walk; predict +2000 steps/day",
            do="Started walking with Sam after lunch",
            author=coach,
        )
    ]
    screens = res.habit_activity(
        "screens-off", "Screens off by 22:00", res.timing_repeat("daily"), start, goal_id=goals["sleep"]["id"]
    )
    paused_from = today - timedelta(days=10)
    screens["detail"]["status"] = "on-hold"
    screens["detail"]["statusReason"] = res.pause_reason("travel", "Work trip")
    ill = (start + timedelta(days=12), start + timedelta(days=14))
    screens["extension"] += [
        res.pause_extension(Pause(ill[0], ill[1], "illness")),
        res.pause_extension(Pause(paused_from, None, "travel"), "Work trip"),
    ]
    stretch_days = sorted({Weekday(d.weekday()) for d in (today - timedelta(days=k) for k in (1, 3, 5))})
    stretch = res.habit_activity(
        "stretch",
        "Stretch 10 minutes",
        res.timing_repeat("weekdays", weekdays=[d.fhir_code for d in stretch_days]),
        start,
    )
    ana_plan = _plan(f"{p}-ana-habits", ana, "Ana's habits", start, coach, [walk, screens, stretch])
    # Brian: weigh in every day, strength training three times a week.
    strength = res.habit_activity(
        "strength",
        "Strength training",
        res.timing_repeat("per-week", times=3),
        start,
        goal_id=unmeasured["strength"]["id"],
    )
    ben_plan = _plan(f"{p}-ben-habits", ben, "Brian's habits", start, coach, [strength])
    # Chloe: a daily walk that keeps slipping.
    cara_walk = res.habit_activity(
        "walk", "Walk 20 minutes", res.timing_repeat("daily"), start, goal_id=unmeasured["cara-walk"]["id"]
    )
    cara_plan = _plan(f"{p}-cara-habits", cara, "Chloe's habits", start, coach, [cara_walk])
    plans = [ana_plan, ben_plan, cara_plan]

    data: list[dict[str, Any]] = []
    readings: dict[str, list[dict[str, Any]]] = {k: [] for k in goals}

    def checkin(
        plan: dict[str, Any],
        habit_id: str,
        pid: str,
        day: date,
        status: CheckInStatus,
        ago: int,
        quantity: dict[str, Any] | None = None,
    ) -> None:
        habit = next(h for h in res.habits_of_plan(plan) if h.habit_id == habit_id)
        obs = res.checkin_observation(habit, pid, day, status, quantity=quantity)
        obs["id"] = f"{plan['id']}-{habit_id}-d{ago:03d}"
        data.append(obs)

    def reading(goal: str, rid: str, *args: Any) -> None:
        obs = _reading(rid, *args)
        data.append(obs)
        readings[goal].append(obs)

    missed = today - timedelta(days=5)
    for n in range(_DAYS):
        day = start + timedelta(days=n)
        ago = (today - day).days
        day_only = {"effectiveDateTime": day.isoformat()}
        night = datetime.combine(day, datetime.min.time(), zone).replace(hour=22, minute=40)
        # Ana: steps (a shift after the PDSA change), sleep (flat, short), walk / screens / stretch check-ins.
        steps = int(round(8900 + _wobble(n, 500, 250) if day >= change_day else 5600 + _wobble(n, 900, 400)))
        reading(
            "steps",
            f"{p}-ana-steps-d{ago:03d}",
            ana,
            "mecr-daily-steps",
            "41950-7",
            "Number of steps in 24 hour Measured",
            steps,
            "steps/day",
            "/d",
            "activity",
            day_only,
        )
        sleep = round(6.4 + _wobble(n, 0.3, 0.15), 1)
        reading(
            "sleep",
            f"{p}-ana-sleep-d{ago:03d}",
            ana,
            "mecr-sleep-duration",
            "93832-4",
            "Sleep duration",
            sleep,
            "h",
            "h",
            "activity",
            {
                "effectivePeriod": {
                    "start": night.isoformat(timespec="seconds"),
                    "end": (night + timedelta(hours=sleep)).isoformat(timespec="seconds"),
                }
            },
        )
        if day != missed:
            checkin(
                ana_plan,
                "walk",
                ana,
                day,
                CheckInStatus.DONE if steps >= 6000 else CheckInStatus.PARTLY,
                ago,
                res.quantity(steps, "/d", "steps/day"),
            )
        if day < paused_from and not ill[0] <= day <= ill[1]:
            checkin(
                ana_plan,
                "screens-off",
                ana,
                day,
                CheckInStatus.DONE if n % 4 else CheckInStatus.NOT_DONE,
                ago,
            )
        if Weekday(day.weekday()) in stretch_days and n % 9 != 4:
            checkin(ana_plan, "stretch", ana, day, CheckInStatus.DONE, ago)
        # Ana's weight: down to the target on the last day only (achieved); her resting heart rate (no goal).
        weight = 83.9 if n == _DAYS - 1 else round(87.5 - 0.05 * n + _wobble(n, 0.25, 0.1), 1)
        weigh_time = datetime.combine(day, datetime.min.time(), zone).replace(hour=7, minute=15)
        reading(
            "weight",
            f"{p}-ana-weight-d{ago:03d}",
            ana,
            "mecr-body-weight",
            "29463-7",
            "Body weight",
            weight,
            "kg",
            "kg",
            "vital-signs",
            {"effectiveDateTime": weigh_time.isoformat(timespec="seconds")},
        )
        rhr = int(round(66 + _wobble(n, 1.5, 0.8)))
        data.append(
            _reading(
                f"{p}-ana-rhr-d{ago:03d}",
                ana,
                "mecr-resting-heart-rate",
                "40443-4",
                "Heart rate --resting",
                rhr,
                "beats/minute",
                "/min",
                "activity",
                day_only,
            )
        )
        # Brian: strength training every other day (at least three days in any seven, whatever the week boundaries).
        if n % 2 == 0:
            checkin(ben_plan, "strength", ben, day, CheckInStatus.DONE, ago)
        # Chloe: a daily walk that keeps slipping.
        if n % 5 in (0, 1, 3) or (n % 7 == 6):
            checkin(cara_plan, "walk", cara, day, CheckInStatus.DONE if n % 3 else CheckInStatus.PARTLY, ago)
    for key, goal in goals.items():
        _set_status(goal, readings[key], today)

    g_start = datetime.combine(today - timedelta(days=3), datetime.min.time(), zone).replace(hour=12)
    g_end = g_start + timedelta(minutes=60)
    group_session = f"{p}-group-session"
    sessions: list[dict[str, Any]] = [
        _encounter(
            group_session,
            f"Group/{p}-walking-group",
            "group",
            "in-person",
            g_start,
            g_end,
            None,
            coach,
            clinic,
        )
    ]
    for pid in (ana, ben, cara):
        eid = f"{group_session}-{pid}"
        sessions.append(
            _encounter(
                eid, f"Patient/{pid}", "group", "in-person", g_start, g_end, group_session, coach, clinic
            )
        )
        note = session_note_document(
            pid,
            eid,
            coach,
            g_start,
            g_end,
            SessionNote("Walking routes and step goals", "Bad weather", "Try the mall walk on rainy days"),
            [],
        )
        note["id"] = f"{p}-note-{eid}"
        sessions.append(note)
    for eid, pid, kind, modality, when, minutes in (
        (f"{p}-video-session", ana, "follow-up", "video", change_day - timedelta(days=1), 32),
        (f"{p}-ben-initial-session", ben, "initial", "in-person", start, 55),
        (f"{p}-cara-audio-session", cara, "follow-up", "audio-only", today - timedelta(days=8), 30),
    ):
        s = datetime.combine(when, datetime.min.time(), zone).replace(hour=16)
        sessions.append(
            _encounter(
                eid, f"Patient/{pid}", kind, modality, s, s + timedelta(minutes=minutes), None, coach, clinic
            )
        )
    return [
        _bundle(people, today),
        _bundle([*goals.values(), *unmeasured.values(), *plans], today),
        _bundle(data, today),
        _bundle(sessions, today),
    ]


# --- keeping the demo current -------------------------------------------------------------------------

_DATE = re.compile(r"^(\d{4}-\d{2}-\d{2})$")
_DATETIME = re.compile(r"^(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)(Z|[+-]\d{2}:\d{2})$")
_ID_DATE = re.compile(r"/(\d{4}-\d{2}-\d{2})$")
_DAY_CODES = [d.fhir_code for d in Weekday]
# Dates of people's lives and of the data's provenance are facts, not demo days.
_KEEP = {"birthDate", "deceasedDateTime", "lastUpdated"}


def demo_today(now: datetime | None = None) -> date:
    """Today in the demo's time zone (the day ``mecr demo`` moves the demo to)."""
    return (now or datetime.now(ZoneInfo(DEMO_TZ))).astimezone(ZoneInfo(DEMO_TZ)).date()


def _shift_datetime(value: str, days: int, zone: ZoneInfo) -> str:
    """Move a FHIR dateTime by ``days`` calendar days. One written in the demo zone keeps its wall-clock time
    there (07:15 stays 07:15 across a DST change, so it stays on its local day); any other keeps its offset."""
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    local = parsed.astimezone(zone)
    if not value.endswith("Z") and local.utcoffset() == parsed.utcoffset():
        wall = datetime.combine(local.date() + timedelta(days=days), local.time(), zone)
        return wall.isoformat(timespec="seconds")
    moved = (parsed + timedelta(days=days)).isoformat(timespec="seconds")
    return moved.replace("+00:00", "Z") if value.endswith("Z") else moved


def _walk(node: Any, edit: Callable[[str, Any], Any], key: str = "") -> Any:
    if isinstance(node, dict):
        return {k: _walk(v, edit, k) for k, v in node.items()}
    if isinstance(node, list):
        return [_walk(v, edit, key) for v in node]
    return edit(key, node)


def rebase_demo_bundle(bundle: dict[str, Any], today: date) -> dict[str, Any]:
    """``bundle`` with its demo days moved so that its ``demo-as-of`` day becomes ``today``.

    Bundles without the :data:`AS_OF_URL` stamp are returned unchanged. Every date and dateTime of the
    resources moves by the same number of days (dateTimes keep their wall-clock time in :data:`DEMO_TZ`),
    check-in identifiers (``{plan}/{habit}/{date}``) move with their day, and ``Timing.repeat.dayOfWeek``
    codes rotate so that a weekday habit still falls on the days its check-ins were made. Birth dates stay.
    """
    if not isinstance(bundle, dict) or not isinstance(bundle.get("meta"), dict):
        return bundle
    stamp = next(
        (e.get("valueDate") for e in bundle["meta"].get("extension", []) or [] if e.get("url") == AS_OF_URL),
        None,
    )
    if not isinstance(stamp, str):
        return bundle
    days = (today - date.fromisoformat(stamp)).days
    out = copy.deepcopy(bundle)
    out["meta"]["extension"] = [e for e in out["meta"]["extension"] if e.get("url") != AS_OF_URL] + [
        {"url": AS_OF_URL, "valueDate": today.isoformat()}
    ]
    if days == 0:
        return out
    zone = ZoneInfo(DEMO_TZ)

    def edit(key: str, value: Any) -> Any:
        if not isinstance(value, str) or key in _KEEP:
            return value
        if key == "dayOfWeek" and value in _DAY_CODES:
            return _DAY_CODES[(_DAY_CODES.index(value) + days) % 7]
        if _DATE.match(value):
            return (date.fromisoformat(value) + timedelta(days=days)).isoformat()
        if _DATETIME.match(value):
            return _shift_datetime(value, days, zone)
        if key == "value" and (m := _ID_DATE.search(value)):  # a check-in identifier's day
            moved = (date.fromisoformat(m.group(1)) + timedelta(days=days)).isoformat()
            return value[: m.start(1)] + moved
        return value

    out["entry"] = [{**e, "resource": _walk(e["resource"], edit)} for e in out.get("entry", [])]
    return out
