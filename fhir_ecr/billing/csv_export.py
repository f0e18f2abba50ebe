"""CSV export: one row per claim line, and the findings in a CSV of their own.

Rows come in claim order (claim id, line number) and then the lines of payers that take no electronic claims
(self-pay), so the same lines always give the same bytes. Diagnoses keep their ICD-10-CM dot here: the file is
for people and for practice-management imports, not for X12.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable

from .model import Claim, Finding, Line

__all__ = ["LINE_COLUMNS", "FINDING_COLUMNS", "lines_csv", "findings_csv"]

LINE_COLUMNS = (
    "claim_id",
    "line_number",
    "payer",
    "patient_id",
    "patient_name",
    "member_id",
    "encounter",
    "service_date",
    "service",
    "code",
    "modifiers",
    "units",
    "pos",
    "diagnoses",
    "diagnosis_pointers",
    "charge",
    "rendering_npi",
    "rendering_name",
    "supervising_npi",
    "coach",
    "coach_npi",
    "minutes",
    "line_key",
)
FINDING_COLUMNS = ("encounter", "patient_id", "service_date", "service", "finding", "message")


def _name(family: str, given: str) -> str:
    return f"{family}, {given}" if given else family


def lines_csv(claims: Iterable[Claim], lines: Iterable[Line]) -> str:
    """The lines as CSV: claim lines first (with claim id, line number and pointers), then the others."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(LINE_COLUMNS)
    on_claims: set[str] = set()

    def row(line: Line, claim_id: str, number: str, pointers: str) -> list[str]:
        r, s, c = line.rendering, line.supervising, line.coach
        return [
            claim_id,
            number,
            line.payer,
            line.patient.id,
            _name(line.patient.family, line.patient.given),
            line.insurance.member_id if line.insurance else "",
            line.encounter_id,
            line.day.isoformat(),
            line.service,
            line.code,
            ":".join(line.modifiers),
            str(line.units),
            line.pos,
            ";".join(line.diagnoses),
            pointers,
            f"{line.charge:.2f}",
            (r.npi or "") if r else "",
            _name(r.family, r.given) if r else "",
            (s.npi or "") if s else "",
            _name(c.family, c.given) if c else "",
            (c.npi or "") if c else "",
            "" if line.minutes is None else str(line.minutes),
            line.key,
        ]

    for claim in claims:
        for n, line in enumerate(claim.lines, 1):
            on_claims.add(line.key)
            w.writerow(row(line, claim.id, str(n), ":".join(str(p) for p in claim.pointers(line))))
    for line in lines:
        if line.key not in on_claims:
            w.writerow(row(line, "", "", ""))
    return out.getvalue()


def findings_csv(findings: Iterable[Finding]) -> str:
    """The findings as CSV, one row per session (or month) that bills nothing, with the reason."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(FINDING_COLUMNS)
    for f in findings:
        w.writerow([f.encounter_id, f.patient_id, f.day.isoformat(), f.service or "", f.code, f.message])
    return out.getvalue()
