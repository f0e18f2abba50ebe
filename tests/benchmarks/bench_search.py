"""Search latency at scale (issue #19 item 3): ``Observation?patient=X&code=Y&date=ge…&_count=50`` over HTTP.

The same data and query as ``bench_store`` (b) — 1,000,000 Observations of 1,000 patients, one reading a day of
four LOINC codes — but the data can be seeded once and kept (``--db NAME`` on PostgreSQL, ``--sqlite-file F``), so
the search can be measured again in a minute when the machine is quiet. Each run prints:

* p50 / p95 / p99 over HTTP against ``mecr serve`` with authorization on (a system client's token), measured by
  the client, after a warm-up;
* the same queries in process (the app through ``TestClient``, no network), with the CPU time of the request
  beside its wall time, and the share of the request spent in the store's SQL statements (timed by SQLAlchemy's
  cursor events): what the request path around SQL costs;
* the plan of each statement (``EXPLAIN (ANALYZE, BUFFERS)`` on PostgreSQL, ``EXPLAIN QUERY PLAN`` on SQLite).

The server's searches by patient and code are driven by the derived coaching tables (docs/architecture.md, "Search
SQL"), so the seed keeps them (and rebuilds them once in a database seeded without them). ``--derived-search off``
(``MECR_DERIVED_SEARCH=false``) measures the search index alone: run both in alternation for an A/B.

Usage::

    python -m tests.benchmarks.bench_search --backend postgres --db mecr_search_1m     # seeds once, then reuses
    python -m tests.benchmarks.bench_search --backend sqlite --sqlite-file /tmp/s.db --observations 200000
    python -m tests.benchmarks.bench_search --backend postgres --db mecr_search_1m --derived-search off
    python -m tests.benchmarks.bench_search --backend postgres --db mecr_search_1m --first-statements 60

Target: p95 < 20 ms at 1,000,000 Observations on PostgreSQL.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

from fhir_ecr.coaching.derived import install_derived, rebuild
from fhir_ecr.fhir.bundles import process_bundle
from fhir_ecr.store.db import make_engine, upgrade
from fhir_ecr.store.repository import FhirRepository

from .bench_store import CODES, LOINC, PG_ADMIN, START, Server, bundles, explain_search, setup_bundle


def _pg_url(name: str) -> str:
    admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        exists = conn.exec_driver_sql("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).first()
        if not exists:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    admin.dispose()
    return PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"


def seed(url: str, observations: int, patients: int) -> int:
    """Load the data unless it is there already; return the number of Observations stored. The loads keep the
    derived coaching tables (the server's searches by patient and code read them); a database seeded without
    them (before 2026-12-06 late evening) gets them rebuilt once."""
    engine = make_engine(url)
    upgrade(engine)
    repo = FhirRepository(engine)
    install_derived(repo)
    with engine.connect() as conn:
        have = conn.exec_driver_sql(
            "SELECT count(*) FROM resource WHERE res_type = 'Observation' AND NOT deleted"
        ).scalar_one()
        derived = conn.exec_driver_sql("SELECT count(*) FROM derived_observation").scalar_one()
    if have and not derived:
        t = time.perf_counter()
        rows = rebuild(repo)
        print(
            f"rebuilt the derived rows of {rows:,} Observations in {time.perf_counter() - t:.0f} s",
            flush=True,
        )
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE" if engine.dialect.name == "postgresql" else "ANALYZE")
    if have >= observations:
        print(f"reusing {have:,} Observations", flush=True)
        engine.dispose()
        return int(have)
    if have == 0:
        process_bundle(repo, setup_bundle(patients), fhir_base="", max_entries=patients + 10)
    t = time.perf_counter()
    done = 0
    for b in bundles(have, observations - have, patients):
        process_bundle(repo, b, fhir_base="", max_entries=1000)
        done += len(b["entry"])
        if done % 50_000 < len(b["entry"]):
            print(
                f"  loaded {have + done:,} / {observations:,} ({done / (time.perf_counter() - t):,.0f}/s)",
                flush=True,
            )
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("VACUUM ANALYZE" if engine.dialect.name == "postgresql" else "ANALYZE")
    engine.dispose()
    return have + done


def queries(n: int, observations: int, patients: int) -> list[dict[str, str]]:
    rnd = random.Random(7)
    days = observations // (patients * len(CODES))
    out = []
    for _ in range(n):
        since = time.strftime("%Y-%m-%d", time.gmtime(START + rnd.randrange(max(1, days)) * 86400))
        out.append(
            {
                "patient": f"bench-{rnd.randrange(patients)}",
                "code": f"{LOINC}|{CODES[rnd.randrange(len(CODES))][0]}",
                "date": f"ge{since}",
                "_count": "50",
            }
        )
    return out


def first_statements(url: str, qs: list[dict[str, str]]) -> None:
    """PostgreSQL: the first statement of each query (the page's keys and the total) under ``EXPLAIN (ANALYZE,
    TIMING OFF, BUFFERS)``, driven by the derived tables and by the search index alone, alternating per query:
    execution time and shared buffers, independent of the request path around it."""
    import re

    engine = make_engine(url)
    repos = {"on": FhirRepository(engine), "off": FhirRepository(engine)}
    for mode, repo in repos.items():
        install_derived(repo, search=mode == "on")
    seen: list[tuple[str, Any]] = []

    def note(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        if "OVER ()" in statement and not statement.startswith("EXPLAIN"):
            seen.append((statement, parameters))

    sa.event.listen(engine, "before_cursor_execute", note)
    out: dict[str, tuple[list[float], list[int]]] = {"on": ([], []), "off": ([], [])}
    for i, params in enumerate(qs):
        for mode in ("on", "off") if i % 2 else ("off", "on"):
            seen.clear()
            repos[mode].search_params("Observation", list(params.items()))
            statement, parameters = seen[0]
            with engine.connect() as conn:
                plan = "\n".join(
                    str(r[0])
                    for r in conn.exec_driver_sql(
                        "EXPLAIN (ANALYZE, TIMING OFF, BUFFERS) " + statement, parameters
                    )
                )
            found = re.search(r"Execution Time: ([\d.]+)", plan)
            hits = re.search(r"shared hit=(\d+)", plan)
            out[mode][0].append(float(found.group(1)) if found else float("nan"))
            out[mode][1].append(int(hits.group(1)) if hits else 0)
    engine.dispose()
    for mode, (ms, hits) in out.items():
        ms.sort()
        print(
            f"first statement, derived search {mode}: min {ms[0]:.2f} / median {statistics.median(ms):.2f} / "
            f"p95 {ms[int(0.95 * len(ms)) - 1]:.2f} ms, shared buffers (median) {statistics.median(hits):,.0f} "
            f"({len(ms)} queries, load {os.getloadavg()[0]:.1f})"
        )


def percentiles(ms: list[float]) -> tuple[float, float, float]:
    ms = sorted(ms)
    return statistics.median(ms), ms[int(0.95 * len(ms)) - 1], ms[int(0.99 * len(ms)) - 1]


def over_http(url: str, qs: list[dict[str, str]], warmup: int) -> tuple[list[float], int]:
    server = Server(url)
    try:
        client = httpx.Client(base_url=server.base, timeout=60, headers=server.headers)
        latencies = []
        matched = 0
        for i, params in enumerate(qs):
            t0 = time.perf_counter()
            r = client.get("/fhir/Observation", params=params)
            dt = time.perf_counter() - t0
            r.raise_for_status()
            if i >= warmup:
                latencies.append(dt * 1000)
                matched += r.json()["total"]
        client.close()
    finally:
        server.stop()
    return latencies, matched


def in_process(url: str, qs: list[dict[str, str]], warmup: int) -> dict[str, float]:
    """The app in process with a system client's token: wall, CPU and SQL time per request (means, ms)."""
    from fastapi.testclient import TestClient

    from fhir_ecr.app import build_services, create_app
    from fhir_ecr.config import Settings

    settings = Settings(database_url=url, base_url="http://testserver", log_level="WARNING")
    services = build_services(settings)
    app = create_app(settings, services=services)
    engine = services.repo.engine
    sql = [0.0]
    started: dict[int, float] = {}

    def before(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        started[id(cursor)] = time.perf_counter()

    def after(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        began = started.pop(id(cursor), None)
        # the request's statements only: the audit trail writes on its own thread, beside the next requests
        if began is not None and threading.current_thread().name != "mecr-audit":
            sql[0] += time.perf_counter() - began

    sa.event.listen(engine, "before_cursor_execute", before)
    sa.event.listen(engine, "after_cursor_execute", after)
    from .bench_store import system_token

    env = {**os.environ, "MECR_DATABASE_URL": url}
    headers = {"Authorization": f"Bearer {system_token(env)}"}
    wall: list[float] = []
    cpu: list[float] = []
    sqls: list[float] = []
    with TestClient(app) as client:
        for i, params in enumerate(qs):
            sql[0] = 0.0
            t0, c0 = time.perf_counter(), time.process_time()
            r = client.get("/fhir/Observation", params=params, headers=headers)
            t1, c1 = time.perf_counter(), time.process_time()
            r.raise_for_status()
            if i >= warmup:
                wall.append((t1 - t0) * 1000)
                cpu.append((c1 - c0) * 1000)
                sqls.append(sql[0] * 1000)
    p50, p95, _ = percentiles(wall)
    return {
        "wall_p50": p50,
        "wall_p95": p95,
        "cpu_mean": statistics.mean(cpu),
        "sql_mean": statistics.mean(sqls),
        "wall_mean": statistics.mean(wall),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["sqlite", "postgres"], default="postgres")
    parser.add_argument("--db", help="PostgreSQL database to seed once and reuse (default: mecr_search_<N>)")
    parser.add_argument(
        "--sqlite-file", help="SQLite file to seed once and reuse (default: a temporary file)"
    )
    parser.add_argument("--observations", type=int, default=1_000_000)
    parser.add_argument("--patients", type=int, default=1000)
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--drop", action="store_true", help="drop the PostgreSQL database afterwards")
    parser.add_argument(
        "--first-statements",
        type=int,
        metavar="N",
        help="PostgreSQL: only EXPLAIN ANALYZE the first statement of N queries, derived search on and off",
    )
    parser.add_argument(
        "--derived-search",
        choices=["on", "off"],
        default="on",
        help="let the derived coaching tables drive the search (MECR_DERIVED_SEARCH; off: the search index alone)",
    )
    args = parser.parse_args()
    os.environ["MECR_DERIVED_SEARCH"] = "true" if args.derived_search == "on" else "false"
    if args.backend == "postgres":
        name = args.db or f"mecr_search_{args.observations}"
        url = _pg_url(name)
    else:
        path = Path(args.sqlite_file or f"/tmp/mecr-search-{args.observations}.db")
        url = f"sqlite:///{path}"
    total = seed(url, args.observations, args.patients)
    if args.first_statements:
        first_statements(url, queries(args.first_statements, total, args.patients))
        return
    qs = queries(args.queries + args.warmup, total, args.patients)
    load0 = os.getloadavg()[0]
    latencies, matched = over_http(url, qs, args.warmup)
    p50, p95, p99 = percentiles(latencies)
    inproc = in_process(url, qs, args.warmup)
    engine = make_engine(url)
    explained = FhirRepository(engine)
    install_derived(explained, search=args.derived_search == "on")
    for text in explain_search(engine, explained, list(qs[0].items())):
        print(f"plan: {text}")
    engine.dispose()
    print(
        f"\n[{args.backend}] {total:,} Observations, {args.patients:,} patients, {args.queries} queries "
        f"(mean {matched / args.queries:.0f} matches), derived search {args.derived_search}, "
        f"load {load0:.1f}→{os.getloadavg()[0]:.1f}\n"
        f"  over HTTP:   p50 {p50:.1f} ms, p95 {p95:.1f} ms, p99 {p99:.1f} ms   (target p95 < 20 ms)\n"
        f"  in process:  p50 {inproc['wall_p50']:.1f} ms, p95 {inproc['wall_p95']:.1f} ms; mean wall "
        f"{inproc['wall_mean']:.1f} ms = CPU {inproc['cpu_mean']:.1f} ms + waiting; SQL statements "
        f"{inproc['sql_mean']:.1f} ms of it"
    )
    if args.drop and args.backend == "postgres":
        admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


if __name__ == "__main__":
    main()
