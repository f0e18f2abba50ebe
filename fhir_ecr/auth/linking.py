"""Link the EHR's Patient and Practitioner to mECR's own records at launch time.

mECR keeps its own Patient/Practitioner (the coaching record is its own store). A launch links by identifier:

1. the **link identifier** ``urn:mecr:ehr:{ehr id}:{Type}`` | the EHR's resource id — set on every record
   mECR created or linked from that EHR, so the next launch finds it at once;
2. otherwise a business identifier of the EHR's resource (MRN, NPI, …), matched only against identifiers that
   the EHR or mECR itself set on the local record (marked with the ``identifier-source`` extension,
   :data:`~fhir_ecr.auth.access.IDENTIFIER_SOURCE_URL`): an identifier a patient or a coach typed never links
   anyone, and API callers cannot add or alter marked ones (:func:`~fhir_ecr.auth.access.check_identity_edit`);
3. otherwise a new local record with the EHR's demographics, its identifiers (marked as set by the EHR) and the
   link identifier.

Safety: two local records matching (two with the same link identifier, or the same MRN) is an identity
conflict — the launch is refused and the conflict recorded for an administrator (``mecr ehr conflicts``), never
resolved by picking one. A record matched by a business identifier whose birth date differs from the EHR's is a
conflict too: mECR never copies one person's demographics onto another's record. Demographics (name,
birthDate, gender, telecom, …) are refreshed from the EHR on each launch once a record is linked — the EHR is
their source of truth; coaching data is never overwritten.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from ..outcomes import FhirError, conflict
from ..store.repository import FhirRepository, UnitOfWork
from ..store.search import parse_search
from .access import IDENTIFIER_SOURCE_URL, LINK_SYSTEM_PREFIX, trusted_identifier

__all__ = ["LinkConflict", "link_identifier_system", "link_resource", "link_conflicts", "clear_link_conflict"]

_DEMOGRAPHICS = {
    "Patient": ("name", "birthDate", "gender", "telecom", "address", "active"),
    "Practitioner": ("name", "telecom", "qualification", "gender", "active"),
}
_CONFLICT_PREFIX = "link-conflict:"


class LinkConflict(FhirError):
    """The EHR's record matches more than one local record, or one that is evidently another person (409)."""

    def __init__(self, reason: str, candidates: list[str]) -> None:
        super().__init__(
            conflict(
                f"identity conflict: {reason}; an administrator must resolve it (mecr ehr conflicts)"
            ).issues,
            409,
        )
        self.reason = reason
        self.candidates = candidates


def link_identifier_system(ehr_id: str, rtype: str) -> str:
    return f"{LINK_SYSTEM_PREFIX}{ehr_id}:{rtype}"


def _from_ehr(ident: dict[str, Any]) -> dict[str, Any]:
    """A business identifier as mECR stores it: its fields, marked as set by the EHR."""
    out: dict[str, Any] = {k: ident[k] for k in ("system", "value", "type", "use", "period") if k in ident}
    out["extension"] = [{"url": IDENTIFIER_SOURCE_URL, "valueCode": "ehr"}]
    return out


def _carries(content: dict[str, Any], system: str, value: str) -> bool:
    """The local record carries ``system|value`` as an identifier the EHR or mECR set."""
    return any(
        trusted_identifier(i) and i.get("system") == system and i.get("value") == value
        for i in content.get("identifier") or []
    )


def _same_person(local: dict[str, Any], remote: dict[str, Any]) -> bool:
    """No evidence the two are different people: the birth dates agree where both are known."""
    born, theirs = local.get("birthDate"), remote.get("birthDate")
    return not (born and theirs and born != theirs)


def _match(uow: UnitOfWork, rtype: str, system: str, value: str) -> list[Any]:
    query = parse_search(rtype, [("identifier", f"{system}|{value}")], default_count=10)
    return [s for s in uow.search(query).matches if _carries(s.content or {}, system, value)]


def link_resource(repo: FhirRepository, ehr_id: str, remote: dict[str, Any]) -> str:
    """The local id of the record linked to ``remote`` (a Patient or Practitioner read from the EHR); a
    :class:`LinkConflict` (recorded for ``mecr ehr conflicts``) when that cannot be decided safely."""
    try:
        return _link(repo, ehr_id, remote)
    except LinkConflict as exc:
        _record_conflict(repo, ehr_id, remote, exc)
        raise


def _link(repo: FhirRepository, ehr_id: str, remote: dict[str, Any]) -> str:
    rtype = remote["resourceType"]
    link = {"system": link_identifier_system(ehr_id, rtype), "value": str(remote["id"])}
    business = [
        i
        for i in remote.get("identifier") or []
        if isinstance(i, dict)
        and i.get("system")
        and i.get("value")
        and not str(i["system"]).startswith(LINK_SYSTEM_PREFIX)
    ]
    with repo.unit() as uow:
        found = _match(uow, rtype, link["system"], link["value"])
        if len(found) > 1:
            raise LinkConflict(f"{len(found)} {rtype} records carry the same EHR link", [s.id for s in found])
        by_business = False
        if not found:
            for ident in business:
                matches = _match(uow, rtype, ident["system"], ident["value"])
                if len(matches) > 1:
                    raise LinkConflict(
                        f"{len(matches)} {rtype} records carry the EHR's identifier {ident['system']}",
                        [s.id for s in matches],
                    )
                if matches:
                    found, by_business = matches, True
                    break
        if found:
            local = dict(found[0].content or {})
            if by_business and not _same_person(local, remote):
                raise LinkConflict(
                    f"the {rtype} record with the EHR's identifier has another birth date", [found[0].id]
                )
            updated = dict(local)
            idents = list(updated.get("identifier") or [])
            for ident in [link, *[_from_ehr(i) for i in business]]:
                if not any(
                    i.get("system") == ident["system"] and i.get("value") == ident["value"] for i in idents
                ):
                    idents.append(ident)
            updated["identifier"] = idents
            for key in _DEMOGRAPHICS.get(rtype, ()):
                if key in remote:
                    updated[key] = remote[key]
            updated.pop("meta", None)
            local.pop("meta", None)
            if updated != local:
                uow.update(rtype, local["id"], updated)
            return str(local["id"])
        new: dict[str, Any] = {"resourceType": rtype, "identifier": [link, *[_from_ehr(i) for i in business]]}
        for key in _DEMOGRAPHICS.get(rtype, ()):
            if key in remote:
                new[key] = remote[key]
        return uow.create(new).stored.id


def _record_conflict(repo: FhirRepository, ehr_id: str, remote: dict[str, Any], exc: LinkConflict) -> None:
    key = f"{_CONFLICT_PREFIX}{ehr_id}:{remote['resourceType']}:{remote['id']}"
    now = int(time.time())
    with repo.unit() as uow:
        old = uow.get_state(key)
        entry = (
            orjson.loads(old)
            if old
            else {
                "ehr": ehr_id,
                "type": remote["resourceType"],
                "ehrId": str(remote["id"]),
                "firstSeen": now,
                "count": 0,
            }
        )
        entry.update(reason=exc.reason, candidates=exc.candidates, lastSeen=now, count=entry["count"] + 1)
        uow.set_state(key, orjson.dumps(entry).decode())


def link_conflicts(repo: FhirRepository) -> list[dict[str, Any]]:
    """The identity conflicts launches ran into, oldest first (each with its ``key`` for :func:`clear_link_conflict`)."""
    with repo.unit(write=False) as uow:
        rows = uow.states(_CONFLICT_PREFIX)
    out = [{"key": k.removeprefix(_CONFLICT_PREFIX), **orjson.loads(v)} for k, v in rows]
    return sorted(out, key=lambda e: (e["firstSeen"], e["key"]))


def clear_link_conflict(repo: FhirRepository, key: str) -> bool:
    """Forget a resolved conflict; False when there was none under ``key``."""
    with repo.unit() as uow:
        if uow.get_state(_CONFLICT_PREFIX + key) is None:
            return False
        uow.delete_state(_CONFLICT_PREFIX + key)
        return True
