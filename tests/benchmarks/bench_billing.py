"""Billing benchmark: ``python -m tests.benchmarks.bench_billing [--sessions N --patients M --store-sessions K]``.

1. 100,000 in-memory sessions of 5,000 patients (rule-engine inputs, a year of weekly coaching across Medicare,
   Medi-Cal, commercial and self-pay) -> rule engine -> claims -> 837P (target < 20 s) and -> CSV (< 5 s).
2. The rule engine over sessions read from a SQLite store (IG-shaped Encounters, Coverage, Conditions), at a
   smaller scale (default 2,000 sessions).
Prints timings and the peak RSS of the process.
"""

from __future__ import annotations

import argparse
import random
import resource
import sys
import tempfile
import time
from contextlib import nullcontext
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from fhir_ecr.billing import Envelope, build_claims, evaluate, lines_csv, render_837p
from fhir_ecr.billing.service import gc_paused
from fhir_ecr.billing.source import load_sessions
from tests.billing.factories import (
    COMMERCIAL,
    FOLLOW_UP,
    GROUP,
    INITIAL,
    MEDI_CAL,
    MEDICARE,
    PATIENT,
    SUPERVISOR,
    coach,
    encounter,
    load,
    patient_resources,
    practice_resources,
    rules,
    session,
)

START, END = date(2026, 1, 1), date(2026, 12, 31)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kilobytes


def make_sessions(n: int, patients: int, seed: int = 7) -> list:
    rng = random.Random(seed)
    insurances = [MEDICARE, MEDI_CAL, COMMERCIAL, None]
    people = [replace(PATIENT, id=f"p{i:05d}", family=f"Family{i}", given="Pat") for i in range(patients)]
    the_coach = coach("nbc-hwc")
    out = []
    per = n // patients
    for i, person in enumerate(people):
        ins = insurances[i % 4]
        ins = replace(ins, coverage_id=f"cov-{i}", member_id=f"M{i:08d}") if ins else None
        for k in range(per):
            kind = INITIAL if k == 0 else (GROUP if k % 5 == 0 else FOLLOW_UP)
            out.append(
                session(
                    encounter_id=f"e{i:05d}-{k:03d}",
                    patient=person,
                    insurance=ins,
                    day=START + timedelta(days=(k * 7 + i) % 365),
                    minutes=rng.choice([25, 30, 35, 45, 60]),
                    types=(kind,),
                    group_size=3 if kind == GROUP else 1,
                    modality=rng.choice(["in-person", "in-person", "video", "audio-only"]),
                    coach=the_coach,
                    supervisor=SUPERVISOR,
                    diagnoses=rng.sample(["R73.03", "Z71.3", "E66.9", "Z68.35", "Z71.89", "I10"], 3),
                )
            )
    return out


def timed(label: str, fn):
    t0 = time.perf_counter()
    value = fn()
    elapsed = time.perf_counter() - t0
    print(f"  {label:<44} {elapsed:7.2f} s")
    return value, elapsed


def bench_memory(n: int, patients: int, sessions: list, pause_gc: bool) -> dict[str, float]:
    """The export pipeline as run_export runs it (cyclic GC paused) or with the collector running."""
    table = rules()
    print(
        f"in-memory: {n:,} sessions, {patients:,} patients; cyclic GC {'paused' if pause_gc else 'running'}"
    )
    with gc_paused() if pause_gc else nullcontext():
        return _pipeline(table, sessions)


def _pipeline(table, sessions) -> dict[str, float]:
    ev, t_rules = timed("rule engine", lambda: evaluate(sessions, table, start=START, end=END))
    claims, t_claims = timed("claims", lambda: build_claims(ev.lines, table))
    text, t_x12 = timed(
        "837P render + own checks", lambda: render_837p(claims, table, Envelope(1, datetime.now(UTC)))
    )
    _, t_csv = timed("CSV", lambda: lines_csv(claims, ev.lines))
    print(
        f"  lines {len(ev.lines):,}, findings {len(ev.findings):,}, claims {len(claims):,}, "
        f"837P {len(text) / 1e6:.1f} MB"
    )
    total_837 = t_rules + t_claims + t_x12
    total_csv = t_rules + t_claims + t_csv
    print(
        f"  => sessions -> 837P {total_837:.2f} s (target < 20 s); sessions -> CSV {total_csv:.2f} s (target < 5 s)"
    )
    return {"837p": total_837, "csv": total_csv}


def bench_store(n: int) -> float:
    from fhir_ecr.composition import build_services
    from fhir_ecr.config import Settings

    table = rules()
    patients = max(1, n // 10)
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(database_url=f"sqlite:///{Path(tmp) / 'bench.db'}", environment="test")
        services = build_services(settings)
        resources = practice_resources()
        payers = ["medicare", "acme", None]
        for i in range(patients):
            resources += patient_resources(f"p{i}", payer=payers[i % 3])
        for k in range(n):
            i = k % patients
            day = START + timedelta(days=k % 360)
            kind = "initial" if k < patients else "follow-up"
            resources.append(
                encounter(
                    f"e{k}",
                    f"p{i}",
                    kind,
                    f"{day.isoformat()}T10:00:00-05:00",
                    30 + k % 20,
                    modality="video" if k % 3 == 0 else "in-person",
                )
            )
        print(f"SQLite store: {n:,} sessions, {patients:,} patients")
        timed("load resources", lambda: load(services.repo, resources))

        def run() -> tuple[int, int]:
            with services.repo.unit(write=False) as uow:
                sessions = load_sessions(uow, table, START, END)
            ev = evaluate(sessions, table, start=START, end=END)
            return len(sessions), len(ev.lines)

        (count, lines), elapsed = timed("read sessions + rule engine", run)
        print(f"  sessions {count:,}, lines {lines:,} ({count / elapsed:,.0f} sessions/s)")
        services.engine.dispose()
    return elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=100_000)
    parser.add_argument("--patients", type=int, default=5_000)
    parser.add_argument("--store-sessions", type=int, default=2_000)
    args = parser.parse_args(argv)
    sessions, _ = timed("generate sessions", lambda: make_sessions(args.sessions, args.patients))
    bench_memory(args.sessions, args.patients, sessions, pause_gc=False)
    result = bench_memory(args.sessions, args.patients, sessions, pause_gc=True)
    bench_store(args.store_sessions)
    print(f"peak RSS {peak_rss_mb():.0f} MB")
    ok = result["837p"] < 20 and result["csv"] < 5
    print("PASS" if ok else "FAIL: over target")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
