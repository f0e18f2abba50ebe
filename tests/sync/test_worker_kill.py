"""`mecr worker` as its own process, killed with SIGKILL in the middle of a paged pull, then started again: every
resource arrives exactly once and the high-water mark is the EMR's newest lastUpdated."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from tests.sync.support import (
    Sekmet,
    kill_9,
    local,
    patient,
    register,
    start_worker,
    store_keys,
    wait_for,
    weight,
)

N = 400


@pytest.mark.slow
def test_kill_9_mid_pull_then_resume(services: Any, sekmet: Sekmet, tmp_path: Path) -> None:
    sekmet.put(patient("p1", "MRN-1", "Lopez"))
    entries = [
        {
            "request": {"method": "PUT", "url": f"Observation/w{i}"},
            "resource": weight(f"w{i}", "p1", f"{i}.5"),
        }
        for i in range(N)
    ]
    assert sekmet.http.post(
        "", json={"resourceType": "Bundle", "type": "transaction", "entry": entries}
    ).is_success
    register(services, sekmet.base, pull="Patient, Observation", push="")
    store_keys(services)
    worker = start_worker(services.settings, tmp_path, MECR_SYNC_PAGE_SIZE="2")
    try:
        services.jobs.enqueue("pull", "emr")
        wait_for(lambda: len(local(services, "Observation")) >= 40, 60, "the pull to start")
        kill_9(worker)
        partial = len(local(services, "Observation"))
        assert 0 < partial < N, partial
        worker = start_worker(services.settings, tmp_path, MECR_SYNC_PAGE_SIZE="2")
        time.sleep(11)  # the killed worker's lease on the pull runs out (10 × MECR_SYNC_LEASE_SECONDS)
        services.jobs.enqueue("pull", "emr")
        wait_for(lambda: len(local(services, "Observation")) >= N, 120, "the pull to finish", 0.2)
    finally:
        kill_9(worker)
    observations = local(services, "Observation")
    assert len(observations) == N and len({o["id"] for o in observations}) == N
    newest = max(o["meta"]["lastUpdated"] for o in sekmet.search("Observation"))
    wait_for(
        lambda: services.sync_store.mark("emr", "Observation")["high_water"] == newest, 10, "the final mark"
    )
