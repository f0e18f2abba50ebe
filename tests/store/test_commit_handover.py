"""A unit of work whose COMMIT is handed to a committer (``FhirRepository.unit(committer=...)``), as the wearable
importer runs its batches: nothing is visible before the handed-over callable runs, everything after; a unit that
fails hands nothing over and leaves nothing; the callable may run on another thread."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa

from fhir_ecr.outcomes import Conflict, NotFound


def patient() -> dict[str, Any]:
    return {"resourceType": "Patient", "name": [{"family": "Doe"}]}


def count(repo: Any, table: str) -> int:
    with repo.engine.connect() as conn:
        return int(conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one())


def test_a_handed_over_commit_makes_the_writes_visible_only_when_it_runs_and_then_the_hooks_after(
    repo: Any,
) -> None:
    events: list[str] = []

    def hook(uow: Any, changes: list[Any]) -> Callable[[], None]:
        events.append("hook")
        return lambda: events.append(f"after on {threading.current_thread().name}")

    repo.write_hooks.append(hook)
    handed: list[Callable[[], None]] = []
    with repo.unit(committer=handed.append) as uow:
        pid = uow.create(patient()).stored.id
    assert len(handed) == 1 and events == ["hook"]  # everything up to the COMMIT ran when the block ended
    with pytest.raises(NotFound):
        repo.read("Patient", pid)  # not committed yet
    runner = threading.Thread(target=handed[0], name="committer")
    runner.start()
    runner.join()
    assert repo.read("Patient", pid).version_id == 1
    assert events == ["hook", "after on committer"]
    pool = repo.engine.pool
    if hasattr(pool, "checkedout"):
        assert pool.checkedout() == 0  # the committer gave the connection back


def test_a_unit_that_fails_hands_nothing_over_and_leaves_nothing(repo: Any) -> None:
    before = count(repo, "resource")
    handed: list[Callable[[], None]] = []
    with pytest.raises(RuntimeError), repo.unit(committer=handed.append) as uow:
        uow.create(patient())
        raise RuntimeError("the batch failed")
    assert handed == [] and count(repo, "resource") == before
    with pytest.raises(Conflict), repo.unit(committer=handed.append) as uow:
        uow.create(patient(), resource_id="twice", method="PUT")
        uow.flush()
        uow.create(patient(), resource_id="twice", method="PUT")  # refused: created twice in one unit
    assert handed == [] and count(repo, "resource") == before
    repo.create(patient())  # the store is not left locked
    assert count(repo, "resource") == before + 1
