"""Benchmark of the wearable import (issue 7): a generated Apple Health export.xml into SQLite.

The export spans 5 years in Apple's layout (one type after another, each in time order) from several sources:
Apple Watch (steps, heart rate with motion-context metadata, active energy, exercise minutes, sleep stages,
resting heart rate, SpO2, workouts), iPhone (steps, distance) and Withings Health Mate (weight). It is written
to disk as a stream, then imported by ``mecr``'s importer in a subprocess, twice:

(a) first import: MB/s and records/s end to end (read, map, summarise, write to SQLite), peak RSS;
(b) re-import of the same file: must write nothing; speed ratio to (a). The importer recognises a file it
    imported before (same SHA-256) and only checks that what it stored is unchanged;
(c) the same re-import along the full path (parse, map, compare with the store in one query per batch), which
    is what an overlapping newer export goes through: must write nothing; speed ratio to (a).

Sizes: 100 MB and 1 GB (``--scale`` multiplies the large size: ``--scale 0.1`` runs 100 MB only).

Usage::

    python -m tests.benchmarks.bench_wearable_import                 # 100 MB and 1 GB (≈ 15 min)
    python -m tests.benchmarks.bench_wearable_import --scale 0.1     # 100 MB only
    python -m tests.benchmarks.bench_wearable_import --sizes 50 --profile   # cProfile of the first import

Targets: (a) ≥ 40 MB/s; peak RSS < 250 MB whatever the size; (b) ≥ 2× the first import's speed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil

START = 1_609_459_200  # 2021-01-01T00:00:00Z
DAYS = 5 * 365 + 1
OFFSET = -8 * 3600  # dates are written with the phone's offset at export time (the fixtures' quirk)
WATCH = (
    'sourceName="Apple Watch" sourceVersion="9.0" device="&lt;&lt;HKDevice: 0x283a0c0f0&gt;, name:Apple '
    'Watch, manufacturer:Apple Inc., model:Watch, hardware:Watch6,2, software:9.0&gt;"'
)
PHONE = (
    'sourceName="iPhone" sourceVersion="16.0" device="&lt;&lt;HKDevice: 0x283a0c1a0&gt;, name:iPhone, '
    'manufacturer:Apple Inc., model:iPhone, hardware:iPhone14,2, software:16.0&gt;"'
)
SCALE = 'sourceName="Health Mate" sourceVersion="6020000"'
Q = "HKQuantityTypeIdentifier"
# (type, source, unit, seconds between samples at density 1, sample length s, value range, awake hours only)
STREAMS = [
    (f"{Q}StepCount", WATCH, "count", 600, 600, (0, 1400), True),
    (f"{Q}StepCount", PHONE, "count", 600, 600, (0, 1300), True),
    (f"{Q}DistanceWalkingRunning", PHONE, "km", 600, 600, (0, 1.0), True),
    (f"{Q}HeartRate", WATCH, "count/min", 150, 0, (55, 140), False),
    (f"{Q}ActiveEnergyBurned", WATCH, "kcal", 75, 60, (0, 8), True),
    (f"{Q}AppleExerciseTime", WATCH, "min", 1800, 60, (0, 1), True),
]


def _date(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S -0800", time.gmtime(t + OFFSET))


def _records(density: float) -> Iterator[str]:
    """Lines of the export, type by type (as Apple writes them)."""
    import random

    rnd = random.Random(7)
    end = START + DAYS * 86400
    for kind, source, unit, step, length, (lo, hi), awake in STREAMS:
        gap = step / density
        t = float(START)
        while t < end:
            hour = int((t + OFFSET) % 86400 // 3600)
            if not awake or 7 <= hour < 23:
                value = rnd.randint(lo, hi) if isinstance(hi, int) else round(rnd.uniform(lo, hi), 3)
                s, e = _date(t), _date(t + length)
                if kind.endswith("HeartRate") and rnd.random() < 0.5:
                    yield (
                        f' <Record type="{kind}" {source} unit="{unit}" creationDate="{e}" startDate="{s}" '
                        f'endDate="{e}" value="{value}">\n  <MetadataEntry key="HKMetadataKeyHeartRateMotionContext"'
                        f' value="1"/>\n </Record>\n'
                    )
                else:
                    yield (
                        f' <Record type="{kind}" {source} unit="{unit}" creationDate="{e}" startDate="{s}" '
                        f'endDate="{e}" value="{value}"/>\n'
                    )
            t += gap
    for day in range(DAYS):
        midnight = START + day * 86400 - OFFSET  # local midnight
        yield (
            f' <Record type="{Q}RestingHeartRate" {WATCH} unit="count/min" creationDate="{_date(midnight + 8 * 3600)}"'
            f' startDate="{_date(midnight + 60)}" endDate="{_date(midnight + 86000)}" value="{rnd.randint(52, 66)}"/>\n'
        )
        w = _date(midnight + 7 * 3600)
        yield (
            f' <Record type="{Q}BodyMass" {SCALE} unit="lb" creationDate="{w}" startDate="{w}" endDate="{w}" '
            f'value="{round(rnd.uniform(170, 180), 1)}"/>\n'
        )
        for h in (3, 9, 15, 21):
            o = _date(midnight + h * 3600)
            yield (
                f' <Record type="{Q}OxygenSaturation" {WATCH} unit="%" creationDate="{o}" startDate="{o}" '
                f'endDate="{o}" value="{rnd.randint(94, 99) / 100}"/>\n'
            )
        t = midnight - 2 * 3600  # sleep 22:00 to about 06:00, in stages
        for _ in range(16):
            stage = rnd.choice(("AsleepCore", "AsleepDeep", "AsleepREM", "Awake"))
            n = t + rnd.randint(20, 40) * 60
            yield (
                f' <Record type="HKCategoryTypeIdentifierSleepAnalysis" {WATCH} creationDate="{_date(n)}" '
                f'startDate="{_date(t)}" endDate="{_date(n)}" value="HKCategoryValueSleepAnalysis{stage}"/>\n'
            )
            t = n
        if day % 3 == 0:
            s, e = _date(midnight + 18 * 3600), _date(midnight + 18 * 3600 + 2400)
            yield (
                f' <Workout workoutActivityType="HKWorkoutActivityTypeWalking" duration="40" durationUnit="min" '
                f'totalDistance="3.5" totalDistanceUnit="km" totalEnergyBurned="210" totalEnergyBurnedUnit="kcal" '
                f'{WATCH} creationDate="{e}" startDate="{s}" endDate="{e}"/>\n'
            )


def generate(path: Path, megabytes: float) -> tuple[int, int]:
    """Write an export of about ``megabytes`` MB (10^6 bytes) to ``path``; returns (bytes, records)."""
    # measured: the daily records (sleep, weight, SpO2, ...) take 15.8 MB; the sampled streams 1,189 MB at density 1
    density = max(0.001, (megabytes - 15.8) / 1189.0)
    count = 0
    with path.open("w", encoding="utf-8", buffering=1 << 20) as out:
        out.write(
            '<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE HealthData [\n<!ELEMENT HealthData (ExportDate,'
            'Me,(Record|Correlation|Workout|ActivitySummary|ClinicalRecord)*)>\n]>\n<HealthData locale="en_US">'
            '\n <ExportDate value="2026-01-01 09:00:00 -0800"/>\n <Me HKCharacteristicTypeIdentifierDateOfBirth=""'
            ' HKCharacteristicTypeIdentifierBiologicalSex="HKBiologicalSexNotSet"/>\n'
        )
        for line in _records(density):
            out.write(line)
            count += 1
        out.write("</HealthData>\n")
    return path.stat().st_size, count


def _setup(url: str) -> str:
    from fhir_ecr.coaching import resources as res
    from fhir_ecr.composition import build_services
    from fhir_ecr.config import Settings

    services = build_services(Settings(database_url=url))
    try:
        return str(
            services.repo.create(
                {
                    "resourceType": "Patient",
                    "name": [{"family": "Bench"}],
                    "extension": [{"url": res.TIMEZONE_URL, "valueCode": "America/Los_Angeles"}],
                }
            ).stored.id
        )
    finally:
        services.engine.dispose()


def child(url: str, patient: str, path: str, profile: bool, full: bool) -> None:
    """Import ``path`` (in this process) and print the figures as JSON."""
    from fhir_ecr.coaching.service import CoachingService
    from fhir_ecr.composition import build_services
    from fhir_ecr.config import Settings
    from fhir_ecr.wearables import ImportOptions, WearableImporter

    services = build_services(Settings(database_url=url), migrate=False)
    importer = WearableImporter(
        services.repo, coaching=CoachingService(services.repo), options=ImportOptions(skip_verified=not full)
    )
    start = time.perf_counter()
    if profile:
        import cProfile
        import pstats

        prof = cProfile.Profile()
        summary = prof.runcall(importer.import_path, patient, path)
        pstats.Stats(prof, stream=sys.stderr).sort_stats(os.environ.get("BENCH_SORT", "tottime")).print_stats(
            int(os.environ.get("BENCH_TOP", "25"))
        )
    else:
        summary = importer.import_path(patient, path)
    elapsed = time.perf_counter() - start
    services.engine.dispose()
    print(
        json.dumps(
            {
                "seconds": elapsed,
                "read": summary.read,
                "created": summary.created,
                "updated": summary.updated,
                "unchanged": summary.unchanged,
                "days": summary.days,
                "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
            }
        )
    )


def run_child(
    url: str, patient: str, path: Path, profile: bool = False, full: bool = False
) -> dict[str, Any]:
    """Run :func:`child` in a subprocess, sampling its RSS with psutil; returns its figures."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.benchmarks.bench_wearable_import",
            "--child",
            url,
            patient,
            str(path),
            *(["--profile"] if profile else []),
            *(["--full"] if full else []),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    peak = peak_total = peak_private = 0
    stop = threading.Event()

    def sample() -> None:
        # the import process's RSS, and with it the private memory (USS) of its children: the second process
        # that parses half of a large export.xml is forked from it, so their shared pages are counted once
        nonlocal peak, peak_total, peak_private
        p = psutil.Process(proc.pid)
        while not stop.is_set():
            try:
                rss = p.memory_info().rss
                children = p.children(recursive=True)
            except psutil.Error:
                return
            private = 0
            for c in children:
                with contextlib.suppress(psutil.Error):
                    private += c.memory_full_info().uss
            peak, peak_total, peak_private = (
                max(peak, rss),
                max(peak_total, rss + private),
                max(peak_private, private),
            )
            stop.wait(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, _ = proc.communicate()
    stop.set()
    sampler.join()
    if proc.returncode != 0:
        raise SystemExit(f"the import subprocess failed ({proc.returncode})")
    figures: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    figures["peak_rss_mb"] = max(peak, figures["maxrss_kb"] * 1024) / 2**20
    figures["peak_total_mb"] = max(peak_total, figures["maxrss_kb"] * 1024) / 2**20
    figures["worker_mb"] = peak_private / 2**20
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--scale", type=float, default=1.0, help="multiply the large size (1 GB); 0.1 = 100 MB only"
    )
    parser.add_argument(
        "--sizes", type=float, nargs="*", help="file sizes in MB (default: 100 and 1000 × scale)"
    )
    parser.add_argument(
        "--profile", action="store_true", help="print a cProfile of the first import (stderr)"
    )
    parser.add_argument("--keep", type=Path, help="directory to keep (and reuse) the generated files in")
    parser.add_argument("--child", nargs=3, metavar=("URL", "PATIENT", "FILE"), help=argparse.SUPPRESS)
    parser.add_argument("--full", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child, profile=args.profile, full=args.full)
        return
    sizes = args.sizes or sorted({100.0, round(1000 * args.scale)})
    rows = []
    with tempfile.TemporaryDirectory(prefix="mecr-bench-wearables-") as tmp:
        work = args.keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        for size in sizes:
            path = work / f"export-{size:g}MB.xml"
            if not path.exists():
                t = time.perf_counter()
                nbytes, records = generate(path, size)
                print(
                    f"generated {path.name}: {nbytes / 1e6:,.0f} MB, {records:,} records "
                    f"in {time.perf_counter() - t:.0f} s",
                    flush=True,
                )
            nbytes = path.stat().st_size
            db = Path(tmp) / f"bench-{size:g}.db"
            url = f"sqlite:///{db}"
            patient = _setup(url)
            first = run_child(url, patient, path, args.profile)
            second = run_child(url, patient, path)
            third = run_child(url, patient, path, full=True)
            for again in (second, third):
                assert again["created"] == again["updated"] == 0, again
            row = {
                "mb": nbytes / 1e6,
                "records": first["read"],
                "days": first["days"],
                "mb_s": nbytes / 1e6 / first["seconds"],
                "rec_s": first["read"] / first["seconds"],
                "rss": first["peak_rss_mb"],
                "total": first["peak_total_mb"],
                "worker": first["worker_mb"],
                "created": first["created"],
                "re_mb_s": nbytes / 1e6 / second["seconds"],
                "re_rss": second["peak_rss_mb"],
                "ratio": first["seconds"] / second["seconds"],
                "unchanged": second["unchanged"],
                "full_mb_s": nbytes / 1e6 / third["seconds"],
                "full_ratio": first["seconds"] / third["seconds"],
                "full_rss": third["peak_rss_mb"],
            }
            rows.append(row)
            print(
                f"{row['mb']:,.0f} MB, {row['records']:,} records: first import {first['seconds']:.1f} s = "
                f"{row['mb_s']:.1f} MB/s, {row['rec_s']:,.0f} records/s, peak RSS {row['rss']:.0f} MB "
                f"({row['total']:.0f} MB with the second parsing process's private memory, which peaked at "
                f"{row['worker']:.0f} MB), "
                f"{row['created']:,} resources created; re-import {second['seconds']:.1f} s = "
                f"{row['re_mb_s']:.1f} MB/s ({row['ratio']:.2f}×), wrote nothing "
                f"({row['unchanged']:,} unchanged), peak RSS {row['re_rss']:.0f} MB; full-path re-import "
                f"{third['seconds']:.1f} s = {row['full_mb_s']:.1f} MB/s ({row['full_ratio']:.2f}×), wrote nothing, "
                f"peak RSS {row['full_rss']:.0f} MB",
                flush=True,
            )
            if not args.keep:
                path.unlink()
            db.unlink()
    print(
        "\n    MB    records   MB/s  records/s  peak RSS MB  +worker MB  created  (b) MB/s  ratio  (c) MB/s  ratio  "
        "(c) RSS MB"
    )
    for r in rows:
        print(
            f"{r['mb']:>6,.0f}  {r['records']:>9,}  {r['mb_s']:>5.1f}  {r['rec_s']:>9,.0f}  {r['rss']:>11.0f}  "
            f"{r['total']:>10.0f}  "
            f"{r['created']:>7,}  {r['re_mb_s']:>8.1f}  {r['ratio']:>5.1f}  {r['full_mb_s']:>8.1f}  "
            f"{r['full_ratio']:>5.2f}  {r['full_rss']:>10.0f}"
        )
    print("targets: >= 40 MB/s, peak RSS < 250 MB at every size, re-import >= 2x")


if __name__ == "__main__":
    os.environ.setdefault("MECR_LOG_LEVEL", "WARNING")
    main()
