"""A large transaction's resources validated in another process, beside the request that writes them.

Validating a resource (the ``fhir.resources`` models, the required bindings, the mECR profiles) is about half of
what a large transaction costs the server (docs/benchmarks.md), and it is Python work that holds the
interpreter, so a thread cannot run it beside the request. A worker process can: the transaction hands its
POST and PUT resources, in chunks, to a :class:`ValidationPool` whose worker runs the same validator, and its
unit of work writes them meanwhile without validating them in line (:meth:`UnitOfWork.prepare
<fhir_ecr.store.writes.UnitOfWork.prepare>` skips a resource this unit deferred). Before the unit ends — before
its references check, its write hooks and its COMMIT — the transaction waits for every answer
(:meth:`DeferredValidation.settle`). So nothing is stored that the validator refused, and the answer is the
one in-line validation gives: a resource the worker refused is validated again in the request, which raises
that error with that entry, for the first refused resource in the order the unit wrote them; when the unit
failed first for another reason (a scope check, a precondition, a conflict), a refused resource it had
already taken still comes first, exactly as in line, where its validation would have failed before the unit got
that far.

When: a transaction of at least :data:`MIN_RESOURCES` resources, when the pool is up and idle. A pool another
request is using means the cores are busy: validating in line is then as fast and copies nothing. The server
starts its pool when the app starts (:meth:`ValidationPool.start`, in the background: about 2 s for the
validator's imports and the IG's profiles, in a fresh interpreter, as ``spawn`` is safe beside the server's
threads); until a worker answers, transactions validate in line. The CLIs and the job workers of their own
never start one. ``MECR_VALIDATION_WORKERS=0`` turns it off (:class:`fhir_ecr.config.Settings`).

What it costs: the worker's memory (about 70 MB of PSS, and 7 MB for multiprocessing's resource tracker; the
server's memory figures in docs/benchmarks.md count both) and pickling each resource to it (under 1 µs). It makes
one large transaction faster on a machine with a core to spare; it adds no throughput to a machine whose cores
already serve other requests (two streams on ``--workers 2``: 5-16 % slower on this project's 2-core machine).
"""

from __future__ import annotations

import logging
import multiprocessing
import multiprocessing.connection
import os
import sys
import threading
import types
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import contextmanager
from typing import Any

__all__ = ["ValidationPool", "DeferredValidation", "MIN_RESOURCES", "CHUNK"]

log = logging.getLogger("mecr.store")

#: The fewest resources a transaction must write for its validation to go to the pool.
MIN_RESOURCES = 64
#: Resources per chunk sent to the workers; a chunk no worker has begun when the unit is ready to settle is
#: validated by the request itself (:meth:`DeferredValidation.refused`).
CHUNK = 64

Validator = Callable[[dict[str, Any]], None]

_validator: Validator | None = None  # the worker's


def _start_worker(factory: Callable[[], Validator]) -> None:
    global _validator
    _validator = factory()
    parent = multiprocessing.parent_process()
    if parent is not None:  # a server killed outright (SIGKILL, the OOM killer) leaves no worker behind
        threading.Thread(target=_exit_with, args=(parent.sentinel,), daemon=True).start()


def _exit_with(sentinel: int) -> None:
    multiprocessing.connection.wait([sentinel])  # ready when the parent process has ended
    os._exit(0)


def _ping() -> bool:
    return _validator is not None


def _refused(resources: list[dict[str, Any]]) -> list[int]:
    """The positions of the resources the worker's validator refuses (raises anything for)."""
    assert _validator is not None
    out = []
    for i, resource in enumerate(resources):
        try:
            _validator(resource)
        except Exception:  # noqa: BLE001 - the request validates it again and raises what it raises
            out.append(i)
    return out


@contextmanager
def _main_module_hidden() -> Iterator[None]:
    """``spawn`` imports the parent's ``__main__`` again in each worker ("safe importing of main module" in the
    multiprocessing docs): a script that serves mECR without the ``if __name__ == "__main__"`` guard would run
    again there, and the CLI would be loaded for nothing. A worker needs only this module, so the parent's main
    module is hidden while the workers start."""
    main = sys.modules["__main__"]
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        sys.modules["__main__"] = main


class ValidationPool:
    """Worker processes running ``factory()`` (a module-level function: it is pickled to each worker), started by
    :meth:`start`. One per process and validator (:meth:`shared`)."""

    _shared: dict[tuple[Callable[[], Validator], int], ValidationPool] = {}
    _shared_lock = threading.Lock()

    def __init__(self, factory: Callable[[], Validator], workers: int = 1) -> None:
        self.factory = factory
        self.workers = workers
        self._lock = threading.Lock()
        self._executor: ProcessPoolExecutor | None = None
        self._ready = False
        self._answered = threading.Event()  # the first worker answered (or failed to start)
        self._busy = 0  # units in flight
        #: Units whose validation this pool took (for tests and benchmarks).
        self.units = 0

    @classmethod
    def shared(cls, factory: Callable[[], Validator], workers: int = 1) -> ValidationPool:
        with cls._shared_lock:
            key = (factory, workers)
            if key not in cls._shared:
                cls._shared[key] = cls(factory, workers)
            return cls._shared[key]

    def start(self) -> None:
        """Start the workers, in the background: until one answers, :meth:`defer` declines (the unit validates in
        line). The app does this when it starts; otherwise only a broken pool starts itself again."""
        with self._lock:
            if self._executor is None:
                self._boot()

    def wait_ready(self, timeout: float) -> bool:
        """Whether the pool is up, waiting up to ``timeout`` seconds for its first worker (after :meth:`start`)."""
        self._answered.wait(timeout)
        return self._ready

    def _boot(self) -> None:
        """Start the workers (in the background) and mark the pool ready when one answers."""
        self._answered.clear()
        self._executor = ProcessPoolExecutor(
            max_workers=self.workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_start_worker,
            initargs=(self.factory,),
        )
        with _main_module_hidden():  # each submit below starts a worker while no other is idle
            pings = [self._executor.submit(_ping) for _ in range(self.workers)]

        def answered(f: Future[bool]) -> None:
            if f.exception() is None and f.result():
                self._ready = True
            else:  # the pool stays off: every transaction validates in line
                log.warning("the validation worker did not start: %s", type(f.exception()).__name__)
            self._answered.set()

        pings[0].add_done_callback(answered)

    def defer(self, resources: Sequence[dict[str, Any]]) -> DeferredValidation | None:
        """Send ``resources`` to the workers, or None (validate in line) when the pool is not started (:meth:`start`),
        not up yet, or busy."""
        broken = None
        with self._lock:
            if self._executor is None or not self._ready or self._busy:
                return None
            chunks = [list(resources[i : i + CHUNK]) for i in range(0, len(resources), CHUNK)]
            try:
                futures = [self._executor.submit(_refused, chunk) for chunk in chunks]
            except Exception:  # noqa: BLE001 - e.g. a worker died (BrokenProcessPool, the OOM killer)
                log.warning("a validation worker is gone; validating in line while new ones start")
                broken, self._ready = self._executor, False
                self._boot()  # in the background; a worker that cannot start leaves the pool off
            else:
                self._busy += 1
                self.units += 1
        if broken is not None:  # outside the lock: cancelling runs the futures' callbacks, which may take it
            broken.shutdown(wait=False, cancel_futures=True)
            return None
        return DeferredValidation(resources, futures, self._release)

    def _release(self) -> None:
        """A unit's answers are all in (or it gave up on them): the pool is free for the next."""
        with self._lock:
            self._busy -= 1

    def close(self) -> None:
        with self._lock:
            executor, self._executor, self._ready = self._executor, None, False
        if executor is not None:  # outside the lock: cancelling runs the units' callbacks, which take it
            executor.shutdown(wait=True, cancel_futures=True)


class DeferredValidation:
    """One unit's resources whose validation runs in the pool. :meth:`take` (from ``UnitOfWork.prepare``) says
    whether a resource is one of them, and notes the order the unit took them in; :meth:`settle` waits for the
    answers and raises what in-line validation would have raised first."""

    def __init__(
        self,
        resources: Sequence[dict[str, Any]],
        futures: list[Future[list[int]]],
        release: Callable[[], None] = lambda: None,
    ) -> None:
        self._resources = list(resources)  # held, so each id() below stays theirs
        self._position = {id(r): i for i, r in enumerate(self._resources)}
        self._futures = futures
        self._taken: list[int] = []
        self._refused: set[int] | None = None
        # the pool is told once that this unit is done with it: when the last answer is in, whether or not the
        # unit reads it (a unit interrupted before settling must not keep the pool busy)
        self._release, self._released, self._lock = release, False, threading.Lock()
        for f in futures:
            f.add_done_callback(self._answered)

    def _answered(self, _: Future[list[int]]) -> None:
        if all(f.done() for f in self._futures):
            self._release_once()

    def _release_once(self) -> None:
        with self._lock:
            if self._released:
                return
            self._released = True
        self._release()

    def take(self, resource: dict[str, Any]) -> bool:
        """Whether ``resource`` (this very object) is validated in the pool; the first call for it only."""
        i = self._position.pop(id(resource), None)
        if i is None:
            return False
        self._taken.append(i)
        return True

    def refused(self, check: Callable[[int, dict[str, Any]], None] | None = None) -> set[int]:
        """The positions refused (waits for every chunk). With ``check`` (raises for a resource it refuses), the
        chunks no worker has begun are taken back, last first, and checked here while the workers finish the
        others, so the request does not sit idle waiting for them. A worker that failed refuses its whole chunk:
        the request then validates those resources itself."""
        if self._refused is None:
            refused: set[int] = set()
            stolen: set[int] = set()
            while check is not None:
                n = next(
                    (
                        n
                        for n in reversed(range(len(self._futures)))
                        if n not in stolen and self._futures[n].cancel()
                    ),
                    None,
                )
                if n is None:
                    break
                stolen.add(n)
                for i in self._chunk(n):
                    try:
                        check(i, self._resources[i])
                    except Exception:  # noqa: BLE001 - settle validates it again, in the unit's order
                        refused.add(i)
            for n, f in enumerate(self._futures):
                if n in stolen:
                    continue
                try:
                    refused.update(n * CHUNK + i for i in f.result())
                except Exception:  # noqa: BLE001 - BrokenProcessPool, a pickling error...: validate in line
                    refused.update(self._chunk(n))
            self._refused = refused
            self._release_once()  # the callbacks run after result() returns: the next unit must not wait for them
        return self._refused

    def _chunk(self, n: int) -> range:
        """The positions of chunk ``n``'s resources."""
        return range(n * CHUNK, min((n + 1) * CHUNK, len(self._resources)))

    def settle(self, validate: Callable[[int, dict[str, Any]], None]) -> None:
        """Wait for the answers; for each refused resource the unit took, in the order it took them, call
        ``validate(position, resource)``, which raises the in-line error (and returns for a resource the worker
        refused and the request does not: the request's answer stands)."""
        refused = self.refused(validate)
        for i in self._taken:
            if i in refused:
                validate(i, self._resources[i])
