"""EMR sync benchmarks (docs/benchmarks.md, issue #18): against sekmet-fhir as the EMR, started here on a free port.

- pull 50,000 resources by Bulk Data, then by paged search, into a fresh SQLite store (resources/s);
- push 10,000 Encounters (coaching sessions) through the outbox to the EMR (resources/s);
- mECR's own ``$export`` of 1,000,000 Observations (resources/s);
- peak RSS: of this process (the pulls and the push), and of the export's own process (the store it exports is
  seeded by another process first, so that seeding a million resources does not count as the export's memory).

Each sync figure is given end to end, for **mECR's own side**, without the time the EMR took, and in mECR's CPU
seconds (the EMR runs in a process of its own; CPU time depends least on the load of a shared machine): for a Bulk Data
pull, sekmet's export (kick-off to manifest, with its ``Retry-After`` waits) is timed apart from mECR's download
and load; for paged pulls and pushes, the time spent waiting for the EMR's answers is taken out. Baseline in the
same run: structural validation alone of the same pulled resources (every write validates), and the pull's
ratio to it.

Targets: Bulk pull ≥ 2,000 res/s on SQLite, push ≥ 500 res/s, export ≥ 20,000 res/s, RSS < 300 MB.

    python -m tests.benchmarks.bench_sync [--scale 0.1]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from fhir_ecr.config import Settings
from fhir_ecr.sync.client import EmrClient
from tests.conftest import fresh_services
from tests.sync.support import Sekmet, patient, queue_export, register, weight


def _rss_mb() -> float:
    """Peak RSS of this process, in MB. Linux's ``VmHWM`` where there is one: ``ru_maxrss`` survives ``exec``, so
    in a process started by this one it would report this one's peak."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _memory(phase: str) -> None:
    """This process's RSS now and its peak so far, after ``phase`` (Linux; nothing elsewhere)."""
    try:
        with open("/proc/self/status") as status:
            fields = {
                k: int(v.split()[0]) / 1024
                for k, v in (line.split(":", 1) for line in status)
                if k in ("VmRSS", "VmHWM")
            }
    except OSError:
        return
    print(f"  RSS after {phase}: {fields['VmRSS']:.0f} MB (peak so far {fields['VmHWM']:.0f} MB)", flush=True)


def _settings(tmp: Path, name: str) -> Settings:
    # A queue no worker reads: the benchmark runs each job itself, and times it.
    return Settings(
        database_url=f"sqlite:///{tmp / name}.db",
        base_url="http://127.0.0.1:9",
        environment="test",
        auth="off",
        job_store=f"sqlite:///{tmp / name}-jobs.db",
    )


def _services(tmp: Path, name: str) -> Any:
    return fresh_services(_settings(tmp, name))


def _seed(sekmet: Sekmet, n: int) -> None:
    patients = max(1, n // 100)
    for start in range(0, patients, 500):
        entries = [
            {"request": {"method": "PUT", "url": f"Patient/p{i}"}, "resource": patient(f"p{i}", f"M{i}", "Z")}
            for i in range(start, min(patients, start + 500))
        ]
        assert sekmet.http.post(
            "", json={"resourceType": "Bundle", "type": "transaction", "entry": entries}
        ).is_success
    for start in range(0, n - patients, 1000):
        entries = [
            {
                "request": {"method": "PUT", "url": f"Observation/w{i}"},
                "resource": weight(f"w{i}", f"p{i % patients}", f"{60 + i % 40}.5"),
            }
            for i in range(start, min(n - patients, start + 1000))
        ]
        assert sekmet.http.post(
            "", json={"resourceType": "Bundle", "type": "transaction", "entry": entries}
        ).is_success


class _EmrClock:
    """Time spent waiting for the EMR's answers (``EmrClient.send``), to take it out of mECR's side."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._send = EmrClient.send
        clock = self

        async def send(client: EmrClient, *args: Any, **kwargs: Any) -> Any:
            t = time.perf_counter()
            try:
                return await clock._send(client, *args, **kwargs)
            finally:
                clock.seconds += time.perf_counter() - t

        EmrClient.send = send  # type: ignore[method-assign]

    def close(self) -> None:
        EmrClient.send = self._send  # type: ignore[method-assign]


def _line(what: str, n: int, total: float, own: float, cpu: float) -> None:
    print(
        f"{what}: {n} resources in {total:.1f} s = {n / total:,.0f} res/s end to end; mECR's side {own:.1f} s = "
        f"{n / own:,.0f} res/s; mECR's CPU {cpu:.1f} s = {n / cpu:,.0f} res/s",
        flush=True,
    )


class _Timeline:
    """What a Bulk Data pull did when, from mECR's edge (``EmrClient.send`` and ``EmrClient.lines``): the kick-off,
    each status poll with its answer and ``Retry-After``, each file's download and load, in seconds from the start."""

    def __init__(self) -> None:
        self.t0 = time.perf_counter()
        self.events: list[str] = []
        self.manifest: float | None = None
        self._send, self._lines = EmrClient.send, EmrClient.lines
        timeline = self

        async def send(client: EmrClient, method: str, path: str, **kwargs: Any) -> Any:
            response = await timeline._send(client, method, path, **kwargs)
            what = kwargs.get("what", "").rsplit(": ", 1)[-1]
            timeline.note(f"{what} {method} -> {response.status_code}", response.headers.get("retry-after"))
            if "status" in what and response.status_code == 200:
                timeline.manifest = time.perf_counter()
            return response

        async def lines(client: EmrClient, url: str, **kwargs: Any) -> Any:
            name, n = url.rsplit("/", 1)[-1], 0
            timeline.note(f"{name}: download and load begin")
            async for line in timeline._lines(client, url, **kwargs):
                n += 1
                yield line
            timeline.note(f"{name}: downloaded ({n} lines)")

        EmrClient.send, EmrClient.lines = send, lines  # type: ignore[method-assign,assignment]

    def note(self, what: str, retry_after: str | None = None) -> None:
        after = f" (Retry-After: {retry_after})" if retry_after else ""
        self.events.append(f"{time.perf_counter() - self.t0:7.2f} s  {what}{after}")

    def close(self) -> None:
        EmrClient.send, EmrClient.lines = self._send, self._lines  # type: ignore[method-assign]


def _bulk_pull(svc: Any) -> None:
    """``mecr sync pull`` of a Bulk Data EMR, as a practice runs it: kick-off, polls, downloads and loads."""
    from fhir_ecr.sync import tasks

    timeline = _Timeline()
    t, cpu = time.perf_counter(), time.process_time()
    counts = tasks.pull_now(svc, "emr")
    done, cpu = time.perf_counter(), time.process_time() - cpu
    timeline.note("loaded")
    timeline.close()
    assert counts is not None and timeline.manifest is not None
    _line("pull bulk", counts.fetched, done - t, done - timeline.manifest, cpu)
    print(
        f"  (sekmet's export, kick-off to manifest: {timeline.manifest - t:.1f} s; created {counts.created}, "
        f"rejected {counts.rejected})",
        flush=True,
    )
    print("\n".join(f"  {e}" for e in timeline.events), flush=True)


def _validation_baseline(svc: Any, n: int) -> None:
    """Structural validation alone of ``n`` of the pulled Observations, as the write path validates them."""
    found = svc.repo.search_params("Observation", [("_count", str(min(n, 1000)))])
    sample = [s.content for s in found.matches]
    t, cpu = time.perf_counter(), time.process_time()
    for i in range(n):
        svc.repo.validator(sample[i % len(sample)])
    dt, cpu = time.perf_counter() - t, time.process_time() - cpu
    print(
        f"validation only, the same Observations: {n / dt:,.0f} res/s; CPU {n / cpu:,.0f} res/s", flush=True
    )


def _seed_export(tmp: Path, n_export: int) -> None:
    svc = _services(tmp, "export")
    svc.repo.update("Patient", "pe", {"resourceType": "Patient", "id": "pe"})
    for start in range(0, n_export, 5000):
        with svc.repo.unit() as uow:
            for i in range(start, min(n_export, start + 5000)):
                uow.create(
                    {
                        "resourceType": "Observation",
                        "status": "final",
                        "code": {"text": "steps"},
                        "subject": {"reference": "Patient/pe"},
                        "valueQuantity": {"value": i},
                    },
                    validated=True,
                )
    print(f"seeded {n_export} Observations for the export (peak RSS of that process {_rss_mb():.0f} MB)")


def _export(tmp: Path) -> None:
    from fhir_ecr.bulk.export import run_export
    from fhir_ecr.composition import build_services

    svc = build_services(_settings(tmp, "export"), migrate=False)  # the store the seeding process filled
    queue_export(svc, "b" * 32)
    before = _rss_mb()
    t, cpu = time.perf_counter(), time.process_time()
    run_export(svc, "b" * 32)
    dt, cpu = time.perf_counter() - t, time.process_time() - cpu
    job = svc.sync_store.export("b" * 32)
    count = sum(o["count"] for o in json.loads(job["output"]))
    print(
        f"export: {count} Observations in {dt:.1f} s = {count / dt:,.0f} res/s; CPU {cpu:.1f} s = "
        f"{count / cpu:,.0f} res/s",
        flush=True,
    )
    print(f"peak RSS of the export's process: {_rss_mb():.0f} MB (before the export: {before:.0f} MB)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument(
        "--only",
        choices=["bulk", "paged", "push", "export"],
        action="append",
        help="run only this part (repeatable; default: all of them)",
    )
    parser.add_argument("--phase", choices=["seed", "export"], help=argparse.SUPPRESS)
    parser.add_argument("--dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase == "seed":
        return _seed_export(Path(args.dir), int(1_000_000 * args.scale))
    if args.phase == "export":
        return _export(Path(args.dir))
    from fhir_ecr.sync import tasks

    parts = set(args.only or ("bulk", "paged", "push", "export"))
    n_pull, n_push = int(50_000 * args.scale), int(10_000 * args.scale)
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        sekmet = Sekmet(tmp).start() if parts - {"export"} else None
        try:
            if sekmet is not None:  # the push, too, pulls its Patients first
                _seed(sekmet, n_pull)
            for mode in [m for m in ("bulk", "paged") if m in parts]:
                assert sekmet is not None
                svc = _services(tmp, mode)
                register(svc, sekmet.base, pull="Patient, Observation", push="", mode=mode)
                svc.settings = svc.settings.model_copy(
                    update={"sync_page_size": 1000, "sync_batch_size": 1000}
                )
                if mode == "bulk":
                    _bulk_pull(svc)
                    _memory("the Bulk Data pull")
                    _validation_baseline(svc, min(n_pull, 10_000))
                else:
                    clock = _EmrClock()
                    t, cpu = time.perf_counter(), time.process_time()
                    counts = tasks.pull_now(svc, "emr")
                    dt, cpu = time.perf_counter() - t, time.process_time() - cpu
                    clock.close()
                    assert counts is not None
                    _line("pull paged", counts.fetched, dt, dt - clock.seconds, cpu)
                _memory(f"the {mode} phase")
                svc.engine.dispose()
            if "push" in parts:
                assert sekmet is not None
                _push(tmp, sekmet, n_push)
        finally:
            if sekmet is not None:
                sekmet.stop()
        print(f"peak RSS of this process (pulls and push): {_rss_mb():.0f} MB", flush=True)
        if "export" not in parts:
            return
        # The export in processes of its own: one seeds the store, another exports (its peak RSS is the export's).
        for phase in ("seed", "export"):
            subprocess.run(
                [sys.executable, "-m", "tests.benchmarks.bench_sync", "--phase", phase, "--dir", d]
                + ["--scale", str(args.scale)],
                check=True,
            )


def _push(tmp: Path, sekmet: Sekmet, n_push: int) -> None:
    """Push ``n_push`` Encounters (coaching sessions) through the outbox to the EMR."""
    from fhir_ecr.sync import tasks

    svc = _services(tmp, "push")
    register(svc, sekmet.base, pull="Patient", push="Encounter")
    tasks.pull_now(svc, "emr")
    local = svc.repo.search_params("Patient", [("_count", "1")]).matches[0].id
    with svc.repo.unit() as uow:
        for _ in range(n_push):
            uow.create(
                {
                    "resourceType": "Encounter",
                    "status": "finished",
                    "class": {
                        "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                        "code": "AMB",
                    },
                    "subject": {"reference": f"Patient/{local}"},
                }
            )
    clock = _EmrClock()
    t, cpu = time.perf_counter(), time.process_time()
    delivered = 0
    while True:
        c = tasks.deliver_now(svc, "emr")
        delivered += c.delivered
        if not c.delivered:
            break
    dt, cpu = time.perf_counter() - t, time.process_time() - cpu
    clock.close()
    _line("push (batch Bundles of 100)", delivered, dt, dt - clock.seconds, cpu)
    _memory("the push")
    svc.engine.dispose()


if __name__ == "__main__":
    main()
