"""Refreshing the kept coaching views soon after a write (docs/architecture.md, "Kept views").

A write hook asks the job runner for a ``refresh_views`` run a second after any committed write of what a
coaching view is computed from (Patient, Goal, CarePlan, Observation, Communication, Encounter, ServiceRequest,
Task), at most once a second per process: the worker recomputes the views the write made stale, so a coach who
opens the patient a few seconds after a check-in, or in the morning after the nightly import, reads kept views.
The job's own lease keeps one refresh running at a time; the minute's tick refreshes whatever a burst of writes
left. With ``MECR_JOB_STORE=immediate`` (tests) nothing is enqueued: refreshing inline would put a view's cost
into every write.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

__all__ = ["refresh_hook", "VIEW_SOURCES", "DEBOUNCE_SECONDS"]

log = logging.getLogger("mecr.sync")

#: The types whose writes change what a coaching view or a caseload row shows.
VIEW_SOURCES = frozenset(
    {"Patient", "Goal", "CarePlan", "Observation", "Communication", "Encounter", "ServiceRequest", "Task"}
)
DEBOUNCE_SECONDS = 1.0


def refresh_hook(jobs: Any) -> Callable[[Any, list[Any]], Callable[[], None] | None]:
    """The write hook (see the module docstring) for the job runner ``jobs``."""
    lock = threading.Lock()
    last = [float("-inf")]

    def after_commit() -> None:
        now = time.monotonic()
        with lock:
            if now - last[0] < DEBOUNCE_SECONDS:
                return  # the run enqueued within the last second starts after this write committed
            last[0] = now
        try:
            jobs.enqueue("refresh_views", delay=DEBOUNCE_SECONDS)
        except Exception as exc:  # noqa: BLE001 - the write is committed; the minute's tick refreshes the views
            log.warning("refresh_views not enqueued: %s", type(exc).__name__)

    def hook(_uow: Any, changes: list[Any]) -> Callable[[], None] | None:
        if jobs.immediate or not any(c.resource_type in VIEW_SOURCES for c in changes):
            return None
        return after_commit

    return hook
