"""`mecr serve --with-worker`: one process serves the API and runs the job workers (the embedded default): a
coaching write made through its API is pushed to the EMR by its own worker threads."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from fhir_ecr.sync import tasks
from tests.conftest import free_port
from tests.sync.support import Sekmet, local, patient, register, store_keys, wait_for


@pytest.mark.slow
def test_serve_with_worker_pushes_what_its_api_wrote(services: Any, sekmet: Sekmet, tmp_path: Path) -> None:
    sekmet.put(patient("p1", "MRN-1", "Lopez"))
    register(services, sekmet.base, pull="Patient", push="Goal")
    tasks.pull_now(services, "emr")
    pid = local(services, "Patient")[0]["id"]
    store_keys(services)
    port = free_port()
    settings = services.settings
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("MECR_")},
        "MECR_DATABASE_URL": settings.database_url,
        "MECR_JOB_STORE": settings.jobs_url,
        "MECR_AUTH": "off",
        "MECR_ENVIRONMENT": "test",
        "MECR_WORKER_THREADS": "1",
    }
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "fhir_ecr.cli",
            "serve",
            "--with-worker",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        env=env,
        cwd=tmp_path,
        stdout=(tmp_path / "serve.log").open("ab"),
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return httpx.get(f"{url}/healthz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return proc.poll() is not None  # exited: fail below with its log

    try:
        wait_for(up, 60, "mecr serve to start", 0.2)
        assert proc.poll() is None, (tmp_path / "serve.log").read_text()
        r = httpx.post(
            f"{url}/fhir/Goal",
            json={
                "resourceType": "Goal",
                "lifecycleStatus": "active",
                "description": {"text": "walk"},
                "subject": {"reference": f"Patient/{pid}"},
            },
        )
        assert r.status_code == 201, r.text
        wait_for(lambda: len(sekmet.search("Goal")) == 1, 60, "the worker thread to push the Goal", 0.2)
        wait_for(lambda: services.sync_store.outbox("emr", ["done"]) != [], 10, "the outbox row done", 0.1)
    finally:
        proc.terminate()
        proc.wait(20)
    assert "job workers: 1 thread(s)" in (tmp_path / "serve.log").read_text()
    assert len(sekmet.search("Goal")) == 1
