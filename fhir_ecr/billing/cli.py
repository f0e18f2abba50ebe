"""``mecr billing``: export claims (CSV, FHIR Claim Bundle, X12 837P) and print superbills.

Examples::

    mecr billing export --from 2026-03-01 --to 2026-03-31 --format 837p -o march.x12 --rules practice.yaml
    mecr billing export --from 2026-03-01 --to 2026-03-31 --payer medicare --format csv -o march.csv
    mecr billing superbill --patient maria-lopez --from 2026-03-01 --to 2026-03-31 -o superbill.html

The findings (sessions that bill nothing, and why) are written next to the output as ``<name>.findings.csv``.
An 837P export that would hold no claim writes no interchange and records nothing: the command says why (lines
that are self-pay and go on a superbill, sessions with findings, or no sessions at all) and exits with 1.
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from ..outcomes import FhirError
from .operations import RULES_ENV
from .rules import load_rules
from .service import FORMATS, ExportRequest, ExportResult, run_export, superbill_for
from .x12 import validate_837p

__all__ = ["add_billing_parser", "run_billing", "findings_path", "why_no_claims"]


def _date(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {value!r}") from None


def add_billing_parser(sub: Any) -> None:
    """Add ``billing export`` and ``billing superbill`` to the ``mecr`` subcommands."""
    billing = sub.add_parser(
        "billing",
        help="export coaching sessions for billing; print superbills",
        description="Billing of coaching sessions: claim lines by a rule table (docs/billing.md).",
    )
    bsub = billing.add_subparsers(dest="billing_command", metavar="ACTION", required=True)
    rules_help = f"practice file merged over the shipped rules (repeatable; default: ${RULES_ENV})"
    export = bsub.add_parser(
        "export",
        help="export sessions as CSV, a FHIR Claim Bundle or an X12 837P",
        description="Export the coaching sessions of a date range and mark the exported lines billed (ChargeItem). "
        "A session already exported is skipped unless --rebill. Findings go to <output>.findings.csv.",
    )
    export.add_argument("--from", dest="start", type=_date, required=True, help="first day (YYYY-MM-DD)")
    export.add_argument(
        "--to", dest="end", type=_date, required=True, help="last day, inclusive (YYYY-MM-DD)"
    )
    export.add_argument("--payer", help="only this payer of the rule table (e.g. medicare)")
    export.add_argument("--format", choices=FORMATS, default="837p", help="output format (default 837p)")
    export.add_argument("-o", "--output", type=Path, required=True, help="file to write")
    export.add_argument("--rules", action="append", type=Path, default=None, help=rules_help)
    export.add_argument(
        "--rebill", action="store_true", help="export sessions that were exported before again"
    )
    export.add_argument("--dry-run", action="store_true", help="write the file but mark nothing billed")
    export.add_argument(
        "--validate", action="store_true", help="837p: also validate with pyx12 before writing"
    )
    sb = bsub.add_parser(
        "superbill",
        help="print a superbill (HTML) for a patient's sessions",
        description="Write a printable superbill of a patient's sessions in a date range, or of "
        "one session (--encounter).",
    )
    sb.add_argument("--patient", required=True, help="Patient id")
    sb.add_argument("--from", dest="start", type=_date, required=True, help="first day (YYYY-MM-DD)")
    sb.add_argument("--to", dest="end", type=_date, help="last day (default: --from)")
    sb.add_argument("--encounter", help="only this Encounter id")
    sb.add_argument("-o", "--output", type=Path, required=True, help="HTML file to write")
    sb.add_argument("--rules", action="append", type=Path, default=None, help=rules_help)


def findings_path(output: Path) -> Path:
    """Where the findings CSV of an export to ``output`` goes."""
    return output.with_name(output.stem + ".findings.csv")


def _rule_files(args: argparse.Namespace, settings: Any) -> list[Path]:
    if args.rules:
        return list(args.rules)
    return [Path(p) for p in settings.billing_rules.split(os.pathsep) if p]


def run_billing(args: argparse.Namespace, settings: Any) -> int:
    """Run ``mecr billing …``; returns the exit status (2 for a billing error)."""
    from ..composition import build_services

    try:
        rules = load_rules(*_rule_files(args, settings))
    except FhirError as exc:
        print(f"mecr: error: {exc}", file=sys.stderr)
        return 2
    services = build_services(settings)
    try:
        if args.billing_command == "export":
            return _export(args, services, rules, settings.default_time_zone)
        html = superbill_for(
            services.repo,
            rules,
            patient_id=args.patient,
            start=args.start,
            end=args.end or args.start,
            encounter_id=args.encounter,
            prepared=datetime.now(UTC).date(),
            tz=settings.default_time_zone,
        )
        args.output.write_text(html, encoding="utf-8")
        print(f"superbill written to {args.output}")
        return 0
    except FhirError as exc:
        print(f"mecr: error: {exc}", file=sys.stderr)
        return 2
    finally:
        services.engine.dispose()


class _NoClaims(Exception):
    """An 837P export with no claim: abort it (nothing is recorded) and say why."""

    def __init__(self, result: ExportResult) -> None:
        super().__init__("no claims")
        self.result = result


def why_no_claims(result: ExportResult, start: date, end: date, rules: Any, payer: str | None = None) -> str:
    """Why an export holds no claim, in words: self-pay lines (superbill), sessions with findings, or none."""
    reasons = []
    lines = result.evaluation.lines
    self_pay = [ln for ln in lines if ln.insurance is None or not rules.payer(ln.payer).electronic]
    if self_pay:
        patients = sorted({ln.patient.id for ln in self_pay})
        n = len(self_pay)
        named = ", ".join(patients[:5]) + (f" and {len(patients) - 5} more" if len(patients) > 5 else "")
        reasons.append(
            f"{n} line{'s are' if n != 1 else ' is'} self-pay ({named}): see `mecr billing superbill "
            f"--patient {patients[0]} --from {start} --to {end} -o superbill.html`"
        )
    findings = result.evaluation.findings
    if findings:
        by_code: dict[str, int] = {}
        for f in findings:
            by_code[f.code] = by_code.get(f.code, 0) + 1
        listed = ", ".join(
            f"{n} {code}" for code, n in sorted(by_code.items(), key=lambda kv: (-kv[1], kv[0]))
        )
        reasons.append(
            f"{len(findings)} finding{'s' if len(findings) != 1 else ''} ({listed}): see the findings file"
        )
    if not reasons:
        reasons.append(
            f"no coaching session between {start} and {end}" + (f" for payer {payer}" if payer else "")
        )
    return "; ".join(reasons)


def _export(args: argparse.Namespace, services: Any, rules: Any, tz: str) -> int:
    req = ExportRequest(
        args.start, args.end, args.format, payer=args.payer, rebill=args.rebill, dry_run=args.dry_run
    )
    out: Path = args.output
    staged = [
        out.with_name(out.name + ".partial"),
        findings_path(out).with_name(findings_path(out).name + ".partial"),
    ]

    def deliver(result: ExportResult) -> None:
        if args.format == "837p" and not result.claims:
            findings_path(out).write_bytes(result.findings)
            raise _NoClaims(result)  # before anything is recorded: the export is rolled back
        if args.validate and args.format == "837p" and result.claims:
            validate_837p(result.content.decode())
        staged[0].write_bytes(result.content)
        staged[1].write_bytes(result.findings)

    try:
        result = run_export(
            services.repo, rules, req, now=datetime.now(UTC).replace(microsecond=0), deliver=deliver, tz=tz
        )
    except _NoClaims as empty:
        for p in staged:
            p.unlink(missing_ok=True)
        print(
            f"mecr: no claims to export, so no 837P was written and nothing was marked: "
            f"{why_no_claims(empty.result, args.start, args.end, rules, args.payer)} ({findings_path(out)})",
            file=sys.stderr,
        )
        return 1
    except BaseException:
        for p in staged:
            p.unlink(missing_ok=True)
        raise
    staged[0].replace(out)
    staged[1].replace(findings_path(out))
    print(
        f"export {result.control_number}: {len(result.exported)} lines, {len(result.claims)} claims, "
        f"{len(result.evaluation.findings)} findings ({findings_path(out)}); "
        f"{'nothing marked (dry run)' if req.dry_run else f'{result.marked} lines marked billed'}"
    )
    return 0
