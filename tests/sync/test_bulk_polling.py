"""When a Bulk Data pull polls the EMR's export (fhir_ecr/sync/bulk_pull.py, fhir_ecr/sync/tasks.py): never sooner
than the EMR's ``Retry-After``, and not later than the first poll after the export is ready; short waits slept in
the job, long ones left to the scheduler; without a ``Retry-After``, a backoff proportional to the export's time.
The EMR is faked at its edge with respx (tests/sync/test_faults.py)."""

from __future__ import annotations

import time
from typing import Any

import httpx
import respx

from fhir_ecr.sync import tasks
from fhir_ecr.sync.bulk_pull import next_poll
from tests.sync.support import local, patient, register, weight
from tests.sync.test_faults import BASE, _mock, ndjson


def _manifest() -> dict[str, Any]:
    return {
        "transactionTime": "2026-12-01T00:00:00Z",
        "request": f"{BASE}/$export",
        "requiresAccessToken": True,
        "output": [
            {"type": "Patient", "url": f"{BASE}/files/Patient.ndjson"},
            {"type": "Observation", "url": f"{BASE}/files/Observation.ndjson"},
        ],
        "error": [],
    }


def _emr(router: respx.MockRouter, ready_after: float, retry_after: str) -> list[tuple[float, int]]:
    """A fake EMR whose export is ready ``ready_after`` seconds after its kick-off and which asks for
    ``retry_after`` while it is not; the (time, status) of each status poll, kick-off first (status 0)."""
    polls: list[tuple[float, int]] = []

    def kick(request: httpx.Request) -> httpx.Response:
        polls.append((time.monotonic(), 0))
        return httpx.Response(202, headers={"Content-Location": f"{BASE}/status/1"})

    def status(request: httpx.Request) -> httpx.Response:
        now = time.monotonic()
        if now - polls[0][0] < ready_after:
            polls.append((now, 202))
            return httpx.Response(202, headers={"Retry-After": retry_after, "X-Progress": "busy"})
        polls.append((now, 200))
        return httpx.Response(200, json=_manifest())

    router.get(f"{BASE}/$export").mock(side_effect=kick)
    router.get(f"{BASE}/status/1").mock(side_effect=status)
    router.delete(f"{BASE}/status/1").respond(202)
    router.get(f"{BASE}/files/Patient.ndjson").mock(return_value=ndjson([patient("p1", "MRN-1", "Lopez")]))
    router.get(f"{BASE}/files/Observation.ndjson").mock(
        return_value=ndjson([weight("o1", "p1", "70.5"), weight("o2", "p1", "71.5")])
    )
    return polls


def test_polls_honour_retry_after_and_load_at_the_first_poll_after_the_export_is_ready(
    services: Any,
) -> None:
    register(services, BASE, pull="Patient, Observation", push="", mode="bulk")
    with respx.mock(assert_all_called=False) as router:
        _mock(router, [])
        polls = _emr(router, ready_after=2.5, retry_after="1")
        counts = tasks.pull_now(services, "emr")
    assert counts is not None and counts.created == 3
    assert len(local(services, "Observation")) == 2
    gaps = [b[0] - a[0] for a, b in zip(polls, polls[1:], strict=False)]
    assert all(gap >= 1.0 for gap in gaps), gaps  # never sooner than the kick-off's wait and Retry-After
    assert [s for _, s in polls] == [0, 202, 202, 200]  # the first poll after the ready moment loads it
    assert polls[-1][0] - polls[0][0] < 2.5 + 1.0 + 0.5  # no more than one Retry-After past it
    assert services.sync_store.mark("emr", "*")["state"] is None


def test_a_long_retry_after_goes_back_to_the_scheduler(services: Any) -> None:
    """A wait longer than ``SHORT_WAIT`` is not slept in the job: the job ends and says when to poll again."""
    register(services, BASE, pull="Patient, Observation", push="", mode="bulk")
    with respx.mock(assert_all_called=False) as router:
        _mock(router, [])
        polls = _emr(router, ready_after=3600, retry_after="120")
        started = time.monotonic()
        assert tasks.pull(services, "emr", schedule=False) is not None
        result = tasks.bulk_poll(services, "emr", schedule=False)
    assert time.monotonic() - started < tasks.SHORT_WAIT
    assert result is not None and result[0] == 120.0
    assert [s for _, s in polls] == [0, 202, 202]  # the kick-off's first poll, then the job's one poll
    assert services.sync_store.mark("emr", "*")["state"] is not None  # still under way


def test_without_retry_after_the_wait_is_a_quarter_of_the_exports_time_so_far() -> None:
    assert next_poll(None, 0.0) == 1.0  # at least a second
    assert next_poll(None, 10.0) == 2.5
    assert next_poll(None, 100.0) == 25.0  # a poll at most a quarter of the export's time after it is ready
    assert next_poll(None, 3600.0) == 60.0  # at most a minute
    assert next_poll("7", 3600.0) == 7.0  # the EMR's Retry-After wins, longer or shorter
    assert next_poll("300", 0.0) == 300.0
