"""The rule engine's inputs and outputs: plain, immutable data (no FHIR, no database).

:mod:`fhir_ecr.billing.source` builds :class:`Session` values from the store; benchmarks and tests build them
directly. The engine turns sessions into :class:`Line` values (billable) and :class:`Finding` values (why a
session bills nothing); :mod:`fhir_ecr.billing.claims` groups lines into :class:`Claim` values for export.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Literal

__all__ = [
    "Modality",
    "Credential",
    "Provider",
    "Person",
    "Insurance",
    "Session",
    "Line",
    "Finding",
    "Claim",
    "BilledItem",
]

Modality = Literal["in-person", "video", "audio-only"]


@dataclass(frozen=True, slots=True)
class Credential:
    """A coaching credential (coach-credential code) and the period it is valid, if known."""

    code: str
    start: date | None = None
    end: date | None = None

    def valid_on(self, day: date) -> bool:
        """True when ``day`` is inside the credential's period (an open end is valid)."""
        return (self.start is None or self.start <= day) and (self.end is None or day <= self.end)


@dataclass(frozen=True, slots=True)
class Provider:
    """A person on a claim: coach, supervising or rendering practitioner."""

    reference: str
    family: str
    given: str = ""
    npi: str | None = None
    taxonomy: str | None = None
    credentials: tuple[Credential, ...] = ()


@dataclass(frozen=True, slots=True)
class Person:
    """The patient (who is the subscriber: mECR bills the patient's own coverage)."""

    id: str
    family: str
    given: str
    birth_date: date | None = None
    gender: str | None = None  # FHIR administrative gender
    address_line: str | None = None
    city: str | None = None
    state: str | None = None
    postal_code: str | None = None


@dataclass(frozen=True, slots=True)
class Insurance:
    """The patient's Coverage for a session: which payer, and the member id the payer knows."""

    coverage_id: str
    payer_ids: tuple[str, ...]  # payer identifier values and the payor Organization/id reference
    payer_name: str
    member_id: str
    # the payor Organization's identifiers as (system, value): the payer ID on claims (2010BB NM109) is taken
    # only from a system the rule table names (payers.<key>.payer_id_systems), never guessed
    identifiers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class Session:
    """One coaching encounter as billing sees it (a group participant's own encounter for group sessions)."""

    encounter_id: str
    patient: Person
    day: date
    minutes: int | None
    types: tuple[str, ...]  # Encounter.type codings, "system|code"
    modality: Modality = "in-person"
    at_home: bool = True  # where the patient was for telehealth: POS 10 (home) or 02
    group_id: str | None = None
    group_size: int = 1
    coach: Provider | None = None
    supervisor: Provider | None = None
    diagnoses: tuple[str, ...] = ()  # ICD-10-CM with its dot, in priority order
    insurance: Insurance | None = None  # None: self-pay
    status: str = "finished"


@dataclass(frozen=True, slots=True)
class Line:
    """A billable service line: one code for one session (or one month of minutes) of one patient."""

    key: str  # stable identity: the same session and code always give the same key
    encounter_id: str
    patient: Person
    day: date
    service: str
    code: str
    description: str
    modifiers: tuple[str, ...]
    units: int
    pos: str
    diagnoses: tuple[str, ...]  # ICD-10-CM, dotted; the first four are the line's pointers
    charge: Decimal
    payer: str
    insurance: Insurance | None
    rendering: Provider | None
    supervising: Provider | None
    coach: Provider | None
    minutes: int | None
    payer_id: str | None = None  # 2010BB NM109: from the rule table or a named identifier system of the payer


@dataclass(frozen=True, slots=True)
class Finding:
    """Why a session (or a month of minutes) bills nothing: a stable ``code`` and a sentence for people."""

    encounter_id: str
    patient_id: str
    day: date
    service: str | None
    code: str
    message: str


@dataclass(frozen=True, slots=True)
class BilledItem:
    """A line exported before (a ChargeItem), for frequency limits, never-bill-twice and resubmission."""

    key: str
    patient_id: str
    code: str
    day: date
    status: str = "billed"  # ChargeItem.status: only ``billed`` counts as billed
    claim: str | None = None  # the id of the Claim that carried it (ChargeItem.supportingInformation)
    units: int = 1


@dataclass
class Claim:
    """Lines of one patient, coverage, rendering provider and month, ready for export (≤ 50 lines, ≤ 12 dx)."""

    id: str  # patient control number (CLM01), ≤ 20 characters
    patient: Person
    payer: str
    insurance: Insurance
    rendering: Provider | None
    supervising: Provider | None
    lines: list[Line] = field(default_factory=list)
    diagnoses: list[str] = field(default_factory=list)  # claim-level, dotted, ≤ 12
    # CLM05-3 claim frequency: "1" original, "7" replacement of prior claim ``replaces`` (X12 005010X222A1)
    frequency: str = "1"
    replaces: str | None = None
    payer_claim_number: str | None = (
        None  # the replaced claim's payer claim control number (REF*F8), if known
    )

    @property
    def payer_id(self) -> str | None:
        """The payer ID of the claim (2010BB NM109): that of its lines."""
        return self.lines[0].payer_id if self.lines else None

    @property
    def total(self) -> Decimal:
        """The claim's total charge: the sum of its line charges (CLM02)."""
        return sum((line.charge for line in self.lines), Decimal("0"))

    @property
    def pos(self) -> str:
        """The claim's place of service (CLM05-1): that of its first line."""
        return self.lines[0].pos

    def pointers(self, line: Line) -> list[int]:
        """1-based positions in :attr:`diagnoses` of the line's first four diagnoses (SV107)."""
        return [self.diagnoses.index(d) + 1 for d in line.diagnoses[:4]]
