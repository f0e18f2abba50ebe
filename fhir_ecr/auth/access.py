"""What the caller may do: SMART scopes, the patient compartment and identity rules, checked for every read and
write.

:class:`Access` is built once per request from the :class:`~fhir_ecr.auth.principal.Principal` the
authentication middleware found (or none). It implements the repository's ``Guard`` protocol
(:class:`fhir_ecr.store.repository.Guard`), so every path to the data — REST, Bundle entries, ``$operations``,
the coaching service, the pages — is checked in one place:

- :meth:`Access.require` — may the caller do ``letter`` (SMART v2 ``c r u d s``) on ``rtype`` at all? This is
  decided from the scopes alone, before anything is read, so a 403 says nothing about any resource.
- :meth:`Access.confinement` — a patient is confined to their own record: the repository then shows them only
  what lies in their compartment, the resources their record references (a shared ``Device``, their coach's
  ``Practitioner``) and definitional resources (:data:`PUBLIC_TYPES`); everything else answers exactly as a
  resource that does not exist would (404), on every path (read, vread, history, PATCH, If-Match, searches and
  their chains, ``_has``, includes and totals). See docs/security.md.
- :meth:`Access.check_write` — a write by a patient must lie wholly in their own compartment (every compartment
  reference names them) and may not touch the identifiers mECR links records by (:func:`check_identity_edit`).

Scopes: a practitioner is limited by the ``user/`` scopes the EHR granted, a patient by ``patient/`` scopes,
a backend client by ``system/`` scopes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from typing import Any

from fastapi import Request

from mappings.community.systems import DIRECTORY_TAG

from ..canonical import IDENTIFIER_SOURCE_URL, RECORD_SOURCE_SYSTEM
from ..outcomes import FhirError, forbidden, not_supported, unauthorized
from ..store.repository import Confinement, Stored, compartment_patients
from ..store.searchparams import patient_compartment, search_param
from .principal import Principal

__all__ = [
    "Access",
    "PUBLIC_TYPES",
    "PUBLIC_TAGS",
    "IDENTITY_TYPES",
    "IDENTIFIER_SOURCE_URL",
    "LINK_SYSTEM_PREFIX",
    "RECORD_SOURCE_SYSTEM",
    "ehr_owned",
    "current_access",
    "check_identity_edit",
    "in_patient_compartment",
    "trusted_identifier",
]

#: Types only mECR itself writes: callers may read them (a patient their own), never write them.
SERVER_WRITTEN_TYPES = frozenset({"AuditEvent"})

#: Definitional resources: about no one, readable whole by whoever holds a scope for them (docs/security.md).
PUBLIC_TYPES = frozenset({"StructureDefinition", "ValueSet", "CodeSystem", "Questionnaire"})

#: Tags that make a resource readable by every patient: the community directory's entries (docs/community.md).
PUBLIC_TAGS = frozenset({DIRECTORY_TAG})

#: Types whose identifiers mECR links records to the EHR by (auth/linking.py): only staff may edit them.
IDENTITY_TYPES = frozenset({"Patient", "Practitioner"})

#: The link identifiers mECR sets on records it linked to an EHR (``urn:mecr:ehr:{ehr}:{Type}``).
LINK_SYSTEM_PREFIX = "urn:mecr:ehr:"

# IDENTIFIER_SOURCE_URL and RECORD_SOURCE_SYSTEM (imported above, re-exported) live in fhir_ecr/canonical.py.

_LETTER_WORDS = {"c": "create", "r": "read", "u": "update", "d": "delete", "s": "search"}
_AUDIT_CAP = 500  # resources named per patient in one request's audit trail


def in_patient_compartment(resource: dict[str, Any], patient_id: str, base_url: str | None = None) -> bool:
    """True when ``resource`` is ``Patient/{patient_id}`` or lies in that patient's compartment (R4
    CompartmentDefinition: a compartment parameter of its type references the patient)."""
    if resource.get("resourceType") == "Patient":
        return resource.get("id") == patient_id
    return patient_id in compartment_patients(resource, base_url)


@cache
def compartment_types() -> frozenset[str]:
    """Resource types that have a Patient compartment definition (data about a patient)."""
    return frozenset(k for k, v in patient_compartment().items() if v) | {"Patient"}


def trusted_identifier(ident: Any) -> bool:
    """An identifier launch linking may match on: a link identifier, or one marked as set by the EHR or mECR."""
    if not isinstance(ident, dict):
        return False
    if str(ident.get("system") or "").startswith(LINK_SYSTEM_PREFIX):
        return True
    return any(
        isinstance(e, dict)
        and e.get("url") == IDENTIFIER_SOURCE_URL
        and e.get("valueCode") in ("ehr", "mecr")
        for e in ident.get("extension") or ()
    )


def ehr_owned(content: dict[str, Any] | None) -> str | None:
    """The EMR a pulled resource came from (its ``meta.source``, or ``"an EMR"``), None for mECR's own records."""
    meta = (content or {}).get("meta")
    if not isinstance(meta, dict):
        return None
    for tag in meta.get("tag") or ():
        if isinstance(tag, dict) and tag.get("system") == RECORD_SOURCE_SYSTEM and tag.get("code") == "ehr":
            return str(tag.get("display") or "an EMR")
    return None


def _canonical(items: Any) -> list[str]:
    import orjson

    return sorted(orjson.dumps(i, option=orjson.OPT_SORT_KEYS).decode() for i in items or () if i is not None)


def check_identity_edit(old: dict[str, Any] | None, new: dict[str, Any], *, staff: bool) -> None:
    """403 unless this write keeps the identifiers mECR links records by as they were.

    - Nobody but mECR itself (unguarded internal writers) adds or alters a *trusted* identifier (a link
      identifier ``urn:mecr:ehr:…`` or one carrying the :data:`IDENTIFIER_SOURCE_URL` extension); staff may remove
      one (to unlink a record).
    - A patient (any non-staff writer) changes no identifier of a Patient or Practitioner at all (MRN, NPI, …),
      nor ``Patient.link``: those are how records are matched to the EHR's, so editing them would capture
      another person's identity at the next launch.
    """
    before = (old or {}).get("identifier") or []
    after = new.get("identifier") or []
    if not isinstance(after, list):
        return  # structural validation refuses it
    trusted = [i for i in after if trusted_identifier(i)]  # most writes carry none: nothing to compare
    if trusted and not set(_canonical(trusted)) <= set(
        _canonical(i for i in before if trusted_identifier(i))
    ):
        raise forbidden(
            "identifiers that link a record to the EHR (urn:mecr:ehr:… or marked with "
            f"{IDENTIFIER_SOURCE_URL}) are set by mECR only"
        )
    if staff or new.get("resourceType") not in IDENTITY_TYPES:
        return
    if _canonical(before) != _canonical(after):
        raise forbidden(
            f"only the care team may change the identifiers of a {new.get('resourceType')} "
            "(MRN, NPI and the EHR link)"
        )
    if _canonical((old or {}).get("link")) != _canonical(new.get("link")):
        raise forbidden("only the care team may change Patient.link")


@dataclass
class Access:
    """The caller's permissions for one request, and what the request touched (for the audit trail)."""

    principal: Principal | None
    fhir_base: str | None = None
    # What this request touched, for the audit trail: patient id ("" for none) -> ordered {"Type/id": letter}.
    touched_by_patient: dict[str, dict[str, str]] = field(default_factory=dict)
    # Instance requests a confined caller made for something they may not see (or that does not exist; the two
    # are recorded alike): (letter, "Type/id").
    unseen: list[tuple[str, str]] = field(default_factory=list)
    denied: bool = False
    _can: dict[tuple[str, str], bool] = field(default_factory=dict, repr=False, compare=False)

    # -- who ---------------------------------------------------------------------------------------------------

    @property
    def authenticated(self) -> bool:
        return self.principal is not None

    def require_login(self) -> Principal:
        """The principal, or 401 (no or invalid credentials)."""
        if self.principal is None:
            raise unauthorized("authentication required: a SMART session or a bearer token")
        return self.principal

    @property
    def compartment(self) -> str | None:
        """The patient id a patient caller is confined to (None for everyone else)."""
        p = self.principal
        return p.patient_id if p is not None and p.kind == "patient" else None

    @property
    def is_developer(self) -> bool:
        return self.principal is not None and self.principal.kind == "developer"

    @property
    def touched(self) -> list[tuple[str, str, str | None]]:
        """(letter, "Type/id", patient id or None) of everything touched, in order (for tests and the audit)."""
        return [
            (letter, ref, pid or None)
            for pid, refs in self.touched_by_patient.items()
            for ref, letter in refs.items()
        ]

    # -- scopes ------------------------------------------------------------------------------------------------

    def can(self, rtype: str, letter: str) -> bool:
        """Do the caller's scopes permit ``letter`` (c r u d s) on ``rtype``? Answered once per request for each
        (type, letter): a transaction asks it twice for each of its entries."""
        found = self._can.get((rtype, letter))
        if found is None:
            p = self.principal
            found = p is not None and (p.kind == "developer" or p.scopes.allows(letter, rtype, p.context))
            self._can[(rtype, letter)] = found
        return found

    def require(self, rtype: str, letter: str) -> Principal:
        """401 when anonymous; 403 when the scopes do not permit ``letter`` on ``rtype``. Decided from the scopes
        alone: it says nothing about any resource."""
        p = self.require_login()
        if not self.can(rtype, letter):
            self.denied = True
            raise forbidden(
                f"the granted scopes do not permit {_LETTER_WORDS.get(letter, letter)} on {rtype}"
            )
        if p.kind == "patient" and letter in "cud" and rtype not in compartment_types():
            self.denied = True
            raise forbidden(f"a patient cannot {_LETTER_WORDS[letter]} {rtype} resources")
        return p

    def require_patient(self, patient_id: str, letter: str = "r", rtype: str = "Patient") -> Principal:
        """May the caller do ``letter`` on ``rtype`` data of ``Patient/{patient_id}``? 401/403 otherwise (for
        pages and routes that name the patient in their path)."""
        p = self.require(rtype, letter)
        if p.kind == "patient" and patient_id != p.patient_id:
            self.denied = True
            self.unseen.append((letter, f"Patient/{patient_id}"))
            raise forbidden("a patient may only access their own record")
        return p

    # -- the repository's Guard protocol (fhir_ecr.store.repository.Guard) --------------------------------------

    def allows(self, rtype: str, letter: str) -> bool:
        return self.can(rtype, letter)

    def confinement(self) -> Confinement | None:
        p = self.principal
        if p is not None and p.organization is not None:
            return Confinement("", PUBLIC_TYPES, organization=p.organization)
        if p is None or p.kind != "patient":
            return None
        return Confinement(p.patient_id or "", PUBLIC_TYPES, PUBLIC_TAGS)

    def before_history(self, rtype: str | None, rid: str | None) -> None:
        p = self.require_login()
        if rid is not None and rtype is not None:
            self.require(rtype, "r")
            return
        if p.kind == "patient" or p.organization is not None:
            self.denied = True
            raise forbidden(
                f"a {'patient' if p.kind == 'patient' else 'community organisation'} may read the "
                "history of the resources they may see only (instance history)"
            )
        if rtype:
            self.require(rtype, "s")
        elif not self.can("*", "s") and not self.is_developer:
            self.denied = True
            raise forbidden("system-level history needs a wildcard scope such as user/*.rs")

    def after_read(self, found: list[Stored], patient_id: str | None = None) -> None:
        """Note resources the caller was shown (``patient_id`` when the caller knows whose they are)."""
        if self.is_developer:
            return
        if self.principal is not None and self.principal.organization is not None:
            for s in found:
                minimum_necessary(s)
        for s in found:
            self._touch("r", s.resource_type, s.id, s.content, patient_id)

    def hidden(self, letter: str, rtype: str, rid: str) -> None:
        """A confined caller asked for ``rtype/rid``, which they may not see or which does not exist; both are
        recorded alike, so not even the audit trail tells them apart."""
        self.denied = True
        if len(self.unseen) < _AUDIT_CAP:
            self.unseen.append((letter, f"{rtype}/{rid}"))

    def check_write(self, letter: str, old: dict[str, Any] | None, new: dict[str, Any] | None) -> None:
        target = new if new is not None else old
        assert target is not None
        rtype = str(target.get("resourceType"))
        if rtype in SERVER_WRITTEN_TYPES:
            raise not_supported(f"{rtype} resources are written by mECR itself and are read-only", 405)
        p = self.require(rtype, letter)
        # Pulled from an EMR: the EMR owns it (docs/sync.md); nobody edits, deletes or forges one through mECR.
        owner = ehr_owned(old) or ehr_owned(new)
        if owner is not None:
            self.denied = True
            raise forbidden(f"this {rtype} comes from {owner}, which owns it: it is read-only in mECR")
        try:
            if p.kind == "developer":
                return
            if p.kind == "patient":
                for content in (old, new):
                    if content is not None:
                        self._require_own(p, content)
            if new is not None:
                check_identity_edit(old, new, staff=p.kind != "patient")
        except FhirError:
            self.denied = True
            raise
        finally:
            if p.kind != "developer":
                self._touch(letter, rtype, str(target.get("id", "")), target)

    # -- internals --------------------------------------------------------------------------------------------

    def _require_own(self, p: Principal, content: dict[str, Any]) -> None:
        """A patient's write lies wholly in their own compartment: every compartment reference names them."""
        rtype = str(content.get("resourceType"))
        own = p.patient_id or ""
        if rtype == "Patient":
            if content.get("id") != own or compartment_patients(content, self.fhir_base) - {own}:
                raise forbidden("a patient may change only their own Patient record")
            return
        patients = compartment_patients(content, self.fhir_base)
        if patients != {own}:
            where = ", ".join(_compartment_params(rtype)) or "its references"
            raise forbidden(
                f"{rtype} must lie in the patient's own record only ({where} may name no one else)"
            )

    def _touch(
        self, letter: str, rtype: str, rid: str, content: dict[str, Any] | None, patient_id: str | None = None
    ) -> None:
        p = self.principal
        if p is not None and p.kind == "patient":
            # A patient touches only their own record; a resource that is also in someone else's (the shared
            # group) is recorded in theirs alone — an event with this agent in another record would name them there.
            patients = {p.patient_id or ""}
        elif patient_id:
            patients = {patient_id}
        else:
            patients = compartment_patients(content, self.fhir_base) if content else set()
        for pid in patients or {""}:
            refs = self.touched_by_patient.setdefault(pid, {})
            if len(refs) < _AUDIT_CAP:
                ref = f"{rtype}/{rid}"
                refs[ref] = letter if refs.get(ref, "r") == "r" else refs[ref]


#: What an organisation sees of the person it was referred (minimum necessary, docs/referrals.md): who they are
#: and how to reach them — never the chart.
MINIMUM_PATIENT_FIELDS = ("resourceType", "id", "meta", "name", "telecom", "address", "communication")


def minimum_necessary(found: Stored) -> None:
    """Cut a Patient shown to a community organisation down to :data:`MINIMUM_PATIENT_FIELDS`, marked
    ``SUBSETTED`` (https://hl7.org/fhir/R4/v3/ObservationValue/cs.html#v3-ObservationValue-SUBSETTED)."""
    content = found.content
    if found.resource_type != "Patient" or content is None:
        return
    cut = {k: v for k, v in content.items() if k in MINIMUM_PATIENT_FIELDS}
    meta = dict(cut.get("meta") or {})
    meta["tag"] = [
        *meta.get("tag", []),
        {"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue", "code": "SUBSETTED"},
    ]
    cut["meta"] = meta
    found._content = cut  # noqa: SLF001 - the Stored is this read's own
    found.raw = None


@cache
def _compartment_params(rtype: str) -> tuple[str, ...]:
    return tuple(
        code for code in patient_compartment().get(rtype, ()) if search_param(rtype, code) is not None
    )


def current_access(request: Request) -> Access:
    """FastAPI dependency: the caller's :class:`Access` (principal None when anonymous; pages decide what to
    show, the FHIR API answers 401)."""
    access = getattr(request.state, "access", None)
    if access is None:
        principal = getattr(request.state, "principal", None)
        services = getattr(request.app.state, "services", None)
        access = Access(principal, services.fhir_base if services is not None else None)
        request.state.access = access
    return access
