"""The audit trail's background writer: events gathered into batches, written in order, flushed on demand.

A stream of requests must cost one unit of work per batch (``linger``), not one per request, and nothing queued
may be lost: ``flush`` writes at once without waiting out the linger, ``close`` writes what is left.
"""

from __future__ import annotations

import time
from typing import Any

import sqlalchemy as sa

from fhir_ecr.auth.access import Access
from fhir_ecr.auth.audit import AuditTrail, audit_events
from fhir_ecr.auth.principal import Principal
from fhir_ecr.store.indexer import index_resource
from fhir_ecr.store.records import INDEX_COLUMNS
from fhir_ecr.store.tables import INDEX_TABLES, ResourceRow


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


def test_a_request_s_events_are_never_split_between_units(repo: Any) -> None:
    counting = CountingRepo(repo)
    trail = AuditTrail(counting, batch=20, linger=30.0)
    trail.record_all([_event(n) for n in range(45)])  # one request's events, more than a batch
    trail.record_all([])
    trail.flush(timeout=20.0)
    assert _written(repo) == sorted(f"agent {n}" for n in range(45))
    assert counting.units == 1
    trail.record_all([_event(n) for n in range(45, 50)])
    trail.record(_event(50))
    trail.close()
    assert len(_written(repo)) == 51
    assert counting.units == 2


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


def test_the_stored_index_rows_are_those_of_each_event_indexed_alone(repo: Any) -> None:
    """The trail indexes the events of a request from one template (``IndexTemplate``): what it stores is what the
    generic write path stores, row for row, and a search by patient finds each patient's event alone."""
    system = Principal(kind="system", subject="client:bench", client_id="bench", display="bench")
    access = Access(system)
    for i in range(30):
        access.touched_by_patient[f"p{i}"] = {f"Observation/o{i}": "c", f"Encounter/e{i % 3}": "r"}
    trail = AuditTrail(repo, linger=30.0)
    for event in [
        *audit_events(access, method="POST", route="/fhir", status=200, address="10.0.0.1"),
        _event(1),
        *audit_events(access, method="GET", route="/fhir/Observation", status=200, address=None),
    ]:
        trail.record(event)
    trail.close()
    with repo.unit() as uow:
        keys = dict(
            uow.conn.execute(
                sa.select(ResourceRow.res_id, ResourceRow.pk).where(ResourceRow.res_type == "AuditEvent")
            ).all()
        )
        stored = {}
        for table_name, table in INDEX_TABLES.items():
            columns = [table.c[c] for c in ("res_pk", *INDEX_COLUMNS[table_name])]
            for pk, *row in uow.conn.execute(sa.select(*columns).where(table.c.res_type == "AuditEvent")):
                stored.setdefault((pk, table_name), []).append(tuple(row))
    assert len(keys) == 61
    for found in repo.search_params("AuditEvent", [("_count", "100")]).matches:
        want, _ = index_resource(found.content, repo.fhir_base)
        for table_name, rows in want.items():
            got = stored.get((keys[found.id], table_name), [])
            assert sorted(got, key=repr) == sorted((tuple(r) for r in rows), key=repr), table_name
    for i in (0, 17, 29):
        by_patient = repo.search_params("AuditEvent", [("patient", f"Patient/p{i}")]).matches
        assert len(by_patient) == 2
        assert {e.content["entity"][1]["what"]["reference"] for e in by_patient} == {f"Observation/o{i}"}
