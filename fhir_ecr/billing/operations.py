"""Billing's FHIR operations, for billing staff (declared once, served and listed by the operation registry).

- ``POST [base]/Claim/$billing-export`` — export sessions (``from``, ``to``, ``payer``, ``format`` csv|fhir|837p,
  ``rebill``, ``dryRun``); returns a Parameters resource with the file and the findings CSV as attachments.
- ``GET [base]/Claim/$billing-preview`` — lines and findings an export would produce, nothing written.
- ``GET [base]/Patient/[id]/$superbill?from=&to=`` and ``GET [base]/Encounter/[id]/$superbill`` — the printable
  superbill (HTML).

**No authorization yet**: anyone who can reach the API can export claims. The SMART scope check (a billing
scope such as ``system/Claim.write``) arrives with the auth issue; until then serve the API only to the
practice's network. The rule table comes from ``MECR_BILLING_RULES`` (practice files separated by the OS path
separator), read at each call so that a changed fee schedule applies without a restart.
"""

from __future__ import annotations

import base64
import os
from datetime import UTC, date, datetime
from typing import Any

from fastapi.responses import HTMLResponse

from ..fhir.operations import Operation, OperationCall, OperationRegistry
from ..outcomes import bad_request, forbidden
from .rules import RuleTable, load_rules
from .service import FORMATS, ExportRequest, preview, run_export, superbill_for
from .source import service_day

__all__ = ["register_billing_operations", "rules_from_settings", "RULES_ENV"]

RULES_ENV = "MECR_BILLING_RULES"


def rules_from_settings(settings: Any) -> RuleTable:
    """The shipped rules merged with the practice files named in ``MECR_BILLING_RULES`` (Settings.billing_rules)."""
    files = [p for p in settings.billing_rules.split(os.pathsep) if p]
    return load_rules(*files)


def _date(call: OperationCall, name: str, default: date | None = None) -> date:
    raw = call.get(name)
    if raw is None:
        if default is not None:
            return default
        raise bad_request(f"parameter {name} (a date, YYYY-MM-DD) is required", name)
    try:
        return date.fromisoformat(str(raw))
    except ValueError:
        raise bad_request(f"{name} must be a date (YYYY-MM-DD), not {raw!r}", name) from None


def _flag(call: OperationCall, name: str) -> bool:
    raw = call.get(name, False)
    if isinstance(raw, bool):
        return raw
    if str(raw).lower() in ("true", "false"):
        return str(raw).lower() == "true"
    raise bad_request(f"{name} must be true or false", name)


def _attachment(name: str, content_type: str, data: bytes, title: str) -> dict[str, Any]:
    return {
        "name": name,
        "valueAttachment": {
            "contentType": content_type,
            "title": title,
            "data": base64.b64encode(data).decode(),
        },
    }


def _billing_staff(call: OperationCall, letters: dict[str, str]) -> None:
    """Billing runs across patients: practice staff (``user/``) or a billing system (``system/``) with scopes
    for what it reads and writes; never a patient session."""
    access = call.access
    if access is None:
        return
    principal = access.require_login()
    if principal.kind == "patient":
        raise forbidden("billing exports are for the practice's billing staff")
    for rtype, letter in letters.items():
        access.require(rtype, letter)


def _export(call: OperationCall) -> dict[str, Any]:
    # Reads sessions, conditions, coverage and practitioners; marks billed lines with ChargeItems.
    _billing_staff(
        call, {"Encounter": "s", "Condition": "s", "Coverage": "s", "ChargeItem": "c", "Claim": "c"}
    )
    fmt = str(call.get("format", "837p"))
    if fmt not in FORMATS:
        raise bad_request(f"format must be one of {', '.join(FORMATS)}", "format")
    req = ExportRequest(
        _date(call, "from"),
        _date(call, "to"),
        fmt,
        payer=call.get("payer"),
        rebill=_flag(call, "rebill"),
        dry_run=_flag(call, "dryRun"),
    )
    rules = rules_from_settings(call.services.settings)
    result = run_export(
        call.repo,
        rules,
        req,
        now=datetime.now(UTC).replace(microsecond=0),
        tz=call.services.settings.default_time_zone,
    )
    ext = {"csv": "csv", "fhir": "json", "837p": "x12"}[fmt]
    return {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "controlNumber", "valueInteger": result.control_number},
            {"name": "lines", "valueInteger": len(result.exported)},
            {"name": "claims", "valueInteger": len(result.claims)},
            {"name": "findings", "valueInteger": len(result.evaluation.findings)},
            {"name": "marked", "valueInteger": result.marked},
            _attachment("file", result.media_type, result.content, f"billing-{result.control_number}.{ext}"),
            _attachment(
                "findingsFile", "text/csv", result.findings, f"billing-{result.control_number}.findings.csv"
            ),
        ],
    }


def _preview(call: OperationCall) -> dict[str, Any]:
    _billing_staff(call, {"Encounter": "s", "Condition": "s", "Coverage": "s"})
    rules = rules_from_settings(call.services.settings)
    ev = preview(
        call.repo,
        rules,
        _date(call, "from"),
        _date(call, "to"),
        call.get("payer"),
        tz=call.services.settings.default_time_zone,
    )
    params: list[dict[str, Any]] = []
    for ln in ev.lines:
        params.append(
            {
                "name": "line",
                "part": [
                    {"name": "encounter", "valueReference": {"reference": f"Encounter/{ln.encounter_id}"}},
                    {"name": "code", "valueCode": ln.code},
                    {"name": "units", "valueInteger": ln.units},
                    {"name": "charge", "valueMoney": {"value": float(ln.charge), "currency": "USD"}},
                    {"name": "payer", "valueString": ln.payer},
                ],
            }
        )
    for f in ev.findings:
        params.append(
            {
                "name": "finding",
                "part": [
                    {"name": "encounter", "valueReference": {"reference": f"Encounter/{f.encounter_id}"}},
                    {"name": "code", "valueCode": f.code},
                    {"name": "message", "valueString": f.message},
                ],
            }
        )
    return {"resourceType": "Parameters", "parameter": params}


def _superbill(call: OperationCall) -> HTMLResponse:
    rules = rules_from_settings(call.services.settings)
    tz = call.services.settings.default_time_zone
    today = datetime.now(UTC).date()
    if call.resource_type == "Encounter":
        enc = call.repo.read("Encounter", call.instance_id).content or {}
        subject = str((enc.get("subject") or {}).get("reference", "")).split("/")[-1]
        patient = call.repo.read("Patient", subject).content if subject else None
        day = service_day(enc, {subject: patient or {}}, tz) or today
        html = superbill_for(
            call.repo,
            rules,
            patient_id=subject,
            start=day,
            end=day,
            encounter_id=call.resource_id,
            prepared=today,
            tz=tz,
        )
    else:
        start = _date(call, "from")
        html = superbill_for(
            call.repo,
            rules,
            patient_id=str(call.resource_id),
            start=start,
            end=_date(call, "to", start),
            prepared=today,
            tz=tz,
        )
    return HTMLResponse(html)


def register_billing_operations(registry: OperationRegistry) -> None:
    """Add ``$billing-export``, ``$billing-preview`` and ``$superbill`` to ``registry``."""
    date_in = [
        {"name": "from", "use": "in", "min": 1, "max": "1", "type": "date"},
        {"name": "to", "use": "in", "min": 1, "max": "1", "type": "date"},
        {"name": "payer", "use": "in", "min": 0, "max": "1", "type": "string"},
    ]
    registry.register(
        Operation(
            name="billing-export",
            title="Billing export",
            description="Export coaching sessions as claim lines (CSV), FHIR Claims or an X12 837P, and mark the "
            "exported lines billed (ChargeItem). Not yet protected by a SMART scope.",
            handler=_export,
            resource_types=("Claim",),
            type=True,
            affects_state=True,
            parameters=[
                *date_in,
                {"name": "format", "use": "in", "min": 0, "max": "1", "type": "code"},
                {"name": "rebill", "use": "in", "min": 0, "max": "1", "type": "boolean"},
                {"name": "dryRun", "use": "in", "min": 0, "max": "1", "type": "boolean"},
                {"name": "file", "use": "out", "min": 1, "max": "1", "type": "Attachment"},
                {"name": "findingsFile", "use": "out", "min": 1, "max": "1", "type": "Attachment"},
            ],
        )
    )
    registry.register(
        Operation(
            name="billing-preview",
            title="Billing preview",
            description="The claim lines and findings an export of the range would produce; writes nothing.",
            handler=_preview,
            resource_types=("Claim",),
            type=True,
            parameters=[
                *date_in,
                {"name": "line", "use": "out", "min": 0, "max": "*"},
                {"name": "finding", "use": "out", "min": 0, "max": "*"},
            ],
        )
    )
    registry.register(
        Operation(
            name="superbill",
            title="Superbill",
            description="A printable superbill (HTML) of one session (Encounter) or of a patient's sessions in a "
            "date range (Patient, from/to), for self-pay patients.",
            handler=_superbill,
            resource_types=("Patient", "Encounter"),
            instance=True,
            parameters=[
                {"name": "from", "use": "in", "min": 0, "max": "1", "type": "date"},
                {"name": "to", "use": "in", "min": 0, "max": "1", "type": "date"},
                {"name": "return", "use": "out", "min": 1, "max": "1", "type": "Binary"},
            ],
        )
    )
