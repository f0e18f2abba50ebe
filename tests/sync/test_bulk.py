"""Bulk Data both ways: a population load from a real EMR's $export (sekmet-fhir), and mECR's own $export read
back by a small Bulk Data client written from the spec (kick-off, polling with Retry-After, manifest, files)."""

from __future__ import annotations

import time
from typing import Any

import httpx
import orjson

from fhir_ecr.sync import tasks
from tests.auth.support import SystemClient
from tests.helpers import assert_outcome
from tests.sync.support import Sekmet, condition, local, patient, register, weight


def test_bulk_pull_loads_the_export_and_sets_the_marks(services: Any, sekmet: Sekmet) -> None:
    sekmet.put(patient("p1", "MRN-1", "Lopez"))
    for i in range(30):
        sekmet.put(weight(f"w{i}", "p1", f"{70 + i}.10"))
    sekmet.put(condition("c1", "p1"))
    register(services, sekmet.base, pull="Patient, Condition, Observation", push="", mode="bulk")
    services.settings = services.settings.model_copy(update={"sync_batch_size": 8})
    counts = tasks.pull_now(services, "emr")
    assert counts is not None and counts.rejected == 0, counts
    assert len(local(services, "Observation")) == 30 and len(local(services, "Condition")) == 1
    mark = services.sync_store.mark("emr", "*")
    assert mark["high_water"] and mark["state"] is None
    assert services.sync_store.mark("emr", "Observation")["high_water"] == mark["high_water"]
    # the next export asks only for what changed since (_since = the last transactionTime)
    time.sleep(1.1)
    sekmet.put(weight("w99", "p1", "71.00"))
    again = tasks.pull_now(services, "emr")
    assert again is not None and again.fetched == 1 and again.created == 1
    assert len(local(services, "Observation")) == 31


def _bulk_client(base: str, headers: dict[str, str], path: str, params: dict[str, str]) -> dict[str, Any]:
    """A Bulk Data client from the spec: kick-off, poll honouring Retry-After, manifest, NDJSON files."""
    with httpx.Client(base_url=base, headers=headers, timeout=30) as http:
        r = http.get(
            path, params=params, headers={"Accept": "application/fhir+json", "Prefer": "respond-async"}
        )
        assert r.status_code == 202, r.text
        status_url = r.headers["Content-Location"]
        for _ in range(100):
            s = http.get(status_url)
            if s.status_code == 200:
                break
            assert s.status_code == 202 and s.headers.get("X-Progress")
            time.sleep(min(float(s.headers.get("Retry-After", "1")), 0.2))
        manifest = s.json()
        assert manifest["requiresAccessToken"] is True and manifest["request"]
        lines: dict[str, list[dict[str, Any]]] = {}
        for out in manifest["output"]:
            f = http.get(out["url"], headers={"Accept": "application/fhir+ndjson"})
            assert f.status_code == 200 and f.headers["content-type"].startswith("application/fhir+ndjson")
            rows = [orjson.loads(x) for x in f.content.splitlines() if x.strip()]
            assert len(rows) == out["count"]
            lines.setdefault(out["type"], []).extend(rows)
        return {"manifest": manifest, "lines": lines, "status_url": status_url}


def test_mecr_export_is_read_back_by_a_bulk_client(
    secure_services: Any, secure_live_server: Any, tmp_path: Any
) -> None:
    repo = secure_services.repo
    repo.update("Patient", "pa", {"resourceType": "Patient", "id": "pa"})
    repo.update("Patient", "pb", {"resourceType": "Patient", "id": "pb"})
    for i in range(5):
        repo.create(
            {
                "resourceType": "Observation",
                "status": "final",
                "code": {"text": "steps"},
                "subject": {"reference": f"Patient/{'pa' if i < 3 else 'pb'}"},
                "valueQuantity": {"value": 1.50},
            }
        )
    repo.update(
        "Group",
        "g1",
        {
            "resourceType": "Group",
            "id": "g1",
            "type": "person",
            "actual": True,
            "member": [{"entity": {"reference": "Patient/pa"}}],
        },
    )
    secure_services.settings = secure_services.settings.model_copy(
        update={  # files in the test's folder
            "job_store": "immediate",
            "export_dir": str(tmp_path / "exports"),
        }
    )
    from fhir_ecr.jobs import JobRunner

    secure_services.jobs = JobRunner(secure_services.settings)
    secure_services.jobs.bind(secure_services)
    bot = SystemClient(secure_services, "exporter", "system/*.rs")
    with httpx.Client(base_url=secure_live_server.url) as http:
        headers = bot.token(http)
    base = f"{secure_live_server.url}/fhir"
    got = _bulk_client(base, headers, "/$export", {"_type": "Patient,Observation"})
    assert len(got["lines"]["Observation"]) == 5 and len(got["lines"]["Patient"]) == 2
    assert (
        b"1.50" in orjson.dumps(got["lines"]["Observation"][0])
        or got["lines"]["Observation"][0]["valueQuantity"]["value"] == 1.5
    )
    group = _bulk_client(base, headers, "/Group/g1/$export", {"_type": "Observation"})
    assert len(group["lines"]["Observation"]) == 3
    filtered = _bulk_client(
        base,
        headers,
        "/Patient/$export",
        {"_type": "Observation", "_typeFilter": "Observation?subject=Patient/pb"},
    )
    assert len(filtered["lines"]["Observation"]) == 2
    # only the requesting client sees the status and the files; a patient cannot export at all
    other = SystemClient(secure_services, "other", "system/*.rs")
    with httpx.Client(base_url=secure_live_server.url) as http:
        theirs = other.token(http)
        assert_outcome(http.get(got["status_url"], headers=theirs), 404, "not-found")
        url = got["manifest"]["output"][0]["url"]
        assert_outcome(http.get(url, headers=theirs), 404, "not-found")
        assert http.delete(got["status_url"], headers=headers).status_code == 202
        assert_outcome(http.get(got["status_url"], headers=headers), 404, "not-found")
        assert_outcome(
            http.get("/fhir/$export", headers={**headers}), 400, "invalid"
        )  # no Prefer: respond-async
