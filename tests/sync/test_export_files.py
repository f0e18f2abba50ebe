"""mECR's ``$export`` job writes each page of resources at once, split into files of at most
``MECR_EXPORT_FILE_LINES`` lines (a page may straddle two files), each line the stored JSON as it is; a job
cancelled while it runs leaves no files (docs/sync.md, "Serving Bulk Data")."""

from __future__ import annotations

import json
from typing import Any

from fhir_ecr.bulk import export
from fhir_ecr.bulk.export import job_dir, run_export
from fhir_ecr.store import jsonexact
from tests.sync.support import queue_export


def _seed(services: Any, n: int) -> None:
    services.repo.update("Patient", "pe", {"resourceType": "Patient", "id": "pe"})
    with services.repo.unit() as uow:
        for i in range(n):
            uow.create(
                {
                    "resourceType": "Observation",
                    "status": "final",
                    "code": {"text": "steps"},
                    "subject": {"reference": "Patient/pe"},
                    "valueQuantity": jsonexact.loads(b'{"value": 1.10}') if i == 0 else {"value": i},
                }
            )


def test_pages_are_split_into_files_of_the_stored_json(services: Any, monkeypatch: Any) -> None:
    _seed(services, 25)
    services.settings = services.settings.model_copy(update={"export_file_lines": 10})
    monkeypatch.setattr(export, "_PAGE", 7)  # pages of 7 across files of 10: pages straddle files
    queue_export(services, "a" * 32)
    run_export(services, "a" * 32)
    job = services.sync_store.export("a" * 32)
    assert job["state"] == "complete"
    outputs = json.loads(job["output"])
    assert [o["count"] for o in outputs] == [10, 10, 5]
    lines = []
    for n, out in enumerate(outputs, start=1):
        text = (job_dir(services, "a" * 32) / f"Observation-{n}.ndjson").read_bytes()
        assert text.endswith(b"\n") and text.count(b"\n") == out["count"]
        lines += text.splitlines()
    stored = {s.id: s.raw for s in services.repo.search_params("Observation", [("_count", "100")]).matches}
    assert len(lines) == 25 and {json.loads(line)["id"] for line in lines} == set(stored)
    # each line is the stored text as it is: the exact 1.10 stays 1.10
    assert all(line.decode() == stored[json.loads(line)["id"]] for line in lines)
    assert any(b"1.10" in line for line in lines)


def test_a_job_cancelled_while_it_runs_stops_and_leaves_no_files(services: Any, monkeypatch: Any) -> None:
    _seed(services, 30)
    monkeypatch.setattr(export, "_PAGE", 5)
    monkeypatch.setattr(export, "_REPORT_SECONDS", 0.0)  # report after every page
    queue_export(services, "c" * 32)
    search = services.repo.search

    def cancelling(query: Any) -> Any:
        services.sync_store.update_export("c" * 32, state="cancelled")  # DELETE on the status URL, meanwhile
        return search(query)

    monkeypatch.setattr(type(services.repo), "guarded", lambda repo, guard: repo)
    monkeypatch.setattr(services.repo, "search", cancelling)
    run_export(services, "c" * 32)
    assert services.sync_store.export("c" * 32)["state"] == "cancelled"
    assert not job_dir(services, "c" * 32).exists()
