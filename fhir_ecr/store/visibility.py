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

A community **organisation** (a system client bound to an ``Organization``, or the holder of a referral link:
``organization`` set) sees only the referrals it was sent, and only while the patient's consent to share with
it stands (the Gravity SDOH CC IG's consent rule, docs/referrals.md): the referral Tasks it owns that have left
the practice (not ``draft``) for patients with an active ``Consent`` naming it (``provision.actor``), their
``ServiceRequest`` and ``Patient``, the ``Procedure`` records it performed for those patients, itself, and the
public types — never anything else of the chart.

The same rule drives every path: the main query of a search, every hop of a chain and of ``_has``, includes
(and what ``:iterate`` continues from), totals, and single reads. What a caller may not see answers as if it
did not exist.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

import sqlalchemy as sa

from . import jsonexact
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
    "organisation_sees",
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
    #: A community organisation's id: the caller sees its referrals only (see the module docstring).
    organization: str | None = None


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
            ref = (
                value.get("reference")
                if isinstance(value, dict)
                else value
                if isinstance(value, str)
                else None
            )
            if ref:
                ttype, tid, _ = parse_reference(ref, base_url)
                if ttype == "Patient" and tid:
                    out.add(tid)
    return out


@cache
def _linking_pairs() -> tuple[tuple[str, tuple[str, ...]], ...]:
    return tuple(
        (t, tuple(sorted(compartment_index_names(t))))
        for t in sorted(patient_compartment())
        if t not in _NOT_LINKING and compartment_index_names(t)
    )


def _members(patient_id: str, exclude: tuple[int, ...] = ()) -> Any:
    """Keys of the resources that make up the patient's record: the Patient and its compartment (audit aside;
    and the resources ``exclude`` names: a unit of work's own writes, when it asks what was visible before it)."""
    ref = REF.alias()
    pairs = sa.or_(*[sa.and_(ref.c.res_type == t, ref.c.param.in_(names)) for t, names in _linking_pairs()])
    in_compartment = sa.select(ref.c.res_pk).where(
        ref.c.target_type == "Patient",
        ref.c.target_id == patient_id,
        pairs,
        *([ref.c.res_pk.not_in(exclude)] if exclude else []),
    )
    me = R.alias()
    patient = sa.select(me.c.pk).where(me.c.res_type == "Patient", me.c.res_id == patient_id)
    return sa.union_all(in_compartment, patient)


def visible_condition(rtype: str, conf: Confinement, r: Any = R, exclude: tuple[int, ...] = ()) -> Any:
    """A condition on the resource table (alias ``r``, rows of ``rtype``) that holds for the rows ``conf`` may see
    (a shared type: as the record stood without the resources whose keys ``exclude`` names)."""
    pid = conf.patient_id
    if rtype in conf.public_types:
        return sa.true()
    if conf.organization is not None:
        return _organisation_condition(rtype, conf.organization, r)
    if rtype == "Patient":
        return r.c.res_id == pid
    names = compartment_index_names(rtype)
    if names:
        ref = REF.alias()
        return r.c.pk.in_(
            sa.select(ref.c.res_pk).where(
                ref.c.target_type == "Patient",
                ref.c.target_id == pid,
                ref.c.res_type == rtype,
                ref.c.param.in_(sorted(names)),
            )
        )
    # A shared type: referenced from the patient's record, or referencing the patient (Device.patient).
    ref, own = REF.alias(), REF.alias()
    referenced = sa.select(ref.c.target_id).where(
        ref.c.target_type == rtype, ref.c.res_pk.in_(_members(pid, exclude))
    )
    theirs = sa.select(own.c.res_pk).where(
        own.c.res_type == rtype, own.c.target_type == "Patient", own.c.target_id == pid
    )
    shown = [sa.and_(r.c.res_type == rtype, r.c.res_id.in_(referenced)), r.c.pk.in_(theirs)]
    if conf.public_tags:
        tag = TOKEN.alias()
        shown.append(
            r.c.pk.in_(
                sa.select(tag.c.res_pk).where(
                    tag.c.res_type == rtype,
                    tag.c.param == "_tag",
                    sa.or_(
                        *[
                            sa.and_(tag.c.system == system, tag.c.code == code)
                            for system, code in sorted(conf.public_tags)
                        ]
                    ),
                )
            )
        )
    return sa.or_(*shown)


TOK = TOKEN


def organisation_tasks(org: str) -> Any:
    """Keys of the Tasks organisation ``org`` may see: it owns them, they have left the practice (not ``draft``)
    and their patient has an active Consent naming ``org`` as a recipient (``Consent.provision.actor``)."""
    own, draft, subj = REF.alias(), TOK.alias(), REF.alias()
    c_pat, c_actor, c_status = REF.alias(), REF.alias(), TOK.alias()
    consenting = sa.select(c_pat.c.target_id).where(
        c_pat.c.res_type == "Consent",
        c_pat.c.param == "patient",
        c_pat.c.target_type == "Patient",
        c_pat.c.res_pk.in_(
            sa.select(c_actor.c.res_pk).where(
                c_actor.c.res_type == "Consent",
                c_actor.c.param == "actor",
                c_actor.c.target_type == "Organization",
                c_actor.c.target_id == org,
            )
        ),
        c_pat.c.res_pk.in_(
            sa.select(c_status.c.res_pk).where(
                c_status.c.res_type == "Consent", c_status.c.param == "status", c_status.c.code == "active"
            )
        ),
    )
    return sa.select(own.c.res_pk).where(
        own.c.res_type == "Task",
        own.c.param == "owner",
        own.c.target_type == "Organization",
        own.c.target_id == org,
        own.c.res_pk.not_in(
            sa.select(draft.c.res_pk).where(
                draft.c.res_type == "Task", draft.c.param == "status", draft.c.code == "draft"
            )
        ),
        own.c.res_pk.in_(
            sa.select(subj.c.res_pk).where(
                subj.c.res_type == "Task",
                subj.c.param == "subject",
                subj.c.target_type == "Patient",
                subj.c.target_id.in_(consenting),
            )
        ),
    )


def _targets_of_tasks(org: str, param: str, target_type: str) -> Any:
    ref = REF.alias()
    return sa.select(ref.c.target_id).where(
        ref.c.res_type == "Task",
        ref.c.param == param,
        ref.c.target_type == target_type,
        ref.c.res_pk.in_(organisation_tasks(org)),
    )


def _organisation_condition(rtype: str, org: str, r: Any) -> Any:
    if rtype == "Task":
        return r.c.pk.in_(organisation_tasks(org))
    if rtype == "ServiceRequest":
        return sa.and_(
            r.c.res_type == rtype, r.c.res_id.in_(_targets_of_tasks(org, "focus", "ServiceRequest"))
        )
    if rtype == "Patient":
        return sa.and_(r.c.res_type == rtype, r.c.res_id.in_(_targets_of_tasks(org, "subject", "Patient")))
    if rtype == "Procedure":
        perf, subj = REF.alias(), REF.alias()
        return sa.and_(
            r.c.pk.in_(
                sa.select(perf.c.res_pk).where(
                    perf.c.res_type == rtype,
                    perf.c.param == "performer",
                    perf.c.target_type == "Organization",
                    perf.c.target_id == org,
                )
            ),
            r.c.pk.in_(
                sa.select(subj.c.res_pk).where(
                    subj.c.res_type == rtype,
                    subj.c.param == "subject",
                    subj.c.target_type == "Patient",
                    subj.c.target_id.in_(_targets_of_tasks(org, "subject", "Patient")),
                )
            ),
        )
    if rtype == "Organization":
        return sa.and_(r.c.res_type == rtype, r.c.res_id == org)
    return sa.false()


def _consenting(conn: Any, org: str, pid: str) -> bool:
    a = REF.alias()
    stmt = (
        sa.select(sa.literal(1))
        .select_from(REF)
        .where(
            REF.c.res_type == "Consent",
            REF.c.param == "patient",
            REF.c.target_type == "Patient",
            REF.c.target_id == pid,
            REF.c.res_pk.in_(
                sa.select(a.c.res_pk).where(
                    a.c.res_type == "Consent",
                    a.c.param == "actor",
                    a.c.target_type == "Organization",
                    a.c.target_id == org,
                )
            ),
            REF.c.res_pk.in_(
                sa.select(TOK.c.res_pk).where(
                    TOK.c.res_type == "Consent", TOK.c.param == "status", TOK.c.code == "active"
                )
            ),
        )
        .limit(1)
    )
    return conn.execute(stmt).first() is not None


def _ref(value: Any, rtype: str, base_url: str | None) -> str | None:
    raw = value.get("reference") if isinstance(value, dict) else None
    if not isinstance(raw, str):
        return None
    ttype, tid, _ = parse_reference(raw, base_url)
    return tid if ttype == rtype and tid else None


def _task_seen(conn: Any, org: str, task: dict[str, Any], base_url: str | None) -> bool:
    if task.get("status") == "draft" or _ref(task.get("owner"), "Organization", base_url) != org:
        return False
    pid = _ref(task.get("for"), "Patient", base_url)
    return pid is not None and _consenting(conn, org, pid)


def _owned_tasks(conn: Any, org: str, param: str, target_type: str, target_id: str) -> list[dict[str, Any]]:
    by, owner = REF.alias(), REF.alias()
    rows = conn.execute(
        sa.select(sa.cast(R.c.content, sa.Text)).where(
            R.c.deleted.is_(False),
            R.c.pk.in_(
                sa.select(by.c.res_pk).where(
                    by.c.res_type == "Task",
                    by.c.param == param,
                    by.c.target_type == target_type,
                    by.c.target_id == target_id,
                )
            ),
            R.c.pk.in_(
                sa.select(owner.c.res_pk).where(
                    owner.c.res_type == "Task",
                    owner.c.param == "owner",
                    owner.c.target_type == "Organization",
                    owner.c.target_id == org,
                )
            ),
        )
    ).all()
    return [jsonexact.loads(r[0]) for r in rows if r[0] is not None]


def organisation_sees(
    conn: Any, org: str, rtype: str, rid: str, content: dict[str, Any] | None, base_url: str | None = None
) -> bool:
    """One resource, judged as :func:`visible_condition` judges it for organisation ``org`` — with a few
    index lookups instead of the whole condition (a read or a write checks one resource)."""
    if content is None:
        return False
    if rtype == "Task":
        return _task_seen(conn, org, content, base_url)
    if rtype in ("ServiceRequest", "Patient"):
        param = "focus" if rtype == "ServiceRequest" else "subject"
        return any(_task_seen(conn, org, t, base_url) for t in _owned_tasks(conn, org, param, rtype, rid))
    if rtype == "Procedure":
        performers = {
            _ref(p.get("actor"), "Organization", base_url)
            for p in content.get("performer") or ()
            if isinstance(p, dict)
        }
        pid = _ref(content.get("subject"), "Patient", base_url)
        return (
            org in performers
            and pid is not None
            and organisation_sees(conn, org, "Patient", pid, {"resourceType": "Patient", "id": pid}, base_url)
        )
    return rtype == "Organization" and rid == org
