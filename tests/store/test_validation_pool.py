"""The validation pool's bookkeeping (fhir_ecr/store/validation_pool.py): which resources a unit deferred, in
which order it took them, and what settling raises. Answers are given by hand here; the real worker process is
tested end to end in tests/fhir/test_parallel_validation.py."""

from __future__ import annotations

from concurrent.futures import Future
from typing import Any

import pytest

from fhir_ecr.store.validation_pool import CHUNK, DeferredValidation, ValidationPool


def answered(refused: list[int] | BaseException) -> Future[list[int]]:
    f: Future[list[int]] = Future()
    if isinstance(refused, BaseException):
        f.set_exception(refused)
    else:
        f.set_result(refused)
    return f


def resources(n: int) -> list[dict[str, Any]]:
    return [{"resourceType": "Basic", "n": i} for i in range(n)]


def test_take_is_for_the_very_objects_deferred_and_once_each() -> None:
    rs = resources(3)
    d = DeferredValidation(rs, [answered([])])
    assert not d.take(dict(rs[0]))  # an equal copy is another resource: validated in line
    assert d.take(rs[1]) and d.take(rs[0])
    assert not d.take(rs[1])  # a second prepare of the same object validates in line


def test_settle_validates_the_refused_ones_in_the_order_taken() -> None:
    rs = resources(CHUNK + 10)
    d = DeferredValidation(rs, [answered([2, 5]), answered([3])])  # positions 2, 5 and CHUNK + 3
    for i in (CHUNK + 3, 0, 5, 1):  # the unit took these (processing order), not 2
        d.take(rs[i])
    seen: list[int] = []
    d.settle(lambda i, r: seen.append(i))
    assert seen == [CHUNK + 3, 5]


def test_settle_raises_the_first_refusal() -> None:
    rs = resources(4)
    d = DeferredValidation(rs, [answered([1, 3])])
    for r in rs:
        d.take(r)

    def validate(i: int, r: dict[str, Any]) -> None:
        raise ValueError(i)

    with pytest.raises(ValueError, match="1"):
        d.settle(validate)


def test_a_chunk_whose_worker_failed_is_validated_in_line() -> None:
    rs = resources(CHUNK + 2)
    d = DeferredValidation(rs, [answered(RuntimeError("worker died")), answered([])])
    for r in rs:
        d.take(r)
    assert d.refused() == set(range(CHUNK))
    seen: list[int] = []
    d.settle(lambda i, r: seen.append(i))
    assert seen == list(range(CHUNK))


def test_a_pool_not_started_or_not_up_defers_nothing() -> None:
    pool = ValidationPool(lambda: lambda r: None, workers=1)  # never submitted: nothing is pickled
    assert pool.defer(resources(100)) is None and pool._executor is None  # not started: never starts itself
    pool._boot = lambda: setattr(pool, "_executor", object())  # type: ignore[method-assign]
    pool.start()
    assert pool._executor is not None
    assert pool.defer(resources(100)) is None  # started, no worker has answered yet
    assert pool.units == 0


def test_a_busy_pool_defers_nothing() -> None:
    """Chunks of another request in flight: the cores are busy, so this one validates in line."""
    pool = ValidationPool(lambda: lambda r: None, workers=1)
    pool._executor, pool._ready, pool._busy = object(), True, 1  # type: ignore[assignment]
    assert pool.defer(resources(100)) is None and pool.units == 0


def test_chunks_no_worker_has_begun_are_checked_by_the_request() -> None:
    rs = resources(2 * CHUNK + 3)
    pending: list[Future[list[int]]] = [Future(), Future()]  # queued, not begun: they can be taken back
    released: list[bool] = []
    d = DeferredValidation(rs, [answered([1]), *pending], lambda: released.append(True))
    for r in rs:
        d.take(r)
    checked: list[int] = []

    def check(i: int, r: dict[str, Any]) -> None:
        checked.append(i)
        if i == CHUNK + 5:
            raise ValueError("refused here")

    assert d.refused(check) == {1, CHUNK + 5}
    assert checked == [*range(2 * CHUNK, 2 * CHUNK + 3), *range(CHUNK, 2 * CHUNK)]  # the last chunk first
    assert all(f.cancelled() for f in pending) and released == [True]  # the pool is told once


def test_a_server_killed_outright_leaves_no_worker_behind(tmp_path: Any) -> None:
    """A worker holds both ends of its task pipe, so it would wait forever once its parent is gone (SIGKILL,
    the OOM killer): it watches the parent and ends with it."""
    import signal
    import subprocess
    import sys
    import time

    script = tmp_path / "serve.py"
    script.write_text(
        "import time\n"
        "from fhir_ecr.conformance import standard_validator\n"
        "from fhir_ecr.store.validation_pool import ValidationPool\n"
        "pool = ValidationPool(standard_validator)\n"
        "pool.start()\n"
        "assert pool.wait_ready(120)\n"
        "print(*pool._executor._processes, flush=True)\n"
        "time.sleep(120)\n"
    )
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        workers = [int(pid) for pid in parent.stdout.readline().split()]  # type: ignore[union-attr]
        assert workers and all(_alive(pid) for pid in workers)
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait()
    deadline = time.monotonic() + 20
    while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(pid) for pid in workers)


def _alive(pid: int) -> bool:
    import os

    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:  # a zombie (ended, not yet reaped by init) counts as ended
        return f.read().split(") ", 1)[1][0] != "Z"


def test_the_default_is_one_worker_where_a_core_is_to_spare(monkeypatch: Any) -> None:
    from fhir_ecr.config import Settings

    monkeypatch.delenv("MECR_VALIDATION_WORKERS", raising=False)  # the suite sets 0 (tests/conftest.py)
    for cores, workers in ((1, 0), (2, 1), (16, 1), (None, 0)):
        monkeypatch.setattr("os.cpu_count", lambda cores=cores: cores)
        assert Settings(database_url="sqlite://").validation_workers == workers
    monkeypatch.setenv("MECR_VALIDATION_WORKERS", "3")
    assert Settings(database_url="sqlite://").validation_workers == 3


def test_a_server_starts_its_pool_with_the_app_and_stops_it_after(monkeypatch: Any, tmp_path: Any) -> None:
    from fastapi.testclient import TestClient

    from fhir_ecr.app import create_app
    from fhir_ecr.config import Settings

    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'm.db'}", auth="off", environment="test", validation_workers=1
    )
    app = create_app(settings)
    pool = app.state.services.repo.validation_pool
    assert pool is not None and pool._executor is None
    with TestClient(app):
        assert pool.wait_ready(120)
    assert pool._executor is None  # closed with the app


def test_closing_with_a_unit_in_flight_does_not_hang() -> None:
    """Shutting the workers down cancels what is queued, which runs the unit's callback, which frees the pool
    under its lock: close must not hold that lock meanwhile (a server stopping mid-transaction)."""
    import threading

    queued: Future[list[int]] = Future()

    class Executor:
        def shutdown(self, wait: bool, cancel_futures: bool) -> None:
            queued.cancel()

    pool = ValidationPool(lambda: lambda r: None, workers=1)
    pool._executor, pool._ready, pool._busy = Executor(), True, 1  # type: ignore[assignment]
    DeferredValidation(resources(3), [queued], pool._release)
    closing = threading.Thread(target=pool.close, daemon=True)
    closing.start()
    closing.join(10)
    assert not closing.is_alive(), "close() hung"
    assert pool._busy == 0 and pool._executor is None
