"""X12 837P (005010X222A1) professional claims: writer, the exporter's own checks, and pyx12 validation.

Structure (ASC X12N 005010X222A1; segment usage as in pyx12's map ``837.5010.X222.A1.xml``)::

    ISA GS ST BHT  1000A NM1*41 PER  1000B NM1*40
      2000A HL*20 PRV*BI  2010AA NM1*85 N3 N4 REF*EI           billing provider (the practice)
        2000B HL*22 SBR   2010BA NM1*IL N3 N4 DMG  2010BB NM1*PR    subscriber = patient, payer
          2300 CLM REF*F8 HI  2310B NM1*82 PRV*PE  2310D NM1*DQ  claim, rendering, supervising provider
            2400 LX SV1 DTP*472                                   service lines (≤ 50 per claim)
    SE GE IEA

One ST/SE per payer (and at most 5,000 claims per ST, the implementation guide's recommended limit), all in
one GS/GE and one ISA/IEA. Everything but the envelope's date, time and control numbers (ISA09/10/13,
GS04/05/06, BHT03/04/05, GE02, IEA02) and the claim numbers derived from the control number (CLM01) is a function
of the claims, so the same claims give the same bytes.

CLM05-3 is the claim frequency code: ``1`` original, ``7`` replacement of a prior claim, with the prior claim's
payer claim control number in REF*F8 (2300, "Payer Claim Control Number") when it is known.

pyx12 checks syntax, code lists and loop structure but not claim balancing, NPI check digits, dots in ICD-10
codes or pointer ranges (pyx12 4.0.0, https://github.com/azoner/pyx12): :func:`check_837p` re-reads the text and checks those.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from .claims import ICD10_NO_DOT, MAX_DIAGNOSES, MAX_LINES, MAX_POINTERS, check_claims
from .engine import npi_valid
from .errors import ExportCheckError, X12ValidationError
from .model import Claim, Person, Provider
from .rules import Practice, RuleTable

__all__ = ["Envelope", "render_837p", "check_837p", "validate_837p", "money", "ENVELOPE_ELEMENTS"]

MAX_CLAIMS_PER_ST = 5000
MAX_CLAIMS_PER_HL = 100
SEG = "~"
ELE = "*"
SUB = ":"
REP = "^"
# (segment, element position) of the envelope values that change between two exports of the same claims
ENVELOPE_ELEMENTS = (
    ("ISA", 9),
    ("ISA", 10),
    ("ISA", 13),
    ("GS", 4),
    ("GS", 5),
    ("GS", 6),
    ("BHT", 3),
    ("BHT", 4),
    ("BHT", 5),
    ("GE", 2),
    ("IEA", 2),
    ("CLM", 1),
)
_UNSAFE = re.compile(r"[*:^~\r\n]+")


@dataclass(frozen=True)
class Envelope:
    """What differs between two exports of the same claims: the control number and the creation time."""

    control_number: int  # ISA13 (9 digits), GS06 and the BHT03 prefix
    created: datetime

    def __post_init__(self) -> None:
        if not 1 <= self.control_number <= 999_999_999:
            raise ValueError("an interchange control number has 1 to 9 digits")


def money(amount: Decimal) -> str:
    """An X12 decimal (R): no exponent, no trailing zeros after the point (75.50 -> 75.5, 75.00 -> 75)."""
    text = f"{amount:.2f}".rstrip("0").rstrip(".")
    return text or "0"


def _text(value: str | None, limit: int) -> str:
    """Upper-case, delimiters removed, cut to the element's maximum length."""
    return _UNSAFE.sub(" ", (value or "").upper()).strip()[:limit]


def _seg(*elements: str) -> str:
    parts = list(elements)
    while len(parts) > 1 and parts[-1] == "":
        parts.pop()  # trailing empty elements are not sent
    return ELE.join(parts)


def _gender(g: str | None) -> str:
    return {"male": "M", "female": "F"}.get(g or "", "U")


def _provider_nm1(qualifier: str, p: Provider) -> str:
    return _seg("NM1", qualifier, "1", _text(p.family, 60), _text(p.given, 35), "", "", "", "XX", p.npi or "")


def _subscriber(person: Person) -> list[str]:
    return [
        _seg("N3", _text(person.address_line, 55)),
        _seg(
            "N4", _text(person.city, 30), _text(person.state, 2), (person.postal_code or "").replace("-", "")
        ),
        _seg(
            "DMG",
            "D8",
            person.birth_date.strftime("%Y%m%d") if person.birth_date else "",
            _gender(person.gender),
        ),
    ]


def _claim(c: Claim, practice: Practice, report_supervising: bool) -> list[str]:
    hi = [f"{'ABK' if i == 0 else 'ABF'}{SUB}{d.replace('.', '')}" for i, d in enumerate(c.diagnoses)]
    out = [_seg("CLM", c.id, money(c.total), "", "", f"{c.pos}{SUB}B{SUB}{c.frequency}", "Y", "A", "Y", "Y")]
    if c.frequency in ("7", "8") and c.payer_claim_number:
        out.append(_seg("REF", "F8", _text(c.payer_claim_number, 50)))
    out.append(_seg("HI", *hi))
    if c.rendering is not None and c.rendering.npi and c.rendering.npi != practice.npi:
        out.append(_provider_nm1("82", c.rendering))
        if c.rendering.taxonomy:
            out.append(_seg("PRV", "PE", "PXC", c.rendering.taxonomy))
    sup = c.supervising
    if (
        report_supervising
        and sup is not None
        and sup.npi
        and (c.rendering is None or sup.npi != c.rendering.npi)
    ):
        out.append(_provider_nm1("DQ", sup))
    for n, line in enumerate(c.lines, 1):
        proc = SUB.join(["HC", line.code, *line.modifiers[:4]])
        pointers = SUB.join(str(p) for p in c.pointers(line))
        out += [
            _seg("LX", str(n)),
            _seg(
                "SV1",
                proc,
                money(line.charge),
                "UN",
                str(line.units),
                line.pos if line.pos != c.pos else "",
                "",
                pointers,
            ),
            _seg("DTP", "472", "D8", line.day.strftime("%Y%m%d")),
        ]
    return out


def render_837p(claims: Iterable[Claim], rules: RuleTable, envelope: Envelope) -> str:
    """The 837P interchange for ``claims`` (one ST per payer); raises ExportCheckError if a check fails."""
    practice = rules.practice
    if practice is None:
        raise ExportCheckError(
            [
                "no practice in the rule table: an 837P needs the billing provider "
                "(add a practice: section to the practice file)"
            ]
        )
    if len(practice.address.postal_code) != 9:
        raise ExportCheckError(["the billing provider's ZIP code must have 9 digits (2010AA N403)"])
    if not npi_valid(practice.npi):
        raise ExportCheckError([f"billing provider NPI {practice.npi} fails the check digit"])
    claims = list(claims)
    problems = check_claims(claims)
    if problems:
        raise ExportCheckError(problems)
    by_payer: dict[str, list[Claim]] = {}
    for c in claims:
        by_payer.setdefault(c.payer, []).append(c)
    ctrl = envelope.control_number
    day8 = envelope.created.strftime("%Y%m%d")
    hhmm = envelope.created.strftime("%H%M")
    sender, receiver = practice.submitter.id, practice.receiver.id
    segs = [
        "ISA*00*" + " " * 10 + "*00*" + " " * 10 + f"*ZZ*{sender:<15}*ZZ*{receiver:<15}*"
        f"{envelope.created:%y%m%d}*{hhmm}*{REP}*00501*{ctrl:09d}*0*{practice.usage}*{SUB}",
        _seg("GS", "HC", sender, receiver, day8, hhmm, str(ctrl), "X", "005010X222A1"),
    ]
    st_count = 0
    for payer_key in sorted(by_payer):
        payer = rules.payer(payer_key)
        payer_claims = by_payer[payer_key]
        for chunk_start in range(0, len(payer_claims), MAX_CLAIMS_PER_ST):
            chunk = payer_claims[chunk_start : chunk_start + MAX_CLAIMS_PER_ST]
            st_count += 1
            st = f"{st_count:04d}"
            body = [
                _seg("ST", "837", st, "005010X222A1"),
                _seg("BHT", "0019", "00", f"{ctrl}{st}", day8, hhmm, "CH"),
                _seg("NM1", "41", "2", _text(practice.submitter.name, 60), "", "", "", "", "46", sender),
                _seg(
                    "PER",
                    "IC",
                    _text(practice.submitter.contact or practice.submitter.name, 60),
                    "TE",
                    practice.submitter.phone or practice.phone or "",
                ),
                _seg("NM1", "40", "2", _text(practice.receiver.name, 60), "", "", "", "", "46", receiver),
                _seg("HL", "1", "", "20", "1"),
            ]
            if practice.taxonomy:
                body.append(_seg("PRV", "BI", "PXC", practice.taxonomy))
            a = practice.address
            body += [
                _seg("NM1", "85", "2", _text(practice.name, 60), "", "", "", "", "XX", practice.npi),
                _seg("N3", _text(a.line, 55)),
                _seg("N4", _text(a.city, 30), a.state, a.postal_code),
                _seg("REF", "EI", practice.tin),
            ]
            hl = 1
            subscribers: dict[tuple[str, str], list[Claim]] = {}
            for c in chunk:
                subscribers.setdefault((c.patient.id, c.insurance.coverage_id), []).append(c)
            for key in sorted(subscribers):
                sub_claims = subscribers[key]
                for i in range(0, len(sub_claims), MAX_CLAIMS_PER_HL):
                    first = sub_claims[i]
                    hl += 1
                    ins = first.insurance
                    body += [
                        _seg("HL", str(hl), "1", "22", "0"),
                        _seg("SBR", "P", "18", "", "", "", "", "", "", payer.claim_filing_indicator),
                        _seg(
                            "NM1",
                            "IL",
                            "1",
                            _text(first.patient.family, 60),
                            _text(first.patient.given, 35),
                            "",
                            "",
                            "",
                            "MI",
                            _text(ins.member_id, 80),
                        ),
                        *_subscriber(first.patient),
                        _seg(
                            "NM1",
                            "PR",
                            "2",
                            _text(ins.payer_name or payer.name, 60),
                            "",
                            "",
                            "",
                            "",
                            "PI",
                            _text(first.payer_id, 80),
                        ),
                    ]
                    for c in sub_claims[i : i + MAX_CLAIMS_PER_HL]:
                        body += _claim(c, practice, payer.report_supervising)
            body.append(_seg("SE", str(len(body) + 1), st))
            segs += body
    segs += [_seg("GE", str(st_count), str(ctrl)), _seg("IEA", "1", f"{ctrl:09d}")]
    text = (SEG + "\n").join(segs) + SEG + "\n"
    problems = check_837p(text)
    if problems:
        raise ExportCheckError(problems)
    return text


def _segments(text: str) -> list[list[str]]:
    return [s.strip().split(ELE) for s in text.split(SEG) if s.strip()]


def check_837p(text: str) -> list[str]:
    """Re-read an 837P and check what pyx12 does not (one sentence per problem; empty when all pass).

    CLM02 equals the sum of its SV102 (claim balancing); every NM1 with qualifier XX carries an NPI that passes
    the check digit; HI codes are ICD-10-CM without a dot, at most 12; SV107 has 1-4 pointers, each within the
    claim's HI; at most 50 service lines per claim.
    """
    problems: list[str] = []
    claim_id = ""
    total = Decimal(0)
    lines_sum = Decimal(0)
    n_lines = 0
    n_dx = 0

    def close() -> None:
        if claim_id:
            if lines_sum != total:
                problems.append(f"claim {claim_id}: CLM02 {total} is not the sum of its lines {lines_sum}")
            if n_lines > MAX_LINES:
                problems.append(f"claim {claim_id}: {n_lines} service lines; at most {MAX_LINES}")
            if n_lines == 0:
                problems.append(f"claim {claim_id}: no service lines")

    for el in _segments(text):
        tag = el[0]
        if tag in ("CLM", "SE"):
            close()
            claim_id = ""
        if tag == "CLM":
            claim_id, n_lines, n_dx, lines_sum = el[1], 0, 0, Decimal(0)
            total = Decimal(el[2])
        elif tag == "HI":
            codes = [c.split(SUB, 1)[1] if SUB in c else "" for c in el[1:]]
            n_dx = len(codes)
            if n_dx > MAX_DIAGNOSES:
                problems.append(f"claim {claim_id}: {n_dx} diagnoses; at most {MAX_DIAGNOSES}")
            for code in codes:
                if not ICD10_NO_DOT.match(code):
                    problems.append(f"claim {claim_id}: diagnosis {code!r} is not ICD-10-CM without a dot")
        elif tag == "NM1" and len(el) > 9 and el[8] == "XX" and not npi_valid(el[9]):
            problems.append(f"NM1*{el[1]}: NPI {el[9]} fails the check digit")
        elif tag == "SV1":
            n_lines += 1
            lines_sum += Decimal(el[2])
            ptrs = el[7].split(SUB) if len(el) > 7 and el[7] else []
            if not 1 <= len(ptrs) <= MAX_POINTERS:
                problems.append(f"claim {claim_id} line {n_lines}: {len(ptrs)} diagnosis pointers (1-4)")
            for p in ptrs:
                if not p.isdigit() or not 1 <= int(p) <= n_dx:
                    problems.append(f"claim {claim_id} line {n_lines}: pointer {p} is outside HI (1-{n_dx})")
    close()
    return problems


def validate_837p(text: str) -> str:
    """Validate with pyx12 (its bundled 005010X222A1 map) through its Python API; return the 999 ack.

    Raises :class:`X12ValidationError` with one issue per pyx12 error. (pyx12's ``x12valid`` command exits 1
    even on success, so the API is the reliable way.)
    """
    import pyx12.error_handler
    import pyx12.params
    import pyx12.x12n_document

    param = pyx12.params.params()
    ack, errors = io.StringIO(), io.StringIO()
    ok = pyx12.x12n_document.x12n_document(
        param=param, src_file=io.StringIO(text), fd_997=ack, fd_html=None, fd_xmldoc=None, fd_json=errors
    )
    if ok:
        return ack.getvalue()
    from ..outcomes import issue

    details = [line for line in errors.getvalue().splitlines() if line.strip()][:50]
    raise X12ValidationError([issue("processing", d[:500]) for d in details], ack.getvalue())
