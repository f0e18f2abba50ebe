"""A practice with two patients, A and B, each with a resource of every type mECR serves, for the compartment
matrix (tests/auth/test_compartment_matrix.py) and the fuzzer.

B's resources carry :data:`MARK` in a name, a text or a code, so a response that leaks any of them can be found by
searching its text for the marker (or for B's ids).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

MARK = "Zebramark"

#: Types a patient reads whole (definitional: about no one): no row of B's data to protect.
PUBLIC = {"StructureDefinition", "ValueSet", "CodeSystem", "Questionnaire"}


def _ref(rtype: str, rid: str) -> dict[str, str]:
    return {"reference": f"{rtype}/{rid}"}


def record(who: str, mark: str) -> dict[str, dict[str, Any]]:
    """One patient's record: ``{type: resource}`` (ids ``{who}-{type}``), every type with the patient in it, and
    the shared resources only that record references."""
    p = _ref("Patient", f"{who}-patient")
    code = {"coding": [{"system": "urn:mecr:test", "code": f"{mark}-code"}], "text": f"{mark} measure"}

    def rid(t: str) -> str:
        return f"{who}-{t.lower()}"

    res: dict[str, dict[str, Any]] = {
        "Patient": {
            "resourceType": "Patient",
            "name": [{"family": mark, "given": [who.upper()]}],
            "birthDate": "1980-01-01" if who == "a" else "1990-02-02",
            "identifier": [{"system": "urn:mecr:test:mrn", "value": f"{mark}-MRN"}],
            "generalPractitioner": [_ref("Practitioner", rid("Practitioner"))],
            "managingOrganization": _ref("Organization", rid("Organization")),
        },
        "Practitioner": {"resourceType": "Practitioner", "name": [{"family": f"{mark}-coach"}]},
        "PractitionerRole": {
            "resourceType": "PractitionerRole",
            "practitioner": _ref("Practitioner", rid("Practitioner")),
            "code": [{"text": f"{mark} role"}],
        },
        "Organization": {"resourceType": "Organization", "name": f"{mark} clinic"},
        "Location": {"resourceType": "Location", "name": f"{mark} room"},
        "HealthcareService": {"resourceType": "HealthcareService", "name": f"{mark} food bank"},
        "Device": {
            "resourceType": "Device",
            "deviceName": [{"name": f"{mark} watch", "type": "user-friendly-name"}],
        },
        "Observation": {
            "resourceType": "Observation",
            "status": "final",
            "code": code,
            "subject": p,
            "device": _ref("Device", rid("Device")),
            "valueString": f"{mark} reading",
            "effectiveDateTime": "2026-11-01",
        },
        "Goal": {
            "resourceType": "Goal",
            "lifecycleStatus": "active",
            "description": {"text": f"{mark} goal"},
            "subject": p,
        },
        "CarePlan": {
            "resourceType": "CarePlan",
            "status": "active",
            "intent": "plan",
            "subject": p,
            "title": f"{mark} plan",
            "author": _ref("PractitionerRole", rid("PractitionerRole")),
        },
        "Communication": {
            "resourceType": "Communication",
            "status": "completed",
            "subject": p,
            "payload": [{"contentString": f"{mark} message"}],
        },
        "Condition": {"resourceType": "Condition", "subject": p, "code": code},
        "Encounter": {
            "resourceType": "Encounter",
            "status": "finished",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
            "subject": p,
            "location": [{"location": _ref("Location", rid("Location"))}],
            "reasonCode": [code],
        },
        "ServiceRequest": {
            "resourceType": "ServiceRequest",
            "status": "active",
            "intent": "order",
            "subject": p,
            "code": code,
            "performer": [_ref("HealthcareService", rid("HealthcareService"))],
        },
        "Task": {
            "resourceType": "Task",
            "status": "requested",
            "intent": "order",
            "for": p,
            "description": f"{mark} task",
        },
        "QuestionnaireResponse": {
            "resourceType": "QuestionnaireResponse",
            "status": "completed",
            "subject": p,
            "item": [{"linkId": "1", "text": f"{mark} answer"}],
        },
        "Procedure": {"resourceType": "Procedure", "status": "completed", "subject": p, "code": code},
        "DocumentReference": {
            "resourceType": "DocumentReference",
            "status": "current",
            "subject": p,
            "description": f"{mark} note",
            "content": [{"attachment": {"contentType": "text/plain", "title": f"{mark} note"}}],
        },
        "Coverage": {
            "resourceType": "Coverage",
            "status": "active",
            "beneficiary": p,
            "payor": [_ref("Organization", rid("Organization"))],
            "subscriberId": f"{mark}-member",
        },
        "Consent": {
            "resourceType": "Consent",
            "status": "active",
            "patient": p,
            "scope": {
                "coding": [
                    {"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "treatment"}
                ]
            },
            "category": [{"text": f"{mark} consent"}],
        },
        "ChargeItem": {"resourceType": "ChargeItem", "status": "billable", "code": code, "subject": p},
        "Claim": {
            "resourceType": "Claim",
            "status": "active",
            "use": "claim",
            "patient": p,
            "created": "2026-11-01",
            "type": {"text": f"{mark} claim"},
            "provider": _ref("Organization", rid("Organization")),
            "priority": {"text": "normal"},
            "insurance": [{"sequence": 1, "focal": True, "coverage": _ref("Coverage", rid("Coverage"))}],
        },
        "List": {
            "resourceType": "List",
            "status": "current",
            "mode": "working",
            "subject": p,
            "title": f"{mark} list",
        },
        "Provenance": {
            "resourceType": "Provenance",
            "target": [p],
            "recorded": "2026-11-01T00:00:00Z",
            "agent": [{"who": _ref("Practitioner", rid("Practitioner"))}],
            "reason": [{"text": f"{mark} provenance"}],
        },
        "RelatedPerson": {
            "resourceType": "RelatedPerson",
            "patient": p,
            "name": [{"family": f"{mark}-sister"}],
        },
        "Appointment": {
            "resourceType": "Appointment",
            "status": "booked",
            "description": f"{mark} visit",
            "participant": [{"actor": p, "status": "accepted"}],
        },
        "CareTeam": {"resourceType": "CareTeam", "subject": p, "name": f"{mark} team"},
        "Basic": {"resourceType": "Basic", "code": code, "subject": p},
        "AllergyIntolerance": {
            "resourceType": "AllergyIntolerance",
            "patient": p,
            "code": {"text": f"{mark} allergy"},
        },
        "MedicationStatement": {
            "resourceType": "MedicationStatement",
            "status": "active",
            "subject": p,
            "medicationCodeableConcept": {"text": f"{mark} medication"},
        },
        "Group": {
            "resourceType": "Group",
            "type": "person",
            "actual": True,
            "name": f"{mark} group",
            "member": [{"entity": p}],
        },
        "AuditEvent": {
            "resourceType": "AuditEvent",
            "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-event-type", "code": "rest"},
            "recorded": "2026-11-01T00:00:00Z",
            "outcomeDesc": f"{mark} access",
            "agent": [{"who": _ref("Practitioner", rid("Practitioner")), "requestor": True}],
            "source": {"observer": {"display": "mECR"}},
            "entity": [{"what": p}],
        },
    }
    for t, r in res.items():
        r["id"] = rid(t)
    res["Patient"]["id"] = f"{who}-patient"
    return res


@dataclass
class World:
    """The two records as stored: ``a`` and ``b`` map type -> id; ``shared_group`` holds both patients."""

    a: dict[str, str] = field(default_factory=dict)
    b: dict[str, str] = field(default_factory=dict)
    shared_group: str = "ab-group"

    @property
    def b_ids(self) -> set[str]:
        return set(self.b.values())


def build_world(repo: Any) -> World:
    """Write both records (unguarded) and a walking group with A and B in it; A's Observation also names B's
    Observation as a member (a coach linked them), so includes can try to cross over."""
    world = World()
    for who, mark in (("b", MARK), ("a", "Ardent")):
        resources = record(who, mark)
        if who == "a":
            resources["Observation"]["hasMember"] = [_ref("Observation", "b-observation")]
        with repo.unit() as uow:
            for rtype, resource in resources.items():
                uow.update(rtype, resource["id"], resource)
        getattr(world, who).update({t: r["id"] for t, r in resources.items()})
    repo.update(
        "Group",
        world.shared_group,
        {
            "resourceType": "Group",
            "id": world.shared_group,
            "type": "person",
            "actual": True,
            "name": "Tuesday walking group",
            "member": [{"entity": _ref("Patient", "a-patient")}, {"entity": _ref("Patient", "b-patient")}],
        },
    )
    return world
