"""The job runner: huey runs mECR's background jobs — EMR pulls on their schedules, outbox delivery, Bulk Data
export jobs — and their retries (docs/sync.md, the choice in docs/architecture.md).

One queue, chosen by ``MECR_JOB_STORE`` (:attr:`fhir_ecr.config.Settings.jobs_url`):

- ``sqlite:///…``: the embedded default, a SQLite file beside ``mecr.db``; ``mecr serve --with-worker`` runs the
  workers as threads of the server process;
- ``postgresql://…``: the store's own database (huey's tables in the schema ``mecr_jobs``); workers on several
  machines take jobs with ``SELECT … FOR UPDATE SKIP LOCKED``;
- ``redis://…``: a Redis server;
- ``immediate``: each job runs at once in the caller (tests, and the sandbox EHR's ``$export``).

The jobs are thin: they call into :mod:`fhir_ecr.sync.tasks` with the process's services (``refresh_views``
keeps the coaching views warm: :mod:`fhir_ecr.coaching.derived.kept`). Jobs that must not run
twice at once (one pull per EMR) take a lease in the store (:meth:`fhir_ecr.store.sync_store.SyncStore.lease`)
rather than a huey lock, which a killed worker would leave held on SQLite (no expiry there). Delivery and export keep their own progress in the store
(outbox rows, export jobs, high-water marks), so a worker killed at any point loses nothing: what it held is
claimed again when its lease runs out, and every worker enqueues one ``tick`` when it starts and every minute.

    runner = JobRunner(settings)
    runner.bind(services)              # the services jobs run with in this process
    runner.enqueue("pull", "epic")     # → fhir_ecr.sync.tasks.pull(services, "epic")
    runner.consumer(workers=2).run()   # `mecr worker`
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from typing import Any

from huey import Huey, MemoryHuey, PostgresHuey, RedisHuey, SqliteHuey, crontab
from huey.consumer import Consumer

__all__ = ["JobRunner", "EmbeddedConsumer", "JOBS"]

log = logging.getLogger("mecr.jobs")

#: Job name -> (huey task options). Each job calls ``fhir_ecr.sync.tasks.<name>(services, *args)``.
JOBS: dict[str, dict[str, Any]] = {
    # A pull resumes from its high-water mark; huey retries it after a failure (30 s, 60 s, 120 s, …).
    "pull": {"retries": 6, "retry_delay": 30, "retry_backoff": 2},
    # One poll of an EMR's Bulk Data export, rescheduled by the job itself at the EMR's Retry-After.
    "bulk_poll": {"retries": 6, "retry_delay": 30, "retry_backoff": 2},
    # Outbox rows carry their own attempts and backoff; a crash of the job itself is retried once.
    "deliver": {"retries": 1, "retry_delay": 30},
    "export": {"retries": 3, "retry_delay": 10, "retry_backoff": 3},
    # Kept coaching views: the next tick refreshes what a failed run left.
    "refresh_views": {"retries": 0},
}


def _libpq_dsn(url: str) -> str:
    """``postgresql+psycopg://u@h/db`` (SQLAlchemy) → ``postgresql://u@h/db`` (libpq)."""
    scheme, _, rest = url.partition("://")
    return f"{scheme.split('+', 1)[0]}://{rest}"


def _make_huey(url: str) -> Huey:
    options: dict[str, Any] = {"results": False, "utc": True}
    if url == "immediate":
        return MemoryHuey("mecr", immediate=True, **options)
    if url.startswith("sqlite"):
        return SqliteHuey("mecr", filename=url.split("///", 1)[1], **options)
    if url.startswith("postgresql"):
        import psycopg

        dsn = _libpq_dsn(url)
        with psycopg.connect(
            dsn, autocommit=True
        ) as conn:  # migration 0007 makes it; a separate queue DB may not
            conn.execute("CREATE SCHEMA IF NOT EXISTS mecr_jobs")
        return PostgresHuey("mecr", dsn=dsn, options="-c search_path=mecr_jobs", **options)
    if url.startswith(("redis://", "rediss://", "unix://")):
        return RedisHuey("mecr", url=url, **options)
    raise ValueError(
        f"MECR_JOB_STORE must be sqlite:///…, postgresql://…, redis://… or immediate, not {url!r}"
    )


class EmbeddedConsumer(Consumer):  # type: ignore[misc]
    """A consumer inside another program (``mecr serve --with-worker``): the host owns the signal handlers."""

    def _set_signal_handlers(self) -> None:
        pass


class JobRunner:
    """The huey instance of one process, its jobs, and the services they run with."""

    def __init__(self, settings: Any) -> None:
        self.settings = settings
        self.url = settings.jobs_url
        self._huey: Huey | None = None
        self._tasks: dict[str, Any] = {}
        self._services: Any = None
        self._lock = threading.Lock()

    # -- wiring -------------------------------------------------------------------------------------------------

    def bind(self, services: Any) -> None:
        """Run jobs with ``services`` in this process."""
        self._services = services

    @property
    def immediate(self) -> bool:
        return bool(self.url == "immediate")

    @property
    def huey(self) -> Huey:
        """The huey instance (created on first use, so commands that never enqueue never open the queue)."""
        with self._lock:
            if self._huey is None:
                self._huey = self._build()
            return self._huey

    def _build(self) -> Huey:
        huey = _make_huey(self.url)
        for name, options in JOBS.items():
            self._tasks[name] = huey.task(name=f"mecr.{name}", **options)(self._job(name))
        huey.periodic_task(crontab(minute="*"), name="mecr.tick")(self._job("tick"))
        self._tasks["tick_now"] = huey.task(name="mecr.tick_now")(self._job("tick"))
        return huey

    def _job(self, name: str) -> Callable[..., None]:
        def run(*args: Any) -> None:
            from .sync import tasks

            services = self._services
            if services is None:
                raise RuntimeError("JobRunner.bind(services) was not called in this process")
            getattr(tasks, name)(services, *args)

        run.__name__ = name
        return run

    # -- enqueueing ---------------------------------------------------------------------------------------------

    def enqueue(self, name: str, *args: Any, delay: float | None = None) -> None:
        """Run job ``name`` with ``args`` now (or after ``delay`` seconds) on a worker."""
        huey = self.huey
        task = self._tasks[name]
        if delay is not None and delay > 0 and not self.immediate:
            task.schedule(args, delay=delay)
        else:
            task(*args)
        del huey

    def retry_in(self, seconds: float) -> Exception:
        """The exception that makes huey run the current job again after ``seconds`` (an EMR's Retry-After)."""
        from huey.exceptions import RetryTask

        retry: Exception = RetryTask(delay=max(1, int(seconds + 0.999)))
        return retry

    # -- workers ------------------------------------------------------------------------------------------------

    def consumer(
        self, workers: int | None = None, *, embedded: bool = False, periodic: bool = True
    ) -> Consumer:
        """A huey consumer of this queue with ``workers`` threads (``MECR_WORKER_THREADS``); ``embedded``: for
        a thread of another program (no signal handlers). It enqueues one tick on start (crash recovery)."""
        if self.immediate:
            raise ValueError("MECR_JOB_STORE=immediate runs jobs in the caller; a worker needs a queue")
        cls = EmbeddedConsumer if embedded else Consumer
        consumer = cls(
            self.huey,
            workers=workers or self.settings.worker_threads,
            periodic=periodic,
            worker_type="thread",
            max_delay=2.0,
        )
        self.enqueue("tick_now")
        return consumer

    def pending(self) -> int:
        """Jobs waiting in the queue (for the status page)."""
        return 0 if self.immediate else int(self.huey.pending_count())

    def close(self) -> None:
        if self._huey is not None:
            with contextlib.suppress(Exception):  # closing is best effort
                self._huey.storage.close()
