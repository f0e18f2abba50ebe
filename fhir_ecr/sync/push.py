"""Pushing coaching records to an EMR through the transactional outbox.

**Recording** (:func:`outbox_hook`, a write hook of the store): when a unit of work writes a resource of a type an
EMR's sync pushes (and it passes that type's filters), an outbox row is added in the same transaction — the write
and the row commit together or not at all. Pulled resources (the EMR's own) are never pushed back. After the
commit a ``deliver`` job is enqueued for the EMR.

**Delivery** (:class:`Deliverer`, the ``deliver`` job): claim due rows (``SKIP LOCKED`` on PostgreSQL), read the
*current* version of each resource, and send it — in a ``batch`` Bundle, or one request each:

- never pushed: a conditional create, ``POST [type]`` with ``If-None-Exist: identifier={system}|{Type}/{id}``
  (mECR's push identifier), so a retry after a lost response finds the first create instead of duplicating it;
- pushed before: ``PUT [type]/[EMR id]`` with ``If-Match`` on the EMR version mECR last saw; unchanged content
  (same hash as last pushed) sends nothing;
- a 412 (someone changed it in the EMR since): re-read it; if it is already what mECR wants, done (a lost
  response); if it is still what mECR last pushed (only the EMR's version moved), re-apply on the new version;
  otherwise **park** it — a concurrent change in the EMR is never overwritten silently. An administrator's retry
  of a parked conflict overwrites the EMR's copy with mECR's (docs/sync.md, conflict rules);
- 408, 429, 5xx, timeouts, dropped connections, token failures: retried later with exponential backoff (doubling
  from ``MECR_SYNC_RETRY_BASE_SECONDS`` up to ``MECR_SYNC_RETRY_MAX_SECONDS``, half of it random: "equal
  jitter"), never sooner than the EMR's ``Retry-After``; after ``MECR_SYNC_MAX_ATTEMPTS`` the row is parked;
- any other refusal: parked with the EMR's OperationOutcome, for an administrator (status page, ``mecr sync
  retry``).

References are mapped to the EMR's ids (a linked Patient, a resource pulled from it or pushed before); a row whose
Patient is not linked to that EMR is skipped. Within one batch, resources that refer to others of the batch
(a session note to its Encounter) go after them.
"""

from __future__ import annotations

import json
import logging
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..auth.access import ehr_owned
from ..outcomes import FhirError
from ..store.repository import Change
from ..store.search import parse_search
from ..store.sync_store import OutboxRow
from ..store.visibility import compartment_patients
from .client import EmrClient, EmrRefused, EmrUnavailable, check
from .config import SyncConfig
from .mapping import content_hash, link_system, push_body, same_content

__all__ = ["outbox_hook", "Deliverer", "DeliveryCounts", "RETRIED", "backoff", "park"]

log = logging.getLogger("mecr.sync")

#: ``detail`` of a row an administrator retried (a parked 412 conflict then overwrites the EMR's copy).
RETRIED = "retried by an administrator"
_LOCATION = re.compile(r"(?:^|/)([A-Za-z]+)/([A-Za-z0-9\-.]{1,64})(?:/_history/([^/]+))?/?$")


def outbox_hook(sync: Any, runner: Any) -> Callable[[Any, list[Change]], Callable[[], None] | None]:
    """The store's write hook that records pushes (see the module docstring)."""

    def hook(uow: Any, changes: list[Change]) -> Callable[[], None] | None:
        configs = sync.configured(max_age=10.0)
        entries: list[tuple[str, str, str, int]] = []
        for row, config in configs:
            if not config.enabled or not config.push:
                continue
            specs: dict[str, list[Any]] = {}
            for spec in config.push:
                specs.setdefault(spec.type, []).append(spec)
            for ch in changes:
                wanted = specs.get(ch.resource_type)
                if not wanted or (ch.content is not None and ehr_owned(ch.content)):
                    continue
                if ch.content is not None and not any(s.matches(ch.tokens) for s in wanted):
                    continue
                entries.append((row["id"], ch.resource_type, ch.id, ch.version_id))
        if not entries:
            return None
        uow.add_outbox(entries)
        ehrs = sorted({e[0] for e in entries})

        def wake() -> None:
            for ehr_id in ehrs:
                runner.enqueue("deliver", ehr_id)

        return wake

    return hook


@dataclass
class DeliveryCounts:
    delivered: int = 0
    unchanged: int = 0
    retried: int = 0
    parked: int = 0
    skipped: int = 0

    def line(self) -> str:
        return (
            f"delivered={self.delivered} unchanged={self.unchanged} retried={self.retried} "
            f"parked={self.parked} skipped={self.skipped}"
        )


@dataclass
class _Item:
    row: OutboxRow
    content: dict[str, Any] | None = None  # None: deleted
    body: dict[str, Any] | None = None
    link: Any = None
    hash: str | None = None


class Deliverer:
    """Delivers one EMR's due outbox rows (see the module docstring)."""

    def __init__(self, services: Any, ehr_row: dict[str, Any], config: SyncConfig, emr: EmrClient) -> None:
        self.services = services
        self.settings = services.settings
        self.store = services.sync_store
        self.repo = services.repo
        self.ehr_id = ehr_row["id"]
        self.config = config
        self.emr = emr
        self.counts = DeliveryCounts()
        #: Types whose conditional create the EMR cannot evaluate (no ``identifier`` search on them): created with
        #: ``PUT [type]/[mECR's id]`` instead — as idempotent, where the EMR allows update-as-create.
        self.put_create: set[str] = set()
        #: ``(type, local id)`` -> the EMR's id, as found during this run (links, pulled copies, this run's pushes).
        self._remote: dict[tuple[str, str], str | None] = {}
        #: What a batch's answers decided, written together when the batch is done (:meth:`_flush`).
        self._links: list[tuple[str, str, str, str | None, str | None]] = []
        self._finished: list[tuple[int, str, int | None, str | None]] = []

    # -- the run ------------------------------------------------------------------------------------------------

    async def run(self, *, budget_seconds: float = 60.0) -> DeliveryCounts:
        """Claim and deliver due rows until none is due, the EMR fails, or ``budget_seconds`` pass."""
        end = time.monotonic() + budget_seconds
        while time.monotonic() < end:
            rows = self.store.claim(
                self.ehr_id, self.settings.sync_push_batch_size, self.settings.sync_lease_seconds
            )
            if not rows:
                break
            try:
                await self._deliver(rows)
            except EmrUnavailable as exc:
                self._flush()
                still = self.store.claimed(r.id for r in rows)
                for row in rows:
                    if row.id in still:
                        self._transient(row, exc)
                break
            finally:
                self._flush()
        log.info("push ehr=%s %s", self.ehr_id, self.counts.line())
        return self.counts

    def _flush(self) -> None:
        """Record the batch's links and finished rows in one transaction."""
        links, finished = self._links, self._finished
        self._links, self._finished = [], []
        self.store.record_pushes(self.ehr_id, links, finished)

    def _finish(
        self, row: OutboxRow, state: str, *, status: int | None = None, detail: str | None = None
    ) -> None:
        self._finished.append((row.id, state, status, detail))

    def _link(self, row: OutboxRow, remote_id: str, version: str | None, pushed_hash: str | None) -> None:
        self._links.append((row.res_type, row.res_id, remote_id, version, pushed_hash))
        self._remote[(row.res_type, row.res_id)] = remote_id

    async def _deliver(self, rows: list[OutboxRow]) -> None:
        items = self._prepare(rows)
        waiting = items
        for n in range(4):  # referred-to resources first (a chain deeper than 4 goes out in the last pass)
            if not waiting:
                break
            pending_keys = {(i.row.res_type, i.row.res_id) for i in waiting}
            ready = [
                i
                for i in waiting
                if not (self._targets(i) & (pending_keys - {(i.row.res_type, i.row.res_id)}))
            ]
            if not ready or n == 3:
                ready = waiting
            for item in ready:
                item.body = None  # map references now, with the links the previous pass made
            await self._send([i for i in ready if self._build(i)])
            sent = {id(i) for i in ready}
            waiting = [i for i in waiting if id(i) not in sent]

    # -- one row ----------------------------------------------------------------------------------------------

    def _prepare(self, rows: list[OutboxRow]) -> list[_Item]:
        """Read the batch's resources and links (a few statements for the whole batch), skip what is not pushed."""
        by_type: dict[str, list[str]] = {}
        for row in rows:
            by_type.setdefault(row.res_type, []).append(row.res_id)
        current: dict[tuple[str, str], dict[str, Any]] = {}
        with self.repo.unit(write=False) as uow:
            for t, ids in by_type.items():
                for n in range(0, len(ids), 500):
                    query = parse_search(
                        t, [("_id", ",".join(ids[n : n + 500]))], default_count=1000, max_count=1000
                    )
                    current.update(((t, s.id), s.content) for s in uow.search(query).matches)
        # Not found: deleted in mECR (a delete to push when it was pushed before).
        contents = {row.id: current.get((row.res_type, row.res_id)) for row in rows}
        links = {
            (t, i): link
            for t, ids in by_type.items()
            for i, link in self.store.links(self.ehr_id, t, ids).items()
        }
        patients = {
            p
            for c in contents.values()
            if c is not None
            for p in compartment_patients(c, self.settings.fhir_base)
        }
        self._lookup("Patient", patients)
        items = []
        for row in rows:
            content, link = contents[row.id], links.get((row.res_type, row.res_id))
            if content is None and link is None:
                self._skip(row, "deleted before it was pushed")
            elif content is not None and ehr_owned(content):
                self._skip(row, "pulled from an EMR: not pushed back")
            elif content is not None and any(
                self._remote_id("Patient", p) is None
                for p in compartment_patients(content, self.settings.fhir_base)
            ):
                self._skip(row, f"the patient is not linked to EHR {self.ehr_id}")
            else:
                items.append(_Item(row, content, link=link))
        return items

    def _skip(self, row: OutboxRow, detail: str) -> None:
        self._finish(row, "skipped", detail=detail)
        self.counts.skipped += 1

    def _lookup(self, rtype: str, ids: set[str]) -> None:
        """Fill the cache of EMR ids of these local resources from their links (one statement)."""
        todo = [i for i in ids if (rtype, i) not in self._remote]
        if todo:
            found = self.store.links(self.ehr_id, rtype, todo)
            for i, link in found.items():
                self._remote[(rtype, i)] = str(link.remote_id)

    def _targets(self, item: _Item) -> set[tuple[str, str]]:
        from ..store.references import local_references

        if item.content is None:
            return set()
        return {(t, i) for _, t, i in local_references(item.content, self.settings.fhir_base)}

    def _remote_id(self, rtype: str, rid: str) -> str | None:
        key = (rtype, rid)
        if key in self._remote:
            return self._remote[key]
        link = self.store.links(self.ehr_id, rtype, [rid]).get(rid)
        found: str | None = str(link.remote_id) if link is not None else None
        if (
            found is None
        ):  # a pulled copy (or a Patient linked by a launch) names its EMR id in its link identifier
            try:
                content = self.repo.read(rtype, rid).content or {}
            except FhirError:
                content = {}
            system = link_system(self.ehr_id, rtype)
            found = next(
                (
                    str(i["value"])
                    for i in content.get("identifier") or []
                    if isinstance(i, dict) and i.get("system") == system and i.get("value")
                ),
                None,
            )
        if found is not None or rtype == "Patient":  # others may be pushed later in this run
            self._remote[key] = found
        return found

    def _build(self, item: _Item) -> bool:
        if item.content is None:
            return True

        def resolve(t: str, i: str) -> str | None:
            remote = self._remote_id(t, i)
            return f"{t}/{remote}" if remote is not None else None

        item.body = push_body(
            item.content,
            identifier_system=self.settings.push_identifier_system,
            mecr_base=self.settings.fhir_base,
            resolve=resolve,
            remote_id=str(item.link.remote_id) if item.link is not None else None,
        )
        item.hash = content_hash(item.body)
        if item.link is not None and item.link.pushed_hash == item.hash and not self._forced(item):
            self._finish(item.row, "done", detail="unchanged since the last push")
            self.counts.unchanged += 1
            return False
        return True

    @staticmethod
    def _forced(item: _Item) -> bool:
        return item.row.detail == RETRIED and item.row.last_status == 412

    def _request(self, item: _Item) -> dict[str, Any]:
        rtype = item.row.res_type
        if item.content is None:
            return {"method": "DELETE", "url": f"{rtype}/{item.link.remote_id}"}
        if item.link is None and rtype in self.put_create:
            return {"method": "PUT", "url": f"{rtype}/{item.row.res_id}"}
        if item.link is None:
            value = f"{rtype}/{item.row.res_id}"
            return {
                "method": "POST",
                "url": rtype,
                "ifNoneExist": f"identifier={self.settings.push_identifier_system}|{value}",
            }
        request = {"method": "PUT", "url": f"{rtype}/{item.link.remote_id}"}
        if item.link.remote_version:
            request["ifMatch"] = f'W/"{item.link.remote_version}"'
        return request

    # -- sending ------------------------------------------------------------------------------------------------

    async def _send(self, items: list[_Item]) -> None:
        if not items:
            return
        if self.config.batch and len(items) > 1:
            bundle = {
                "resourceType": "Bundle",
                "type": "batch",
                "entry": [
                    {**({"resource": i.body} if i.body is not None else {}), "request": self._request(i)}
                    for i in items
                ],
            }
            response = await self.emr.send("POST", "", what=f"EHR {self.ehr_id}: push batch", json=bundle)
            if response.status_code == 412:
                check(response, f"EHR {self.ehr_id}: push batch")
            answer = response.json()
            entries = answer.get("entry") or [] if isinstance(answer, dict) else []
            if len(entries) != len(items):
                raise EmrUnavailable(
                    f"EHR {self.ehr_id}: the batch response has {len(entries)} entries, not {len(items)}"
                )
            for item, entry in zip(items, entries, strict=True):
                result = entry.get("response") or {}
                status = int(str(result.get("status", "0")).split()[0] or 0)
                await self._handle(
                    item,
                    status,
                    result.get("location"),
                    result.get("etag"),
                    result.get("outcome"),
                    entry.get("resource"),
                    None,
                )
            return
        for item in items:
            request = self._request(item)
            headers = {}
            if "ifNoneExist" in request:
                headers["If-None-Exist"] = request["ifNoneExist"]
            if "ifMatch" in request:
                headers["If-Match"] = request["ifMatch"]
            try:
                response = await self.emr.send(
                    request["method"],
                    request["url"],
                    what=f"EHR {self.ehr_id}: push",
                    json=item.body,
                    headers=headers,
                )
            except EmrRefused as exc:
                await self._handle(item, exc.status or 400, None, None, exc.outcome, None, None)
                continue
            body = _json_or_none(response)
            await self._handle(
                item,
                response.status_code,
                response.headers.get("location"),
                response.headers.get("etag"),
                body if _is_outcome(body) else None,
                None if _is_outcome(body) else body,
                response.headers.get("retry-after"),
            )

    async def _handle(
        self,
        item: _Item,
        status: int,
        location: str | None,
        etag: str | None,
        outcome: Any,
        resource: Any,
        retry_after: str | None,
    ) -> None:
        row = item.row
        if 200 <= status < 300:
            if item.content is None:
                self._finish(row, "done", status=status, detail="deleted in the EMR")
                self.counts.delivered += 1
                return
            remote_id, version = _where(location, etag, resource)
            if remote_id is None:
                raise EmrUnavailable(f"EHR {self.ehr_id}: a push answer names no resource")
            if (
                item.link is None
                and status == 200
                and isinstance(resource, dict)
                and resource.get("id")
                and not same_content(resource, item.body or {})
            ):
                # The conditional create found an earlier push whose content is older: update it next.
                self.store.put_link(
                    self.ehr_id,
                    row.res_type,
                    row.res_id,
                    direction="push",
                    remote_id=remote_id,
                    remote_version=version,
                    pushed_hash=None,
                )
                self._remote[(row.res_type, row.res_id)] = remote_id
                self.store.reschedule(
                    row.id, int(time.time()), row.attempts, status=status, detail="created earlier; updating"
                )
                self.counts.retried += 1
                return
            self._link(row, remote_id, version, item.hash)
            self._finish(row, "done", status=status)
            self.counts.delivered += 1
            return
        if status == 412 and item.link is not None:
            await self._conflict(item)
            return
        if status in (404, 410) and item.content is None:
            self._finish(row, "done", status=status, detail="already gone in the EMR")
            self.counts.delivered += 1
            return
        if status in (408, 425, 429, 401) or status >= 500 or status == 0:
            self._transient(row, EmrUnavailable("push", status, None, _seconds(retry_after)))
            return
        if (
            status == 400
            and item.link is None
            and row.res_type not in self.put_create
            and _criteria_refused(outcome)
        ):
            self.put_create.add(row.res_type)
            if item.body is not None:
                item.body = {**item.body, "id": row.res_id}
            await self._send([item])
            return
        detail = "deleted in the EMR" if status in (404, 410) else f"the EMR refused it ({status})"
        self._park(row, status, detail, outcome)

    async def _conflict(self, item: _Item) -> None:
        """A 412: re-read the EMR's copy and decide (module docstring)."""
        row, link = item.row, item.link
        what = f"EHR {self.ehr_id}: re-read after 412"
        try:
            response = await self.emr.send("GET", f"{row.res_type}/{link.remote_id}", what=what)
        except EmrRefused as exc:
            self._park(row, exc.status or 404, "deleted in the EMR", exc.outcome)
            return
        remote = response.json()
        version = str((remote.get("meta") or {}).get("versionId") or "") or None
        if same_content(remote, item.body or {}):  # what mECR wanted is there: a response was lost
            self.store.put_link(
                self.ehr_id,
                row.res_type,
                row.res_id,
                direction="push",
                remote_id=link.remote_id,
                remote_version=version,
                pushed_hash=item.hash,
            )
            self.store.finish(row.id, "done", status=200, detail="already in the EMR")
            self.counts.delivered += 1
            return
        if content_hash(remote) == link.pushed_hash or self._forced(item):
            # Only the EMR's version moved (or an administrator chose mECR's copy): apply it on the new version.
            self.store.put_link(
                self.ehr_id,
                row.res_type,
                row.res_id,
                direction="push",
                remote_id=link.remote_id,
                remote_version=version,
                pushed_hash=link.pushed_hash,
            )
            headers = {"If-Match": f'W/"{version}"'} if version else {}
            response = await self.emr.send(
                "PUT", f"{row.res_type}/{link.remote_id}", what=what, json=item.body, headers=headers
            )
            if response.status_code < 300:
                _, new_version = _where(None, response.headers.get("etag"), _json_or_none(response))
                self.store.put_link(
                    self.ehr_id,
                    row.res_type,
                    row.res_id,
                    direction="push",
                    remote_id=link.remote_id,
                    remote_version=new_version or version,
                    pushed_hash=item.hash,
                )
                self.store.finish(row.id, "done", status=response.status_code)
                self.counts.delivered += 1
                return
        self._park(
            row, 412, "changed in the EMR since mECR last pushed it; retry to overwrite it with mECR's", None
        )

    # -- outcomes -----------------------------------------------------------------------------------------------

    def _transient(self, row: OutboxRow, exc: EmrUnavailable) -> None:
        if backoff(self.services, row, exc):
            self.counts.retried += 1
        else:
            self.counts.parked += 1

    def _park(self, row: OutboxRow, status: int, detail: str, outcome: Any) -> None:
        park(self.services, row, status, detail, outcome)
        self.counts.parked += 1


def park(services: Any, row: OutboxRow, status: int, detail: str, outcome: Any) -> None:
    """Park a row for an administrator, with the EMR's status and OperationOutcome."""
    services.sync_store.finish(
        row.id, "parked", status=status, detail=detail, outcome=json.dumps(outcome) if outcome else None
    )


def backoff(services: Any, row: OutboxRow, exc: EmrUnavailable) -> bool:
    """A passing failure: the row is due again after the backoff (True), or parked after the last attempt."""
    settings = services.settings
    attempts = row.attempts + 1
    if attempts >= settings.sync_max_attempts:
        park(services, row, exc.status or 0, f"gave up after {attempts} attempts ({exc})", exc.outcome)
        return False
    ceiling = min(settings.sync_retry_max_seconds, settings.sync_retry_base_seconds * 2 ** (attempts - 1))
    delay = max(ceiling / 2 + random.uniform(0, ceiling / 2), exc.retry_after or 0)
    services.sync_store.reschedule(
        row.id,
        int(time.time() + delay + 0.999),
        attempts,
        status=exc.status,
        detail=f"attempt {attempts} failed ({exc.status or 'no answer'})",
    )
    return True


def _criteria_refused(outcome: Any) -> bool:
    """Does a 400 say the EMR cannot evaluate the conditional create's criteria (an unsupported parameter)?"""
    if not isinstance(outcome, dict):
        return False
    for i in outcome.get("issue") or []:
        text = str(i.get("diagnostics") or "").lower()
        if i.get("code") == "not-supported" or "search parameter" in text or "ifnoneexist" in text:
            return True
    return False


def _json_or_none(response: Any) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _is_outcome(body: Any) -> bool:
    return isinstance(body, dict) and body.get("resourceType") == "OperationOutcome"


def _seconds(value: str | None) -> float | None:
    from .client import retry_after_seconds

    return retry_after_seconds(value)


def _where(location: str | None, etag: str | None, resource: Any) -> tuple[str | None, str | None]:
    """The EMR id and version a write answer names (``Location``, ``ETag``, or the returned resource)."""
    remote_id = version = None
    if isinstance(resource, dict) and resource.get("id"):
        remote_id = str(resource["id"])
        version = str((resource.get("meta") or {}).get("versionId") or "") or None
    if location:
        m = _LOCATION.search(location.split("?", 1)[0])
        if m:
            remote_id = remote_id or m.group(2)
            version = version or m.group(3)
    if etag and not version:
        version = etag.strip().removeprefix("W/").strip('"') or None
    return remote_id, version
