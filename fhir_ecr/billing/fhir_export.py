"""FHIR export: a ``collection`` Bundle of professional ``Claim`` resources (FHIR R4, claim.html).

Each :class:`~fhir_ecr.billing.model.Claim` becomes a Claim with the R4 mandatory elements (status, type
``professional``, use ``claim``, patient, created, provider, priority, insurance) plus careTeam (rendering
provider ``primary``, supervising practitioner ``supervisor``), diagnosis (ICD-10-CM **with** its dot),
and items (CPT/HCPCS, modifiers, serviced date, CMS place of service, quantity, unit price, net, diagnosis and
care-team sequences, encounter). The billing provider is the practice, referenced by its NPI. A replacement
claim names the claim it replaces in ``related`` (relationship ``prior``, with the payer's claim number in
``related.reference`` when known). Only ``created``, the claim ids (numbered from the export's control number)
and the Bundle's ``timestamp`` and ``identifier`` change between two exports of the same claims. The same Claim
resources are stored by every export (the record of what was sent, for resubmission).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from ..canonical import BILLING_EXPORT_SYSTEM
from .model import Claim, Provider
from .resubmit import CLAIM_SYSTEM, PAYER_CLAIM_NUMBER_SYSTEM
from .rules import Practice

__all__ = ["claims_bundle", "claim_resource", "CPT", "HCPCS", "POS_SYSTEM", "code_system"]

CPT = "http://www.ama-assn.org/go/cpt"
HCPCS = "https://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets"
POS_SYSTEM = "https://www.cms.gov/Medicare/Coding/place-of-service-codes/Place_of_Service_Code_Set"
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
NPI = "http://hl7.org/fhir/sid/us-npi"
_NS = uuid.UUID("5f0c9f7e-6d1e-4b7e-9a57-1b2f3f0e8c11")  # fullUrls: uuid5(namespace, claim id)


def code_system(code: str) -> str:
    """CPT (Category I and III: digits first) or HCPCS Level II (a letter first)."""
    return HCPCS if code[:1].isalpha() else CPT


def _provider_ref(p: Provider) -> dict[str, Any]:
    ref: dict[str, Any] = {"reference": p.reference, "display": f"{p.given} {p.family}".strip()}
    if p.npi:
        ref["identifier"] = {"system": NPI, "value": p.npi}
    return ref


def _money(value: Any) -> dict[str, Any]:
    return {"value": float(value), "currency": "USD"}


def claim_resource(c: Claim, practice: Practice | None, created: str) -> dict[str, Any]:
    """One professional Claim (without a practice, e.g. a CSV export's record, the provider is a display)."""
    care_team: list[dict[str, Any]] = []
    if c.rendering is not None:
        care_team.append(
            {
                "sequence": 1,
                "provider": _provider_ref(c.rendering),
                "responsible": True,
                "role": {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/claimcareteamrole",
                            "code": "primary",
                        }
                    ]
                },
            }
        )
    if c.supervising is not None and (
        c.rendering is None or c.supervising.reference != c.rendering.reference
    ):
        care_team.append(
            {
                "sequence": len(care_team) + 1,
                "provider": _provider_ref(c.supervising),
                "role": {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/claimcareteamrole",
                            "code": "supervisor",
                        }
                    ]
                },
            }
        )
    items = []
    for n, line in enumerate(c.lines, 1):
        item: dict[str, Any] = {
            "sequence": n,
            "diagnosisSequence": c.pointers(line),
            "productOrService": {
                "coding": [{"system": code_system(line.code), "code": line.code, "display": line.description}]
            },
            "servicedDate": line.day.isoformat(),
            "locationCodeableConcept": {"coding": [{"system": POS_SYSTEM, "code": line.pos}]},
            "quantity": {"value": line.units},
            "unitPrice": _money(line.charge / line.units),
            "net": _money(line.charge),
            "encounter": [{"reference": f"Encounter/{line.encounter_id}"}],
        }
        if care_team:
            item["careTeamSequence"] = [t["sequence"] for t in care_team]
        if line.modifiers:
            item["modifier"] = [{"coding": [{"system": CPT, "code": m}]} for m in line.modifiers]
        items.append(item)
    related: dict[str, Any] = {}
    if c.replaces:
        prior: dict[str, Any] = {
            "claim": {"reference": f"Claim/{c.replaces}"},
            "relationship": {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/ex-relatedclaimrelationship",
                        "code": "prior",
                    }
                ]
            },
        }
        if c.payer_claim_number:
            prior["reference"] = {"system": PAYER_CLAIM_NUMBER_SYSTEM, "value": c.payer_claim_number}
        related = {"related": [prior]}
    provider: dict[str, Any] = (
        {"identifier": {"system": NPI, "value": practice.npi}, "display": practice.name}
        if practice is not None
        else {"display": "billing provider"}
    )
    return {
        "resourceType": "Claim",
        "id": c.id,
        "identifier": [{"system": CLAIM_SYSTEM, "value": c.id}],
        "status": "active",
        "type": {
            "coding": [{"system": "http://terminology.hl7.org/CodeSystem/claim-type", "code": "professional"}]
        },
        "use": "claim",
        "patient": {"reference": f"Patient/{c.patient.id}"},
        "billablePeriod": {
            "start": c.lines[0].day.isoformat(),
            "end": max(ln.day for ln in c.lines).isoformat(),
        },
        "created": created,
        "provider": provider,
        "priority": {
            "coding": [{"system": "http://terminology.hl7.org/CodeSystem/processpriority", "code": "normal"}]
        },
        **related,
        **({"careTeam": care_team} if care_team else {}),
        "diagnosis": [
            {"sequence": i, "diagnosisCodeableConcept": {"coding": [{"system": ICD10CM, "code": d}]}}
            for i, d in enumerate(c.diagnoses, 1)
        ],
        "insurance": [
            {"sequence": 1, "focal": True, "coverage": {"reference": f"Coverage/{c.insurance.coverage_id}"}}
        ],
        "item": items,
        "total": _money(c.total),
    }


def claims_bundle(
    claims: Iterable[Claim], practice: Practice, *, created: datetime, export_id: str
) -> dict[str, Any]:
    """A ``collection`` Bundle of the claims (``created`` and ``export_id`` are the only varying parts)."""
    stamp = created.isoformat(timespec="seconds").replace("+00:00", "Z")
    return {
        "resourceType": "Bundle",
        "identifier": {"system": BILLING_EXPORT_SYSTEM, "value": export_id},
        "type": "collection",
        "timestamp": stamp,
        "entry": [
            {"fullUrl": f"urn:uuid:{uuid.uuid5(_NS, c.id)}", "resource": claim_resource(c, practice, stamp)}
            for c in claims
        ],
    }
