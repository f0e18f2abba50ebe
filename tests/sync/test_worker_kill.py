"""`mecr worker` as its own process, killed with SIGKILL in the middle of a paged pull, then started again: every
resource arrives exactly once and the high-water mark is the EMR's newest lastUpdated."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.sync.support import Sekmet, local, patient, register, weight

N = 400


def _worker(settings: Any, tmp: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "MECR_DATABASE_URL": settings.database_url, "MECR_BASE_URL": settings.base_url,
           "MECR_ENVIRONMENT": "test", "MECR_AUTH": "off", "MECR_SYNC_PAGE_SIZE": "2", "MECR_SYNC_LEASE_SECONDS": "1",
           "MECR_JOB_STORE": settings.jobs_url, "MECR_WORKER_THREADS": "1"}
    exe = Path(sys.executable).with_name("mecr")
    return subprocess.Popen([str(exe), "worker"], env=env, stdout=(tmp / "worker.log").open("ab"),
                            stderr=subprocess.STDOUT, cwd=tmp)


@pytest.mark.slow
def test_kill_9_mid_pull_then_resume(services: Any, sekmet: Sekmet, tmp_path: Path) -> None:
    sekmet.put(patient("p1", "MRN-1", "Lopez"))
    entries = [{"request": {"method": "PUT", "url": f"Observation/w{i}"}, "resource": weight(f"w{i}", "p1", f"{i}.5")}
               for i in range(N)]
    assert sekmet.http.post("", json={"resourceType": "Bundle", "type": "transaction", "entry": entries}).is_success
    register(services, sekmet.base, pull="Patient, Observation", push="")
    import json

    from tests.sync.support import KEYS

    # The worker process reads mECR's keys from the store, as in production: store the ones sekmet trusts.
    sealed = services.vault._fernet.encrypt(json.dumps(KEYS.private_jwks()).encode()).decode()
    with services.repo.unit() as uow:
        uow.set_state("auth.signing_jwks", sealed)
    worker = _worker(services.settings, tmp_path)
    try:
        services.jobs.enqueue("pull", "emr")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            n = len(local(services, "Observation"))
            if n >= 40:
                break
            time.sleep(0.05)
        worker.send_signal(signal.SIGKILL)
        worker.wait(10)
        partial = len(local(services, "Observation"))
        assert 0 < partial < N, partial
        worker = _worker(services.settings, tmp_path)
        time.sleep(11)  # the killed worker's lease on the pull runs out (10 × MECR_SYNC_LEASE_SECONDS)
        services.jobs.enqueue("pull", "emr")
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and len(local(services, "Observation")) < N:
            time.sleep(0.2)
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.wait(10)
    observations = local(services, "Observation")
    assert len(observations) == N and len({o["id"] for o in observations}) == N
    newest = max(o["meta"]["lastUpdated"] for o in sekmet.search("Observation"))
    deadline = time.monotonic() + 10
    while services.sync_store.mark("emr", "Observation")["high_water"] != newest and time.monotonic() < deadline:
        time.sleep(0.1)
    assert services.sync_store.mark("emr", "Observation")["high_water"] == newest
