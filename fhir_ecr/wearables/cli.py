"""``mecr import wearable``: import wearable exports for one patient (docs/wearables.md).

Examples::

    mecr import wearable --patient 123 ~/Downloads/export.zip
    mecr import wearable --patient 123 --format fitbit --source-priority "fitbit,apple watch" steps.json sleep.json
    mecr import wearable --patient 123 --format csv --csv-mapping scale.json scale.csv --json
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

from ..config import Settings
from ..outcomes import FhirError
from .formats import FORMATS, csv_mapping_from_dict
from .importer import (
    ImportOptions,
    ImportSummary,
    WearableImporter,
    WearableImportError,
    parse_source_priority,
)
from .ziplimits import ZipLimits

__all__ = ["add_import_parser", "run_import"]

log = logging.getLogger("mecr.wearables")


def add_import_parser(sub: Any) -> None:
    """Add ``import wearable`` to the ``mecr`` subcommands."""
    imp = sub.add_parser(
        "import",
        help="import data (wearable exports, community directories)",
        description="Import data from files or URLs into the store.",
    )
    kinds = imp.add_subparsers(dest="import_command", metavar="KIND", required=True)
    wearable = kinds.add_parser(
        "wearable",
        help="import wearable exports for one patient",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Import wearable exports (Apple Health export.zip/export.xml, Fitbit Web API JSON or account "
        "export, Garmin .fit, Withings, Google Fit, iHealth, Open mHealth JSON, CSV with a column mapping) for "
        "one patient. Spot readings (weight, blood pressure, SpO2, glucose, workouts, ...) are stored as "
        "Observations; steps, active minutes, sleep and resting heart rate become one daily summary per local "
        "day of the patient (one source per metric and day, chosen by --source-priority). Idempotent: importing "
        "the same or an overlapping newer export creates no duplicates; an interrupted import resumes where it "
        "stopped. Exit status 1 when a file cannot be imported.",
        epilog="Examples:\n"
        "  mecr import wearable --patient 123 export.zip\n"
        "  mecr import wearable --patient 123 --source-priority 'garmin,apple watch' "
        "--source-priority 'sleep-duration=withings' export.zip\n"
        "  mecr import wearable --patient 123 --format csv --csv-mapping mapping.json scale.csv\n"
        "See docs/wearables.md for the de-duplication rules and the CSV mapping.",
    )
    wearable.add_argument(
        "files", nargs="+", type=Path, metavar="FILE", help="export files to import, in order"
    )
    wearable.add_argument("--patient", required=True, metavar="ID", help="the Patient id the data belongs to")
    wearable.add_argument("--format", choices=FORMATS, help="the files' format (default: detected per file)")
    wearable.add_argument(
        "--source-priority",
        action="append",
        default=[],
        metavar="[METRIC=]P1,P2,...",
        help="source order for daily summaries: patterns matched against vendor, app or device name, first wins "
        "(default: garmin,fitbit,withings,apple-health|apple watch,apple-health); METRIC= sets it for one "
        "of steps, active-minutes, sleep-duration, resting-heart-rate. Repeatable.",
    )
    wearable.add_argument(
        "--csv-mapping",
        type=Path,
        metavar="FILE.json",
        help="column mapping for CSV files (JSON; see docs/wearables.md)",
    )
    wearable.add_argument(
        "--weight-unit",
        metavar="UNIT",
        help="Fitbit only: the account's weight unit (kg, lb) when the data does not say",
    )
    wearable.add_argument(
        "--samples",
        action="store_true",
        help="also store intraday samples (steps intervals, heart rate, ...), not only daily "
        "summaries and spot readings",
    )
    wearable.add_argument("--json", action="store_true", help="print the summary as JSON")
    wearable.add_argument("--quiet", action="store_true", help="no progress bar")
    from ..directory.cli import add_directory_parser  # `mecr import directory` (docs/community.md)

    add_directory_parser(kinds)


def run_import(args: argparse.Namespace, settings: Settings) -> int:
    """Run ``mecr import wearable``; returns the exit status (errors are one line on stderr, no traceback)."""
    from tqdm import tqdm

    from ..coaching.service import CoachingService
    from ..composition import build_services

    try:
        rule = parse_source_priority(args.source_priority)
        mapping = None
        if args.csv_mapping is not None:
            mapping = csv_mapping_from_dict(json.loads(args.csv_mapping.read_text(encoding="utf-8")))
    except (OSError, ValueError) as exc:
        print(f"mecr: error: {exc}", file=sys.stderr)
        return 2
    sizes = []
    for path in args.files:
        try:
            sizes.append(os.path.getsize(path))
        except OSError as exc:
            print(f"mecr: error: {path}: cannot read the file: {exc.strerror}", file=sys.stderr)
            return 1
    options = ImportOptions(
        format=args.format,
        rule=rule,
        samples=args.samples,
        csv_mapping=mapping,
        weight_unit=args.weight_unit,
        zip_limits=ZipLimits(settings.max_unzipped_bytes, settings.max_zip_ratio),
    )
    services = build_services(settings)
    importer = WearableImporter(
        services.repo,
        default_tz=settings.default_time_zone,
        options=options,
        coaching=CoachingService(services.repo, default_tz=settings.default_time_zone),
    )
    total = ImportSummary()
    bar = tqdm(
        total=sum(sizes),
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        desc="importing",
        disable=args.quiet,
        file=sys.stderr,
    )
    try:
        for path in args.files:
            bar.set_postfix_str(path.name)
            try:
                total.merge(importer.import_path(args.patient, path, name=str(path), progress=bar.update))
            except WearableImportError as exc:
                bar.close()
                where = ", ".join(
                    str(x) for x in (exc.file or str(path), f"line {exc.line}" if exc.line else None)
                )
                print(f"mecr: error: {where}: {exc}", file=sys.stderr)
                if total.files:
                    print("imported before the error:\n" + total.text(), file=sys.stderr)
                return 1
            except FhirError as exc:
                bar.close()
                print(f"mecr: error: {path}: {exc}", file=sys.stderr)
                return 1
        if total.files and not services.jobs.immediate:
            try:  # the kept coaching views of the patient, refreshed by the next worker (docs/web.md)
                services.jobs.enqueue("refresh_views")
            except Exception as exc:  # noqa: BLE001 - the import is done; the minute's tick refreshes them too
                log.warning("refresh_views not enqueued: %s", type(exc).__name__)
    finally:
        bar.close()
        services.engine.dispose()
    print(json.dumps(total.to_dict(), indent=2) if args.json else total.text())
    return 0
