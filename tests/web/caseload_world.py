"""A crafted practice of 15 patients, one (or two) for every caseload reason, relative to today in New York.

Everything is written through the repository (validated, indexed) the way the service and the importers write
it. Each patient gets, unless their story says otherwise, recent data (a steps reading and a check-in
yesterday), a session five days ago and a habit checked in every day, so only their own reason fires.

========================  =======================================================================================
patient                   story (the reason that must fire)
========================  =======================================================================================
Wendy Walsh               steps fell from ~9,000 to ~5,000 a day: a new run-chart signal away from the goal
Bert Brooks               steps rose from ~5,000 to ~9,000: a new signal toward the goal
Cris Crane                runs of 8/7/7/8 days around the median: too few crossings, no shift (no direction)
Sid Stone                 nothing at all for 10 days (no-data, long)
Nia Noor                  nothing for 4 days (no-data)
Mo Mills                  one message today, unanswered
Gil Gray                  an unmeasured goal marked worsening (goal slipping)
Stella Stark              her weight goal's last reading is 40 days old (goal stale)
Hal Hart                  a daily habit last checked in 5 days ago, while his watch still sends data (habit)
Otto Oakes                last session 45 days ago, none planned (session overdue)
Tess Trent                a session planned today at 15:00 (session today)
Rita Ross                 a community referral waiting on the food bank for 20 days (referral, long wait)
Nora Nash                 no goal at all (no goals)
Olive Olsen               everything fine (On track)
Eve Ennis                 an unmeasured goal no habit serves, nothing else wrong (says what is missing)
========================  =======================================================================================
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from fhir_ecr.coaching import resources as res
from fhir_ecr.coaching.referral_wait import REFERRAL_PROFILE
from fhir_ecr.coaching.schedule import CheckInStatus
from fhir_ecr.coaching.service import CoachingService
from tests.coaching.coaching_support import LOINC_STEPS, steps_reading

__all__ = ["EXPECTED", "TZ", "build_caseload_world"]

TZ = "America/New_York"
MRN = "http://sandbox-ehr.mecr.dev/mrn"
WEIGHT = {"system": "http://loinc.org", "code": "29463-7"}

#: patient name -> the reason kind that must fire ("on-track" / "missing": what the row says instead)
EXPECTED = {
    "Wendy Walsh": "signal-worse",
    "Bert Brooks": "signal-better",
    "Cris Crane": "signal",
    "Sid Stone": "no-data",
    "Nia Noor": "no-data",
    "Mo Mills": "message",
    "Gil Gray": "goal-slipping",
    "Stella Stark": "goal-stale",
    "Hal Hart": "habit",
    "Otto Oakes": "session-overdue",
    "Tess Trent": "session-today",
    "Rita Ross": "referral",
    "Nora Nash": "no-goals",
    "Olive Olsen": "on-track",
    "Eve Ennis": "missing",
}


def _today() -> date:
    return datetime.now(ZoneInfo(TZ)).date()


def _session(pid: str, coach: str, start: datetime, status: str = "finished") -> dict[str, Any]:
    return {
        "resourceType": "Encounter",
        "meta": {"profile": [res.SESSION_PROFILE]},
        "extension": [
            {"url": res.MODALITY_URL, "valueCoding": {"system": res.MODALITY_SYSTEM, "code": "video"}}
        ],
        "status": status,
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "VR"},
        "type": [{"coding": [{"system": res.MECR_CODES, "code": "coaching-session-follow-up"}]}],
        "subject": {"reference": f"Patient/{pid}"},
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
        "period": {
            "start": start.isoformat(timespec="seconds"),
            "end": (start + timedelta(minutes=30)).isoformat(timespec="seconds"),
        },
    }


def build_caseload_world(services: Any, coach_person: str = "Practitioner/caseload-coach") -> dict[str, str]:
    """Write the practice; returns patient name -> id. The coach (``coach_person``, with a PractitionerRole)
    is every patient's general practitioner, so "my patients" is all of them."""
    repo = services.repo
    svc = CoachingService(repo, default_tz=TZ)
    today = _today()
    zone = ZoneInfo(TZ)
    person_id = coach_person.split("/", 1)[1]
    repo.update(
        "Practitioner",
        person_id,
        {"resourceType": "Practitioner", "id": person_id, "name": [{"family": "Coach", "given": ["Casey"]}]},
    )
    role = repo.create(
        {
            "resourceType": "PractitionerRole",
            "meta": {"profile": [res.COACH_PROFILE]},
            "active": True,
            "practitioner": {"reference": coach_person},
            "code": [{"coding": [{"system": res.MECR_CODES, "code": "health-and-wellness-coach"}]}],
        }
    ).stored.id
    coach = f"PractitionerRole/{role}"
    ids: dict[str, str] = {}
    for n, name in enumerate(EXPECTED, start=1):
        given, family = name.split()
        ids[name] = repo.create(
            {
                "resourceType": "Patient",
                "name": [{"use": "official", "family": family, "given": [given]}],
                "gender": "female" if n % 2 else "male",
                "birthDate": f"{1950 + n}-0{1 + n % 9}-1{n % 10}",
                "identifier": [
                    {
                        "type": {
                            "coding": [
                                {"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}
                            ]
                        },
                        "system": MRN,
                        "value": f"CL-{n:04d}",
                    }
                ],
                "generalPractitioner": [{"reference": coach}],
            }
        ).stored.id

    def steps_series(pid: str, values: list[float], last: date) -> None:
        with repo.unit() as uow:
            for i, v in enumerate(values):
                uow.create(steps_reading(pid, last - timedelta(days=len(values) - 1 - i), int(v)))

    def daily_habit(pid: str, last_check_in: date | None, start: date, goal: str | None = None) -> None:
        walk = res.habit_activity("walk", "Evening walk", res.timing_repeat("daily"), start, goal_id=goal)
        plan = svc.create_plan(pid, "Habits", [walk], author=coach)
        habit = res.habits_of_plan(plan.content or {})[0]
        if last_check_in is None:
            return
        with repo.unit() as uow:
            day = start
            while day <= last_check_in:
                uow.create(res.checkin_observation(habit, pid, day, CheckInStatus.DONE))
                day += timedelta(days=1)

    def usual(
        pid: str, *, data: bool = True, session: bool = True, habit: bool = True, goal: bool = True
    ) -> None:
        gid = None
        if goal:
            gid = svc.create_goal(
                pid,
                description="Walk 8,000 steps a day",
                category="physical-activity",
                measure=LOINC_STEPS,
                at_least=8000,
                unit="/d",
                priority="high-priority",
            ).id
        if data:
            steps_series(pid, [8200 + 150 * (i % 3) for i in range(6)], today - timedelta(days=1))
        if habit:
            daily_habit(pid, today - timedelta(days=1) if data else None, today - timedelta(days=20), gid)
        if session:
            repo.create(_session(pid, coach, datetime.combine(today - timedelta(days=5), time(10), zone)))

    def signal_goal(pid: str, values: list[float]) -> None:
        svc.create_goal(
            pid,
            description="Walk 8,000 steps a day",
            category="physical-activity",
            measure=LOINC_STEPS,
            at_least=8000,
            unit="/d",
            priority="high-priority",
        )
        steps_series(pid, values, today - timedelta(days=1))
        daily_habit(pid, today - timedelta(days=1), today - timedelta(days=20))
        repo.create(_session(pid, coach, datetime.combine(today - timedelta(days=5), time(10), zone)))

    signal_goal(
        ids["Wendy Walsh"],
        [9000 + 40 * (i % 4) for i in range(14)] + [5000 + 40 * (i % 4) for i in range(14)],
    )
    signal_goal(
        ids["Bert Brooks"],
        [5000 + 40 * (i % 4) for i in range(14)] + [9000 + 40 * (i % 4) for i in range(14)],
    )
    hi, lo = [9000 + 10 * i for i in range(8)], [6000 + 10 * i for i in range(8)]
    signal_goal(ids["Cris Crane"], hi[:8] + lo[:7] + hi[:7] + lo[:8])

    # silence: everything stopped 10 days ago (Sid) or 4 days ago (Nia)
    for name, quiet in (("Sid Stone", 10), ("Nia Noor", 4)):
        pid = ids[name]
        gid = svc.create_goal(
            pid,
            description="Walk 8,000 steps a day",
            category="physical-activity",
            measure=LOINC_STEPS,
            at_least=8000,
            unit="/d",
        ).id
        steps_series(pid, [8300, 8400, 8500], today - timedelta(days=quiet))
        daily_habit(pid, today - timedelta(days=quiet), today - timedelta(days=20), gid)
        repo.create(_session(pid, coach, datetime.combine(today - timedelta(days=5), time(10), zone)))

    usual(ids["Mo Mills"])
    from fhir_ecr.web.messaging import send_message

    send_message(repo, ids["Mo Mills"], "Can we talk about my knee?", from_patient=True)

    pid = ids["Gil Gray"]
    usual(pid, goal=False)
    gid = svc.create_goal(pid, description="Cook at home four nights a week", category="nutrition").id
    goal = repo.read("Goal", gid)
    repo.update(
        "Goal",
        gid,
        {
            **(goal.content or {}),
            "achievementStatus": {
                "coding": [
                    {"system": "http://terminology.hl7.org/CodeSystem/goal-achievement", "code": "worsening"}
                ]
            },
        },
    )

    pid = ids["Stella Stark"]
    usual(pid, goal=False)
    svc.create_goal(
        pid,
        description="Weigh 70 kg or less",
        category="weight-management",
        measure=WEIGHT,
        at_most=70,
        unit="kg",
        start=today - timedelta(days=60),
    )
    repo.create(
        {
            "resourceType": "Observation",
            "status": "final",
            "category": [
                {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                            "code": "vital-signs",
                        }
                    ]
                }
            ],
            "code": {"coding": [WEIGHT]},
            "subject": {"reference": f"Patient/{pid}"},
            "effectiveDateTime": (today - timedelta(days=40)).isoformat(),
            "valueQuantity": res.quantity(72, "kg"),
        }
    )

    pid = ids["Hal Hart"]
    gid = svc.create_goal(
        pid,
        description="Walk 8,000 steps a day",
        category="physical-activity",
        measure=LOINC_STEPS,
        at_least=8000,
        unit="/d",
    ).id
    steps_series(pid, [8300, 8400, 8600, 8500, 8700, 8800], today - timedelta(days=1))
    daily_habit(pid, today - timedelta(days=5), today - timedelta(days=20), gid)
    repo.create(_session(pid, coach, datetime.combine(today - timedelta(days=5), time(10), zone)))

    pid = ids["Otto Oakes"]
    usual(pid, session=False)
    repo.create(_session(pid, coach, datetime.combine(today - timedelta(days=45), time(10), zone)))

    pid = ids["Tess Trent"]
    usual(pid)
    repo.create(_session(pid, coach, datetime.combine(today, time(15), zone), status="planned"))

    pid = ids["Rita Ross"]
    usual(pid)
    authored = datetime.combine(today - timedelta(days=20), time(11), zone).isoformat(timespec="seconds")
    sr = repo.create(
        {
            "resourceType": "ServiceRequest",
            "meta": {"profile": [REFERRAL_PROFILE]},
            "status": "active",
            "intent": "order",
            "category": [
                {
                    "coding": [
                        {
                            "system": "http://hl7.org/fhir/us/sdoh-clinicalcare/CodeSystem/"
                            "SDOHCC-CodeSystemTemporaryCodes",
                            "code": "food-insecurity",
                        }
                    ]
                }
            ],
            "code": {
                "coding": [
                    {
                        "system": "http://snomed.info/sct",
                        "code": "467771000124109",
                        "display": "Assistance with application for food pantry program",
                    }
                ]
            },
            "subject": {"reference": f"Patient/{pid}"},
            "authoredOn": authored,
            "requester": {"reference": coach},
            "performer": [{"display": "the food bank"}],
        }
    ).stored.id
    repo.create(
        {
            "resourceType": "Task",
            "status": "requested",
            "intent": "order",
            "code": {"coding": [{"system": "http://hl7.org/fhir/CodeSystem/task-code", "code": "fulfill"}]},
            "focus": {"reference": f"ServiceRequest/{sr}"},
            "for": {"reference": f"Patient/{pid}"},
            "authoredOn": authored,
            "lastModified": authored,
            "requester": {"reference": coach},
        }
    )

    pid = ids["Nora Nash"]
    usual(pid, goal=False)

    usual(ids["Olive Olsen"])

    pid = ids["Eve Ennis"]
    usual(pid, goal=False, habit=False)
    svc.create_goal(pid, description="Feel calmer at work", category="stress-management")
    return ids
