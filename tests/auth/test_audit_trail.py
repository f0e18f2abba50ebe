"""The audit trail's background writer: events gathered into batches, written in order, flushed on demand.

A stream of requests must cost one unit of work per batch (``linger``), not one per request, and nothing queued
may be lost: ``flush`` writes at once without waiting out the linger, ``close`` writes what is left.
"""

from __future__ import annotations

import time
from typing import Any

from fhir_ecr.auth.audit import AuditTrail


def _event(n: int) -> dict[str, Any]:
    return {
        "resourceType": "AuditEvent",
        "type": {"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "110112"},
        "recorded": "2026-12-06T10:00:00Z",
        "outcome": "0",
        "agent": [{"requestor": True, "who": {"display": f"agent {n}"}}],
        "source": {"observer": {"display": "mECR"}},
    }


class CountingRepo:
    """The repository, with a count of the units of work the trail opens."""

    def __init__(self, repo: Any) -> None:
        self.repo = repo
        self.units = 0

    def unit(self) -> Any:
        self.units += 1
        return self.repo.unit()


def _written(repo: Any) -> list[str]:
    found = repo.search_params("AuditEvent", [("_count", "500")]).matches
    return sorted(s.content["agent"][0]["who"]["display"] for s in found)


def test_a_burst_of_events_is_written_in_one_unit(repo: Any) -> None:
    counting = CountingRepo(repo)
    trail = AuditTrail(counting, linger=0.5)
    for n in range(20):
        trail.record(_event(n))
    trail.flush()
    assert _written(repo) == sorted(f"agent {n}" for n in range(20))
    assert counting.units == 1
    trail.close()


def test_flush_does_not_wait_out_the_linger(repo: Any) -> None:
    counting = CountingRepo(repo)
    trail = AuditTrail(counting, linger=30.0)
    trail.record(_event(1))
    trail.record(_event(2))
    started = time.monotonic()
    trail.flush(timeout=20.0)
    assert time.monotonic() - started < 10.0
    assert _written(repo) == ["agent 1", "agent 2"]
    trail.record(_event(3))  # the thread gathers again after a flush
    trail.flush(timeout=20.0)
    assert _written(repo) == ["agent 1", "agent 2", "agent 3"]
    assert counting.units == 2
    trail.close()


def test_close_writes_what_is_queued(repo: Any) -> None:
    trail = AuditTrail(repo, linger=30.0)
    for n in range(3):
        trail.record(_event(n))
    trail.close()
    assert _written(repo) == ["agent 0", "agent 1", "agent 2"]


def test_events_are_written_within_the_linger_without_a_flush(repo: Any) -> None:
    trail = AuditTrail(repo, linger=0.05)
    trail.record(_event(7))
    deadline = time.monotonic() + 10
    while not _written(repo) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert _written(repo) == ["agent 7"]
    trail.close()
