"""Builders for billing tests: engine inputs (Session …) and IG-shaped FHIR resources for the store."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Any

from fhir_ecr.billing import Credential, Insurance, Person, Provider, Session, load_rules

REPO = Path(__file__).resolve().parents[2]
EXAMPLE_PRACTICE = REPO / "fhir_ecr" / "billing" / "practice.example.yaml"
MECR = "https://mecr.dev/fhir/CodeSystem/mecr-codes"
INITIAL, FOLLOW_UP, GROUP = (f"{MECR}|coaching-session-{k}" for k in ("initial", "follow-up", "group"))
HCPCS = "https://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets"
CPT = "http://www.ama-assn.org/go/cpt"
COACH_NPI = "1234567893"
SUPERVISOR_NPI = "1245319599"
BAD_NPI = "1234567890"


def rules(*extra: Path) -> Any:
    return load_rules(EXAMPLE_PRACTICE, *extra)


def coach(
    *credentials: str, npi: str | None = COACH_NPI, start: date | None = None, end: date | None = None
) -> Provider:
    creds = tuple(Credential(c, start, end) for c in (credentials or ("nbc-hwc",)))
    return Provider("PractitionerRole/coach", "Okafor", "Grace", npi, None, creds)


SUPERVISOR = Provider("Practitioner/dr", "Shah", "Amy", SUPERVISOR_NPI, "207Q00000X")
PATIENT = Person(
    "pat-1", "Rivera", "Ana", date(1978, 4, 12), "female", "1 Main St", "Springfield", "IL", "62701"
)
MEDICARE = Insurance("cov-1", ("MEDICARE-IL", "Organization/medicare"), "Medicare", "1EG4TE5MK73")
PAYER_ID_SYSTEM = "https://mecr.dev/fhir/sid/payer-id"
COMMERCIAL = Insurance(
    "cov-2",
    ("ACME-HEALTH", "Organization/acme"),
    "Acme Health",
    "ACM123456",
    ((PAYER_ID_SYSTEM, "ACME-HEALTH"),),
)
MEDI_CAL = Insurance("cov-3", ("MEDI-CAL",), "Medi-Cal", "9000000001")


def session(**kw: Any) -> Session:
    base = Session(
        encounter_id=kw.pop("encounter_id", "enc-1"),
        patient=PATIENT,
        day=date(2026, 3, 10),
        minutes=30,
        types=(FOLLOW_UP,),
        coach=coach(),
        supervisor=SUPERVISOR,
        diagnoses=("R73.03", "Z71.3"),
        insurance=MEDICARE,
    )
    return replace(base, **kw)


# --- FHIR resources shaped as the mECR IG defines them ------------------------------------------------------


def practice_resources() -> list[dict[str, Any]]:
    return [
        {"resourceType": "Organization", "id": "clinic", "active": True, "name": "Riverside Family Practice"},
        {
            "resourceType": "Organization",
            "id": "medicare",
            "active": True,
            "name": "Medicare Part B",
            "identifier": [{"system": "https://mecr.dev/fhir/sid/payer-id", "value": "MEDICARE-IL"}],
        },
        {
            "resourceType": "Organization",
            "id": "acme",
            "active": True,
            "name": "Acme Health",
            "identifier": [{"system": "https://mecr.dev/fhir/sid/payer-id", "value": "ACME-HEALTH"}],
        },
        {
            "resourceType": "Practitioner",
            "id": "coach-person",
            "name": [{"family": "Okafor", "given": ["Grace"]}],
            "identifier": [{"system": "http://hl7.org/fhir/sid/us-npi", "value": COACH_NPI}],
        },
        {
            "resourceType": "Practitioner",
            "id": "dr-amy-shah",
            "name": [{"family": "Shah", "given": ["Amy"]}],
            "identifier": [{"system": "http://hl7.org/fhir/sid/us-npi", "value": SUPERVISOR_NPI}],
        },
        coach_role("coach", "nbc-hwc"),
        coach_role("coach-uncredentialed", None),
    ]


def coach_role(rid: str, credential: str | None) -> dict[str, Any]:
    role: dict[str, Any] = {
        "resourceType": "PractitionerRole",
        "id": rid,
        "meta": {"profile": ["https://mecr.dev/fhir/StructureDefinition/mecr-coach"]},
        "active": True,
        "code": [{"coding": [{"system": MECR, "code": "health-and-wellness-coach"}]}],
        "identifier": [{"system": "http://hl7.org/fhir/sid/us-npi", "value": COACH_NPI}],
        "practitioner": {"reference": "Practitioner/coach-person"},
        "organization": {"reference": "Organization/clinic"},
    }
    if credential:
        role["extension"] = [
            {
                "url": "https://mecr.dev/fhir/StructureDefinition/coach-credential",
                "extension": [
                    {
                        "url": "code",
                        "valueCodeableConcept": {
                            "coding": [
                                {
                                    "system": "https://mecr.dev/fhir/CodeSystem/coach-credential",
                                    "code": credential,
                                }
                            ]
                        },
                    },
                    {"url": "period", "valuePeriod": {"start": "2024-02-01", "end": "2027-01-31"}},
                ],
            }
        ]
    return role


def patient_resources(
    pid: str, *, payer: str | None = "medicare", dx: tuple[str, ...] = ("R73.03",)
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [
        {
            "resourceType": "Patient",
            "id": pid,
            "name": [{"family": "Rivera", "given": ["Ana"]}],
            "gender": "female",
            "birthDate": "1978-04-12",
            "address": [{"line": ["1 Main St"], "city": "Springfield", "state": "IL", "postalCode": "62701"}],
        }
    ]
    if payer:
        out.append(
            {
                "resourceType": "Coverage",
                "id": f"{pid}-cov",
                "status": "active",
                "beneficiary": {"reference": f"Patient/{pid}"},
                "subscriberId": f"M{pid.upper()}"[:12],
                "payor": [{"reference": f"Organization/{payer}"}],
            }
        )
    for n, code in enumerate(dx):
        out.append(
            {
                "resourceType": "Condition",
                "id": f"{pid}-dx{n}",
                "clinicalStatus": {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                            "code": "active",
                        }
                    ]
                },
                "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": code}]},
                "subject": {"reference": f"Patient/{pid}"},
            }
        )
    return out


def encounter(
    eid: str,
    pid: str,
    kind: str,
    start: str,
    minutes: int | None,
    *,
    modality: str = "in-person",
    coach_role_id: str = "coach",
    part_of: str | None = None,
    supervisor: bool = True,
) -> dict[str, Any]:
    hh, mm = int(start[11:13]), int(start[14:16])
    total = hh * 60 + mm + (minutes or 45)
    end = f"{start[:11]}{total // 60:02d}:{total % 60:02d}:00-05:00"
    participants: list[dict[str, Any]] = [
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
            "individual": {"reference": f"PractitionerRole/{coach_role_id}"},
        }
    ]
    if supervisor:
        participants.append(
            {
                "type": [
                    {
                        "coding": [
                            {
                                "system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                                "code": "ATND",
                            }
                        ]
                    }
                ],
                "individual": {"reference": "Practitioner/dr-amy-shah"},
            }
        )
    enc: dict[str, Any] = {
        "resourceType": "Encounter",
        "id": eid,
        "meta": {"profile": ["https://mecr.dev/fhir/StructureDefinition/mecr-coaching-session"]},
        "extension": [
            {
                "url": "https://mecr.dev/fhir/StructureDefinition/coaching-session-modality",
                "valueCoding": {
                    "system": "https://mecr.dev/fhir/CodeSystem/session-modality",
                    "code": modality,
                },
            }
        ],
        "status": "finished",
        "class": {
            "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
            "code": "AMB" if modality == "in-person" else "VR",
        },
        "type": [{"coding": [{"system": MECR, "code": f"coaching-session-{kind}"}]}],
        "subject": {"reference": f"Patient/{pid}"},
        "participant": participants,
        "period": {"start": start, "end": end},
        "serviceProvider": {"reference": "Organization/clinic"},
    }
    if minutes is not None:
        enc["length"] = {
            "value": minutes,
            "unit": "min",
            "system": "http://unitsofmeasure.org",
            "code": "min",
        }
    if part_of:
        enc["partOf"] = {"reference": f"Encounter/{part_of}"}
    return enc


def load(repo: Any, resources: list[dict[str, Any]]) -> None:
    with repo.unit() as uow:
        for r in resources:
            uow.create(r, resource_id=r["id"])
