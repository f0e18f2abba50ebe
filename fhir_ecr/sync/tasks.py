"""The jobs the job runner (:mod:`fhir_ecr.jobs`) runs, each ``job(services, *args)``; ``mecr sync pull|push`` run
the same functions in the foreground.

- ``pull(ehr)``: a paged pull of every configured type (a type the EMR refuses is recorded on its mark and the
  others go on), or the kick-off of a Bulk Data export and its first polls (then ``bulk_poll``);
- ``bulk_poll(ehr)``: polls the EMR's export: a wait of up to ``SHORT_WAIT`` seconds (its ``Retry-After``) is
  slept here, up to ``WAIT_BUDGET`` seconds a job, so that the scheduler's own delay (huey looks at its schedule
  every second, and an idle worker at the queue every 2 s at most) is not added to every poll; a longer wait
  schedules the job again. Once the export is ready, downloads and loads it;
- ``deliver(ehr)``: push due outbox rows; schedules itself again for the next row that falls due;
- ``export(job)``: run one of mECR's own Bulk Data exports (:mod:`fhir_ecr.bulk`);
- ``refresh_views()``: recompute the kept coaching views (the caseload's glances and the summaries) whose data or
  local day changed (:meth:`~fhir_ecr.coaching.views.CoachingViews.refresh_kept`), so the coach's first view after
  a nightly import reads them instead of computing them; at most ``REFRESH_BUDGET`` seconds a run;
- ``tick()``: every minute and when a worker starts: due pulls, due outbox rows, exports to resume, expired export
  files to delete, old delivered outbox rows to forget, and a ``refresh_views``.

A pull of one EMR never runs twice at once: it holds a lease in the store (a worker that dies lets it run out).
A passing EMR failure makes huey retry the job (at the EMR's Retry-After when it gave one); a permanent one is
recorded on the EMR's marks for the status page and not retried.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from typing import Any

from ..heap import collector_aside
from .bulk_pull import BULK_MARK, kick_off, poll
from .client import EmrError, EmrRefused, EmrUnavailable
from .pull import Loader, PullCounts, pull_type
from .push import Deliverer, DeliveryCounts, backoff
from .service import SyncService

__all__ = ["pull", "bulk_poll", "deliver", "export", "refresh_views", "tick", "pull_now", "deliver_now"]

log = logging.getLogger("mecr.sync")


def _holder() -> str:
    return f"{os.getpid()}:{threading.get_ident()}"


def _record_error(services: Any, ehr_id: str, types: list[str], exc: EmrError) -> None:
    text = f"{type(exc).__name__}: {exc}"[:500]
    for rtype in types:
        services.sync_store.put_mark(ehr_id, rtype, last_error=text)
    log.warning("pull ehr=%s failed: %s status=%s", ehr_id, type(exc).__name__, exc.status)


def _retry(services: Any, exc: EmrUnavailable) -> Exception:
    if exc.retry_after is not None:
        retry: Exception = services.jobs.retry_in(exc.retry_after)
        return retry
    return exc


def pull(services: Any, ehr_id: str, full: bool = False, schedule: bool = True) -> PullCounts | None:
    """The ``pull`` job (see the module docstring); None when another worker is pulling this EMR."""
    sync: SyncService = services.sync
    row, config = sync.ehr(ehr_id)
    lease = f"pull:{ehr_id}"
    if not services.sync_store.lease(lease, _holder(), services.settings.sync_lease_seconds * 10):
        log.info("pull ehr=%s skipped: another worker is pulling it", ehr_id)
        return None
    types = [BULK_MARK] if config.mode == "bulk" else config.pull_types
    try:

        async def run() -> tuple[float | None, PullCounts]:
            emr = await sync.emr(row, config)
            loader = Loader(services, ehr_id, emr)
            if config.mode == "bulk":  # the first polls too, while the EMR asks for short waits
                return await _poll(services, loader, config, await kick_off(loader, config, full=full))
            total = PullCounts()
            for spec in config.pull:
                try:
                    total.add(
                        await pull_type(
                            loader,
                            spec,
                            page_size=services.settings.sync_page_size,
                            overlap_seconds=services.settings.sync_pull_overlap_seconds,
                            full=full,
                        )
                    )
                except EmrRefused as exc:  # e.g. a type this EMR does not serve: the other types go on
                    _record_error(services, ehr_id, [spec.type], exc)
            return None, total

        with collector_aside():  # a load allocates millions of short-lived objects (fhir_ecr/heap.py)
            wait, counts = sync.run(run)
    except EmrUnavailable as exc:
        _record_error(services, ehr_id, types, exc)
        raise _retry(services, exc) from exc
    except EmrRefused as exc:
        _record_error(services, ehr_id, types, exc)
        if config.mode == "bulk":  # the kick-off or a poll refused: the next pull starts afresh
            services.sync_store.put_mark(ehr_id, BULK_MARK, state=None)
        return None
    finally:
        services.sync_store.release(lease, _holder())
    if wait is not None and schedule:
        services.jobs.enqueue("bulk_poll", ehr_id, delay=wait)
    if schedule and counts.created + counts.updated + counts.deleted:
        services.jobs.enqueue("refresh_views")  # what the coach sees of the pulled patients
    return counts


#: A status poll's wait (the EMR's Retry-After) that the ``bulk_poll`` job sleeps itself, and its seconds of such
#: sleep at most; a longer wait goes back to the scheduler, and the worker thread to other jobs.
SHORT_WAIT = 5.0
WAIT_BUDGET = 30.0


async def _poll(
    services: Any, loader: Loader, config: Any, wait: float | None
) -> tuple[float | None, PullCounts]:
    """Poll the export under way after ``wait`` seconds, and again while the EMR asks for short waits (at most
    ``SHORT_WAIT`` each, ``WAIT_BUDGET`` in all); ``(seconds until the next poll, counts)``, None once loaded."""
    slept, counts = 0.0, PullCounts()
    while wait is not None and wait <= SHORT_WAIT and slept + wait <= WAIT_BUDGET:
        await asyncio.sleep(wait)
        slept += wait
        wait, counts = await poll(loader, config, batch_size=services.settings.sync_batch_size)
    return wait, counts


def bulk_poll(services: Any, ehr_id: str, schedule: bool = True) -> tuple[float | None, PullCounts] | None:
    """The ``bulk_poll`` job: polls (short waits slept here, see the module docstring); schedules the next poll
    while the EMR is at work; ``(seconds until the next poll, counts)``, or None when another worker pulls."""
    sync: SyncService = services.sync
    row, config = sync.ehr(ehr_id)
    lease = f"pull:{ehr_id}"
    if not services.sync_store.lease(lease, _holder(), services.settings.sync_lease_seconds * 10):
        return None
    try:

        async def run() -> tuple[float | None, PullCounts]:
            emr = await sync.emr(row, config)
            return await _poll(services, Loader(services, ehr_id, emr), config, 0.0)

        with collector_aside():  # the export's files are loaded here (fhir_ecr/heap.py)
            wait, counts = sync.run(run)
    except EmrUnavailable as exc:
        _record_error(services, ehr_id, [BULK_MARK], exc)
        raise _retry(services, exc) from exc
    except EmrRefused as exc:
        _record_error(services, ehr_id, [BULK_MARK], exc)
        services.sync_store.put_mark(ehr_id, BULK_MARK, state=None)  # start afresh next time
        return None
    finally:
        services.sync_store.release(lease, _holder())
    if wait is not None and schedule:
        services.jobs.enqueue("bulk_poll", ehr_id, delay=wait)
    return wait, counts


def deliver(services: Any, ehr_id: str) -> DeliveryCounts:
    """The ``deliver`` job: push the EMR's due outbox rows; come back when the next one falls due."""
    sync: SyncService = services.sync
    row, config = sync.ehr(ehr_id)

    async def run() -> DeliveryCounts:
        try:
            emr = await sync.emr(row, config)
        except EmrUnavailable as exc:  # no token, no discovery: every due row waits its backoff
            counts = DeliveryCounts()
            for r in services.sync_store.claim(
                ehr_id, services.settings.sync_push_batch_size, services.settings.sync_lease_seconds
            ):
                counts.retried += backoff(services, r, exc)
            log.warning("push ehr=%s failed: %s", ehr_id, type(exc).__name__)
            return counts
        return await Deliverer(services, row, config, emr).run()

    counts = sync.run(run)
    due = services.sync_store.next_due(ehr_id)
    if due is not None:
        services.jobs.enqueue("deliver", ehr_id, delay=max(0.0, due - time.time()))
    return counts


def export(services: Any, job_id: str) -> None:
    """The ``export`` job: one of mECR's own Bulk Data exports."""
    from ..bulk.export import run_export

    run_export(services, job_id)


#: Seconds of one ``refresh_views`` run (the next tick goes on where it stopped).
REFRESH_BUDGET = 50.0


def refresh_views(services: Any, budget_seconds: float = REFRESH_BUDGET) -> tuple[int, int] | None:
    """The ``refresh_views`` job: (patients refreshed, patients left for the next run), or None when another
    worker is refreshing."""
    from ..coaching.service import CoachingService

    lease = "refresh_views"
    if not services.sync_store.lease(lease, _holder(), int(budget_seconds) + 60):
        return None
    try:
        started = time.monotonic()
        service = CoachingService(services.repo, default_tz=services.settings.default_time_zone)
        done, left = service.refresh_kept(budget_seconds, overview_series=services.kept_overview_series)
        if done and not left:  # then what is drawn from them (the caseload's rows of its recent viewers)
            for refresher in services.view_refreshers:
                refresher(services)
    finally:
        services.sync_store.release(lease, _holder())
    if done or left:
        log.info("refresh_views refreshed=%d left=%d seconds=%.1f", done, left, time.monotonic() - started)
    return done, left


def tick(services: Any) -> None:
    """The minute's housekeeping (see the module docstring)."""
    now = int(time.time())
    store = services.sync_store
    for row, config in services.sync.configured():
        if not config.enabled or config.interval_minutes <= 0:
            continue
        started = [m["last_started"] for m in store.marks(row["id"]) if m.get("last_started")]
        if not started or now - max(started) >= config.interval_minutes * 60:
            services.jobs.enqueue("pull", row["id"])
        if _under_way(services, row["id"]):
            services.jobs.enqueue("bulk_poll", row["id"])
    for ehr_id in store.due_ehrs(now):
        services.jobs.enqueue("deliver", ehr_id)
    from ..bulk.export import housekeeping

    housekeeping(services)
    store.purge_outbox(now - 7 * 86400)
    services.jobs.enqueue("refresh_views")


# -- the foreground (``mecr sync pull|push``) ----------------------------------------------------------------------


def pull_now(services: Any, ehr_id: str, full: bool = False, wait: bool = True) -> PullCounts | None:
    """Pull now in this process; a Bulk Data pull is polled here (sleeping at the EMR's Retry-After)."""
    counts = pull(services, ehr_id, full, schedule=not wait)
    _, config = services.sync.ehr(ehr_id)
    if config.mode != "bulk" or not wait or counts is None or not _under_way(services, ehr_id):
        return counts
    while True:
        result = bulk_poll(services, ehr_id, schedule=False)
        if result is None:
            return None
        delay, counts = result
        if delay is None:
            return counts
        time.sleep(min(delay, 120.0))


def _under_way(services: Any, ehr_id: str) -> bool:
    """Is a Bulk Data export of the EMR under way (kicked off, not yet loaded)?"""
    mark = services.sync_store.mark(ehr_id, BULK_MARK)
    return bool(mark and mark.get("state"))


def deliver_now(services: Any, ehr_id: str) -> DeliveryCounts:
    sync: SyncService = services.sync
    row, config = sync.ehr(ehr_id)

    async def run() -> DeliveryCounts:
        return await Deliverer(services, row, config, await sync.emr(row, config)).run(budget_seconds=3600)

    return sync.run(run)
