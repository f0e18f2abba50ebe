"""Run every benchmark in turn and print their figures (``make bench``; ``make bench-quick`` for --scale 0.1).

Each benchmark is its own module and can be run alone (see docs/benchmarks.md):

- ``bench_store``: FHIR ingest through transaction Bundles, search latency, server RSS (SQLite and PostgreSQL);
- ``bench_validation``: cost of profile validation per mECR profile against the plain write path;
- ``bench_json``: exact JSON numbers (``jsonexact``) against plain orjson, an Observation and a 500-entry Bundle;
- ``bench_coaching``: ``$coaching-summary`` latency for a patient with two years of data;
- ``bench_pages``: server-side render time of the coach's patient page (two years of data) and JS shipped;
- ``bench_caseload``: the caseload of 500 patients with two years of data each, warm and after a nightly import;
- ``bench_billing``: 837P and CSV export of 100,000 coaching sessions;
- ``bench_wearable_import``: a generated Apple Health export (100 MB and 1 GB) imported into SQLite, and again;
- ``bench_referrals``: the organisation confinement on a Task search and the referral write hook on updates;
- ``bench_directory``: the community directory: import of 50,000 HSDS services, search by category and distance;
- ``bench_sync``: EMR sync against sekmet-fhir (Bulk and paged pulls of 50,000, a push of 10,000) and ``$export``
  of 1,000,000 Observations.
"""

from __future__ import annotations

import argparse
import subprocess
import sys


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="shrink the data sizes (e.g. 0.1)")
    args = parser.parse_args()
    s = args.scale
    runs = [
        ["tests.benchmarks.bench_store", "--scale", str(s)],
        ["tests.benchmarks.bench_validation", "--count", str(max(1000, int(10_000 * s)))],
        ["tests.benchmarks.bench_json"],
        ["tests.benchmarks.bench_coaching", "--runs", str(max(10, int(40 * s)))],
        ["tests.benchmarks.bench_pages", "--runs", str(max(10, int(30 * s)))],
        [
            "tests.benchmarks.bench_caseload",
            "--patients",
            str(max(50, int(500 * s))),
            "--runs",
            str(max(10, int(20 * s))),
            "--cold-runs",
            "2" if s < 1 else "3",
        ],
        [
            "tests.benchmarks.bench_billing",
            "--sessions",
            str(max(1000, int(100_000 * s))),
            "--patients",
            str(max(50, int(5_000 * s))),
        ],
        ["tests.benchmarks.bench_wearable_import", "--scale", str(s)],
        [
            "tests.benchmarks.bench_referrals",
            "--patients",
            str(max(300, int(2000 * s))),
            "--runs",
            str(max(10, int(50 * s))),
        ],
        [
            "tests.benchmarks.bench_directory",
            "--services",
            str(max(2000, int(50_000 * s))),
            "--runs",
            str(max(50, int(200 * s))),
        ],
        ["tests.benchmarks.bench_sync", "--scale", str(s)],
    ]
    failed = 0
    for module, *rest in runs:
        print(f"\n=== {module} {' '.join(rest)}", flush=True)
        failed += subprocess.call([sys.executable, "-m", module, *rest]) != 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
