"""Benchmark of the store and FHIR API (issue: store and R4 REST API).

(a) ingest N Observations (default 100,000) through transaction Bundles of 500 POSTed to a real server
    (``mecr serve`` in a subprocess), in resources/second, next to the validation-only rate of the same
    resources measured in the same run (the ratio shows what storage and indexing cost); and by CPU time: the
    server processes' CPU per Observation against the validation's (what a loaded machine disturbs least);
(b) search latency with M Observations (default 1,000,000) across P patients (default 1,000):
    ``Observation?patient=X&code=Y&date=ge…&_count=50`` — p50/p95/p99 measured by the client over HTTP;
(c) the server's peak memory during (a): the PSS of its processes summed (the server and its validation worker
    share pages), and the server process's own RSS.

Usage::

    python -m tests.benchmarks.bench_store                      # both databases, full size (≈ 30 min)
    python -m tests.benchmarks.bench_store --backend sqlite --scale 0.1

Targets: (a) ≥ 2,500/s on SQLite, ≥ 2,000/s on PostgreSQL, ratio to validation ≥ 0.4; (b) p95 < 20 ms;
(c) < 300 MB.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import psutil
import sqlalchemy as sa

from fhir_ecr.coaching.derived import install_derived
from fhir_ecr.fhir.bundles import process_bundle
from fhir_ecr.store.db import make_engine, upgrade
from fhir_ecr.store.repository import FhirRepository
from fhir_ecr.store.validation import validate_resource

PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
LOINC = "http://loinc.org"
CODES = [
    ("41950-7", 8000, 3000, "/d"),
    ("8867-4", 72, 10, "/min"),
    ("29463-7", 80, 8, "kg"),
    ("93832-4", 7, 1, "h"),
]
START = 1_735_689_600  # 2025-01-01T00:00:00Z
BUNDLE_SIZE = 500


def observation(i: int, patients: int) -> dict[str, Any]:
    """The i-th synthetic Observation: patient i % P; each patient gets one reading a day of each of 4 codes."""
    rnd = random.Random(i)
    code, mean, sd, unit = CODES[(i // patients) % len(CODES)]
    day = i // (patients * len(CODES))
    when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(START + day * 86400 + 8 * 3600 + (i % 3600)))
    return {
        "resourceType": "Observation",
        "status": "final",
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                        "code": "vital-signs" if code in ("8867-4", "29463-7") else "activity",
                    }
                ]
            }
        ],
        "code": {"coding": [{"system": LOINC, "code": code}]},
        "subject": {"reference": f"Patient/bench-{i % patients}"},
        "effectiveDateTime": when,
        "valueQuantity": {
            "value": round(rnd.gauss(mean, sd), 1),
            "unit": unit,
            "system": "http://unitsofmeasure.org",
            "code": unit,
        },
        "device": {"reference": "Device/bench-watch"},
    }


def bundles(first: int, count: int, patients: int) -> Iterator[dict[str, Any]]:
    for start in range(first, first + count, BUNDLE_SIZE):
        yield {
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [
                {
                    "fullUrl": f"urn:uuid:{uuid.UUID(int=i)}",
                    "resource": observation(i, patients),
                    "request": {"method": "POST", "url": "Observation"},
                }
                for i in range(start, min(start + BUNDLE_SIZE, first + count))
            ],
        }


def setup_bundle(patients: int) -> dict[str, Any]:
    entries = [
        {
            "resource": {"resourceType": "Patient", "id": f"bench-{p}", "name": [{"family": f"Bench{p}"}]},
            "request": {"method": "PUT", "url": f"Patient/bench-{p}"},
        }
        for p in range(patients)
    ]
    entries.append(
        {
            "resource": {"resourceType": "Device", "id": "bench-watch", "status": "active"},
            "request": {"method": "PUT", "url": "Device/bench-watch"},
        }
    )
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


class Database:
    """A fresh database for one backend, removed afterwards."""

    def __init__(self, backend: str, workdir: Path) -> None:
        self.backend = backend
        if backend == "sqlite":
            self.url = f"sqlite:///{workdir / 'bench.db'}"
            self.name = None
        else:
            self.name = f"mecr_bench_{uuid.uuid4().hex[:8]}"
            admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.exec_driver_sql(f'CREATE DATABASE "{self.name}"')
            admin.dispose()
            self.url = PG_ADMIN.rsplit("/", 1)[0] + f"/{self.name}"

    def drop(self) -> None:
        if self.name:
            admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
            admin.dispose()


def system_token(env: dict[str, str]) -> str:
    """Register a backend client (`mecr client add`) on the served database and print a token for it."""
    import json as _json

    from smart_launch import ClientKeySet

    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        _json.dump(ClientKeySet.generate(["ES384"]).public_jwks(), f)
    mecr = [sys.executable, "-m", "fhir_ecr.cli", "client"]
    added = subprocess.run(
        [*mecr, "add", "bench", "--jwks-file", f.name, "--scope", "system/*.cruds"],
        env=env,
        capture_output=True,
        text=True,
    )
    if added.returncode != 0 and "registered already" not in added.stderr:  # a second server on the same db
        raise RuntimeError(added.stderr)
    out = subprocess.run(
        [*mecr, "token", "bench", "--ttl", "86400"], env=env, check=True, capture_output=True, text=True
    )
    os.unlink(f.name)
    return out.stdout.strip()


class Server:
    """``mecr serve`` in a subprocess, with a thread sampling its RSS."""

    def __init__(self, url: str, workers: int = 1) -> None:
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        env = {
            **os.environ,
            "MECR_DATABASE_URL": url,
            "MECR_BASE_URL": f"http://127.0.0.1:{self.port}",
            "MECR_LOG_LEVEL": "WARNING",
            "MECR_MAX_BUNDLE_ENTRIES": "1000",
        }
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "fhir_ecr.cli",
                "serve",
                "--port",
                str(self.port),
                "--workers",
                str(workers),
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        self.base = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{self.base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"server did not start: {self.proc.stderr.read().decode()[-2000:]}")
            time.sleep(0.2)
        self.peak_rss = 0
        self._sampling = False
        self.headers = {"Authorization": f"Bearer {system_token(env)}"}  # authorization on, as in production
        self.quiet()

    def quiet(self, timeout: float = 60) -> None:
        """Wait until the server's processes use under 5 % of a core for half a second: start-up done, the
        validation worker booted (fhir_ecr/store/validation_pool.py), so (a) measures a running server."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            before = self.cpu()
            time.sleep(0.5)
            if self.cpu() - before < 0.025:
                return

    def cpu(self) -> float:
        """CPU seconds (user + system) the server's processes have used so far."""
        p = psutil.Process(self.proc.pid)
        return sum(sum(q.cpu_times()[:2]) for q in [p, *p.children(recursive=True)])

    def rss(self) -> int:
        """The server's memory: the proportional set size of its processes (the server, its validation worker
        and the worker's resource tracker: fhir_ecr/store/validation_pool.py; or ``--workers 2``'s), summed. PSS
        shares each page among the processes that map it; summing their RSS would count the pages they share
        (the interpreter, the libraries) once per process. The server process's own RSS is kept apart."""
        p = psutil.Process(self.proc.pid)
        self.main_rss = p.memory_info().rss
        total = 0
        for q in [p, *p.children(recursive=True)]:
            with contextlib.suppress(psutil.Error):  # a worker starting or ending between the two calls
                total += q.memory_full_info().pss
        return total

    def sample(self) -> None:
        self._sampling = True
        self.peak_rss = self.rss()
        self.peak_main_rss = self.main_rss

        def loop() -> None:
            while self._sampling:
                self.peak_rss = max(self.peak_rss, self.rss())
                self.peak_main_rss = max(self.peak_main_rss, self.main_rss)
                time.sleep(0.05)

        self._thread = threading.Thread(target=loop, daemon=True)
        self._thread.start()

    def stop_sampling(self) -> None:
        self._sampling = False
        self._thread.join()

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(20)


def ingest_over_http(
    server: Server,
    payloads: list[bytes],
    streams: int,
    validated: list[float] | None = None,
    validated_cpu: list[float] | None = None,
) -> tuple[float, float, float]:
    """POST the Bundles over ``streams`` keep-alive connections; (resources/s, peak RSS MB, start RSS MB).
    ``validated`` (one stream): after each Bundle, validate its resources here while the server is idle and
    append the seconds it took, so the validation-only rate is measured under the same machine load as the
    ingest (the load of a shared machine moves a lot within minutes); those seconds, and those of parsing the
    Bundle here to get its resources, are not in the ingest rate.
    ``validated_cpu``: the same validation's CPU seconds (this thread's)."""
    count = sum(p.count(b'"request"') for p in payloads)
    chunks = [payloads[i::streams] for i in range(streams)]
    errors: list[BaseException] = []
    aside = [0.0]

    def post_all(chunk: list[bytes]) -> None:
        try:
            with httpx.Client(
                base_url=server.base,
                timeout=300,
                headers={"Content-Type": "application/fhir+json", **server.headers},
            ) as client:
                for body in chunk:
                    client.post("/fhir", content=body).raise_for_status()
                    if validated is not None:
                        # the whole step is the benchmark's own, taken out of the ingest's time: parsing the
                        # Bundle here to get its resources (about 1 ms for 500, 100 ms when one of this process's
                        # full collections fell there before its heap was frozen) is neither the server's work nor
                        # the validation's (which validates parsed resources, as the server's worker does)
                        start = time.perf_counter()
                        resources = [e["resource"] for e in orjson.loads(body)["entry"]]
                        t, c = time.perf_counter(), time.thread_time()
                        for r in resources:
                            validate_resource(r)
                        validated.append(time.perf_counter() - t)
                        if validated_cpu is not None:
                            validated_cpu.append(time.thread_time() - c)
                        aside[0] += time.perf_counter() - start
        except BaseException as exc:  # reported after the threads end
            errors.append(exc)

    start_rss = server.rss()
    server.sample()
    t = time.perf_counter()
    threads = [threading.Thread(target=post_all, args=(c,)) for c in chunks]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    elapsed = time.perf_counter() - t - aside[0]
    server.stop_sampling()
    if errors:
        raise errors[0]
    return count / elapsed, server.peak_rss / 2**20, start_rss / 2**20


def validation_rate(n: int, patients: int) -> float:
    resources = [observation(i, patients) for i in range(n)]
    t = time.perf_counter()
    for r in resources:
        validate_resource(r)
    return n / (time.perf_counter() - t)


def explain_search(engine: sa.Engine, repo: FhirRepository, params: list[tuple[str, str]]) -> list[str]:
    """The plan of every statement the store runs for one search (the benchmark's query): ``EXPLAIN (ANALYZE,
    BUFFERS)`` on PostgreSQL, ``EXPLAIN QUERY PLAN`` on SQLite, each after the statement's first line."""
    statements: list[tuple[str, Any]] = []

    def note(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        if statement.lstrip().upper().startswith(("SELECT", "WITH")):
            statements.append((statement, parameters))

    sa.event.listen(engine, "before_cursor_execute", note)
    try:
        repo.search_params("Observation", params)
    finally:
        sa.event.remove(engine, "before_cursor_execute", note)
    out = []
    postgres = engine.dialect.name == "postgresql"
    with engine.connect() as conn:
        for statement, parameters in statements:
            prefix = "EXPLAIN (ANALYZE, BUFFERS) " if postgres else "EXPLAIN QUERY PLAN "
            rows = conn.exec_driver_sql(prefix + statement, parameters).all()
            plan = [str(r[0]) if postgres else f"{'  ' * (r[1] > 0)}{r[3]}" for r in rows]
            out.append(" ".join(statement.split())[:300] + "\n    " + "\n    ".join(plan))
    return out


def run_backend(backend: str, ingest: int, search_obs: int, patients: int, queries: int) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="mecr-bench-"))
    db = Database(backend, workdir)
    out: dict[str, Any] = {"backend": backend}
    try:
        engine = make_engine(db.url)
        upgrade(engine)
        repo = FhirRepository(engine)
        install_derived(repo)  # the loads below keep the derived tables too: the server's searches read them
        process_bundle(repo, setup_bundle(patients), fhir_base="", max_entries=patients + 10)

        server = Server(db.url)
        try:
            # one Bundle first, not measured: a running server has imported its models (here and in its
            # validation worker) before the night's import comes
            ingest_over_http(
                server, [orjson.dumps(b) for b in bundles(10 * search_obs, BUNDLE_SIZE, patients)], 1
            )
            payloads = [orjson.dumps(b) for b in bundles(0, ingest, patients)]
            validated: list[float] = []
            validated_cpu: list[float] = []
            # the client's own heap (the loaded application, the setup) frozen as the server's is
            # (fhir_ecr/heap.py): the client's full collections would otherwise land in the POSTs and the
            # validation alike, 100 ms at times
            gc.collect()
            gc.freeze()
            cpu0 = server.cpu()
            rate, peak, start_rss = ingest_over_http(
                server, payloads, streams=1, validated=validated, validated_cpu=validated_cpu
            )
            server_cpu = server.cpu() - cpu0
            server_main_rss = server.peak_main_rss / 2**20
        finally:
            server.stop()
        out.update(ingest_per_s=rate, peak_rss_mb=peak, rss_start_mb=start_rss)
        out["validation_per_s"] = ingest / sum(validated)  # interleaved with the ingest (same load)
        out["validation_after_per_s"] = validation_rate(min(ingest, 20_000), patients)
        out["ratio"] = out["ingest_per_s"] / out["validation_per_s"]
        out["server_cpu_us"] = (
            server_cpu / ingest * 1e6
        )  # the server's processes: request, store, audit trail
        out["validation_cpu_us"] = sum(validated_cpu) / ingest * 1e6
        out["cpu_ratio"] = out["validation_cpu_us"] / out["server_cpu_us"]
        print(
            f"[{backend}] (a) ingest {ingest:,} Observations, 1 stream, 1 worker: {rate:,.0f}/s; validation only, "
            f"between the Bundles: {out['validation_per_s']:,.0f}/s; ratio {out['ratio']:.2f} (validation only "
            f"afterwards, as before: {out['validation_after_per_s']:,.0f}/s); load {os.getloadavg()[0]:.1f}",
            flush=True,
        )
        print(
            f"[{backend}] (a) by CPU time: the server {out['server_cpu_us']:.0f} µs per Observation (request, store, "
            f"audit trail), validation only {out['validation_cpu_us']:.0f} µs: ratio {out['cpu_ratio']:.2f}",
            flush=True,
        )
        print(
            f"[{backend}] (c) server memory (PSS of its processes): {start_rss:.0f} MB at start, peak {peak:.0f} MB "
            f"during ingest; the server process's own peak RSS {server_main_rss:.0f} MB",
            flush=True,
        )
        server = Server(db.url, workers=2)
        try:
            payloads = [orjson.dumps(b) for b in bundles(ingest, ingest, patients)]
            rate2, peak2, _ = ingest_over_http(server, payloads, streams=2)
            del payloads
            out.update(ingest2_per_s=rate2, peak2_rss_mb=peak2)
            print(
                f"[{backend}] (a') ingest {ingest:,} more, 2 streams, 2 workers: {rate2:,.0f}/s; peak RSS of the "
                f"server processes {peak2:.0f} MB; load {os.getloadavg()[0]:.1f}",
                flush=True,
            )
            client = httpx.Client(base_url=server.base, timeout=120, headers=server.headers)
            ingest *= 2
            remaining = max(0, search_obs - ingest)
            t = time.perf_counter()
            done = 0
            for b in bundles(ingest, remaining, patients):
                process_bundle(repo, b, fhir_base="", max_entries=1000)
                done += len(b["entry"])
                if done % 50_000 < BUNDLE_SIZE:
                    rate = done / (time.perf_counter() - t)
                    print(
                        f"[{backend}]     loaded {ingest + done:,} / {search_obs:,} ({rate:,.0f}/s)",
                        flush=True,
                    )
            # Steady state after a bulk load: fresh statistics, and on PostgreSQL the visibility map that
            # autovacuum would set (index-only scans need it; PostgreSQL 13+ autovacuums insert-only tables).
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.exec_driver_sql("VACUUM ANALYZE" if backend == "postgres" else "ANALYZE")
            total = client.get("/fhir/Observation?_summary=count").json()["total"]
            rnd = random.Random(7)
            days = search_obs // (patients * len(CODES))
            latencies = []
            matched = []
            for q in range(queries + 20):
                pid = rnd.randrange(patients)
                code = CODES[rnd.randrange(len(CODES))][0]
                day = rnd.randrange(max(1, days))
                since = time.strftime("%Y-%m-%d", time.gmtime(START + day * 86400))
                t0 = time.perf_counter()
                r = client.get(
                    "/fhir/Observation",
                    params={
                        "patient": f"bench-{pid}",
                        "code": f"{LOINC}|{code}",
                        "date": f"ge{since}",
                        "_count": "50",
                    },
                )
                dt = time.perf_counter() - t0
                r.raise_for_status()
                if q >= 20:  # warm-up
                    latencies.append(dt * 1000)
                    matched.append(r.json()["total"])
            latencies.sort()
            out["search_total"] = total
            out["p50_ms"] = statistics.median(latencies)
            out["p95_ms"] = latencies[int(0.95 * len(latencies)) - 1]
            out["p99_ms"] = latencies[int(0.99 * len(latencies)) - 1]
            for text in explain_search(
                engine,
                repo,
                [
                    ("patient", f"bench-{rnd.randrange(patients)}"),
                    ("code", f"{LOINC}|{CODES[0][0]}"),
                    ("date", f"ge{time.strftime('%Y-%m-%d', time.gmtime(START + days // 2 * 86400))}"),
                    ("_count", "50"),
                ],
            ):
                print(f"[{backend}] (b) plan: {text}", flush=True)
            print(
                f"[{backend}] (b) search over {total:,} Observations / {patients:,} patients, {queries} queries "
                f"(mean {statistics.mean(matched):.0f} matches each): p50 {out['p50_ms']:.1f} ms, "
                f"p95 {out['p95_ms']:.1f} ms, p99 {out['p99_ms']:.1f} ms; load {os.getloadavg()[0]:.1f}",
                flush=True,
            )
        finally:
            server.stop()
            engine.dispose()
    finally:
        db.drop()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply the data sizes (e.g. 0.1)")
    parser.add_argument("--patients", type=int, default=1000)
    parser.add_argument("--queries", type=int, default=500)
    args = parser.parse_args()
    ingest = int(100_000 * args.scale) // BUNDLE_SIZE * BUNDLE_SIZE
    search_obs = int(1_000_000 * args.scale)
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    results = [run_backend(b, ingest, search_obs, args.patients, args.queries) for b in backends]
    print(
        "\nbackend   ingest/s  validate/s  ratio  CPU ratio  peak RSS MB  2-stream ingest/s  search p50 ms  p95 ms  "
        "p99 ms"
    )
    for r in results:
        print(
            f"{r['backend']:<9} {r['ingest_per_s']:>8,.0f}  {r['validation_per_s']:>10,.0f}  {r['ratio']:>5.2f}  "
            f"{r['cpu_ratio']:>9.2f}  "
            f"{r['peak_rss_mb']:>11.0f}  {r['ingest2_per_s']:>17,.0f}  {r['p50_ms']:>13.1f}  {r['p95_ms']:>6.1f}  "
            f"{r['p99_ms']:>6.1f}"
        )


if __name__ == "__main__":
    main()
