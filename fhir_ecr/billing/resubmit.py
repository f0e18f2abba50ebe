"""Rebilling: which claim each re-exported line replaces, and the claim frequency code it goes out with.

An exported line is recorded as a ChargeItem that names the Claim that carried it (``supportingInformation``),
and every exported claim is kept as a FHIR ``Claim`` (id and identifier = its CLM01). When a line is exported
again (``rebill``), its new claim is:

- a **replacement** (CLM05-3 ``7``; FHIR ``Claim.related`` relationship ``prior``) of the claim that last carried
  it, with that claim's payer claim control number in REF*F8 when it is known — the payer's number is recorded
  as an identifier of the stored Claim (system :data:`PAYER_CLAIM_NUMBER_SYSTEM`), e.g. from a 277CA or 835;
- an **original** (CLM05-3 ``1``) only when the earlier claim was never accepted: its stored Claim has status
  ``cancelled`` (the payer or clearinghouse rejected it).

A replacement replaces the whole earlier claim (X12 005010X222A1, CLM05-3 code 7 "Replacement of prior claim"),
so it must carry every line of that claim that is still billable. A line of the earlier claim that this export
evaluated and found no longer billable (a finding) is dropped on purpose; a line it did not evaluate (outside
the range, another payer, a deleted session) would be dropped by accident, so the replacement is withheld and its
lines get the finding ``replacement-incomplete``, which names the range to rebill instead.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date

from ..canonical import CLAIM_SYSTEM, PAYER_CLAIM_NUMBER_SYSTEM
from .model import BilledItem, Finding, Line

__all__ = [
    "PriorClaim",
    "Resubmission",
    "plan_resubmission",
    "CLAIM_SYSTEM",
    "PAYER_CLAIM_NUMBER_SYSTEM",
    "prior_claim",
]


@dataclass(frozen=True)
class PriorClaim:
    """A claim exported before, as stored: its id (CLM01), status and the payer's claim number if recorded."""

    id: str
    status: str = "active"
    payer_claim_number: str | None = None

    @property
    def never_accepted(self) -> bool:
        """True when the claim was rejected (stored Claim status ``cancelled``): resubmit as an original."""
        return self.status == "cancelled"


def prior_claim(resource: Mapping[str, object]) -> PriorClaim:
    """A stored Claim resource as a :class:`PriorClaim`."""
    number = None
    for ident in resource.get("identifier") or []:  # type: ignore[attr-defined]
        if (
            isinstance(ident, Mapping)
            and ident.get("system") == PAYER_CLAIM_NUMBER_SYSTEM
            and ident.get("value")
        ):
            number = str(ident["value"])
    return PriorClaim(str(resource.get("id")), str(resource.get("status") or "active"), number)


@dataclass
class Resubmission:
    """The lines to export, findings for lines withheld, the claim each line replaces, and lines of replaced
    claims that the replacement drops because they are no longer billable."""

    lines: list[Line]
    findings: list[Finding] = field(default_factory=list)
    originals: dict[str, PriorClaim] = field(default_factory=dict)
    removed: list[BilledItem] = field(default_factory=list)


def plan_resubmission(
    lines: Iterable[Line],
    findings: Iterable[Finding],
    billed: Iterable[BilledItem],
    priors: Mapping[str, PriorClaim],
    *,
    start: date,
    end: date,
) -> Resubmission:
    """Decide, for lines being exported again, the claim each replaces (see the module docstring)."""
    lines = list(lines)
    carried: dict[str, list[BilledItem]] = defaultdict(list)  # claim id -> the billed lines it carries
    claim_of: dict[str, str] = {}
    for b in billed:
        if b.status == "billed" and b.claim:
            carried[b.claim].append(b)
            claim_of[b.key] = b.claim
    new_keys = {ln.key for ln in lines}
    evaluated = new_keys | {f"Encounter/{f.encounter_id}" for f in findings if f.code != "already-billed"}
    out = Resubmission([])
    withheld: dict[str, str] = {}  # claim id -> why its replacement is withheld
    replaced: set[str] = set()
    for ln in lines:
        prior = priors.get(claim_of.get(ln.key, ""))
        if prior is not None and not prior.never_accepted:
            out.originals[ln.key] = prior
            replaced.add(prior.id)
    for claim_id in sorted(replaced):
        gone = [b for b in carried[claim_id] if b.key not in new_keys]
        unseen = [b for b in gone if b.key not in evaluated]
        if unseen:
            days = [b.day for b in carried[claim_id]]
            withheld[claim_id] = (
                f"claim {claim_id} also carries {', '.join(b.key for b in unseen[:3])}"
                f"{' and more' if len(unseen) > 3 else ''}, which this export ({start}..{end}) did not evaluate; a "
                f"replacement would drop it: rebill {min(days)}..{max(days)} (the whole claim) instead"
            )
        else:
            out.removed += gone
    for ln in lines:
        prior = out.originals.get(ln.key)
        if prior is not None and prior.id in withheld:
            out.findings.append(
                Finding(
                    ln.encounter_id,
                    ln.patient.id,
                    ln.day,
                    ln.service,
                    "replacement-incomplete",
                    withheld[prior.id],
                )
            )
            del out.originals[ln.key]
        else:
            out.lines.append(ln)
    out.removed = [b for b in out.removed if b.claim not in withheld]
    return out
