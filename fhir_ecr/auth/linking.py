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
from collections.abc import Callable
from typing import Any

import orjson

from ..outcomes import FhirError, conflict
from ..store.repository import FhirRepository, UnitOfWork
from ..store.search import parse_search
from .access import IDENTIFIER_SOURCE_URL, LINK_SYSTEM_PREFIX, trusted_identifier

__all__ = [
    "LinkConflict",
    "link_identifier_system",
    "link_resource",
    "link_batch",
    "link_conflicts",
    "clear_link_conflict",
]

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


def _business(remote: dict[str, Any]) -> list[dict[str, Any]]:
    """The EHR record's business identifiers (MRN, NPI, …): those with a system and a value, links aside."""
    return [
        i
        for i in remote.get("identifier") or []
        if isinstance(i, dict)
        and i.get("system")
        and i.get("value")
        and not str(i["system"]).startswith(LINK_SYSTEM_PREFIX)
    ]


def _refreshed(
    local: dict[str, Any], remote: dict[str, Any], link: dict[str, Any], business: list[dict[str, Any]]
) -> dict[str, Any] | None:
    """The linked local record with the link, the EHR's identifiers and its demographics; None if unchanged."""
    updated = dict(local)
    idents = list(updated.get("identifier") or [])
    for ident in [link, *[_from_ehr(i) for i in business]]:
        if not any(i.get("system") == ident["system"] and i.get("value") == ident["value"] for i in idents):
            idents.append(ident)
    updated["identifier"] = idents
    for key in _DEMOGRAPHICS.get(remote["resourceType"], ()):
        if key in remote:
            updated[key] = remote[key]
    updated.pop("meta", None)
    return updated if updated != {k: v for k, v in local.items() if k != "meta"} else None


def _new_record(
    remote: dict[str, Any], link: dict[str, Any], business: list[dict[str, Any]]
) -> dict[str, Any]:
    """A new local record for an EHR record that matches none: its demographics, identifiers and the link."""
    rtype = remote["resourceType"]
    new: dict[str, Any] = {"resourceType": rtype, "identifier": [link, *[_from_ehr(i) for i in business]]}
    for key in _DEMOGRAPHICS.get(rtype, ()):
        if key in remote:
            new[key] = remote[key]
    return new


def _link(repo: FhirRepository, ehr_id: str, remote: dict[str, Any]) -> str:
    rtype = remote["resourceType"]
    link = {"system": link_identifier_system(ehr_id, rtype), "value": str(remote["id"])}
    business = _business(remote)
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
            updated = _refreshed(local, remote, link, business)
            if updated is not None:
                uow.update(rtype, local["id"], updated)
            return str(local["id"])
        return uow.create(_new_record(remote, link, business)).stored.id


def _escaped(value: str) -> str:
    """A search value with its commas escaped (https://hl7.org/fhir/R4/search.html#escaping)."""
    return value.replace(",", "\\,")


def _match_many(
    uow: UnitOfWork, rtype: str, keys: set[tuple[str, str]]
) -> dict[tuple[str, str], list[Any]] | None:
    """The local records carrying each ``(system, value)`` of ``keys`` as a trusted identifier, with one search
    per 100 keys; None when a search finds more than a page (never in practice: the caller goes one by one)."""
    out: dict[tuple[str, str], list[Any]] = {}
    wanted = sorted(keys)
    for n in range(0, len(wanted), 100):
        chunk = wanted[n : n + 100]
        query = parse_search(
            rtype,
            [("identifier", ",".join(f"{_escaped(s)}|{_escaped(v)}" for s, v in chunk))],
            default_count=1000,
            max_count=1000,
        )
        result = uow.search(query)
        if result.next_cursor is not None or result.next_offset is not None:
            return None
        for found in result.matches:
            for ident in (found.content or {}).get("identifier") or []:
                key = (str(ident.get("system") or ""), str(ident.get("value") or ""))
                if key in keys and trusted_identifier(ident) and found not in out.get(key, []):
                    out.setdefault(key, []).append(found)
    return out


def link_batch(
    repo: FhirRepository,
    ehr_id: str,
    remotes: list[dict[str, Any]],
    *,
    also: Callable[[UnitOfWork, dict[str, str]], None] | None = None,
) -> tuple[dict[str, str], list[dict[str, Any]]]:
    """Link many EHR records of one type at once, exactly as :func:`link_resource` would one at a time, in the
    two common cases: a record linked before (its link identifier finds one local record, whose demographics are
    refreshed) and a record new to mECR (neither its link identifier nor any of its business identifiers finds
    one, and no other record of the batch shares one: it is created). Two searches for the batch and one unit of
    work, instead of up to three searches and a unit of work per record (a Bulk Data pull links hundreds).

    Returns ``({EHR id: local id}, the records left for link_resource)``: a match by a business identifier (the
    birth dates must be compared), several matches (a conflict). ``also(uow, linked)`` runs in the same unit.
    If the store refuses the unit (e.g. an invalid record), nothing is written and every record is left."""
    by_id = {str(r["id"]): r for r in remotes}
    if not by_id:
        return {}, []
    rtype = next(iter(by_id.values()))["resourceType"]
    system = link_identifier_system(ehr_id, rtype)
    business = {rid: _business(r) for rid, r in by_id.items()}
    linked: dict[str, str] = {}
    rest: list[dict[str, Any]] = []
    try:
        with repo.unit() as uow:
            found = _match_many(uow, rtype, {(system, rid) for rid in by_id})
            unlinked = [rid for rid in by_id if found is not None and not found.get((system, rid))]
            taken = _match_many(
                uow, rtype, {(str(i["system"]), str(i["value"])) for rid in unlinked for i in business[rid]}
            )
            if found is None or taken is None:
                return {}, list(by_id.values())
            # An identifier two records of the batch share: the second must see the first, so one at a time.
            seen: set[tuple[str, str]] = set()
            shared: set[tuple[str, str]] = set()
            for rid in by_id:
                for key in {(str(i["system"]), str(i["value"])) for i in business[rid]}:
                    (shared if key in seen else seen).add(key)
            for rid, remote in by_id.items():
                matches = found.get((system, rid), [])
                link = {"system": system, "value": rid}
                mine = [(str(i["system"]), str(i["value"])) for i in business[rid]]
                if len(matches) == 1:
                    local = dict(matches[0].content or {})
                    updated = _refreshed(local, remote, link, business[rid])
                    if updated is not None:
                        uow.update(rtype, local["id"], updated)
                    linked[rid] = str(local["id"])
                elif not matches and not any(taken.get(k) or k in shared for k in mine):
                    linked[rid] = uow.create(_new_record(remote, link, business[rid])).stored.id
                else:
                    rest.append(remote)
            if also is not None:
                also(uow, linked)
    except FhirError:
        return {}, list(by_id.values())
    return linked, rest


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
