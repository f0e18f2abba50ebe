"""The audit trail: ``AuditEvent``s for each request that read or wrote patient data (or was refused).

Who (the agent: the practitioner, patient or client, with the network address), what (the entities: the
patient and the resources of theirs touched, capped — one event per patient, so each event lies in one patient's
compartment: the patient can read who looked at their record, and nothing about anyone else), when
(``recorded``), the outcome (0 success, 4 refused or failed) and the action (C R U D, E for operations). Events are written by one background thread in batches, through
the unguarded repository, so auditing never slows or fails the request it records; they are flushed at shutdown.
AuditEvent is read-only through the API.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from datetime import UTC, datetime
from typing import Any

from ..store.indexer import IndexTemplate
from .access import Access

__all__ = ["AuditTrail", "audit_events"]

log = logging.getLogger("mecr.audit")

_ACTION = {"c": "C", "r": "R", "u": "U", "d": "D", "s": "R", "e": "E"}
_SUBTYPE = {"GET": "read", "POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}
MAX_ENTITIES = 100
_ENTITY_TYPE = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
#: What the events of one request differ in (each its patient's entities and action; the store's id and meta): the
#: rest is indexed once per request (:class:`~fhir_ecr.store.indexer.IndexTemplate`).
_PER_PATIENT = ("entity", "action", "id", "meta")


def audit_events(
    access: Access,
    *,
    method: str,
    route: str,
    status: int,
    address: str | None,
    recorded: datetime | None = None,
) -> list[dict[str, Any]]:
    """The AuditEvents for one request: one per patient whose data it touched (each names that patient only,
    so the event a patient can read in their record says nothing of anyone else — a coach's caseload view writes
    one per patient), one for what touched no patient's data, and one for a refusal. None when the request
    touched no data and was not refused."""
    p = access.principal
    if p is None or p.kind == "developer" or (not access.touched_by_patient and not access.denied):
        return []
    buckets = dict(access.touched_by_patient)
    own = p.patient_id if p.kind == "patient" and p.patient_id else ""
    if access.unseen or not buckets:
        buckets.setdefault(own, {})
    # The request's events differ only in their patient's part (_PER_PATIENT): the rest is built once, at one
    # moment, and shared by them (events are written as they are, never changed).
    when = (recorded or datetime.now(UTC)).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    shared = _event(access, "R", method, route, status, address, when)
    person = {"system": _ENTITY_TYPE, "code": "1", "display": "Person"}
    patient_role = {
        "system": "http://terminology.hl7.org/CodeSystem/object-role",
        "code": "1",
        "display": "Patient",
    }
    system_object = {"system": _ENTITY_TYPE, "code": "2", "display": "System Object"}
    events = []
    for pid, refs in sorted(buckets.items()):
        letters = set(refs.values())
        action = "E" if "$" in route else next((_ACTION[x] for x in "dcu" if x in letters), "R")
        entities: list[dict[str, Any]] = []
        if pid:
            entities.append({"what": {"reference": f"Patient/{pid}"}, "type": person, "role": patient_role})
        for ref in refs:
            if len(entities) >= MAX_ENTITIES:
                break
            if not ref.startswith("Patient/"):
                entities.append({"what": {"reference": ref}, "type": system_object})
        if pid == own:
            # What a confined caller asked for and may not see (or that does not exist: recorded alike), as
            # text, never as a reference: the event lies in the caller's record only.
            for letter, ref in access.unseen[:MAX_ENTITIES]:
                entities.append(
                    {
                        "type": system_object,
                        "description": f"{_SUBTYPE.get(method, 'read')} of {ref}: not found or not permitted",
                        "detail": [{"type": "action", "valueString": letter}],
                    }
                )
        event = {**shared, "action": action}  # the key keeps its place (the R4 element order)
        if entities:
            event["entity"] = entities
        events.append(event)
    return events


def _event(
    access: Access,
    action: str,
    method: str,
    route: str,
    status: int,
    address: str | None,
    when: str,
) -> dict[str, Any]:
    """An event's elements but its entities (its ``action`` is each event's own)."""
    p = access.principal
    assert p is not None
    if p.fhir_user:
        who: dict[str, Any] = {"reference": p.fhir_user, "display": p.display or p.fhir_user}
    else:
        who = {
            "identifier": {"system": "urn:mecr:client", "value": p.client_id or p.subject},
            "display": p.display or p.subject,
        }
    agent: dict[str, Any] = {"who": who, "requestor": True}
    if p.session_id:
        agent["altId"] = f"session:{p.session_id}"
    if address:
        agent["network"] = {"address": address, "type": "2"}
    event: dict[str, Any] = {
        "resourceType": "AuditEvent",
        "type": {
            "system": "http://terminology.hl7.org/CodeSystem/audit-event-type",
            "code": "rest",
            "display": "RESTful Operation",
        },
        "subtype": [
            {"system": "http://hl7.org/fhir/restful-interaction", "code": _SUBTYPE.get(method, "read")}
        ],
        "action": action,
        "recorded": when,
        "outcome": "0" if status < 400 else "4",
        "outcomeDesc": f"{method} {route} -> {status}",
        "agent": [agent],
        "source": {
            "observer": {"display": "mECR"},
            "type": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/security-source-type",
                    "code": "4",
                    "display": "Application Server",
                }
            ],
        },
    }
    return event


_FLUSH: Any = object()  # queued by flush(): write what is gathered now, without waiting out the linger


class AuditTrail:
    """Queues AuditEvents and writes them in batches on a background thread.

    After the first event of a batch the thread gathers for up to ``linger`` seconds (or ``batch`` events)
    before it writes, so a stream of requests costs one unit of work per ``linger``, not one per request: each
    unit is a transaction with its own round trips, and on a small machine its writing competes with the next
    request for the core. What is queued is written at the latest ``linger`` after it was recorded, and at once
    by :meth:`flush` and :meth:`close`. A request's events (:meth:`record_all`) are queued and written together,
    never split between units (a batch may exceed ``batch`` by one request's): one commit, and one index template.
    """

    def __init__(self, repo: Any, *, batch: int = 200, interval: float = 0.5, linger: float = 0.25) -> None:
        self.repo = repo
        self.batch = batch
        self.interval = interval
        self.linger = linger
        self._queue: queue.Queue[Any] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def record(self, event: dict[str, Any]) -> None:
        self.record_all([event])

    def record_all(self, events: list[dict[str, Any]]) -> None:
        """Queue one request's events (written in one unit)."""
        if not events:
            return
        self._queue.put(events)
        if self._thread is None or not self._thread.is_alive():
            with self._lock:
                if self._thread is None or not self._thread.is_alive():
                    self._thread = threading.Thread(target=self._run, name="mecr-audit", daemon=True)
                    self._thread.start()

    def _run(self) -> None:
        while True:
            try:
                first = self._queue.get(timeout=self.interval)
            except queue.Empty:
                continue
            if first is None:
                self._queue.task_done()
                return
            events = [] if first is _FLUSH else list(first)
            taken = 1
            stop = False
            deadline = time.monotonic() + self.linger
            while first is not _FLUSH and len(events) < self.batch:
                try:
                    nxt = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
                taken += 1
                if nxt is None:
                    stop = True
                    break
                if nxt is _FLUSH:
                    break
                events += nxt
            if events:
                self._write(events)
            for _ in range(taken):
                self._queue.task_done()
            if stop:
                return

    def _write(self, events: list[dict[str, Any]]) -> None:
        try:
            with self.repo.unit() as uow:
                template = IndexTemplate(_PER_PATIENT, uow.repo.fhir_base)
                for e in events:
                    uow.create(e, validated=True, template=template)  # built here, to the R4 AuditEvent shape
        except Exception as exc:  # the trail must not take the server down; the failure itself is logged
            log.error("could not write %d AuditEvents: %s", len(events), type(exc).__name__)

    def flush(self, timeout: float = 10.0) -> None:
        """Write every queued event now and wait until they are written."""
        if not self._queue.unfinished_tasks:
            return
        if self._thread is not None and self._thread.is_alive():
            self._queue.put(_FLUSH)
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.005)

    def close(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            self._queue.put(None)
            self._thread.join(10)
