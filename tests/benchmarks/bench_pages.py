"""Benchmark of the coach's patient page ``/app/patients/{id}`` (issue "The pages people use": p95 < 150 ms).

The same patient as ``bench_coaching`` (5 goals, 8 daily habits, two years of check-ins and wearable readings,
among other patients' data) — loaded by :func:`tests.benchmarks.bench_coaching.load` — rendered server-side
through HTTP (TestClient, a signed-in coach session with authorization on, so the scope checks and the audit
trail are part of the figure), and the JavaScript the pages ship is totalled.

Usage::

    python -m tests.benchmarks.bench_pages                     # SQLite and PostgreSQL
    python -m tests.benchmarks.bench_pages --backend sqlite --runs 30
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import sqlalchemy as sa

from fhir_ecr.app import build_services, create_app
from fhir_ecr.auth import Principal
from fhir_ecr.auth.sessions import SESSION_COOKIE, create_session
from fhir_ecr.config import Settings
from smart_launch.scopes import ScopeSet
from tests.benchmarks.bench_coaching import PG_SERVER, load, percentile

TARGET_MS = 150
STATIC = Path(__file__).resolve().parents[2] / "fhir_ecr" / "web" / "static"


def run(backend: str, runs: int) -> dict[str, float]:
    dbname = None
    tmp = tempfile.TemporaryDirectory()
    if backend == "postgres":
        dbname = f"mecr_bench_{uuid.uuid4().hex[:8]}"
        admin = sa.create_engine(f"{PG_SERVER}/postgres", isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{dbname}"')
        url = f"{PG_SERVER}/{dbname}"
    else:
        url = f"sqlite:///{tmp.name}/bench.db"
    try:
        settings = Settings(database_url=url, base_url="http://testserver", environment="test", auth="on")
        services = build_services(settings)
        t0 = time.perf_counter()
        pid = load(services)
        print(f"[{backend}] loaded in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
        coach = Principal(kind="practitioner", subject="Practitioner/bench", scopes=ScopeSet.parse("user/*.cruds"),
                          fhir_user="Practitioner/bench", display="Bench Coach")
        cookie, _ = create_session(services, coach)
        from fastapi.testclient import TestClient

        timings: dict[str, list[float]] = {"patient": [], "me": []}
        with TestClient(create_app(settings, services=services)) as client:
            client.cookies.set(SESSION_COOKIE, cookie)
            for _ in range(3):  # warm caches and connection pools
                assert client.get(f"/app/patients/{pid}").status_code == 200
            for _ in range(runs):
                t = time.perf_counter()
                resp = client.get(f"/app/patients/{pid}")
                timings["patient"].append((time.perf_counter() - t) * 1000)
                assert resp.status_code == 200 and 'class="runchart"' in resp.text, resp.text[:300]
        services.engine.dispose()
        out = {}
        for kind, values in timings.items():
            if values:
                out[f"{kind}_p50"] = statistics.median(values)
                out[f"{kind}_p95"] = percentile(values, 0.95)
        return out
    finally:
        tmp.cleanup()
        if dbname is not None:
            with admin.connect() as conn:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
            admin.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args(argv)
    js = sum(p.stat().st_size for p in STATIC.glob("*.js"))
    print(f"JavaScript shipped: {js / 1024:.1f} KB (target < 100 KB)")
    ok = js < 100 * 1024
    for backend in ["sqlite", "postgres"] if args.backend == "both" else [args.backend]:
        r = run(backend, args.runs)
        print(f"{backend:9s} /app/patients/{{id}}  p50 {r['patient_p50']:6.1f} ms  p95 {r['patient_p95']:6.1f} ms"
              f"   (target p95 < {TARGET_MS} ms)")
        ok = ok and r["patient_p95"] < TARGET_MS
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
