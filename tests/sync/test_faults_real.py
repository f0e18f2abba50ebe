"""Faults against a real EMR (sekmet-fhir) through a real proxy that misbehaves (tests/sync/proxy.py):

- `mecr worker` killed with SIGKILL while the EMR's answer to a push batch is held back (the EMR has written, mECR
  has not heard), then started again: the EMR holds every pushed resource exactly once, mECR links each to it;
- the connection dropped in the middle of a Bulk Data NDJSON file: the next poll resumes at the next line after the
  last committed batch, and every resource is written exactly once;
- the access token refused as expired in the middle of a paged pull and of a Bulk Data download: refreshed once,
  the pull goes on.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fhir_ecr.sync import tasks
from fhir_ecr.sync.client import EmrUnavailable
from tests.sync.proxy import FaultyProxy
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

N_PUSH = 40


@pytest.fixture
def proxy(sekmet: Sekmet) -> Iterator[FaultyProxy]:
    server = FaultyProxy(sekmet.base).start()
    yield server
    server.stop()


def _chart(services: Any, sekmet: Sekmet, proxy: FaultyProxy, n: int, mode: str = "paged") -> None:
    """A patient with ``n`` weights at the EMR, and mECR set to pull both through the proxy."""
    sekmet.put(patient("p1", "MRN-1", "Lopez"))
    for i in range(n):
        sekmet.put(weight(f"w{i}", "p1", f"{70 + i}.25"))
    register(services, proxy.base, pull="Patient, Observation", push="", mode=mode)


def _encounter(pid: str) -> dict[str, Any]:
    return {
        "resourceType": "Encounter",
        "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
        "subject": {"reference": f"Patient/{pid}"},
    }


@pytest.mark.slow
def test_kill_9_mid_push_then_resume(
    services: Any, sekmet: Sekmet, proxy: FaultyProxy, tmp_path: Path
) -> None:
    sekmet.put(patient("p1", "MRN-1", "Lopez"))
    register(services, proxy.base, pull="Patient", push="Encounter")
    tasks.pull_now(services, "emr")
    pid = local(services, "Patient")[0]["id"]
    store_keys(services)
    with services.repo.unit() as uow:  # the outbox rows commit with the sessions
        mine = {uow.create(_encounter(pid)).stored.id for _ in range(N_PUSH)}
    proxy.faults.hold_writes = 0.4
    env = {"MECR_SYNC_PUSH_BATCH_SIZE": "5"}
    worker = start_worker(services.settings, tmp_path, **env)
    try:
        services.jobs.enqueue("deliver", "emr")
        # Kill the worker while the EMR's answer to a batch is held back: the EMR has created those Encounters,
        # mECR has not heard (a lost response).
        wait_for(
            lambda: len(sekmet.search("Encounter")) >= 10 and proxy.faults.holding.is_set(),
            60,
            "a push batch in flight",
        )
        kill_9(worker)
        at_kill = len(sekmet.search("Encounter"))
        linked = len(services.sync_store.links("emr", "Encounter", mine))
        assert 0 < linked < at_kill < N_PUSH + 1, (linked, at_kill)
        proxy.faults.hold_writes = 0.0
        worker = start_worker(services.settings, tmp_path, **env)  # its first tick finds the expired claims
        wait_for(
            lambda: services.sync_store.outbox_counts("emr")["emr"].get("done", 0) == N_PUSH,
            90,
            "every outbox row delivered",
            0.2,
        )
    finally:
        kill_9(worker)
    remote = sekmet.search("Encounter")
    system = services.settings.push_identifier_system
    pushed = [i["value"] for r in remote for i in r.get("identifier", []) if i.get("system") == system]
    assert sorted(pushed) == sorted(f"Encounter/{i}" for i in mine)  # each exactly once, none lost
    links = services.sync_store.links("emr", "Encounter", mine)
    assert len(links) == N_PUSH and {link.remote_id for link in links.values()} == {r["id"] for r in remote}
    assert services.sync_store.outbox_counts("emr")["emr"] == {"done": N_PUSH}


def test_dropped_connection_mid_ndjson_resumes_at_the_next_line(
    services: Any, sekmet: Sekmet, proxy: FaultyProxy
) -> None:
    _chart(services, sekmet, proxy, 30, "bulk")
    services.settings = services.settings.model_copy(update={"sync_batch_size": 5})
    proxy.faults.cut_ndjson, proxy.faults.cut_after_lines = 1, 13
    with pytest.raises(EmrUnavailable, match="broke off"):
        tasks.pull_now(services, "emr")
    assert proxy.faults.cuts == 1
    committed = len(local(services, "Observation"))
    assert committed == 10  # two batches of 5 committed; the 3 lines after them were read but not committed
    state = services.sync_store.mark("emr", "*")["state"]
    assert state and '": 10' in state  # the file's progress: 10 lines done
    again = tasks.pull_now(services, "emr")
    assert again is not None and again.fetched == 20 and again.created == 20 and again.rejected == 0
    observations = local(services, "Observation")
    assert len(observations) == 30 and all(o["meta"]["versionId"] == "1" for o in observations)
    assert services.sync_store.mark("emr", "*")["state"] is None


def test_token_expired_mid_paged_pull_is_refreshed_once(
    services: Any, sekmet: Sekmet, proxy: FaultyProxy
) -> None:
    _chart(services, sekmet, proxy, 12)
    services.settings = services.settings.model_copy(update={"sync_page_size": 3})
    proxy.faults.expire_token_after = 3  # a few pages in
    counts = tasks.pull_now(services, "emr")
    assert counts is not None and counts.rejected == 0
    assert len(proxy.faults.refused_tokens) == 1
    assert len(local(services, "Observation")) == 12
    requests = [path for _, path, _ in proxy.faults.log if ".well-known" not in path]
    assert len(requests) > 4  # the pull went on after the refusal


def test_token_expired_mid_bulk_download_is_refreshed_once(
    services: Any, sekmet: Sekmet, proxy: FaultyProxy
) -> None:
    _chart(services, sekmet, proxy, 8, "bulk")
    proxy.faults.expire_token_after = 2  # kick-off and first poll pass; a later poll or a file is refused
    counts = tasks.pull_now(services, "emr")
    assert counts is not None and counts.rejected == 0, counts
    assert len(proxy.faults.refused_tokens) == 1
    assert len(local(services, "Observation")) == 8
