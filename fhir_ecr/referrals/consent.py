"""The patient's consent to share with a community organisation (Gravity SDOH CC IG: a ``Consent`` of
category information disclosure, ``Consent-SDOHCC-ConsentInformationDisclosureExample``), required before a
referral leaves the practice (docs/referrals.md).

mECR writes the recipient as ``Consent.provision.actor`` with role ``IRCP`` (information recipient,
http://terminology.hl7.org/CodeSystem/v3-ParticipationType); ``Consent.organization`` is, in R4, the custodian
(the practice). A consent covers an organisation while it is ``active``, names the organisation as an actor,
does not deny (``provision.type`` ``deny``) and its ``provision.period`` (if any) includes now.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["CONSENT_CATEGORY", "build_consent", "covers"]

CONSENT_CATEGORY = {
    "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
    "code": "IDSCL",
    "display": "information disclosure",
}
_IRCP = {
    "system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
    "code": "IRCP",
    "display": "information recipient",
}


def covers(consent: Mapping[str, Any], patient_id: str, org_id: str, now_iso: str) -> bool:
    """Does ``consent`` let the practice share ``Patient/{patient_id}``'s referral with ``Organization/{org_id}``?"""
    if consent.get("resourceType") != "Consent" or consent.get("status") != "active":
        return False
    if (consent.get("patient") or {}).get("reference") != f"Patient/{patient_id}":
        return False
    provision = consent.get("provision") or {}
    if provision.get("type") == "deny":
        return False
    period = provision.get("period") or {}
    if (period.get("start") and str(period["start"]) > now_iso) or (
        period.get("end") and str(period["end"]) < now_iso[: len(str(period["end"]))]
    ):
        return False
    return any(
        (a.get("reference") or {}).get("reference") == f"Organization/{org_id}"
        for a in provision.get("actor") or ()
        if isinstance(a, dict)
    )


def build_consent(
    patient_id: str,
    org_id: str,
    org_name: str,
    *,
    today: str,
    custodian: str | None = None,
    end: str | None = None,
    purpose: str = "the referral",
) -> dict[str, Any]:
    """The Consent mECR records when the patient agrees to share ``purpose`` with an organisation (the minimum:
    their name, how to reach them and the need; docs/referrals.md)."""
    consent: dict[str, Any] = {
        "resourceType": "Consent",
        "meta": {"profile": ["http://hl7.org/fhir/us/sdoh-clinicalcare/StructureDefinition/SDOHCC-Consent"]},
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
        "category": [{"coding": [CONSENT_CATEGORY]}],
        "patient": {"reference": f"Patient/{patient_id}"},
        "dateTime": today,
        "policyRule": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/consentpolicycodes",
                    "code": "hipaa-auth",
                    "display": "HIPAA Authorization",
                }
            ],
            "text": f"Share my name, contact details and {purpose} with {org_name}",
        },
        "provision": {
            "type": "permit",
            "period": {"start": today, **({"end": end} if end else {})},
            "actor": [
                {
                    "role": {"coding": [_IRCP]},
                    "reference": {"reference": f"Organization/{org_id}", "display": org_name},
                }
            ],
        },
    }
    if custodian:
        consent["organization"] = [{"reference": custodian}]
    return consent
