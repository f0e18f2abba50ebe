"""Benchmark of the referral workflow's costs (docs/referrals.md): what the organisation confinement adds to a
Task search, and what the referral write hook (state machine, consent lookup, Provenance) adds to a Task update.

A practice with ``--patients`` patients (default 2,000), each with a chart (a Condition, 5 Observations) and one
referral (ServiceRequest + Task + Consent) to one of 20 community organisations, on SQLite (and PostgreSQL when
reachable). Through the repository with real ``Access`` objects (no HTTP):

- **search**: ``Task?status=requested`` by an organisation's client (confined: its ~100 referrals) against the
  same search by a coach (unconfined, all 2,000) — p50/p95 and the ratio;
- **update**: the organisation accepting a referral Task (hook: transition, Provenance) against a coach's update
  of a plain Task (no referral profile: the hook only looks) — p50/p95 and the ratio;
- **send**: the coach moving a draft to ``requested`` (hook: consent lookup) — p50/p95.

Usage::

    python -m tests.benchmarks.bench_referrals [--backend sqlite|postgres|both] [--patients 2000] [--runs 50]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from typing import Any

import sqlalchemy as sa

from fhir_ecr.app import build_services
from fhir_ecr.auth import Access, Principal
from fhir_ecr.config import Settings
from fhir_ecr.referrals.consent import build_consent
from fhir_ecr.store.search import parse_search
from smart_launch import ScopeSet

PG_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432"
ORGS = 20
TASK_PROFILE = "https://mecr.dev/fhir/StructureDefinition/mecr-referral-task"


def _coach() -> Principal:
    return Principal(
        kind="practitioner",
        subject="Practitioner/c",
        fhir_user="Practitioner/c",
        scopes=ScopeSet.parse("user/*.cruds"),
    )


def _org(i: int) -> Principal:
    return Principal(
        kind="system",
        subject=f"client:org{i}",
        scopes=ScopeSet.parse(
            "system/Task.rus system/ServiceRequest.rs system/Patient.r system/Procedure.crs"
        ),
        organization=f"org{i}",
    )


def _task(pid: str, status: str, org: int, profile: bool = True) -> dict[str, Any]:
    t: dict[str, Any] = {
        "resourceType": "Task",
        "id": f"t-{pid}",
        "status": status,
        "intent": "order",
        "code": {"coding": [{"system": "http://hl7.org/fhir/CodeSystem/task-code", "code": "fulfill"}]},
        "focus": {"reference": f"ServiceRequest/sr-{pid}"},
        "for": {"reference": f"Patient/{pid}"},
        "authoredOn": "2026-03-01T10:00:00Z",
        "requester": {"reference": "Practitioner/c"},
        "owner": {"reference": f"Organization/org{org}"},
    }
    if profile:
        t["meta"] = {"profile": [TASK_PROFILE]}
    return t


def seed(services: Any, patients: int) -> None:
    repo = services.repo
    with repo.unit() as uow:
        uow.update("Practitioner", "c", {"resourceType": "Practitioner", "id": "c"})
        for i in range(ORGS):
            uow.update(
                "Organization",
                f"org{i}",
                {"resourceType": "Organization", "id": f"org{i}", "name": f"Org {i}"},
            )
    for start in range(0, patients, 500):
        with repo.unit() as uow:
            for n in range(start, min(start + 500, patients)):
                pid, org = f"p{n}", n % ORGS
                uow.update(
                    "Patient", pid, {"resourceType": "Patient", "id": pid, "name": [{"family": f"F{n}"}]}
                )
                uow.update(
                    "Condition",
                    f"dx-{pid}",
                    {
                        "resourceType": "Condition",
                        "id": f"dx-{pid}",
                        "subject": {"reference": f"Patient/{pid}"},
                        "code": {"text": "x"},
                    },
                )
                for k in range(5):
                    uow.update(
                        "Observation",
                        f"o{k}-{pid}",
                        {
                            "resourceType": "Observation",
                            "id": f"o{k}-{pid}",
                            "status": "final",
                            "code": {"text": "x"},
                            "subject": {"reference": f"Patient/{pid}"},
                            "valueInteger": k,
                        },
                    )
                uow.update(
                    "ServiceRequest",
                    f"sr-{pid}",
                    {
                        "resourceType": "ServiceRequest",
                        "id": f"sr-{pid}",
                        "status": "active",
                        "intent": "order",
                        "subject": {"reference": f"Patient/{pid}"},
                        "code": {"text": "food"},
                    },
                )
                uow.create(build_consent(pid, f"org{org}", f"Org {org}", today="2026-03-01"))
                status = "draft" if n % 10 == 0 else "requested"
                uow.update("Task", f"t-{pid}", _task(pid, status, org, profile=n % 10 != 1))


def timed(fn: Any, runs: int) -> tuple[float, float]:
    samples = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t) * 1000)
    samples.sort()
    return statistics.median(samples), samples[max(0, int(len(samples) * 0.95) - 1)]


def run(services: Any, patients: int, runs: int, label: str) -> None:
    t = time.perf_counter()
    seed(services, patients)
    print(
        f"[{label}] seeded {patients} patients with charts and referrals in {time.perf_counter() - t:.1f} s"
    )
    coach = services.repo.guarded(Access(_coach()))
    org = services.repo.guarded(Access(_org(3)))

    def search(repo: Any) -> Any:
        q = parse_search("Task", [("status", "requested"), ("_count", "1000")])
        return lambda: repo.search(q)

    n_org = len(org.search(parse_search("Task", [("status", "requested"), ("_count", "1000")])).matches)
    c50, c95 = timed(search(coach), runs)
    o50, o95 = timed(search(org), runs)
    print(
        f"[{label}] Task?status=requested  coach (all, unconfined): p50 {c50:.1f} ms p95 {c95:.1f} ms; "
        f"organisation ({n_org} of its own): p50 {o50:.1f} ms p95 {o95:.1f} ms; ratio p95 {o95 / c95:.2f}"
    )
    # updates: the organisation accepts its referrals; the coach touches plain Tasks (no referral profile)
    mine = [n for n in range(patients) if n % ORGS == 3 and n % 10 not in (0, 1)][:runs]
    plain = [n for n in range(patients) if n % 10 == 1][:runs]
    it_org, it_plain = iter(mine), iter(plain)

    def accept() -> None:
        n = next(it_org)
        org.update("Task", f"t-p{n}", {**_task(f"p{n}", "accepted", n % ORGS)})

    def touch() -> None:
        n = next(it_plain)
        coach.update("Task", f"t-p{n}", {**_task(f"p{n}", "accepted", n % ORGS, profile=False)})

    k = min(len(mine), len(plain), runs)
    a50, a95 = timed(accept, k)
    b50, b95 = timed(touch, k)
    print(
        f"[{label}] Task update  plain (hook looks only): p50 {b50:.1f} ms p95 {b95:.1f} ms; referral accepted by "
        f"the organisation (state machine + Provenance): p50 {a50:.1f} ms p95 {a95:.1f} ms; ratio p95 {a95 / b95:.2f}"
    )
    drafts = iter([n for n in range(patients) if n % 10 == 0][:runs])

    def send() -> None:
        n = next(drafts)
        coach.update("Task", f"t-p{n}", _task(f"p{n}", "requested", n % ORGS))

    s50, s95 = timed(send, min(runs, patients // 10))
    print(
        f"[{label}] draft -> requested by the coach (consent lookup + Provenance): p50 {s50:.1f} ms p95 {s95:.1f} ms"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--patients", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=50)
    args = parser.parse_args()
    if args.backend in ("sqlite", "both"):
        with tempfile.TemporaryDirectory() as tmp:
            services = build_services(Settings(database_url=f"sqlite:///{tmp}/bench.db", environment="test"))
            run(services, args.patients, args.runs, "sqlite")
            services.engine.dispose()
    if args.backend in ("postgres", "both"):
        name = f"mecr_bench_{uuid.uuid4().hex[:8]}"
        admin = sa.create_engine(f"{PG_SERVER}/postgres", isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as conn:
                conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        except Exception as exc:  # noqa: BLE001 - no server: say so and go on
            print(f"[postgres] skipped: {type(exc).__name__}")
            return 0
        try:
            services = build_services(Settings(database_url=f"{PG_SERVER}/{name}", environment="test"))
            run(services, args.patients, args.runs, "postgres")
            services.engine.dispose()
        finally:
            with admin.connect() as conn:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            admin.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
