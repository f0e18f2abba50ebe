"""Benchmark of ``Patient/{id}/$coaching-summary`` (issue "Coaching core", item 7).

One patient with 5 goals, 8 daily habits and two years of data: 8 x 750 = 6,000 check-ins and 3 x 750 =
2,250 wearable daily Observations (steps, sleep, resting heart rate), among a few other patients' data so
the indexes are not trivially selective. The summary is computed through :class:`CoachingService` (what the
operation handler calls) and through HTTP (TestClient), and p50/p95 are printed per backend.

Usage::

    python -m tests.benchmarks.bench_coaching                     # SQLite and PostgreSQL
    python -m tests.benchmarks.bench_coaching --backend sqlite --runs 30

Target: p95 < 100 ms on both. PostgreSQL uses a fresh database (created and dropped) on
``postgresql+psycopg://postgres@127.0.0.1:5432``.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from fhir_ecr.app import build_services, create_app
from fhir_ecr.coaching import fhir_io as io
from fhir_ecr.coaching.schedule import CheckInStatus
from fhir_ecr.coaching.service import CoachingService
from fhir_ecr.config import Settings

PG_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432"
TODAY = date(2026, 3, 20)
DAYS = 750
LOINC = "http://loinc.org"
# (code, goal target kwargs, daily reading mean, sd, unit)
METRICS = [
    ("41950-7", {"at_least": 8000, "unit": "/d"}, 7000, 2500, "/d"),
    ("93832-4", {"at_least": 7, "unit": "h"}, 400, 50, "min"),
    ("40443-4", {"at_most": 62, "unit": "/min"}, 66, 3, "/min"),
]
CATEGORY = [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "activity"}]}]


def reading(patient: str, code: str, day: date, value: float, unit: str) -> dict[str, Any]:
    """A wearable daily reading (the shape the daily-summary mapper writes)."""
    return {
        "resourceType": "Observation", "status": "final", "meta": {"source": "urn:mecr:bench"},
        "category": CATEGORY, "code": {"coding": [{"system": LOINC, "code": code}]},
        "subject": {"reference": f"Patient/{patient}"}, "effectiveDateTime": day.isoformat(),
        "valueQuantity": io.quantity(round(value), unit),
    }


def load(services: Any, patients: int = 3) -> str:
    """Load the benchmark data; returns the id of the patient to summarise."""
    repo = services.repo
    repo.clock = lambda: int(datetime(2026, 3, 20, 18, tzinfo=UTC).timestamp() * 1_000_000)
    svc = CoachingService(repo)
    rnd = random.Random(7)
    first = TODAY - timedelta(days=DAYS - 1)
    target = ""
    for n in range(patients):
        pid = repo.create({"resourceType": "Patient", "name": [{"family": f"Bench{n}"}],
                           "extension": [{"url": io.TIMEZONE_URL, "valueCode": "America/Chicago"}]}).stored.id
        target = target or pid
        goals = [svc.create_goal(pid, description=f"goal {code}", category="physical-activity",
                                 measure={"system": LOINC, "code": code}, **kw).id
                 for code, kw, *_ in METRICS]
        goals += [svc.create_goal(pid, description="Eat vegetables", category="nutrition").id,
                  svc.create_goal(pid, description="Feel calmer", category="stress-management").id]
        habits = [io.habit_activity(f"h{i}", f"Habit {i}", io.timing_repeat("daily"), first, goal_id=goals[i % 5])
                  for i in range(8)]
        plan = svc.create_plan(pid, "Bench habits", habits)
        fake = io.habits_of_plan(plan.content or {})
        with repo.unit() as uow:
            for day_n in range(DAYS):
                day = first + timedelta(days=day_n)
                for habit in fake:
                    status = rnd.choices(["done", "partly", "not-done"], [0.75, 0.15, 0.10])[0]
                    uow.create(io.checkin_observation(habit, pid, day, CheckInStatus(status)))
                for code, _, mean, sd, unit in METRICS:
                    uow.create(reading(pid, code, day, max(0.0, rnd.gauss(mean, sd)), unit))
    return target


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


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
        settings = Settings(database_url=url, base_url="http://testserver", environment="test")
        services = build_services(settings)
        t0 = time.perf_counter()
        pid = load(services)
        print(f"[{backend}] loaded in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
        svc = CoachingService(services.repo)
        from fastapi.testclient import TestClient

        from fhir_ecr.auth import Principal
        from smart_launch import ScopeSet

        # Authorization on, as in production: a coach's bearer token (scope checks, guard, AuditEvent).
        coach = Principal(kind="practitioner", subject="Practitioner/bench", fhir_user="Practitioner/bench",
                          scopes=ScopeSet.parse("user/*.cruds"), display="Bench Coach")
        token, _ = services.sessions.issue_token(coach)
        timings: dict[str, list[float]] = {"service": [], "http": []}
        with TestClient(create_app(settings, services=services),
                        headers={"Authorization": f"Bearer {token}"}) as client:
            for _ in range(3):  # warm caches and connection pools
                svc.coaching_summary(pid)
                client.get(f"/fhir/Patient/{pid}/$coaching-summary")
            for _ in range(runs):
                t = time.perf_counter()
                summary = svc.coaching_summary(pid)
                timings["service"].append((time.perf_counter() - t) * 1000)
                t = time.perf_counter()
                resp = client.get(f"/fhir/Patient/{pid}/$coaching-summary")
                timings["http"].append((time.perf_counter() - t) * 1000)
                assert resp.status_code == 200, resp.text[:300]
        assert len(summary["habit"]) == 8 and len(summary["goal"]) == 5
        services.engine.dispose()
        out = {}
        for kind, values in timings.items():
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
    parser.add_argument("--runs", type=int, default=40)
    args = parser.parse_args(argv)
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    ok = True
    for backend in backends:
        r = run(backend, args.runs)
        print(f"{backend:9s} $coaching-summary  service p50 {r['service_p50']:6.1f} ms  p95 {r['service_p95']:6.1f} ms"
              f"   http p50 {r['http_p50']:6.1f} ms  p95 {r['http_p95']:6.1f} ms   (target p95 < 100 ms)")
        ok = ok and r["http_p95"] < 100
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
