"""What a caller confined to one patient's record may see, as SQL and as a check of one resource.

A patient (the :class:`Confinement` the guard returns) sees, of each resource type
(https://hl7.org/fhir/R4/compartmentdefinition-patient.html and docs/security.md):

- ``Patient``: their own record only;
- a type with a Patient compartment definition (Observation, Goal, Communication, Group, …): the resources one of
  whose compartment parameters references them (``Observation.subject`` or ``.performer``, …);
- a *public* type (definitional resources: StructureDefinition, ValueSet, …): all of them;
- a resource of a type without a Patient compartment that carries one of the *public tags* (the community
  directory's Organizations, Locations and HealthcareServices, tagged ``record-source#directory``): about no
  one, so readable by every patient (docs/community.md);
- any other type the API serves (Device, Practitioner, Organization, Location, …): the resources their own
  record references (their Observations' ``device``, their CarePlan's author), or that reference them
  (``Device.patient``).

The same rule drives every path: the main query of a search, every hop of a chain and of ``_has``, includes
(and what ``:iterate`` continues from), totals, and single reads. What a caller may not see answers as if it
did not exist.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

import sqlalchemy as sa

from .indexer import parse_reference
from .records import REF, R
from .searchparams import SearchParam, patient_compartment, search_param
from .tables import INDEX_TABLES

TOKEN = INDEX_TABLES["idx_token"]

__all__ = [
    "Confinement",
    "compartment_params",
    "compartment_index_names",
    "compartment_patients",
    "has_compartment",
    "visible_condition",
]

#: Resources that lie in a patient's compartment but do not make what they reference visible to the patient:
#: the audit trail names what someone looked at, it does not link the patient to it.
_NOT_LINKING = frozenset({"AuditEvent"})


@dataclass(frozen=True)
class Confinement:
    """A caller confined to ``Patient/{patient_id}``'s record, who may also read ``public_types`` whole and the
    resources (of types without a Patient compartment) tagged with one of ``public_tags`` (system, code)."""

    patient_id: str
    public_types: frozenset[str] = frozenset()
    public_tags: frozenset[tuple[str, str]] = frozenset()


@cache
def compartment_params(rtype: str) -> tuple[SearchParam, ...]:
    """The parameters that put a resource of ``rtype`` in a Patient's compartment (R4 definition)."""
    found = (search_param(rtype, code) for code in patient_compartment().get(rtype, ()))
    return tuple(p for p in found if p is not None and p.type == "reference")


@cache
def compartment_index_names(rtype: str) -> frozenset[str]:
    """The index parameter names whose Patient references put a resource of ``rtype`` in a compartment."""
    return frozenset(n for p in compartment_params(rtype) for n in p.index_names)


def has_compartment(rtype: str) -> bool:
    """True for types with a Patient compartment definition (Patient itself included)."""
    return rtype == "Patient" or bool(compartment_params(rtype))


def compartment_patients(content: dict[str, Any], base_url: str | None = None) -> set[str]:
    """The ids of the patients in whose compartment ``content`` lies (a Patient: itself and linked ones)."""
    rtype = str(content.get("resourceType"))
    out = {str(content["id"])} if rtype == "Patient" and content.get("id") else set()
    for param in compartment_params(rtype):
        for value in param.extract(content):
            ref = value.get("reference") if isinstance(value, dict) else value if isinstance(value, str) else None
            if ref:
                ttype, tid, _ = parse_reference(ref, base_url)
                if ttype == "Patient" and tid:
                    out.add(tid)
    return out


@cache
def _linking_pairs() -> tuple[tuple[str, tuple[str, ...]], ...]:
    return tuple((t, tuple(sorted(compartment_index_names(t)))) for t in sorted(patient_compartment())
                 if t not in _NOT_LINKING and compartment_index_names(t))


def _members(patient_id: str, exclude: tuple[int, ...] = ()) -> Any:
    """Keys of the resources that make up the patient's record: the Patient and its compartment (audit aside;
    and the resources ``exclude`` names: a unit of work's own writes, when it asks what was visible before it)."""
    ref = REF.alias()
    pairs = sa.or_(*[sa.and_(ref.c.res_type == t, ref.c.param.in_(names)) for t, names in _linking_pairs()])
    in_compartment = sa.select(ref.c.res_pk).where(ref.c.target_type == "Patient", ref.c.target_id == patient_id,
                                                   pairs, *([ref.c.res_pk.not_in(exclude)] if exclude else []))
    me = R.alias()
    patient = sa.select(me.c.pk).where(me.c.res_type == "Patient", me.c.res_id == patient_id)
    return sa.union_all(in_compartment, patient)


def visible_condition(rtype: str, conf: Confinement, r: Any = R, exclude: tuple[int, ...] = ()) -> Any:
    """A condition on the resource table (alias ``r``, rows of ``rtype``) that holds for the rows ``conf`` may see
    (a shared type: as the record stood without the resources whose keys ``exclude`` names)."""
    pid = conf.patient_id
    if rtype in conf.public_types:
        return sa.true()
    if rtype == "Patient":
        return r.c.res_id == pid
    names = compartment_index_names(rtype)
    if names:
        ref = REF.alias()
        return r.c.pk.in_(sa.select(ref.c.res_pk).where(
            ref.c.target_type == "Patient", ref.c.target_id == pid, ref.c.res_type == rtype,
            ref.c.param.in_(sorted(names))))
    # A shared type: referenced from the patient's record, or referencing the patient (Device.patient).
    ref, own = REF.alias(), REF.alias()
    referenced = sa.select(ref.c.target_id).where(ref.c.target_type == rtype,
                                                  ref.c.res_pk.in_(_members(pid, exclude)))
    theirs = sa.select(own.c.res_pk).where(own.c.res_type == rtype, own.c.target_type == "Patient",
                                           own.c.target_id == pid)
    shown = [sa.and_(r.c.res_type == rtype, r.c.res_id.in_(referenced)), r.c.pk.in_(theirs)]
    if conf.public_tags:
        tag = TOKEN.alias()
        shown.append(r.c.pk.in_(sa.select(tag.c.res_pk).where(
            tag.c.res_type == rtype, tag.c.param == "_tag",
            sa.or_(*[sa.and_(tag.c.system == system, tag.c.code == code) for system, code in sorted(conf.public_tags)]))))
    return sa.or_(*shown)
