"""The sandbox EHR's own demo chart: a practice, two coaches and five patients with problems and vitals.

Every resource has a fixed id and is written with ``PUT`` semantics (an unchanged resource is not written
again), and a marker in the sandbox's ``kv`` state skips the whole load once it has run: seeding is idempotent.
Dates are fixed so the chart looks the same on every machine.
"""

from __future__ import annotations

from typing import Any

from ..store.repository import FhirRepository

__all__ = ["MRN_SYSTEM", "NPI_SYSTEM", "SEED_MARKER", "demo_resources", "seed_demo_data"]

MRN_SYSTEM = "http://sandbox-ehr.mecr.dev/mrn"
NPI_SYSTEM = "http://hl7.org/fhir/sid/us-npi"
ICD10_SYSTEM = "http://hl7.org/fhir/sid/icd-10-cm"
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
SEED_MARKER = "sandbox_ehr.seed"
SEED_VERSION = "1"

ORGANIZATION_ID = "org-riverside"

# (id, given, family, gender, birthDate, MRN, coach id, [(ICD-10, display)], [(date, kg, bmi, sys, dia)])
_PATIENTS: list[
    tuple[str, str, str, str, str, str, str, list[tuple[str, str]], list[tuple[str, float, float, int, int]]]
] = [
    (
        "pat-1001",
        "Ana",
        "Lopez",
        "female",
        "1978-03-14",
        "MRN-1001",
        "coach-dana",
        [("Z71.3", "Dietary counseling and surveillance"), ("E66.9", "Obesity, unspecified")],
        [
            ("2025-01-15", 96.2, 34.1, 138, 88),
            ("2025-04-15", 93.8, 33.2, 134, 86),
            ("2025-07-15", 91.0, 32.2, 129, 84),
        ],
    ),
    (
        "pat-1002",
        "Brian",
        "Okafor",
        "male",
        "1965-11-02",
        "MRN-1002",
        "coach-dana",
        [("R73.03", "Prediabetes"), ("I10", "Essential (primary) hypertension")],
        [("2025-02-03", 104.5, 31.9, 146, 92), ("2025-05-05", 102.1, 31.2, 141, 90)],
    ),
    (
        "pat-1003",
        "Chloe",
        "Nguyen",
        "female",
        "1990-06-21",
        "MRN-1003",
        "coach-marcus",
        [("Z71.3", "Dietary counseling and surveillance")],
        [("2025-03-10", 71.4, 26.2, 118, 76), ("2025-06-09", 69.9, 25.7, 116, 74)],
    ),
    (
        "pat-1004",
        "David",
        "Schmidt",
        "male",
        "1952-09-30",
        "MRN-1004",
        "coach-marcus",
        [
            ("E11.9", "Type 2 diabetes mellitus without complications"),
            ("E78.5", "Hyperlipidemia, unspecified"),
            ("E66.9", "Obesity, unspecified"),
        ],
        [("2025-01-22", 112.0, 36.6, 150, 94), ("2025-04-23", 109.3, 35.7, 144, 91)],
    ),
    (
        "pat-1005",
        "Elena",
        "Rossi",
        "female",
        "1983-12-08",
        "MRN-1005",
        "coach-dana",
        [("R73.03", "Prediabetes"), ("Z71.3", "Dietary counseling and surveillance")],
        [("2025-02-17", 82.6, 29.8, 126, 82)],
    ),
]

# (id, given, family, NPI)
_COACHES: list[tuple[str, str, str, str]] = [
    ("coach-dana", "Dana", "Whitfield", "1234567893"),
    ("coach-marcus", "Marcus", "Chen", "1679576722"),
]

_VITALS = {
    "system": "http://terminology.hl7.org/CodeSystem/observation-category",
    "code": "vital-signs",
    "display": "Vital Signs",
}


def _organization() -> dict[str, Any]:
    return {
        "resourceType": "Organization",
        "id": ORGANIZATION_ID,
        "active": True,
        "identifier": [{"system": NPI_SYSTEM, "value": "1144221847"}],
        "name": "Riverside Family Medicine",
        "telecom": [{"system": "phone", "value": "555-0100", "use": "work"}],
        "address": [{"line": ["12 River Road"], "city": "Springfield", "state": "IL", "postalCode": "62701"}],
    }


def _coach(cid: str, given: str, family: str, npi: str) -> list[dict[str, Any]]:
    practitioner = {
        "resourceType": "Practitioner",
        "id": cid,
        "active": True,
        "identifier": [{"system": NPI_SYSTEM, "value": npi}],
        "name": [{"use": "official", "family": family, "given": [given], "suffix": ["NBC-HWC"]}],
        "telecom": [
            {"system": "email", "value": f"{given.lower()}.{family.lower()}@riverside.example", "use": "work"}
        ],
    }
    role = {
        "resourceType": "PractitionerRole",
        "id": f"role-{cid}",
        "active": True,
        "practitioner": {"reference": f"Practitioner/{cid}", "display": f"{given} {family}"},
        "organization": {
            "reference": f"Organization/{ORGANIZATION_ID}",
            "display": "Riverside Family Medicine",
        },
        "code": [
            {
                "coding": [
                    {
                        "system": "http://nucc.org/provider-taxonomy",
                        "code": "174H00000X",
                        "display": "Health Educator",
                    }
                ],
                "text": "Health and wellness coach",
            }
        ],
    }
    return [practitioner, role]


def _quantity(value: float, unit: str, code: str) -> dict[str, Any]:
    return {"value": value, "unit": unit, "system": UCUM, "code": code}


def _patient_resources(row: tuple[Any, ...]) -> list[dict[str, Any]]:
    pid, given, family, gender, birth, mrn, coach, problems, vitals = row
    subject = {"reference": f"Patient/{pid}", "display": f"{given} {family}"}
    out: list[dict[str, Any]] = [
        {
            "resourceType": "Patient",
            "id": pid,
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
                    "system": MRN_SYSTEM,
                    "value": mrn,
                }
            ],
            "name": [{"use": "official", "family": family, "given": [given]}],
            "gender": gender,
            "birthDate": birth,
            "telecom": [{"system": "phone", "value": f"555-01{pid[-2:]}", "use": "mobile"}],
            "generalPractitioner": [{"reference": f"Practitioner/{coach}"}],
            "managingOrganization": {"reference": f"Organization/{ORGANIZATION_ID}"},
        }
    ]
    for n, (code, display) in enumerate(problems, start=1):
        out.append(
            {
                "resourceType": "Condition",
                "id": f"cond-{pid}-{n}",
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
                                "display": "Problem List Item",
                            }
                        ]
                    }
                ],
                "code": {
                    "coding": [{"system": ICD10_SYSTEM, "code": code, "display": display}],
                    "text": display,
                },
                "subject": subject,
                "recordedDate": vitals[0][0] if vitals else "2025-01-01",
            }
        )
    for n, (date, kg, bmi, systolic, diastolic) in enumerate(vitals, start=1):
        base = {
            "resourceType": "Observation",
            "status": "final",
            "category": [{"coding": [_VITALS]}],
            "subject": subject,
            "effectiveDateTime": date,
        }
        out.append(
            {
                **base,
                "id": f"obs-{pid}-wt-{n}",
                "code": {
                    "coding": [{"system": LOINC, "code": "29463-7", "display": "Body weight"}],
                    "text": "Body weight",
                },
                "valueQuantity": _quantity(kg, "kg", "kg"),
            }
        )
        out.append(
            {
                **base,
                "id": f"obs-{pid}-bmi-{n}",
                "code": {
                    "coding": [{"system": LOINC, "code": "39156-5", "display": "Body mass index (BMI)"}],
                    "text": "BMI",
                },
                "valueQuantity": _quantity(bmi, "kg/m2", "kg/m2"),
            }
        )
        out.append(
            {
                **base,
                "id": f"obs-{pid}-bp-{n}",
                "code": {
                    "coding": [
                        {
                            "system": LOINC,
                            "code": "85354-9",
                            "display": "Blood pressure panel with all children optional",
                        }
                    ],
                    "text": "Blood pressure",
                },
                "component": [
                    {
                        "code": {
                            "coding": [
                                {"system": LOINC, "code": "8480-6", "display": "Systolic blood pressure"}
                            ]
                        },
                        "valueQuantity": _quantity(systolic, "mmHg", "mm[Hg]"),
                    },
                    {
                        "code": {
                            "coding": [
                                {"system": LOINC, "code": "8462-4", "display": "Diastolic blood pressure"}
                            ]
                        },
                        "valueQuantity": _quantity(diastolic, "mmHg", "mm[Hg]"),
                    },
                ],
            }
        )
    return out


def demo_resources() -> list[dict[str, Any]]:
    """Every resource of the sandbox's demo chart (fixed ids), in an order where references resolve."""
    out = [_organization()]
    for coach in _COACHES:
        out.extend(_coach(*coach))
    for row in _PATIENTS:
        out.extend(_patient_resources(row))
    return out


def seed_demo_data(repo: FhirRepository) -> bool:
    """Load the demo chart unless it is already there; True when it was written now."""
    with repo.unit(write=False) as uow:
        if uow.get_state(SEED_MARKER) == SEED_VERSION:
            return False
    with repo.unit() as uow:
        for resource in demo_resources():
            uow.update(resource["resourceType"], resource["id"], resource)
        uow.set_state(SEED_MARKER, SEED_VERSION)
    return True
