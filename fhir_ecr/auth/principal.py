"""Who is calling: a :class:`Principal`, established once per request from a session cookie or a bearer token."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from smart_launch.scopes import ScopeSet

__all__ = ["Principal", "PrincipalKind", "DEVELOPER"]

PrincipalKind = Literal["practitioner", "patient", "system", "developer"]


@dataclass(frozen=True)
class Principal:
    """An authenticated caller.

    - ``practitioner``: a coach (or other care-team member) launched from a registered EHR; ``fhir_user`` is
      their local ``Practitioner/{id}``; ``patient_id`` is the launch context's patient (may be None).
    - ``patient``: a patient from a standalone launch; sees only ``Patient/{patient_id}``'s compartment.
    - ``system``: a registered backend-services client with ``system/`` scopes (bearer token).
    - ``developer``: ``MECR_AUTH=off`` on a local bind only; may do everything.
    """

    kind: PrincipalKind
    subject: str  # "Practitioner/abc", "Patient/123", "client:<client_id>", "developer"
    scopes: ScopeSet = field(default_factory=ScopeSet)
    patient_id: str | None = None
    fhir_user: str | None = None  # "Practitioner/abc" or "Patient/123" (local ids)
    client_id: str | None = None
    session_id: str | None = None
    display: str = ""
    ehr_id: str | None = None  # the registered EHR the session came from
    #: A community organisation's system client (or referral link): ``Organization`` id it acts for; the guard
    #: confines it to the referrals that organisation was sent (docs/referrals.md).
    organization: str | None = None

    @property
    def context(self) -> Literal["patient", "user", "system"]:
        """The SMART scope context that applies to this caller."""
        if self.kind == "patient":
            return "patient"
        if self.kind == "system":
            return "system"
        return "user"


DEVELOPER = Principal(
    kind="developer",
    subject="developer",
    scopes=ScopeSet.parse("user/*.cruds system/*.cruds"),
    display="Developer (MECR_AUTH=off)",
)
