"""Write the demo data in ``examples/demo/`` (deterministic: same bytes every run).

The demo practice has one health and well-being coach (NBHWC-certified, with an NPI) supervised by a physician,
three patients with coaching goals, a habit plan each, a month of daily wearable observations (steps, sleep,
resting heart rate, weight), a coaching session and a community referral (ServiceRequest + Task, in the mECR
referral profiles). Every file is a FHIR transaction Bundle whose entries use PUT with fixed ids, so loading it
twice changes nothing. These three patients (Maria Lopez, James Okafor, Lin Chen) are mECR's own: they are not
in the sandbox EHR, and their MRNs (``MRN-2001``..``2003``, the practice's own system) are not the sandbox's.

The coaching demo (``30-`` to ``33-``: the sandbox EHR's Ana Lopez, Brian Okafor and Chloe Nguyen with goals,
habit plans, two months of check-ins and wearable daily summaries, PDSA changes and sessions; see
:mod:`fhir_ecr.coaching.demo`) is written as of ``COACHING_AS_OF``, the practice's patients as of the day after
their month (``PRACTICE_AS_OF``); both are stamped so: ``mecr demo`` moves their dates to the day it runs, so
every demo patient's data ends yesterday (docs/coaching.md).

Billing: the patients have demographics, diagnoses and coverage (or pay themselves), the coaches hold a credential
and ``examples/demo-billing.yaml`` is the practice's billing file, which ``mecr demo`` uses (docs/billing.md).

Usage: ``python examples/make_demo_data.py`` (``make demo-data``).
"""

from __future__ import annotations

import json
import math
import random
import sys
from datetime import date, timedelta
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent / "demo"
COACHING_AS_OF = date(
    2026, 11, 23
)  # fixed, so the files are the same bytes every run; `mecr demo` moves it to today
COACHING_FILES = [
    "02-coaching-people.json",
    "03-coaching-goals-and-plans.json",
    "04-coaching-daily-data.json",
    "05-coaching-sessions.json",
]
START = date(2026, 10, 26)  # the month of observations runs from here for 30 days
DAYS = 30
PRACTICE_AS_OF = START + timedelta(days=DAYS)  # the practice's data ends the day before: "yesterday"
AS_OF_URL = "https://mecr.dev/fhir/StructureDefinition/demo-as-of"
MRN_SYSTEM = "urn:oid:2.16.840.1.113883.3.4242.1"  # the practice's own medical record numbers
MR_TYPE = {
    "coding": [
        {
            "system": "http://terminology.hl7.org/CodeSystem/v2-0203",
            "code": "MR",
            "display": "Medical record number",
        }
    ]
}
MECR = "https://mecr.dev/fhir"
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
OBS_CAT = "http://terminology.hl7.org/CodeSystem/observation-category"

PATIENTS = [
    # id, given, family, gender, birthDate, mrn, base steps, step trend/day, weight kg, weight trend/day, tz offset
    ("maria-lopez", "Maria", "Lopez", "female", "1968-04-12", "MRN-2001", 5200, 80, 92.0, -0.05, "-05:00"),
    ("james-okafor", "James", "Okafor", "male", "1975-09-30", "MRN-2002", 7800, 10, 104.5, -0.02, "-05:00"),
    ("lin-chen", "Lin", "Chen", "female", "1990-01-22", "MRN-2003", 9500, -20, 68.0, 0.0, "-08:00"),
]
# who pays: a payer Organization of the coaching demo (fhir_ecr/coaching/demo.py) and the member id; None: self-pay
COVERAGE = {
    "maria-lopez": ("demo-payer-prairie", "PHP-3308115"),
    "james-okafor": ("demo-payer-lakeshore", "LKM-20417-02"),
    "lin-chen": None,
}
ADDRESS = {
    "maria-lopez": "8 Elm Court",
    "james-okafor": "301 South Grand Avenue",
    "lin-chen": "77 Lake Drive",
}


def put(resource: dict[str, Any]) -> dict[str, Any]:
    ref = f"{resource['resourceType']}/{resource['id']}"
    return {"fullUrl": f"urn:mecr:{ref}", "resource": resource, "request": {"method": "PUT", "url": ref}}


def bundle(resources: list[dict[str, Any]], as_of: date | None = None) -> dict[str, Any]:
    """A transaction Bundle; stamped with its day (``mecr demo`` moves its dates to the day it runs) if given."""
    out: dict[str, Any] = {"resourceType": "Bundle", "type": "transaction"}
    if as_of is not None:
        out["meta"] = {"extension": [{"url": AS_OF_URL, "valueDate": as_of.isoformat()}]}
    out["entry"] = [put(r) for r in resources]
    return out


def practice() -> list[dict[str, Any]]:
    return [
        {
            "resourceType": "Organization",
            "id": "riverside-family-practice",
            "active": True,
            "name": "Riverside Family Practice",
            "identifier": [{"system": "http://hl7.org/fhir/sid/us-npi", "value": "1144221847"}],
            "telecom": [{"system": "phone", "value": "555-0100"}],
            "address": [
                {"line": ["12 River Road"], "city": "Springfield", "state": "IL", "postalCode": "62701"}
            ],
        },
        {
            "resourceType": "Practitioner",
            "id": "dr-amy-shah",
            "active": True,
            "name": [{"family": "Shah", "given": ["Amy"], "prefix": ["Dr."]}],
            "identifier": [{"system": "http://hl7.org/fhir/sid/us-npi", "value": "1245319599"}],
        },
        {
            "resourceType": "Practitioner",
            "id": "coach-sam-rivera",
            "active": True,
            "name": [{"family": "Rivera", "given": ["Sam"]}],
            "identifier": [{"system": "http://hl7.org/fhir/sid/us-npi", "value": "1538510037"}],
            "qualification": [
                {
                    "code": {"text": "National Board Certified Health & Wellness Coach (NBC-HWC)"},
                    "issuer": {"display": "NBHWC"},
                }
            ],
        },
        {
            "resourceType": "PractitionerRole",
            "id": "coach-sam-rivera-role",
            "active": True,
            "meta": {"profile": [f"{MECR}/StructureDefinition/mecr-coach"]},
            "extension": [
                {
                    "url": f"{MECR}/StructureDefinition/coach-credential",
                    "extension": [
                        {
                            "url": "code",
                            "valueCodeableConcept": {
                                "coding": [
                                    {"system": f"{MECR}/CodeSystem/coach-credential", "code": "nbc-hwc"}
                                ]
                            },
                        },
                        {"url": "period", "valuePeriod": {"start": "2024-05-01", "end": "2029-04-30"}},
                    ],
                }
            ],
            "practitioner": {"reference": "Practitioner/coach-sam-rivera"},
            "organization": {"reference": "Organization/riverside-family-practice"},
            "code": [
                {
                    "coding": [
                        {"system": f"{MECR}/CodeSystem/mecr-codes", "code": "health-and-wellness-coach"}
                    ],
                    "text": "Health and wellness coach",
                }
            ],
        },
        {
            "resourceType": "PractitionerRole",
            "id": "dr-amy-shah-role",
            "active": True,
            "practitioner": {"reference": "Practitioner/dr-amy-shah"},
            "organization": {"reference": "Organization/riverside-family-practice"},
            "code": [
                {
                    "coding": [
                        {
                            "system": "http://nucc.org/provider-taxonomy",
                            "code": "207Q00000X",
                            "display": "Family Medicine",
                        }
                    ]
                }
            ],
        },
        {
            "resourceType": "Device",
            "id": "demo-phone",
            "status": "active",
            "deviceName": [{"name": "iPhone (Apple Health)", "type": "user-friendly-name"}],
        },
        {
            "resourceType": "Device",
            "id": "demo-watch",
            "status": "active",
            "deviceName": [{"name": "Fitness watch", "type": "user-friendly-name"}],
        },
        {
            "resourceType": "Organization",
            "id": "springfield-food-bank",
            "active": True,
            "name": "Springfield Community Food Bank",
            "type": [{"text": "Community-based organization"}],
        },
        {
            "resourceType": "HealthcareService",
            "id": "food-bank-pantry",
            "active": True,
            "providedBy": {"reference": "Organization/springfield-food-bank"},
            "name": "Weekly food pantry",
            "category": [
                {
                    "coding": [
                        {
                            "system": "http://hl7.org/fhir/us/sdoh-clinicalcare/CodeSystem/SDOHCC-CodeSystemTemporaryCodes",
                            "code": "food-insecurity",
                            "display": "Food Insecurity",
                        }
                    ]
                }
            ],
        },
    ]


def quantity_obs(
    oid: str,
    pid: str,
    code: str,
    display: str,
    day: date,
    value: float,
    unit: str,
    ucum: str,
    category: str,
    device: str,
    tz: str,
    period: bool = False,
) -> dict[str, Any]:
    obs: dict[str, Any] = {
        "resourceType": "Observation",
        "id": oid,
        "status": "final",
        "category": [{"coding": [{"system": OBS_CAT, "code": category}]}],
        "code": {"coding": [{"system": LOINC, "code": code, "display": display}], "text": display},
        "subject": {"reference": f"Patient/{pid}"},
        "device": {"reference": f"Device/{device}"},
        "valueQuantity": {"value": value, "unit": unit, "system": UCUM, "code": ucum},
    }
    if period:
        obs["effectivePeriod"] = {
            "start": f"{day.isoformat()}T00:00:00{tz}",
            "end": f"{(day + timedelta(days=1)).isoformat()}T00:00:00{tz}",
        }
    else:
        obs["effectiveDateTime"] = f"{day.isoformat()}T07:30:00{tz}"
    return obs


# How often each practice patient checks in (done, partly), and for how many of the last days they have not
# (James stopped four days ago: the caseload shows his walk without a check-in).
CHECK_IN = {"maria-lopez": (0.8, 0.1, 0), "james-okafor": (0.6, 0.2, 4), "lin-chen": (0.9, 0.05, 0)}


def habit_plan(pid: str, index: int, rng: random.Random) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The patient's habit plan (mecr-habit-plan, built with the coaching service's own builders) and a month of
    check-ins: a daily walk after dinner, vegetables with lunch on weekdays, and strength training twice a week,
    paused for a knee injury since the second week."""
    from fhir_ecr.coaching import resources as res
    from fhir_ecr.coaching.schedule import CheckInStatus, Pause

    walk = res.habit_activity(
        "walk", "Walk after dinner", res.timing_repeat("daily"), START, goal_id=f"{pid}-goal-steps"
    )
    veg = res.habit_activity(
        "vegetables",
        "Vegetables with lunch",
        res.timing_repeat("weekdays", weekdays=["mon", "tue", "wed", "thu", "fri"]),
        START,
        goal_id=f"{pid}-goal-weight",
    )
    strength = res.habit_activity(
        "strength",
        "Strength training",
        res.timing_repeat("per-week", times=2),
        START,
        goal_id=f"{pid}-goal-weight",
    )
    injured = START + timedelta(days=9)
    strength["detail"]["status"] = "on-hold"
    strength["detail"]["statusReason"] = res.pause_reason("injury", "Knee injury")
    strength["extension"].append(res.pause_extension(Pause(injured, None, "injury"), "Knee injury"))
    plan = {
        "resourceType": "CarePlan",
        "id": f"{pid}-habits",
        "meta": {"profile": [res.PLAN_PROFILE]},
        "status": "active",
        "intent": "plan",
        "category": [{"coding": [{"system": res.MECR_CODES, "code": "habit-plan", "display": "Habit plan"}]}],
        "title": "Healthy habits programme",
        "subject": {"reference": f"Patient/{pid}"},
        "period": {"start": START.isoformat()},
        "author": {"reference": "PractitionerRole/coach-sam-rivera-role"},
        "goal": [{"reference": f"Goal/{pid}-goal-steps"}, {"reference": f"Goal/{pid}-goal-weight"}],
        "activity": [walk, veg, strength],
    }
    done, partly, quiet = CHECK_IN[pid]
    habits = {h.habit_id: h for h in res.habits_of_plan(plan)}
    checkins = []
    for d in range(DAYS - quiet):
        day = START + timedelta(days=d)
        due = (
            ["walk"]
            + (["vegetables"] if day.weekday() < 5 else [])
            + (["strength"] if day < injured and day.weekday() in (1, 4) else [])
        )
        for hid in due:
            roll = rng.random()
            status = (
                CheckInStatus.DONE if roll < done else CheckInStatus.PARTLY if roll < done + partly else None
            )
            if status is None:
                continue
            obs = res.checkin_observation(habits[hid], pid, day, status)
            obs["id"] = f"{pid}-{hid}-{day:%Y%m%d}"
            checkins.append(obs)
    return plan, checkins


def patient_files(row: tuple[Any, ...], index: int) -> list[dict[str, Any]]:
    pid, given, family, gender, birth, mrn, steps0, steps_trend, weight0, weight_trend, tz = row
    rng = random.Random(1000 + index)
    patient = {
        "resourceType": "Patient",
        "id": pid,
        "active": True,
        "identifier": [{"use": "usual", "type": MR_TYPE, "system": MRN_SYSTEM, "value": mrn}],
        "name": [{"use": "official", "family": family, "given": [given]}],
        "gender": gender,
        "birthDate": birth,
        "telecom": [{"system": "email", "value": f"{given.lower()}.{family.lower()}@example.org"}],
        "address": [
            {
                "use": "home",
                "line": [ADDRESS[pid]],
                "city": "Springfield",
                "state": "IL",
                "postalCode": "62701",
            }
        ],
        "generalPractitioner": [
            {"reference": "Practitioner/dr-amy-shah"},
            {"reference": "PractitionerRole/coach-sam-rivera-role"},
        ],
        "managingOrganization": {"reference": "Organization/riverside-family-practice"},
    }
    if tz == "-08:00":  # Lin lives on Pacific time: her days are counted there (docs/coaching.md)
        patient["extension"] = [
            {"url": "http://hl7.org/fhir/StructureDefinition/timezone", "valueCode": "America/Los_Angeles"}
        ]
    condition = {
        "resourceType": "Condition",
        "id": f"{pid}-prediabetes",
        "clinicalStatus": {
            "coding": [
                {"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}
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
            "coding": [
                {"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "R73.03", "display": "Prediabetes"}
            ]
        },
        "subject": {"reference": f"Patient/{pid}"},
        "recordedDate": "2026-06-02",
    }
    coverage = []
    if COVERAGE[pid]:
        payer, member = COVERAGE[pid]
        coverage.append(
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
                "period": {"start": "2026-01-01"},
                "payor": [{"reference": f"Organization/{payer}"}],
            }
        )
    goals = [
        {
            "resourceType": "Goal",
            "id": f"{pid}-goal-steps",
            "lifecycleStatus": "active",
            "achievementStatus": {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/goal-achievement",
                        "code": "in-progress",
                    }
                ]
            },
            "category": [
                {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/goal-category",
                            "code": "behavioral",
                        }
                    ]
                }
            ],
            "description": {"text": "Walk at least 8,000 steps a day by the end of January"},
            "subject": {"reference": f"Patient/{pid}"},
            "startDate": START.isoformat(),
            "target": [
                {
                    "measure": {
                        "coding": [
                            {
                                "system": LOINC,
                                "code": "41950-7",
                                "display": "Number of steps in 24 hour Measured",
                            }
                        ]
                    },
                    "detailQuantity": {
                        "value": 8000,
                        "comparator": ">=",
                        "unit": "steps/day",
                        "system": UCUM,
                        "code": "/d",
                    },
                    "dueDate": "2027-01-31",
                }
            ],
            "expressedBy": {"reference": f"Patient/{pid}"},
            "addresses": [{"reference": f"Condition/{pid}-prediabetes"}],
        },
        {
            "resourceType": "Goal",
            "id": f"{pid}-goal-weight",
            "lifecycleStatus": "active",
            "category": [
                {
                    "coding": [
                        {"system": "http://terminology.hl7.org/CodeSystem/goal-category", "code": "dietary"}
                    ]
                }
            ],
            "description": {"text": f"Reach {weight0 - 4:.0f} kg by the end of March"},
            "subject": {"reference": f"Patient/{pid}"},
            "startDate": START.isoformat(),
            "target": [
                {
                    "measure": {"coding": [{"system": LOINC, "code": "29463-7", "display": "Body weight"}]},
                    "detailQuantity": {
                        "value": round(weight0 - 4, 1),
                        "comparator": "<=",
                        "unit": "kg",
                        "system": UCUM,
                        "code": "kg",
                    },
                    "dueDate": "2027-03-31",
                }
            ],
            "expressedBy": {"reference": "PractitionerRole/coach-sam-rivera-role"},
            "addresses": [{"reference": f"Condition/{pid}-prediabetes"}],
        },
    ]
    careplan, checkins = habit_plan(pid, index, rng)
    observations = []
    for d in range(DAYS):
        day = START + timedelta(days=d)
        weekend = day.weekday() >= 5
        steps = max(500, int(steps0 + steps_trend * d + rng.gauss(0, 900) - (700 if weekend else 0)))
        observations.append(
            quantity_obs(
                f"{pid}-steps-{day:%Y%m%d}",
                pid,
                "41950-7",
                "Number of steps in 24 hour Measured",
                day,
                steps,
                "steps/day",
                "/d",
                "activity",
                "demo-watch",
                tz,
                period=True,
            )
        )
        sleep = round(6.6 + rng.gauss(0, 0.6) + (0.5 if weekend else 0), 1)
        observations.append(
            quantity_obs(
                f"{pid}-sleep-{day:%Y%m%d}",
                pid,
                "93832-4",
                "Sleep duration",
                day,
                sleep,
                "h",
                "h",
                "activity",
                "demo-watch",
                tz,
                period=True,
            )
        )
        rhr = round(68 - d * 0.1 + rng.gauss(0, 2))
        observations.append(
            quantity_obs(
                f"{pid}-rhr-{day:%Y%m%d}",
                pid,
                "40443-4",
                "Heart rate --resting",
                day,
                rhr,
                "beats/minute",
                "/min",
                "vital-signs",
                "demo-watch",
                tz,
            )
        )
        if d % 3 == 0:
            weight = round(weight0 + weight_trend * d + 0.3 * math.sin(d), 1)
            observations.append(
                quantity_obs(
                    f"{pid}-weight-{day:%Y%m%d}",
                    pid,
                    "29463-7",
                    "Body weight",
                    day,
                    weight,
                    "kg",
                    "kg",
                    "vital-signs",
                    "demo-phone",
                    tz,
                )
            )
    session_day = START + timedelta(days=14)
    encounter = {
        "resourceType": "Encounter",
        "id": f"{pid}-session-1",
        "meta": {"profile": [f"{MECR}/StructureDefinition/mecr-coaching-session"]},
        "extension": [
            {
                "url": f"{MECR}/StructureDefinition/coaching-session-modality",
                "valueCoding": {"system": f"{MECR}/CodeSystem/session-modality", "code": "in-person"},
            }
        ],
        "status": "finished",
        "class": {
            "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
            "code": "AMB",
            "display": "ambulatory",
        },
        "type": [
            {
                "coding": [{"system": f"{MECR}/CodeSystem/mecr-codes", "code": "coaching-session-follow-up"}],
                "text": "Health and well-being coaching session",
            }
        ],
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
                "individual": {"reference": "PractitionerRole/coach-sam-rivera-role"},
            }
        ],
        "period": {"start": f"{session_day}T15:00:00{tz}", "end": f"{session_day}T15:40:00{tz}"},
        "length": {"value": 40, "unit": "min", "system": UCUM, "code": "min"},
        "reasonReference": [{"reference": f"Condition/{pid}-prediabetes"}],
        "serviceProvider": {"reference": "Organization/riverside-family-practice"},
    }
    resources = [patient, condition, *coverage, *goals, careplan, encounter]
    if index == 0:
        referral = {
            "resourceType": "ServiceRequest",
            "id": f"{pid}-referral-food",
            "meta": {"profile": [f"{MECR}/StructureDefinition/mecr-community-referral"]},
            "status": "active",
            "intent": "order",
            "category": [
                {
                    "coding": [
                        {
                            "system": "http://hl7.org/fhir/us/sdoh-clinicalcare/CodeSystem/SDOHCC-CodeSystemTemporaryCodes",
                            "code": "food-insecurity",
                            "display": "Food Insecurity",
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
            "requester": {"reference": "PractitionerRole/coach-sam-rivera-role"},
            "performer": [
                {
                    "reference": "Organization/springfield-food-bank",
                    "display": "Springfield Community Food Bank",
                }
            ],
            "authoredOn": f"{session_day}T15:35:00{tz}",
            "supportingInfo": [{"reference": f"Consent/{pid}-consent-food-bank"}],
        }
        # The patient's consent to share the referral with the food bank (Gravity SDOHCC Consent shape; the
        # recipient is provision.actor, role IRCP): what lets the food bank see it (docs/referrals.md).
        consent = {
            "resourceType": "Consent",
            "id": f"{pid}-consent-food-bank",
            "status": "active",
            "scope": {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/consentscope",
                        "code": "patient-privacy",
                        "display": "Privacy Consent",
                    }
                ]
            },
            "category": [
                {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                            "code": "IDSCL",
                            "display": "information disclosure",
                        }
                    ]
                }
            ],
            "patient": {"reference": f"Patient/{pid}"},
            "dateTime": str(session_day),
            "organization": [{"reference": "Organization/riverside-family-practice"}],
            "policyRule": {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/consentpolicycodes",
                        "code": "hipaa-auth",
                        "display": "HIPAA Authorization",
                    }
                ]
            },
            "provision": {
                "type": "permit",
                "period": {"start": str(session_day)},
                "actor": [
                    {
                        "role": {
                            "coding": [
                                {
                                    "system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                                    "code": "IRCP",
                                }
                            ]
                        },
                        "reference": {"reference": "Organization/springfield-food-bank"},
                    }
                ],
            },
        }
        task = {
            "resourceType": "Task",
            "id": f"{pid}-referral-food-task",
            "meta": {"profile": [f"{MECR}/StructureDefinition/mecr-referral-task"]},
            "status": "requested",
            "intent": "order",
            "code": {"coding": [{"system": "http://hl7.org/fhir/CodeSystem/task-code", "code": "fulfill"}]},
            "focus": {"reference": f"ServiceRequest/{pid}-referral-food"},
            "for": {"reference": f"Patient/{pid}"},
            "authoredOn": f"{session_day}T15:35:00{tz}",
            "lastModified": f"{session_day}T15:35:00{tz}",
            "requester": {"reference": "PractitionerRole/coach-sam-rivera-role"},
            "owner": {"reference": "Organization/springfield-food-bank"},
        }
        resources += [consent, referral, task]
    return [bundle(resources, PRACTICE_AS_OF), bundle(observations + checkins, PRACTICE_AS_OF)]


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    files = {"01-practice.json": bundle(practice())}
    for i, row in enumerate(PATIENTS):
        coaching, observations = patient_files(row, i)
        files[f"{10 + i}-{row[0]}.json"] = coaching
        files[f"{20 + i}-{row[0]}-observations.json"] = observations
    from fhir_ecr.coaching.demo import demo_coaching_bundles

    files.update(zip(COACHING_FILES, demo_coaching_bundles(COACHING_AS_OF), strict=True))
    for name, content in files.items():
        (OUT / name).write_text(json.dumps(content, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {len(files)} files to {OUT}")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script from a checkout
    main()
