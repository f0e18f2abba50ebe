"""What the caller may do: SMART scopes and the patient compartment, checked for every read and write.

:class:`Access` is built once per request from the :class:`~fhir_ecr.auth.principal.Principal` the
authentication middleware found (or none). Routes, operations and pages ask it before they touch data:

- :meth:`Access.require` — may the caller do ``letter`` (SMART v2 ``c r u d s``) on ``rtype`` at all?
- :meth:`Access.require_patient` — may the caller see/change data of this patient? (A patient: only their own.)
- :meth:`Access.check_resource` — is this resource inside what the caller may see? (Patient compartment.)
- :attr:`Access.compartment` — the patient id every search of a patient caller is narrowed to.

Scopes: a practitioner is limited by the ``user/`` scopes the EHR granted, a patient by ``patient/`` scopes,
a backend client by ``system/`` scopes. Resource types outside the Patient compartment (Practitioner,
Organization, conformance resources, …) are readable by a patient only when their scopes name them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from typing import Any

from fastapi import Request

from ..outcomes import forbidden, not_supported, unauthorized
from ..store.indexer import parse_reference
from ..store.searchparams import patient_compartment, search_param
from .principal import Principal

__all__ = ["Access", "current_access", "in_patient_compartment"]

#: Types only mECR itself writes: callers may read them (a patient their own), never write them.
SERVER_WRITTEN_TYPES = frozenset({"AuditEvent"})

_LETTER_WORDS = {"c": "create", "r": "read", "u": "update", "d": "delete", "s": "search"}


def in_patient_compartment(resource: dict[str, Any], patient_id: str, base_url: str | None = None) -> bool:
    """True when ``resource`` is ``Patient/{patient_id}`` or lies in that patient's compartment (R4
    CompartmentDefinition: a compartment parameter of its type references the patient)."""
    rtype = resource.get("resourceType")
    if rtype == "Patient":
        if resource.get("id") == patient_id:
            return True
        # Patient.link to the patient (linked records) is in the compartment per the definition.
    for code in patient_compartment().get(str(rtype), ()):
        param = search_param(str(rtype), code)
        if param is None:
            continue
        for value in param.extract(resource):
            ref = value.get("reference") if isinstance(value, dict) else value if isinstance(value, str) else None
            if not ref:
                continue
            t, i, _ = parse_reference(ref, base_url)
            if t == "Patient" and i == patient_id:
                return True
    return False


def patient_of(resource: dict[str, Any] | None, base_url: str | None = None) -> str | None:
    """The id of the patient whose compartment ``resource`` lies in (the first found), for the audit trail."""
    if not resource:
        return None
    rtype = str(resource.get("resourceType"))
    if rtype == "Patient":
        return str(resource.get("id")) if resource.get("id") else None
    for code in patient_compartment().get(rtype, ()):
        param = search_param(rtype, code)
        if param is None:
            continue
        for value in param.extract(resource):
            ref = value.get("reference") if isinstance(value, dict) else value if isinstance(value, str) else None
            if ref:
                t, i, _ = parse_reference(ref, base_url)
                if t == "Patient" and i:
                    return i
    return None


@cache
def compartment_types() -> frozenset[str]:
    """Resource types that have a Patient compartment definition (data about a patient)."""
    return frozenset(k for k, v in patient_compartment().items() if v) | {"Patient"}


@dataclass
class Access:
    """The caller's permissions for one request."""

    principal: Principal | None
    fhir_base: str | None = None
    # What this request touched, for the audit trail: (action letter, "Type/id", patient id or None).
    touched: list[tuple[str, str, str | None]] = field(default_factory=list)
    denied: bool = False

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

    # -- scopes ------------------------------------------------------------------------------------------------

    def can(self, rtype: str, letter: str) -> bool:
        """Do the caller's scopes permit ``letter`` (c r u d s) on ``rtype``?"""
        p = self.principal
        if p is None:
            return False
        if p.kind == "developer":
            return True
        return p.scopes.allows(letter, rtype, p.context)  # type: ignore[arg-type]

    def require(self, rtype: str, letter: str) -> Principal:
        """401 when anonymous; 403 when the scopes do not permit ``letter`` on ``rtype``."""
        p = self.require_login()
        if not self.can(rtype, letter):
            self.denied = True
            raise forbidden(f"the granted scopes do not permit {_LETTER_WORDS.get(letter, letter)} on {rtype}")
        if p.kind == "patient" and letter in "cud" and rtype not in compartment_types():
            self.denied = True
            raise forbidden(f"a patient cannot {_LETTER_WORDS[letter]} {rtype} resources")
        return p

    def require_patient(self, patient_id: str, letter: str = "r", rtype: str = "Patient") -> Principal:
        """May the caller do ``letter`` on ``rtype`` data of ``Patient/{patient_id}``? 401/403 otherwise."""
        p = self.require(rtype, letter)
        if p.kind == "patient" and patient_id != p.patient_id:
            self.denied = True
            self.touched.append((letter, f"Patient/{patient_id}", patient_id))
            raise forbidden("a patient may only access their own record")
        return p

    def check_resource(self, resource: dict[str, Any], letter: str = "r") -> None:
        """403 unless the caller may ``letter`` this resource (scopes and, for a patient, the compartment)."""
        rtype = str(resource.get("resourceType"))
        p = self.require(rtype, letter)
        if p.kind == "patient" and rtype in compartment_types():
            assert p.patient_id is not None
            if not in_patient_compartment(resource, p.patient_id, self.fhir_base):
                self.denied = True
                raise forbidden(f"{rtype}/{resource.get('id', '')} is outside the patient's own record")

    def visible(self, resource: dict[str, Any]) -> bool:
        """True when :meth:`check_resource` (read) would pass."""
        p = self.principal
        if p is None:
            return False
        rtype = str(resource.get("resourceType"))
        if not self.can(rtype, "r"):
            return False
        if p.kind == "patient" and rtype in compartment_types():
            return in_patient_compartment(resource, p.patient_id or "", self.fhir_base)
        return True

    # -- the repository's Guard protocol (fhir_ecr.store.repository.Guard) --------------------------------------

    def _touch(self, letter: str, content: dict[str, Any] | None, rtype: str, rid: str) -> None:
        if len(self.touched) < 500:
            self.touched.append((letter, f"{rtype}/{rid}", patient_of(content, self.fhir_base)))

    def check_read(self, stored: Any) -> None:
        if self.principal is not None and self.principal.kind == "developer":
            return
        content = stored.content or {}
        try:
            self.check_resource(content, "r")
        finally:  # refused reads are audited too (with what was asked for)
            self._touch("r", content, stored.resource_type, stored.id)

    def may_read(self, stored: Any) -> bool:
        return self.visible(stored.content or {})

    def may_read_deleted(self, stored: Any) -> bool:
        """A deletion entry in a history: shown unless the caller is a patient (who cannot tell whose it was)."""
        p = self.principal
        return p is not None and p.kind != "patient" and self.can(stored.resource_type, "r")

    def after_read(self, found: list[Any]) -> None:
        if self.principal is not None and self.principal.kind == "developer":
            return
        for s in found:
            self._touch("r", s.content, s.resource_type, s.id)

    def before_search(self, rtype: str) -> str | None:
        p = self.require(rtype, "s")
        if p.kind == "patient" and rtype in compartment_types():
            return p.patient_id
        return None

    def before_history(self, rtype: str | None, rid: str | None) -> None:
        p = self.require_login()
        if rid is not None and rtype is not None:
            self.require(rtype, "r")
            return
        if p.kind == "patient":
            self.denied = True
            raise forbidden("a patient may read the history of their own resources only (instance history)")
        if rtype:
            self.require(rtype, "s")
        else:
            self._require_all("s")

    def _require_all(self, letter: str) -> None:
        if not self.can("*", letter):
            p = self.principal
            if p is None or p.kind != "developer":
                self.denied = True
                raise forbidden("system-level history needs a wildcard scope such as user/*.rs")

    def check_write(self, letter: str, old: dict[str, Any] | None, new: dict[str, Any] | None) -> None:
        target = new if new is not None else old
        assert target is not None
        rtype = str(target.get("resourceType"))
        if rtype in SERVER_WRITTEN_TYPES:
            raise not_supported(f"{rtype} resources are written by mECR itself and are read-only", 405)
        if self.principal is not None and self.principal.kind == "developer":
            return
        try:
            if old is not None:
                self.check_resource(old, letter)
            if new is not None:
                self.check_resource(new, letter)
        finally:
            self._touch(letter, target, rtype, str(target.get("id", "")))


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
