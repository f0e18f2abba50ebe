"""The importer commits each batch on a thread of its own while it reads and maps the next one
(``BatchWriter.committing_aside``): what is stored is what committing in line stores, and the thread is gone when
the import returns, whatever happened."""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from fhir_ecr.coaching.service import CoachingService
from fhir_ecr.wearables import ImportOptions, WearableImporter
from fhir_ecr.wearables.upsert import BatchWriter, _Committer
from tests.wearables.support import Rec, apple_export, hours, make_patient, observations


class InlineWriter(BatchWriter):
    """The batch writer committing each batch in line, as before (the reference)."""

    @contextmanager
    def committing_aside(self) -> Iterator[None]:
        yield


def _data() -> bytes:
    records = [*hours("2026-03-10", 8, 17, 500), *hours("2026-03-11", 8, 12, 900)]
    records += [
        Rec(
            "BodyMass",
            f"2026-03-{d} 07:00:00 -0400",
            f"2026-03-{d} 07:00:00 -0400",
            80 + d / 10,
            "kg",
            "Scale",
            None,
        )
        for d in range(10, 20)
    ]
    return apple_export(records)


def _essence(repo: Any, patient: str) -> list[tuple[Any, ...]]:
    out = []
    for obs in observations(repo, patient):
        body = {k: v for k, v in obs.items() if k not in ("id", "meta", "identifier", "subject")}
        out.append((repr(sorted(body.items())), obs["meta"].get("source"), obs["meta"]["versionId"]))
    return sorted(out)


def test_committing_aside_stores_what_committing_in_line_stores(repo: Any) -> None:
    aside, inline = make_patient(repo), make_patient(repo)
    opts = ImportOptions(batch_readings=3, batch_days=1)  # several batches of each kind
    names: list[str] = []

    def hook(uow: Any, changes: list[Any]) -> Any:
        return lambda: names.append(threading.current_thread().name)

    repo.write_hooks.append(hook)
    threads = threading.active_count()
    first = WearableImporter(repo, coaching=CoachingService(repo), options=opts).import_stream(
        aside, io.BytesIO(_data()), "export.xml"
    )
    assert threading.active_count() == threads  # gone: a next import may fork its second reader
    assert any(n.startswith("mecr-import-commit") for n in names)
    names.clear()
    writer = InlineWriter(repo, opts.rule)
    second = WearableImporter(
        repo, coaching=CoachingService(repo), options=opts, writer=writer
    ).import_stream(inline, io.BytesIO(_data()), "export.xml")
    assert not any(n.startswith("mecr-import-commit") for n in names)
    assert (first.created, first.updated, first.days, first.read) == (
        second.created,
        second.updated,
        second.days,
        second.read,
    )
    assert first.created > 10
    assert _essence(repo, aside) == _essence(repo, inline)


def test_a_failing_commit_is_raised_by_the_next_wait_and_the_thread_ends() -> None:
    threads = threading.active_count()
    committer = _Committer()
    done: list[int] = []
    committer(lambda: done.append(1))
    committer.wait()
    assert done == [1]

    def broken() -> None:
        raise OSError("disk I/O error")

    committer(broken)
    with pytest.raises(OSError, match="disk I/O error"):
        committer.wait()
    committer.wait()  # reported once
    committer(broken)
    with pytest.raises(OSError):
        committer.close()
    assert threading.active_count() == threads


def test_a_crash_with_a_commit_in_flight_waits_for_it_and_ends_the_thread(repo: Any) -> None:
    patient = make_patient(repo)
    opts = ImportOptions(batch_readings=3, batch_days=1)

    class Crashing(BatchWriter):
        batches = 0

        def run(self, write: Any) -> Any:
            self.batches += 1
            if self.batches == 3:
                raise RuntimeError("simulated crash")
            return super().run(write)

    threads = threading.active_count()
    with pytest.raises(RuntimeError, match="simulated crash"):
        WearableImporter(repo, options=opts, writer=Crashing(repo, opts.rule)).import_stream(
            patient, io.BytesIO(_data()), "export.xml"
        )
    assert threading.active_count() == threads
    assert len(observations(repo, patient)) == 6  # the two batches before the crash, both committed
