"""Where the referral workflow meets the store: one write hook (``FhirRepository.write_hooks``) that checks every
write of a referral Task — REST PUT/PATCH/POST, transaction entries, the pages and the organisation's link — and
records each status change as a ``Provenance`` (who, when, from and to), in the same transaction.

- the state machine (:mod:`.workflow`) by the writer's role: a practitioner or the practice's own system client
  is the practice, a patient the patient, a client bound to an organisation (or a referral link) the
  organisation, the developer principal anyone; mECR's own unguarded writers (demo, imports) are not checked;
- ``requested`` needs a Consent of the patient covering the owner organisation (:mod:`.consent`);
- an organisation writes only referral Tasks it owns and ``Procedure`` records it performed for their patients:
  whatever else it writes, or a write that would leave its view, is refused (403).

A refusal raises inside the unit of work, so nothing of the request is stored (no partial writes).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from ..canonical import REFERRAL_TRANSITION_SYSTEM as PROVENANCE_ACTIVITY
from ..coaching.resources import ref_id
from ..outcomes import FhirError, VersionConflict, forbidden, issue
from ..store import jsonexact
from ..store.records import H, select_versions
from ..store.repository import Change
from ..store.search import parse_search
from ..store.visibility import Confinement
from ..store.writes import UnitOfWork
from .consent import covers
from .workflow import Role, check_transition, is_referral_task

__all__ = ["install_referrals", "referral_hook", "role_of", "agent_of", "PROVENANCE_ACTIVITY"]

_ORG_TYPES = frozenset({"Task", "Procedure"})


def role_of(principal: Any) -> Role:
    """The workflow role of a caller (see the module docstring)."""
    if principal is None or principal.kind == "developer":
        return "any"
    if getattr(principal, "organization", None):
        return "organisation"
    return "patient" if principal.kind == "patient" else "practice"


def agent_of(principal: Any) -> dict[str, Any]:
    """Provenance.agent for a caller: their resource when they have one, else their name and client id."""
    agent: dict[str, Any] = {
        "type": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/provenance-participant-type",
                    "code": "author",
                }
            ]
        }
    }
    who: dict[str, Any] = {"display": (principal.display or principal.subject) if principal else "mECR"}
    if principal is not None and principal.fhir_user:
        who["reference"] = principal.fhir_user
    elif principal is not None:
        who["identifier"] = {"system": "urn:mecr:principal", "value": principal.subject}
    agent["who"] = who
    org = getattr(principal, "organization", None)
    if org:
        agent["onBehalfOf"] = {"reference": f"Organization/{org}"}
    return agent


def _previous(uow: Any, change: Change) -> dict[str, Any] | None:
    if change.version_id <= 1:
        return None
    row = uow.conn.execute(
        select_versions().where(
            H.c.res_type == change.resource_type,
            H.c.res_id == change.id,
            H.c.version_id == change.version_id - 1,
        )
    ).first()
    return jsonexact.loads(row.content) if row is not None and row.content is not None else None


def _now_iso(uow: Any) -> str:
    return (
        datetime.fromtimestamp(uow.repo.clock() / 1e6, UTC)
        .isoformat(timespec="seconds")
        .replace("+00:00", "Z")
    )


def _require_consent(internal: UnitOfWork, task: dict[str, Any], now_iso: str) -> None:
    """``requested`` sends the referral out of the practice: the patient must have agreed to share with the
    organisation that owns it (Gravity SDOH CC IG; docs/referrals.md)."""
    pid = ref_id(task.get("for"), "Patient")
    org = ref_id(task.get("owner"), "Organization")
    if org is None:
        raise VersionConflict(
            issue(
                "business-rule",
                "a referral is requested of an organisation: set Task.owner "
                "to the Organization before it leaves the practice",
                expression="Task.owner",
            ),
            409,
        )
    found = internal.search(
        parse_search(
            "Consent",
            [("patient", f"Patient/{pid}"), ("status", "active")],
            default_count=1000,
            max_count=1000,
        )
    )
    if not any(s.content and covers(s.content, pid or "", org, now_iso) for s in found.matches):
        raise VersionConflict(
            issue(
                "business-rule",
                f"no active Consent of the patient to share with Organization/{org}: record the "
                "patient's consent (Consent.provision.actor = the organisation) before the referral is requested",
                expression="Task.status",
            ),
            409,
        )


def _provenance(
    task: dict[str, Any], version: int, before: str | None, after: str, principal: Any, now_iso: str
) -> dict[str, Any]:
    text = f"{before} → {after}" if before else f"created as {after}"
    prov: dict[str, Any] = {
        "resourceType": "Provenance",
        "target": [{"reference": f"Task/{task['id']}/_history/{version}"}],
        "recorded": now_iso,
        "activity": {"coding": [{"system": PROVENANCE_ACTIVITY, "code": after}], "text": text},
        "agent": [agent_of(principal)],
    }
    reason = (task.get("statusReason") or {}).get("text")
    if reason and after != before:
        prov["reason"] = [{"text": str(reason)[:500]}]
    return prov


def _check_organisation_write(uow: Any, org: str, change: Change, old: dict[str, Any] | None) -> None:
    if change.resource_type not in _ORG_TYPES or change.deleted:
        raise forbidden(
            f"an organisation may not {'delete' if change.deleted else 'write'} "
            f"{change.resource_type} resources here; it updates its referral Tasks and records the "
            "Procedures it performed"
        )
    if change.resource_type == "Task" and not is_referral_task(change.content):
        raise forbidden("an organisation updates only the referral Tasks it owns")
    if change.resource_type == "Procedure" and old is not None:
        raise forbidden("an organisation records a Procedure once; it does not change it")
    conf = Confinement("", frozenset(), organization=org)
    if not uow.visible(conf, change.resource_type, change.id, change.content):
        raise forbidden(
            f"this {change.resource_type} is not about a referral Organization/{org} was sent "
            "(a Procedure must name the organisation as performer and a referred patient as subject)"
        )


def referral_hook(uow: Any, changes: list[Change]) -> Callable[[], None] | None:
    """The write hook (see the module docstring)."""
    guard = uow.guard
    if guard is None:
        return None  # mECR's own writers: loaders and imports bring history as it was
    principal = getattr(guard, "principal", None)
    role = role_of(principal)
    org = getattr(principal, "organization", None)
    internal: UnitOfWork | None = None
    provenances: list[dict[str, Any]] = []
    now_iso = _now_iso(uow)
    try:
        for change in changes:
            if role != "organisation" and (
                change.resource_type != "Task" or not (change.deleted or is_referral_task(change.content))
            ):
                continue
            old = _previous(uow, change)
            referral = change.resource_type == "Task" and (
                is_referral_task(change.content) or is_referral_task(old)
            )
            if referral:
                check_transition(old, change.content, role)
            if org:
                _check_organisation_write(uow, org, change, old)
            if not referral:
                continue
            new = change.content
            if new is None:
                continue
            before = None if old is None else str(old.get("status") or "")
            after = str(new.get("status") or "")
            if after == before:
                continue
            if internal is None:
                internal = UnitOfWork(uow.repo.guarded(None), uow.conn)
            if after == "requested":
                _require_consent(internal, new, now_iso)
            provenances.append(_provenance(new, change.version_id, before, after, principal, now_iso))
    except FhirError:
        guard_denied = getattr(guard, "denied", None)
        if guard_denied is not None:
            guard.denied = True
        raise
    if internal is not None:
        for prov in provenances:
            internal.create(prov)
        internal.flush()
    return None


def install_referrals(services: Any) -> None:
    """Register the referral workflow's write hook on the application's repository (once)."""
    if referral_hook not in services.repo.write_hooks:
        services.repo.write_hooks.append(referral_hook)
