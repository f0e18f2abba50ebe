"""A small world for referral tests: a practice's coach, two patients with chart data, two community
organisations, a referral to the food bank (ServiceRequest + Task in draft), written by mECR's own (unguarded)
repository."""

from __future__ import annotations

from typing import Any

from fhir_ecr.auth import Principal
from fhir_ecr.referrals.consent import build_consent
from smart_launch import ScopeSet

SR_PROFILE = "https://mecr.dev/fhir/StructureDefinition/mecr-community-referral"
TASK_PROFILE = "https://mecr.dev/fhir/StructureDefinition/mecr-referral-task"
ORG_SCOPES = "system/Task.rus system/ServiceRequest.rs system/Patient.rs system/Procedure.crs"


def organisation(org_id: str, scopes: str = ORG_SCOPES) -> Principal:
    """A community organisation's system client (as the token endpoint builds it for a bound client)."""
    return Principal(
        kind="system",
        subject=f"client:{org_id}-client",
        scopes=ScopeSet.parse(scopes),
        client_id=f"{org_id}-client",
        display=f"{org_id} client",
        organization=org_id,
    )


def service_request(
    sr_id: str, patient: str, org: str = "food-bank", goal: str | None = None
) -> dict[str, Any]:
    sr: dict[str, Any] = {
        "resourceType": "ServiceRequest",
        "id": sr_id,
        "meta": {"profile": [SR_PROFILE]},
        "status": "active",
        "intent": "order",
        "category": [
            {
                "coding": [
                    {
                        "system": "http://snomed.info/sct",
                        "code": "410606002",
                        "display": "Social service procedure",
                    }
                ]
            },
            {
                "coding": [
                    {
                        "system": "http://hl7.org/fhir/us/sdoh-clinicalcare/CodeSystem/"
                        "SDOHCC-CodeSystemTemporaryCodes",
                        "code": "food-insecurity",
                        "display": "Food Insecurity",
                    }
                ]
            },
        ],
        "code": {
            "coding": [
                {
                    "system": "http://snomed.info/sct",
                    "code": "467771000124109",
                    "display": "Assistance with application for food pantry program",
                }
            ],
            "text": "Food pantry enrolment",
        },
        "subject": {"reference": f"Patient/{patient}"},
        "authoredOn": "2026-03-01T10:00:00Z",
        "requester": {"reference": "Practitioner/coach1"},
        "performer": [{"reference": f"Organization/{org}"}],
    }
    if goal:
        sr["extension"] = [
            {
                "url": "http://hl7.org/fhir/StructureDefinition/resource-pertainsToGoal",
                "valueReference": {"reference": f"Goal/{goal}"},
            }
        ]
    return sr


def task(
    task_id: str, sr_id: str, patient: str, status: str = "draft", org: str = "food-bank", **extra: Any
) -> dict[str, Any]:
    t: dict[str, Any] = {
        "resourceType": "Task",
        "id": task_id,
        "meta": {"profile": [TASK_PROFILE]},
        "status": status,
        "intent": "order",
        "code": {
            "coding": [
                {
                    "system": "http://hl7.org/fhir/CodeSystem/task-code",
                    "code": "fulfill",
                    "display": "Fulfill the focal request",
                }
            ]
        },
        "focus": {"reference": f"ServiceRequest/{sr_id}"},
        "for": {"reference": f"Patient/{patient}"},
        "authoredOn": "2026-03-01T10:00:00Z",
        "requester": {"reference": "Practitioner/coach1"},
        "owner": {"reference": f"Organization/{org}"},
    }
    t.update(extra)
    return t


def consent(patient: str, org: str = "food-bank", cid: str | None = None) -> dict[str, Any]:
    c = build_consent(patient, org, org, today="2026-03-01")
    if cid:
        c["id"] = cid
    return c


def seed(repo: Any) -> None:
    """Everything the tests start from (see the module docstring)."""
    with repo.unit() as uow:
        uow.update(
            "Practitioner",
            "coach1",
            {
                "resourceType": "Practitioner",
                "id": "coach1",
                "name": [{"family": "Coach", "given": ["Casey"]}],
            },
        )
        for oid, name in (("food-bank", "Springfield Food Bank"), ("housing-help", "Housing Help")):
            uow.update("Organization", oid, {"resourceType": "Organization", "id": oid, "name": name})
        for pid, given in (("p1", "Ada"), ("p2", "Ben")):
            uow.update(
                "Patient",
                pid,
                {
                    "resourceType": "Patient",
                    "id": pid,
                    "name": [{"family": "Doe", "given": [given]}],
                    "birthDate": "1970-01-01",
                    "gender": "female",
                    "telecom": [{"system": "phone", "value": "555-0100"}],
                    "identifier": [{"system": "urn:mrn", "value": f"MRN-{pid}"}],
                },
            )
            uow.update(
                "Condition",
                f"{pid}-dx",
                {
                    "resourceType": "Condition",
                    "id": f"{pid}-dx",
                    "subject": {"reference": f"Patient/{pid}"},
                    "code": {"text": "Type 2 diabetes"},
                },
            )
            uow.update(
                "Observation",
                f"{pid}-bp",
                {
                    "resourceType": "Observation",
                    "id": f"{pid}-bp",
                    "status": "final",
                    "code": {"text": "BP"},
                    "subject": {"reference": f"Patient/{pid}"},
                    "valueString": "150/95",
                },
            )
            uow.update(
                "Goal",
                f"{pid}-goal",
                {
                    "resourceType": "Goal",
                    "id": f"{pid}-goal",
                    "lifecycleStatus": "active",
                    "description": {"text": "Eat well"},
                    "subject": {"reference": f"Patient/{pid}"},
                },
            )
        uow.update("ServiceRequest", "sr1", service_request("sr1", "p1", goal="p1-goal"))
        uow.update("ServiceRequest", "sr2", service_request("sr2", "p2", org="housing-help"))
        uow.update("Task", "t1", task("t1", "sr1", "p1"))
        uow.update("Task", "t2", task("t2", "sr2", "p2", org="housing-help"))
