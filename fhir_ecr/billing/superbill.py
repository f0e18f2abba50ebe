"""Superbills: a printable HTML statement (Jinja2) of one session's or one month's lines, for self-pay patients.

A superbill shows the practice (name, address, NPI, TIN), the patient, the coach (with credentials) and the
supervising practitioner, the diagnoses, and each service with its code, modifiers, units, diagnosis positions
and charge, so that patients can claim reimbursement themselves.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from decimal import Decimal
from functools import cache

from jinja2 import Environment, PackageLoader, select_autoescape

from ..outcomes import issue
from .errors import BillingError
from .model import Line, Provider
from .rules import Practice

__all__ = ["render_superbill"]


@cache
def _env() -> Environment:
    return Environment(
        loader=PackageLoader("fhir_ecr.billing", "templates"),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _unique(providers: Sequence[Provider | None]) -> list[Provider]:
    seen: dict[str, Provider] = {}
    for p in providers:
        if p is not None and p.reference not in seen:
            seen[p.reference] = p
    return list(seen.values())


def render_superbill(lines: Sequence[Line], practice: Practice | None, *, period: str, prepared: date) -> str:
    """The superbill HTML for ``lines`` (one patient); ``period`` labels it ("2026-03" or a session date)."""
    if practice is None:
        raise BillingError(
            issue("processing", "a superbill needs the practice (practice: in the practice file)"), 422
        )
    if not lines:
        raise BillingError(issue("not-found", f"no billable services for {period}"), 404)
    if len({ln.patient.id for ln in lines}) != 1:
        raise BillingError(issue("processing", "a superbill is for one patient"), 422)
    ordered = sorted(lines, key=lambda ln: (ln.day, ln.encounter_id, ln.code))
    diagnoses = list(dict.fromkeys(d for ln in ordered for d in ln.diagnoses[:4]))
    pointers = [[diagnoses.index(d) + 1 for d in ln.diagnoses[:4]] for ln in ordered]
    zip_code = practice.address.postal_code
    return (
        _env()
        .get_template("superbill.html")
        .render(
            practice=practice,
            patient=ordered[0].patient,
            period=period,
            prepared=prepared.isoformat(),
            zip=f"{zip_code[:5]}-{zip_code[5:]}" if len(zip_code) == 9 else zip_code,
            tin=f"{practice.tin[:2]}-{practice.tin[2:]}",
            coaches=_unique([ln.coach for ln in ordered]),
            supervisors=_unique([ln.supervising for ln in ordered]),
            diagnoses=diagnoses,
            lines=ordered,
            pointers=pointers,
            total=sum((ln.charge for ln in ordered), Decimal("0")),
        )
    )
