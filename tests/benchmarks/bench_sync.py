"""EMR sync benchmarks (docs/benchmarks.md, issue #18): against sekmet-fhir as the EMR, started here on a free port.

- pull 50,000 resources by Bulk Data, then by paged search, into a fresh SQLite store (resources/s);
- push 10,000 Encounters (coaching sessions) through the outbox to the EMR (resources/s);
- mECR's own ``$export`` of 1,000,000 Observations (resources/s);
- peak RSS of this process (the store, the worker and the export all run in it).

Targets: Bulk pull ≥ 2,000 res/s on SQLite, push ≥ 500 res/s, export ≥ 20,000 res/s, RSS < 300 MB.

    python -m tests.benchmarks.bench_sync [--scale 0.1]
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

from fhir_ecr.config import Settings
from tests.conftest import fresh_services
from tests.sync.support import Sekmet, patient, register, weight


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _services(tmp: Path, name: str) -> Any:
    # A queue no worker reads: the benchmark runs each job itself, and times it.
    return fresh_services(Settings(database_url=f"sqlite:///{tmp / name}.db", base_url="http://127.0.0.1:9",
                                   environment="test", auth="off", job_store=f"sqlite:///{tmp / name}-jobs.db"))


def _seed(sekmet: Sekmet, n: int) -> None:
    patients = max(1, n // 100)
    for start in range(0, patients, 500):
        entries = [{"request": {"method": "PUT", "url": f"Patient/p{i}"}, "resource": patient(f"p{i}", f"M{i}", "Z")}
                   for i in range(start, min(patients, start + 500))]
        assert sekmet.http.post("", json={"resourceType": "Bundle", "type": "transaction", "entry": entries}).is_success
    for start in range(0, n - patients, 1000):
        entries = [{"request": {"method": "PUT", "url": f"Observation/w{i}"},
                    "resource": weight(f"w{i}", f"p{i % patients}", f"{60 + i % 40}.5")}
                   for i in range(start, min(n - patients, start + 1000))]
        assert sekmet.http.post("", json={"resourceType": "Bundle", "type": "transaction", "entry": entries}).is_success


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0)
    args = parser.parse_args()
    from fhir_ecr.sync import tasks

    n_pull, n_push, n_export = int(50_000 * args.scale), int(10_000 * args.scale), int(1_000_000 * args.scale)
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        sekmet = Sekmet(tmp).start()
        try:
            _seed(sekmet, n_pull)
            for mode in ("bulk", "paged"):
                svc = _services(tmp, mode)
                register(svc, sekmet.base, pull="Patient, Observation", push="", mode=mode)
                svc.settings = svc.settings.model_copy(update={"sync_page_size": 1000, "sync_batch_size": 1000})
                t = time.perf_counter()
                counts = tasks.pull_now(svc, "emr")
                dt = time.perf_counter() - t
                assert counts is not None
                print(f"pull {mode}: {counts.fetched} resources in {dt:.1f} s = {counts.fetched / dt:,.0f} res/s "
                      f"(created {counts.created}, rejected {counts.rejected})", flush=True)
                svc.engine.dispose()
            svc = _services(tmp, "push")
            register(svc, sekmet.base, pull="Patient", push="Encounter")
            tasks.pull_now(svc, "emr")
            local = svc.repo.search_params("Patient", [("_count", "1")]).matches[0].id
            with svc.repo.unit() as uow:
                for _ in range(n_push):
                    uow.create({"resourceType": "Encounter", "status": "finished",
                                "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                                          "code": "AMB"},
                                "subject": {"reference": f"Patient/{local}"}})
            t = time.perf_counter()
            delivered = 0
            while True:
                c = tasks.deliver_now(svc, "emr")
                delivered += c.delivered
                if not c.delivered:
                    break
            dt = time.perf_counter() - t
            print(f"push: {delivered} resources in {dt:.1f} s = {delivered / dt:,.0f} res/s", flush=True)
            svc.engine.dispose()
        finally:
            sekmet.stop()
        svc = _services(tmp, "export")
        svc.repo.update("Patient", "pe", {"resourceType": "Patient", "id": "pe"})
        for start in range(0, n_export, 5000):
            with svc.repo.unit() as uow:
                for i in range(start, min(n_export, start + 5000)):
                    uow.create({"resourceType": "Observation", "status": "final", "code": {"text": "steps"},
                                "subject": {"reference": "Patient/pe"}, "valueQuantity": {"value": i}},
                               validated=True)
        import json

        from fhir_ecr.bulk.export import run_export

        svc.sync_store.add_export(id="b" * 32, client_id="developer", scope="system/*.rs", request="bench",
                                  state="queued", transaction_time="2026-12-10T00:00:00Z", created=int(time.time()),
                                  params=json.dumps({"level": "system", "group": None, "types": ["Observation"],
                                                     "since": None, "filters": {}, "principal": "developer"}))
        t = time.perf_counter()
        run_export(svc, "b" * 32)
        dt = time.perf_counter() - t
        job = svc.sync_store.export("b" * 32)
        count = sum(o["count"] for o in json.loads(job["output"]))
        print(f"export: {count} Observations in {dt:.1f} s = {count / dt:,.0f} res/s", flush=True)
    print(f"peak RSS of this process: {_rss_mb():.0f} MB")


if __name__ == "__main__":
    main()
