"""Lines into claims, and the checks every exported claim must pass.

A claim holds the lines of one patient, coverage, rendering and supervising provider and calendar month, in
date order (and, when rebilling, of one replaced claim: a replacement replaces exactly one earlier claim). It is
split so that no claim has more than 50 service lines (837P 005010X222A1: loop 2400 repeats at most 50 times) or
more than 12 diagnoses (HI holds at most 12 codes), and every line points at no more than 4 of them (SV107).
Self-pay lines (payers with ``electronic: false``) never become claims: they go on a superbill.

**Claim numbers (CLM01).** A claim's number is ``M<export control number>-<n>`` (:func:`claim_number`): the
export's interchange control number, taken from the store's counter in the export's own transaction, and the
claim's position in the export. No two exports share a control number, so a CLM01 is never reused for the life
of the practice, and the payer's remittance (835 CLP01 echoes CLM01) matches exactly one claim. (A dry run uses
the next export's number and records nothing: its file is for review, not for submission.)
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping

from .engine import npi_valid
from .model import Claim, Line
from .resubmit import PriorClaim
from .rules import RuleTable

__all__ = [
    "build_claims",
    "check_claims",
    "claim_number",
    "MAX_LINES",
    "MAX_DIAGNOSES",
    "MAX_POINTERS",
    "ICD10_NO_DOT",
    "MAX_CLAIM_NUMBER",
]

MAX_LINES = 50
MAX_DIAGNOSES = 12
MAX_POINTERS = 4
ICD10_NO_DOT = re.compile(r"^[A-TV-Z][0-9][0-9A-Z][0-9A-Z]{0,4}$")
_ICD10_DOTTED = re.compile(r"^[A-TV-Z][0-9][0-9A-Z](\.[0-9A-Z]{1,4})?$")


MAX_CLAIM_NUMBER = 20  # CLM01 (patient control number): AN 1-20


def claim_number(control: int, n: int) -> str:
    """CLM01 of the ``n``-th claim (1-based) of the export with interchange control number ``control``."""
    return f"M{control}-{n}"


def build_claims(
    lines: Iterable[Line],
    rules: RuleTable,
    *,
    control: int = 0,
    originals: Mapping[str, PriorClaim] | None = None,
) -> list[Claim]:
    """Group the lines of electronic payers into claims (stable order: same lines, same claims) numbered for the
    export ``control``; ``originals`` maps a line key to the earlier claim the line's new claim replaces."""
    originals = originals or {}
    groups: dict[tuple[str, ...], list[Line]] = defaultdict(list)
    for line in lines:
        if line.insurance is None or not rules.payer(line.payer).electronic:
            continue
        prior = originals.get(line.key)
        key: tuple[str, ...] = (
            line.payer,
            line.insurance.coverage_id,
            line.patient.id,
            line.rendering.reference if line.rendering else "",
            line.rendering.npi or "" if line.rendering else "",
            line.supervising.npi or "" if line.supervising else "",
            f"{line.day:%Y-%m}",
            prior.id if prior else "",
        )
        groups[key].append(line)
    claims: list[Claim] = []
    for key in sorted(groups):
        current: Claim | None = None
        for line in sorted(groups[key], key=lambda ln: (ln.day, ln.encounter_id, ln.code)):
            new_dx = [
                d
                for d in dict.fromkeys(line.diagnoses[:MAX_POINTERS])
                if current is None or d not in current.diagnoses
            ]
            if (
                current is None
                or len(current.lines) >= MAX_LINES
                or len(current.diagnoses) + len(new_dx) > MAX_DIAGNOSES
            ):
                assert line.insurance is not None
                prior = originals.get(line.key)
                current = Claim(
                    id=claim_number(control, len(claims) + 1),
                    patient=line.patient,
                    payer=line.payer,
                    insurance=line.insurance,
                    rendering=line.rendering,
                    supervising=line.supervising,
                    frequency="7" if prior else "1",
                    replaces=prior.id if prior else None,
                    payer_claim_number=prior.payer_claim_number if prior else None,
                )
                claims.append(current)
                new_dx = list(dict.fromkeys(line.diagnoses[:MAX_POINTERS]))
            current.lines.append(line)
            current.diagnoses.extend(new_dx)
    return claims


def check_claims(claims: Iterable[Claim]) -> list[str]:
    """Problems X12 validators do not catch, one sentence each (empty: all claims pass).

    - no negative charges (the total is the sum of lines by construction; the 837P text is re-checked for
      CLM02 = ΣSV102 by :func:`fhir_ecr.billing.x12.check_837p`);
    - every NPI passes its check digit (Luhn over "80840" + 9 digits, CMS NPI standard);
    - ICD-10-CM codes well formed, at most 12 per claim, at most 4 pointers per line, all in range;
    - at most 50 lines per claim; units at least 1;
    - a claim number of at most 20 characters, used once; a payer ID; one replacement per replaced claim.
    """
    problems: list[str] = []
    claims = list(claims)
    for number, n in Counter(c.id for c in claims).items():
        if n > 1:
            problems.append(f"claim number {number} is used by {n} claims")
    for replaced, n in Counter(c.replaces for c in claims if c.replaces).items():
        if n > 1:
            problems.append(
                f"claim {replaced} would be replaced by {n} claims (its lines no longer fit on one "
                "claim): void it and bill them as new claims"
            )
    for c in claims:
        where = f"claim {c.id}"
        if len(c.id) > MAX_CLAIM_NUMBER:
            problems.append(f"{where}: the claim number is longer than {MAX_CLAIM_NUMBER} characters")
        if c.lines and not c.payer_id:
            problems.append(f"{where}: no payer ID for {c.payer}")
        if not c.lines:
            problems.append(f"{where}: no lines")
            continue
        if len(c.lines) > MAX_LINES:
            problems.append(f"{where}: {len(c.lines)} lines; at most {MAX_LINES} per claim")
        if len(c.diagnoses) > MAX_DIAGNOSES:
            problems.append(f"{where}: {len(c.diagnoses)} diagnoses; at most {MAX_DIAGNOSES} per claim")
        if len(set(c.diagnoses)) != len(c.diagnoses):
            problems.append(f"{where}: a diagnosis is listed twice")
        for d in c.diagnoses:
            if not _ICD10_DOTTED.match(d):
                problems.append(f"{where}: {d!r} is not an ICD-10-CM code")
        for who in (c.rendering, c.supervising):
            if who is not None and who.npi and not npi_valid(who.npi):
                problems.append(f"{where}: {who.reference} NPI {who.npi} fails the check digit")
        for n, ln in enumerate(c.lines, 1):
            if ln.charge < 0:
                problems.append(f"{where} line {n}: negative charge {ln.charge}")
            if ln.units < 1:
                problems.append(f"{where} line {n}: {ln.units} units")
            missing = [d for d in ln.diagnoses[:MAX_POINTERS] if d not in c.diagnoses]
            if missing:
                problems.append(f"{where} line {n}: diagnoses {missing} are not on the claim")
                continue
            pointers = c.pointers(ln)
            if (
                not pointers
                or len(pointers) > MAX_POINTERS
                or not all(1 <= p <= len(c.diagnoses) for p in pointers)
            ):
                problems.append(f"{where} line {n}: diagnosis pointers {pointers} out of range")
    return problems
