"""Pulling from an EMR: the one write path for pulled resources (:class:`Loader`) and incremental paged pulls.

**Incremental paged pull** of one type (docs/sync.md): ``{Type}?{filters}&_lastUpdated=ge{mark - overlap}&
_sort=_lastUpdated&_count=N``. Each page is written in one transaction together with the new high-water mark
(the largest ``lastUpdated`` on it), so a worker killed between pages resumes after the last page it committed.
The next page is asked for afresh from that mark (a keyset on ``lastUpdated``) rather than through the EMR's
``next`` link: an EMR that pages by offset (most do) shifts its pages when a resource changes during the pull, and
a resource could slip between two of them; asking from the mark cannot skip one — a resource changed meanwhile
simply comes again, later. Only when a whole page shares one ``lastUpdated`` (no progress) is the ``next`` link
followed. Resources seen twice (the page boundary, the overlap) are written once: an unchanged resource is no
write at all.

**The write path** (:class:`Loader`, also used by Bulk Data pulls): resources mECR pushed itself (they carry its
push identifier) are left alone; Patients are linked by identifier exactly as a launch links them
(:func:`fhir_ecr.auth.linking.link_resource`: link identifier, then MRN set by the EHR, conflicts refused and
recorded for ``mecr ehr conflicts``); every other resource becomes mECR's read-only copy
(:func:`fhir_ecr.sync.mapping.pulled`) with its references mapped: to the linked Patient, to resources pulled
before or in the same batch, else the EMR's absolute URL. A resource about a Patient who cannot be linked is not
written (counted as rejected). A batch's Patients are linked together (:func:`fhir_ecr.auth.linking.link_batch`:
two searches and one unit of work for those linked before and those new to mECR). Each copy is validated once,
before the write — one the store's validator refuses is left out alone — and a copy equal to what is stored is
neither validated nor written. The batch is then one unit of work; if the store still refuses it (e.g. a
reference), it is written again one resource at a time so that only the bad ones are left out.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from ..auth.linking import LinkConflict, link_batch, link_resource
from ..outcomes import FhirError
from ..store.indexer import date_range
from ..store.records import R, Stored, iso_instant
from ..store.search import parse_search
from ..store.searchparams import search_params
from ..store.writes import same_content
from .client import EmrClient, EmrRefused, EmrUnavailable
from .config import PullSpec
from .mapping import draft, finish, is_pushed_by, link_system, local_id

__all__ = ["Loader", "PullCounts", "pull_type", "instant_us"]

log = logging.getLogger("mecr.sync")


@dataclass
class PullCounts:
    fetched: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    own: int = 0  # copies of mECR's own pushed resources, left alone
    rejected: int = 0
    deleted: int = 0  # copies of resources the EMR deleted, deleted in mECR too
    pages: int = 0
    reasons: list[str] = field(default_factory=list)

    def add(self, other: PullCounts) -> None:
        for name in ("fetched", "created", "updated", "unchanged", "own", "rejected", "deleted", "pages"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.reasons = (self.reasons + other.reasons)[:5]

    def reject(self, n: int, reason: str) -> None:
        self.rejected += n
        if reason not in self.reasons and len(self.reasons) < 5:
            self.reasons.append(reason)

    def line(self) -> str:
        return (
            f"fetched={self.fetched} created={self.created} updated={self.updated} unchanged={self.unchanged} "
            f"own={self.own} rejected={self.rejected} deleted={self.deleted} pages={self.pages}"
        )


def instant_us(text: str) -> int:
    """µs since the epoch of a FHIR instant (its lower bound)."""
    return date_range(text)[0]


def _ms_instant(us: int) -> str:
    """A FHIR instant with milliseconds (what every server parses), rounded down."""
    return iso_instant(us - us % 1000)[:23] + "Z"


#: A resource of a batch: (as the EMR sent it, mECR's copy, the copy is what is stored already).
Pulled = tuple[dict[str, Any], dict[str, Any], bool]


class Loader:
    """Writes batches of one EMR's resources into the store (see the module docstring)."""

    def __init__(self, services: Any, ehr_id: str, emr: EmrClient) -> None:
        self.services = services
        self.repo = services.repo
        self.ehr_id = ehr_id
        self.emr = emr
        self.base = emr.base
        self.push_system = services.settings.push_identifier_system
        self.sync_store = services.sync_store
        self.types = frozenset(search_params())
        self._patients: dict[str, str | None] = {}  # EMR Patient id -> local id (None: cannot be linked)

    # -- Patients ---------------------------------------------------------------------------------------------

    def _link_patient(self, remote: dict[str, Any], counts: PullCounts) -> str | None:
        rid = str(remote.get("id"))
        try:
            local = link_resource(self.repo, self.ehr_id, remote)
        except LinkConflict:
            counts.reject(1, "Patient: identity conflict (mecr ehr conflicts)")
            self._patients[rid] = None
            return None
        except FhirError as exc:
            counts.reject(1, f"Patient: refused by the store ({exc.status})")
            self._patients[rid] = None
            return None
        self._patients[rid] = local
        self.sync_store.put_link(
            self.ehr_id, "Patient", local, direction="pull", remote_id=rid, remote_version=_version(remote)
        )
        return local

    def _link_patients(self, remotes: list[dict[str, Any]], counts: PullCounts) -> dict[str, str | None]:
        """Link a batch of the EMR's Patients (:func:`~fhir_ecr.auth.linking.link_batch`: the ones linked before
        and the ones new to mECR in one unit of work with their link rows; any other one by one, as a launch
        links); ``{EMR id: local id or None}``."""

        def record(uow: Any, linked: dict[str, str]) -> None:
            self.sync_store.put_pull_links(
                uow.conn,
                self.ehr_id,
                [("Patient", local, rid, _version(by_id[rid])) for rid, local in linked.items()],
            )

        by_id = {str(r["id"]): r for r in remotes}
        linked, rest = link_batch(self.repo, self.ehr_id, list(by_id.values()), also=record)
        out: dict[str, str | None] = dict(linked)
        self._patients.update(linked)
        for remote in rest:
            out[str(remote["id"])] = self._link_patient(remote, counts)
        return out

    async def _resolve_patients(self, ids: set[str], counts: PullCounts) -> None:
        """Find the local record of each EMR Patient id: linked before, else read from the EMR and linked now."""
        todo = sorted(i for i in ids if i not in self._patients)
        if not todo:
            return
        system = link_system(self.ehr_id, "Patient")
        with self.repo.unit(write=False) as uow:
            for n in range(0, len(todo), 200):
                chunk = todo[n : n + 200]
                query = parse_search(
                    "Patient",
                    [("identifier", ",".join(f"{system}|{i}" for i in chunk))],
                    default_count=1000,
                    max_count=1000,
                )
                for found in uow.search(query).matches:
                    for ident in (found.content or {}).get("identifier") or []:
                        if ident.get("system") == system and ident.get("value") in chunk:
                            self._patients[str(ident["value"])] = found.id
        missing = [i for i in todo if i not in self._patients]
        for n in range(0, len(missing), 50):
            chunk = missing[n : n + 50]
            bundle = await self.emr.get_json(
                "Patient",
                what=f"EHR {self.ehr_id}: read Patients",
                params=[("_id", ",".join(chunk)), ("_count", str(len(chunk)))],
            )
            read = [
                res
                for res in (entry.get("resource") or {} for entry in bundle.get("entry") or [])
                if res.get("resourceType") == "Patient" and str(res.get("id")) in chunk
            ]
            self._link_patients(read, counts)
        for i in missing:
            self._patients.setdefault(i, None)

    # -- a batch ----------------------------------------------------------------------------------------------

    async def load(
        self,
        resources: list[dict[str, Any]],
        *,
        mark: tuple[str, dict[str, Any]] | None = None,
        counts: PullCounts | None = None,
    ) -> PullCounts:
        """Write ``resources`` (as read from the EMR); ``mark`` = (type, fields) is recorded in the same
        transaction (a page's high-water mark, a Bulk Data file's progress)."""
        counts = counts or PullCounts()
        counts.fetched += len(resources)
        others: list[dict[str, Any]] = []
        known = self.sync_store.by_remote(
            self.ehr_id,
            "Patient",
            [str(r.get("id")) for r in resources if r.get("resourceType") == "Patient"],
        )
        patients: list[dict[str, Any]] = []
        for res in resources:
            rtype = res.get("resourceType")
            if not isinstance(rtype, str) or not res.get("id"):
                counts.reject(1, "a resource without type or id")
            elif is_pushed_by(res, self.push_system):
                counts.own += 1
            elif rtype not in self.types:
                counts.reject(1, f"{rtype}: not a type mECR stores")
            elif rtype == "Patient":
                patients.append(res)
            else:
                others.append(res)
        for rid, local in self._link_patients(patients, counts).items():
            if local is None:
                continue
            if rid in known:
                counts.unchanged += 1  # linked before (demographics refreshed if the EMR changed them)
            else:
                counts.created += 1
        # Each resource is copied, and its references found, in one walk; they are mapped once resolved.
        own_ids = [local_id(self.ehr_id, str(r["resourceType"]), str(r["id"])) for r in others]
        drafts = [
            draft(r, ehr_id=self.ehr_id, emr_base=self.base, local=i)
            for r, i in zip(others, own_ids, strict=True)
        ]
        refs = [d.refs for d in drafts]
        await self._resolve_patients({i for rs in refs for t, i in rs if t == "Patient"}, counts)
        contents: list[Pulled] = []
        batch_keys = {(str(r["resourceType"]), i) for r, i in zip(others, own_ids, strict=True)}
        present = (
            self._present(
                {(t, local_id(self.ehr_id, t, i)) for rs in refs for t, i in rs if t != "Patient"}
                - batch_keys
            )
            | batch_keys
        )
        local_ids: dict[tuple[str, str], str | None] = {}

        def resolve(t: str, i: str) -> str | None:
            if t == "Patient":
                local = self._patients.get(i)
                return f"Patient/{local}" if local else None
            found = local_ids.get((t, i), "")
            if found == "":
                key = (t, local_id(self.ehr_id, t, i))
                found = local_ids[(t, i)] = f"{t}/{key[1]}" if key in present else None
            return found

        validate = self.repo.validator
        stored = self._stored(batch_keys)
        for res, rs, drafted in zip(others, refs, drafts, strict=True):
            if any(t == "Patient" and not self._patients.get(i) for t, i in rs):
                counts.reject(1, f"{res['resourceType']}: its Patient is not linked (identity conflict?)")
                continue
            content = finish(drafted, resolve, self.base)
            old = stored.get((content["resourceType"], content["id"]))
            same = old is not None and same_content(old.content, content)
            if not same:  # what is stored was valid when written: only a change is validated, once, here
                try:
                    validate(content)
                except FhirError as exc:
                    counts.reject(1, f"{res['resourceType']}: refused by the store ({exc.status})")
                    continue
            contents.append((res, content, same))
        if contents or mark is not None:
            try:
                self._write(contents, mark, counts)
            except FhirError:
                for item in contents:  # one at a time: leave out only what the store refuses
                    try:
                        self._write([item], None, counts)
                    except FhirError as exc:
                        counts.reject(1, f"{item[0]['resourceType']}: refused by the store ({exc.status})")
                if mark is not None:
                    self._write([], mark, counts)
        return counts

    def delete(self, rtype: str, remote_ids: list[str], counts: PullCounts) -> None:
        """Delete mECR's copies of the EMR's resources ``rtype/remote_ids``, which the EMR deleted. A copy that
        other records still refer to is kept (the store refuses the delete) and counted as rejected."""
        if rtype == "Patient" or rtype not in self.types:
            return  # mECR's Patient is mECR's record (coaching hangs on it): a deleted chart is not a deleted coachee
        ids = [local_id(self.ehr_id, rtype, r) for r in remote_ids]
        present = {i for _, i in self._present({(rtype, i) for i in ids})}
        for local in (i for i in ids if i in present):
            try:
                with self.repo.unit() as uow:
                    uow.delete(rtype, local)
                    self.sync_store.drop_links(uow.conn, self.ehr_id, rtype, [local])
                counts.deleted += 1
            except FhirError as exc:
                counts.reject(
                    1, f"{rtype}: deleted in the EMR, kept in mECR ({exc.status}: still referred to)"
                )

    def _present(self, keys: set[tuple[str, str]]) -> set[tuple[str, str]]:
        """Which of ``keys`` (type, local id) are stored."""
        with self.repo.unit(write=False) as uow:
            return _existing(uow, keys, self.types)

    def _stored(self, keys: set[tuple[str, str]]) -> dict[tuple[str, str], Stored]:
        """The stored versions of ``keys`` (type, local id) that exist."""
        with self.repo.unit(write=False) as uow:
            return _lookup(uow, keys, self.types)

    def _write(
        self,
        contents: list[Pulled],
        mark: tuple[str, dict[str, Any]] | None,
        counts: PullCounts,
    ) -> None:
        tally = {"created": 0, "updated": 0, "unchanged": 0}
        with self.repo.unit() as uow:
            keys = {(c["resourceType"], c["id"]) for _, c, _ in contents}
            existing = _existing(uow, keys, self.types)
            written: set[tuple[str, str]] = set()
            links = []
            for remote, content, same in contents:
                key = (content["resourceType"], content["id"])
                if key not in existing:
                    uow.create(content, resource_id=key[1], method="PUT", validated=True)
                    existing.add(key)
                    tally["created"] += 1
                elif same and key not in written:
                    tally["unchanged"] += 1  # what is stored already: no write
                else:
                    result = uow.update(key[0], key[1], content, validated=True)
                    tally["updated" if result.changed else "unchanged"] += 1
                written.add(key)
                links.append((key[0], key[1], str(remote["id"]), _version(remote)))
            uow.flush()
            self.sync_store.put_pull_links(uow.conn, self.ehr_id, links)
            if mark is not None:
                self.sync_store.put_mark(self.ehr_id, mark[0], conn=uow.conn, **mark[1])
        for name, n in tally.items():
            setattr(counts, name, getattr(counts, name) + n)


def _by_type(keys: set[tuple[str, str]], types: frozenset[str]) -> dict[str, list[str]]:
    by_type: dict[str, list[str]] = {}
    for t, i in keys:
        if t in types:
            by_type.setdefault(t, []).append(i)
    return by_type


def _lookup(uow: Any, keys: set[tuple[str, str]], types: frozenset[str]) -> dict[tuple[str, str], Stored]:
    """The stored versions of ``keys`` (type, local id) that exist, one search per type and 500 ids."""
    found: dict[tuple[str, str], Stored] = {}
    for t, ids in _by_type(keys, types).items():
        for n in range(0, len(ids), 500):
            query = parse_search(t, [("_id", ",".join(ids[n : n + 500]))], default_count=1000, max_count=1000)
            found.update(((t, s.id), s) for s in uow.search(query).matches)
    return found


def _existing(uow: Any, keys: set[tuple[str, str]], types: frozenset[str]) -> set[tuple[str, str]]:
    """Which of ``keys`` (type, local id) exist and are not deleted: what a search by ``_id`` finds in the
    Loader's unguarded store, read from the resource table's key alone (no search machinery, no content)."""
    found: set[tuple[str, str]] = set()
    for t, ids in _by_type(keys, types).items():
        for n in range(0, len(ids), 500):
            found.update(
                (t, str(i))
                for i in uow.conn.execute(
                    sa.select(R.c.res_id).where(
                        R.c.res_type == t, uow.ids_in(R.c.res_id, ids[n : n + 500]), R.c.deleted.is_(False)
                    )
                ).scalars()
            )
    return found


def _version(res: dict[str, Any]) -> str | None:
    """The EMR's ``meta.versionId`` of ``res`` (None when it has none)."""
    return str((res.get("meta") or {}).get("versionId") or "") or None


def _last_updated(res: dict[str, Any]) -> str | None:
    value = (res.get("meta") or {}).get("lastUpdated")
    return value if isinstance(value, str) else None


async def pull_type(
    loader: Loader, spec: PullSpec, *, page_size: int, overlap_seconds: int, full: bool = False
) -> PullCounts:
    """An incremental paged pull of one type (see the module docstring); returns its counts."""
    services, ehr_id = loader.services, loader.ehr_id
    store = services.sync_store
    mark = store.mark(ehr_id, spec.type) or {}
    high_water: str | None = None if full else mark.get("high_water")
    started = int(time.time())
    store.put_mark(ehr_id, spec.type, last_started=started)
    counts = PullCounts()
    cursor = _ms_instant(instant_us(high_water) - overlap_seconds * 1_000_000) if high_water else None
    since = cursor  # deletions are looked for from where this pull starts (not on a first or --full pull)
    seen: set[tuple[str, str]] = set()  # (id, versionId) already written at the cursor's instant
    next_url: str | None = None
    what = f"EHR {ehr_id}: search {spec.type}"
    for _ in range(1_000_000):  # bounded: each round either advances the cursor or follows a next link
        if next_url is not None:
            bundle = await loader.emr.get_json(next_url, what=what)
        else:
            params = [*spec.query, ("_sort", "_lastUpdated"), ("_count", str(page_size))]
            if cursor is not None:
                params.append(("_lastUpdated", f"ge{cursor}"))
            bundle = await loader.emr.get_json(spec.type, what=what, params=params)
        if bundle.get("resourceType") != "Bundle":
            raise EmrUnavailable(f"{what}: the answer is not a Bundle")
        entries = [
            e.get("resource")
            for e in bundle.get("entry") or []
            if isinstance(e, dict) and (e.get("search") or {}).get("mode", "match") == "match"
        ]
        page = [r for r in entries if isinstance(r, dict) and r.get("resourceType") == spec.type]
        counts.pages += 1
        fresh = [
            r for r in page if (str(r.get("id")), str((r.get("meta") or {}).get("versionId"))) not in seen
        ]
        stamps = [(instant_us(s), s) for s in (_last_updated(r) for r in page) if s]
        top = max(stamps)[1] if stamps else None
        new_high = high_water
        if top is not None and (high_water is None or instant_us(top) > instant_us(high_water)):
            new_high = top
        fields = {"high_water": new_high, "last_error": None}
        await loader.load(fresh, mark=(spec.type, fields), counts=counts)
        high_water = new_high
        links = {
            link.get("relation"): link.get("url")
            for link in bundle.get("link") or []
            if isinstance(link, dict)
        }
        if len(page) < page_size or not links.get("next"):
            break
        if top is None or (cursor is not None and instant_us(top) <= instant_us(cursor)):
            next_url = links["next"]  # a whole page at one instant: page through it the EMR's way
            seen.update((str(r.get("id")), str((r.get("meta") or {}).get("versionId"))) for r in page)
            continue
        next_url = None
        cursor = top
        seen = {
            (str(r.get("id")), str((r.get("meta") or {}).get("versionId")))
            for r in page
            if _last_updated(r) and instant_us(_last_updated(r) or "") == instant_us(top)
        }
    if since is not None:
        await _pull_deletions(loader, spec.type, since, page_size, counts)
    store.put_mark(
        ehr_id,
        spec.type,
        last_finished=int(time.time()),
        last_count=counts.fetched,
        last_error=("; ".join(counts.reasons) if counts.rejected else None),
    )
    log.info(
        "pull ehr=%s type=%s mode=paged %s duration=%ds",
        ehr_id,
        spec.type,
        counts.line(),
        int(time.time()) - started,
    )
    return counts


async def _pull_deletions(loader: Loader, rtype: str, since: str, page_size: int, counts: PullCounts) -> None:
    """The EMR's deletions of ``rtype`` since ``since``: ``GET [type]/_history?_since=…`` (a search never returns a
    deleted resource; https://hl7.org/fhir/R4/http.html#history lists a deletion as an entry whose ``request`` is
    ``DELETE``). A resource whose newest entry is a deletion has its copy deleted in mECR. An EMR that does not
    serve a type's history (it refuses the request) only leaves deletions unpropagated."""
    what = f"EHR {loader.ehr_id}: history of {rtype}"
    newest: dict[str, tuple[tuple[str, int], bool]] = {}  # EMR id -> (its newest entry's rank, a deletion?)
    url: str | None = None
    for n in range(10_000):  # bounded by the EMR's paging
        try:
            if url is None:
                bundle = await loader.emr.get_json(
                    f"{rtype}/_history", what=what, params=[("_since", since), ("_count", str(page_size))]
                )
            else:
                bundle = await loader.emr.get_json(url, what=what)
        except EmrRefused:
            return
        for order, entry in enumerate(bundle.get("entry") or []):
            if not isinstance(entry, dict):
                continue
            request, response = entry.get("request") or {}, entry.get("response") or {}
            resource = entry.get("resource") or {}
            rid = (
                resource.get("id")
                or str(request.get("url") or entry.get("fullUrl") or "").rstrip("/").split("/")[-1]
            )
            if not rid:
                continue
            # Newest first (the spec's order) unless the entries say when: the first seen wins a tie.
            when = str(response.get("lastModified") or (resource.get("meta") or {}).get("lastUpdated") or "")
            key = (when, -(n * 100_000 + order))
            if rid not in newest or key > newest[rid][0]:
                newest[rid] = (key, str(request.get("method") or "").upper() == "DELETE")
        url = next(
            (
                link.get("url")
                for link in bundle.get("link") or []
                if isinstance(link, dict) and link.get("relation") == "next"
            ),
            None,
        )
        if not url:
            break
    gone = sorted(rid for rid, (_, deleted) in newest.items() if deleted)
    if gone:
        loader.delete(rtype, gone, counts)
