"""The billing service: read sessions, run the rules, export, and mark what was exported — in one unit of work.

An export never bills a session twice: every exported line is recorded as a ``ChargeItem`` (status
``billed``, identifier ``https://mecr.dev/fhir/sid/billing-line|<line key>``, context the Encounter,
``supportingInformation`` the Claim that carried it), and every claim as a FHIR ``Claim`` (id and identifier =
its CLM01), written through the repository in the same transaction that reads the sessions. The next export
skips those sessions (finding ``already-billed``) unless it is asked to ``rebill``; a rebilled line goes out on a
replacement of the claim that carried it (:mod:`.resubmit`). Two exports racing for the same session both try to
create the same ChargeItem id; one of them fails with 409 and writes nothing.

Each export takes the next interchange control number (state key ``billing.control-number``) and records
itself under ``billing.export.<control number>``: format, range, payer, creation time, line and claim counts
and the SHA-256 of the file. Claim numbers are derived from the control number (:func:`.claims.claim_number`),
so they are unique across exports. The file depends only on the sessions, the rules, the claims it replaces
and these recorded envelope values, so an export can be reproduced.
"""

from __future__ import annotations

import gc
import hashlib
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Literal

import orjson

from ..outcomes import bad_request, issue
from .claims import build_claims, check_claims
from .csv_export import findings_csv, lines_csv
from .engine import Evaluation, evaluate
from .errors import BillingError, ExportCheckError
from .fhir_export import claim_resource, claims_bundle, code_system
from .model import BilledItem, Claim, Line
from .resubmit import PriorClaim, Resubmission, plan_resubmission, prior_claim
from .rules import RuleTable
from .source import BILLING_LINE_SYSTEM, load_billed, load_sessions, read_many
from .superbill import render_superbill
from .x12 import Envelope, render_837p

__all__ = [
    "ExportRequest",
    "ExportResult",
    "run_export",
    "preview",
    "superbill_for",
    "charge_item_id",
    "FORMATS",
    "MEDIA_TYPES",
    "CONTROL_KEY",
    "gc_paused",
]

Format = Literal["csv", "fhir", "837p"]
FORMATS: tuple[Format, ...] = ("csv", "fhir", "837p")
MEDIA_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "fhir": "application/fhir+json",
    "837p": "application/edi-x12",
}
CONTROL_KEY = "billing.control-number"


@dataclass(frozen=True)
class ExportRequest:
    """What to export: sessions from ``start`` to ``end`` (inclusive), one payer or all, in one format."""

    start: date
    end: date
    format: Format
    payer: str | None = None
    rebill: bool = False
    dry_run: bool = False

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise bad_request(f"the range ends ({self.end}) before it starts ({self.start})")
        if self.format not in FORMATS:
            raise bad_request(f"format must be one of {', '.join(FORMATS)}, not {self.format!r}")


@dataclass
class ExportResult:
    """The exported file, the findings CSV, and what was recorded."""

    control_number: int
    created: datetime
    content: bytes
    findings: bytes
    media_type: str
    evaluation: Evaluation
    claims: list[Claim]
    exported: list[Line] = field(default_factory=list)
    marked: int = 0

    @property
    def record(self) -> dict[str, Any]:
        """The export record kept in the store (``billing.export.<control number>``)."""
        return {
            "controlNumber": self.control_number,
            "created": self.created.isoformat(),
            "lines": len(self.exported),
            "claims": len(self.claims),
            "findings": len(self.evaluation.findings),
            "sha256": hashlib.sha256(self.content).hexdigest(),
        }


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector: an export allocates ~10 small objects per line and no cycles, and
    generational collections over them cost about half of the rule engine's time at 100,000 sessions."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def charge_item_id(key: str) -> str:
    """The ChargeItem id of a line key: the same line is always the same ChargeItem."""
    return "bill-" + hashlib.sha1(key.encode()).hexdigest()


def _charge_item(line: Line, control: int, fmt: str, created: datetime, claim: str | None) -> dict[str, Any]:
    item: dict[str, Any] = {
        "resourceType": "ChargeItem",
        "id": charge_item_id(line.key),
        "identifier": [{"system": BILLING_LINE_SYSTEM, "value": line.key}],
        "status": "billed",
        "code": {"coding": [{"system": code_system(line.code), "code": line.code}]},
        "subject": {"reference": f"Patient/{line.patient.id}"},
        "context": {"reference": f"Encounter/{line.encounter_id}"},
        "occurrenceDateTime": line.day.isoformat(),
        "quantity": {"value": line.units},
        "priceOverride": {"value": float(line.charge), "currency": "USD"},
        "enteredDate": created.isoformat(),
        "note": [{"text": f"exported in billing export {control} ({fmt}); payer {line.payer}"}],
    }
    if line.rendering is not None:
        item["performer"] = [{"actor": {"reference": line.rendering.reference}}]
    if claim is not None:
        item["supportingInformation"] = [{"reference": f"Claim/{claim}", "display": f"claim {claim}"}]
    return item


def _priors(uow: Any, billed: list[BilledItem], lines: list[Line]) -> dict[str, PriorClaim]:
    """The stored Claims that last carried the lines being exported again."""
    keys = {ln.key for ln in lines}
    ids = {b.claim for b in billed if b.claim and b.status == "billed" and b.key in keys}
    return {cid: prior_claim(res) for cid, res in read_many(uow, "Claim", ids).items()} if ids else {}


def _render(
    req: ExportRequest,
    rules: RuleTable,
    lines: list[Line],
    claims: list[Claim],
    control: int,
    created: datetime,
) -> tuple[bytes, list[Line]]:
    if req.format == "csv":
        return lines_csv(claims, lines).encode(), list(lines)
    exported = [ln for c in claims for ln in c.lines]
    if req.format == "837p":
        return render_837p(claims, rules, Envelope(control, created)).encode(), exported
    if rules.practice is None:
        raise ExportCheckError(["no practice in the rule table: a Claim needs the billing provider"])
    bundle = claims_bundle(claims, rules.practice, created=created, export_id=str(control))
    return orjson.dumps(bundle, option=orjson.OPT_INDENT_2), exported


def run_export(
    repo: Any,
    rules: RuleTable,
    req: ExportRequest,
    *,
    now: datetime,
    deliver: Callable[[ExportResult], None] | None = None,
    tz: str | None = None,
) -> ExportResult:
    """Export the sessions of ``req`` and (unless ``dry_run``) mark the exported lines billed, atomically.

    ``deliver`` (e.g. write the file) runs before the marks are committed: if it raises, nothing is marked.
    ``tz`` is the practice's time zone: a session's day is its local date there (or in the patient's zone).
    """
    with gc_paused(), repo.unit(write=not req.dry_run) as uow:
        control = int(uow.get_state(CONTROL_KEY) or "0") % 999_999_999 + 1
        sessions = load_sessions(uow, rules, req.start, req.end, tz=tz)
        billed = load_billed(uow, {s.patient.id for s in sessions})
        evaluation = evaluate(
            sessions, rules, start=req.start, end=req.end, payer=req.payer, billed=billed, rebill=req.rebill
        )
        plan = Resubmission(list(evaluation.lines))
        if req.rebill:
            plan = plan_resubmission(
                evaluation.lines,
                evaluation.findings,
                billed,
                _priors(uow, billed, evaluation.lines),
                start=req.start,
                end=req.end,
            )
            evaluation = Evaluation(
                plan.lines,
                sorted([*evaluation.findings, *plan.findings], key=lambda f: (f.day, f.encounter_id, f.code)),
            )
        claims = build_claims(plan.lines, rules, control=control, originals=plan.originals)
        problems = check_claims(claims)
        if problems:
            raise ExportCheckError(problems)
        content, exported = _render(req, rules, plan.lines, claims, control, now)
        result = ExportResult(
            control,
            now,
            content,
            findings_csv(evaluation.findings).encode(),
            MEDIA_TYPES[req.format],
            evaluation,
            claims,
            exported,
        )
        if req.dry_run:
            if deliver is not None:
                deliver(result)
            return result
        _record(uow, result, plan, billed, req.format, rules, now)
        uow.set_state(CONTROL_KEY, str(control))
        uow.set_state(
            f"billing.export.{control}",
            json.dumps(
                {
                    **result.record,
                    "format": req.format,
                    "from": req.start.isoformat(),
                    "to": req.end.isoformat(),
                    "payer": req.payer,
                    "rebill": req.rebill,
                },
                sort_keys=True,
            ),
        )
        if deliver is not None:
            deliver(result)
    return result


def _record(
    uow: Any,
    result: ExportResult,
    plan: Resubmission,
    billed: list[BilledItem],
    fmt: str,
    rules: RuleTable,
    now: datetime,
) -> None:
    """Store the claims as sent, then mark each exported line billed on its claim; lines a replacement dropped
    (no longer billable) become ``not-billable``."""
    stamp = now.isoformat(timespec="seconds").replace("+00:00", "Z")
    claim_of: dict[str, str] = {}
    for c in result.claims:
        uow.create(claim_resource(c, rules.practice, stamp), resource_id=c.id)
        claim_of.update((ln.key, c.id) for ln in c.lines)
    existing = {b.key for b in billed}
    for line in result.exported:
        item = _charge_item(line, result.control_number, fmt, now, claim_of.get(line.key))
        if line.key in existing:
            uow.update("ChargeItem", item["id"], item)
        else:
            uow.create(item, resource_id=item["id"])
        result.marked += 1
    for gone in plan.removed:
        item = dict(uow.read("ChargeItem", charge_item_id(gone.key)).content or {})
        item["status"] = "not-billable"
        item["note"] = [
            *(item.get("note") or []),
            {
                "text": f"no longer billable: left off replacement claim(s) of "
                f"{gone.claim} in billing export {result.control_number}"
            },
        ]
        uow.update("ChargeItem", item["id"], item)


def preview(
    repo: Any, rules: RuleTable, start: date, end: date, payer: str | None = None, *, tz: str | None = None
) -> Evaluation:
    """What an export would bill, without writing anything (already-billed sessions show as findings)."""
    with repo.unit(write=False) as uow:
        sessions = load_sessions(uow, rules, start, end, tz=tz)
        billed = load_billed(uow, {s.patient.id for s in sessions})
    return evaluate(sessions, rules, start=start, end=end, payer=payer, billed=billed)


def superbill_for(
    repo: Any,
    rules: RuleTable,
    *,
    patient_id: str,
    start: date,
    end: date,
    encounter_id: str | None = None,
    prepared: date,
    tz: str | None = None,
) -> str:
    """The superbill HTML of one patient's lines in ``start``..``end`` (or of one session).

    A superbill is a statement, not a claim: it lists the lines whether or not they were exported.
    """
    with repo.unit(write=False) as uow:
        sessions = [s for s in load_sessions(uow, rules, start, end, tz=tz) if s.patient.id == patient_id]
    evaluation = evaluate(sessions, rules, start=start, end=end, rebill=True)
    lines = [ln for ln in evaluation.lines if encounter_id is None or ln.encounter_id == encounter_id]
    if encounter_id is not None and not lines:
        why = [f.message for f in evaluation.findings if f.encounter_id == encounter_id]
        raise BillingError(
            issue("not-found", f"Encounter/{encounter_id} bills nothing" + (f": {why[0]}" if why else "")),
            404,
        )
    period = start.isoformat() if start == end else f"{start.isoformat()} to {end.isoformat()}"
    return render_superbill(lines, rules.practice, period=period, prepared=prepared)
