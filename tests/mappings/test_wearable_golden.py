"""Golden-file tests over every real wearable sample in tests/fixtures/wearables.

Each case reads one sample with its reader, maps the readings to FHIR, validates every resource against
``fhir.resources.R4B`` and compares with ``golden/<case>.fhir.json`` (regenerate only with
``MECR_REGEN_GOLDEN=1``, then review the diff). The Fitbit Web API and Withings intraday/sleep-series samples
carry no time zone: the case table says which zone the test assumes.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from datetime import date
from pathlib import Path
from typing import IO, Any
from zoneinfo import ZoneInfo

import pytest
from wearable_support import OMH_TEST_DATA, WEARABLES, check_golden, validate_fhir

from mappings.errors import MappingError, SkipLog
from mappings.wearables import (
    CsvColumn,
    CsvMapping,
    Metric,
    Reading,
    Source,
    read_apple_health,
    read_csv,
    read_fitbit,
    read_garmin_fit,
    read_google_fit,
    read_ihealth,
    read_omh_body,
    read_withings,
    readings_to_resources,
)

SUBJECT = "Patient/golden"
LA = ZoneInfo("America/Los_Angeles")
Reader = Callable[[IO[bytes], str, SkipLog], Iterable[Reading]]

# Fitbit's daily-summary samples do not repeat the request date; the samples' own activities say 2015-06-23
# (multiple), 2014-06-19 (single); the empty one has none, so the multiple sample's date is used.
_FITBIT_DAY = {
    "fitbit-activities-date-single-in-activities-list.json": date(2014, 6, 19),
}

APPLE_STEP_CSV = CsvMapping(
    start="startDate",
    end="endDate",
    time_format="%Y-%m-%d %H:%M:%S %z",
    source_name="Health",
    source_column="sourceName",
    vendor="apple-health",
    values=(CsvColumn(Metric.STEPS, "value", unit_column="unit"),),
)
APPLE_DISTANCE_CSV = CsvMapping(
    start="startDate",
    end="endDate",
    time_format="%Y-%m-%d %H:%M:%S %z",
    source_name="Health",
    source_column="sourceName",
    vendor="apple-health",
    values=(CsvColumn(Metric.DISTANCE, "value", unit_column="unit"),),
)
# The FIT records CSV writes local time as "Sun Jun 11 07:32:51 PDT 2017"; PDT is UTC-7.
GARMIN_RECORDS_CSV = CsvMapping(
    start="timestamp",
    time_format="%a %b %d %H:%M:%S PDT %Y",
    tz=ZoneInfo("Etc/GMT+7"),
    source_name="garmin fenix5 records.csv",
    values=(CsvColumn(Metric.HEART_RATE, "heart_rate", unit="bpm"),),
)
APPLE_ACTIVITY_SUMMARY_CSV = CsvMapping(
    start="dateComponents",
    time_format="%Y-%m-%d",
    tz=ZoneInfo("Europe/London"),
    source_name="Activity Summary",
    vendor="apple-health",
    values=(
        CsvColumn(Metric.ACTIVE_ENERGY, "activeEnergyBurned", unit_column="activeEnergyBurnedUnit"),
        CsvColumn(Metric.ACTIVE_MINUTES, "appleExerciseTime", unit="min"),
    ),
)
APPLE_WORKOUT_CSV = CsvMapping(
    start="startDate",
    end="endDate",
    time_format="%Y-%m-%d %H:%M:%S %z",
    source_name="Workout",
    source_column="sourceName",
    vendor="apple-health",
    values=(
        CsvColumn(Metric.EXERCISE, "duration", unit_column="durationUnit"),
        CsvColumn(Metric.WORKOUT_ENERGY, "totalEnergyBurned", unit_column="totalEnergyBurnedUnit"),
    ),
)


def _readers() -> dict[str, Reader]:
    cases: dict[str, Reader] = {}
    for path in sorted((WEARABLES / "apple-health").glob("*.x*")) + sorted(
        (WEARABLES / "apple-health").glob("*.zip")
    ):
        cases[f"apple-health/{path.name}"] = lambda s, f, e: read_apple_health(s, file=f, errors=e)
    csv_maps = {
        "StepCount.csv": APPLE_STEP_CSV,
        "DistanceWalkingRunning.csv": APPLE_DISTANCE_CSV,
        "ActivitySummary.csv": APPLE_ACTIVITY_SUMMARY_CSV,
        "Workout.csv": APPLE_WORKOUT_CSV,
    }
    for name, mapping in csv_maps.items():
        cases[f"apple-health/{name}"] = lambda s, f, e, m=mapping: read_csv(s, m, file=f, errors=e)
    for path in sorted((WEARABLES / "fitbit-api").glob("*.json")):
        day = _FITBIT_DAY.get(path.name, date(2015, 6, 23))
        cases[f"fitbit-api/{path.name}"] = lambda s, f, e, d=day: read_fitbit(
            s, tz=LA, day=d, file=f, errors=e
        )
    for path in sorted((WEARABLES / "garmin-fit").glob("*.fit")):
        cases[f"garmin-fit/{path.name}"] = lambda s, f, e: read_garmin_fit(s, file=f, errors=e)
    for path in sorted((WEARABLES / "garmin-fit").glob("*-records.csv")):
        cases[f"garmin-fit/{path.name}"] = lambda s, f, e: read_csv(s, GARMIN_RECORDS_CSV, file=f, errors=e)
    for path in sorted((WEARABLES / "withings-api").glob("*.json")):
        cases[f"withings-api/{path.name}"] = lambda s, f, e: read_withings(s, tz=LA, file=f, errors=e)
    for path in sorted((WEARABLES / "googlefit-api").glob("*.json")):
        cases[f"googlefit-api/{path.name}"] = lambda s, f, e: read_google_fit(s, tz=LA, file=f, errors=e)
    for path in sorted((WEARABLES / "ihealth-api").glob("*.json")):
        cases[f"ihealth-api/{path.name}"] = lambda s, f, e: read_ihealth(s, file=f, errors=e)
    return cases


CASES = _readers()
LICENCE_AND_DOCS = {"LICENSE", "README.md"}


def _case_name(rel: str) -> str:
    return rel.replace("/", "__")


def test_every_vendor_sample_has_a_case() -> None:
    """A new sample in tests/fixtures/wearables must get a golden case (open-mhealth is covered below)."""
    on_disk = {
        f"{p.parent.name}/{p.name}"
        for p in WEARABLES.glob("*/*")
        if p.is_file() and p.parent.name != "open-mhealth" and not p.name.startswith("LICENSE")
    }
    assert on_disk == set(CASES)


def _payload(readings: list[Reading], log: SkipLog) -> dict[str, Any]:
    resources = readings_to_resources(readings, SUBJECT)
    validate_fhir(resources)
    return {
        "resources": resources,
        "skipped": [f"{s.record}: {s.reason}" for s in log.skipped],
        "ignored": dict(sorted(log.ignored.items())),
    }


@pytest.mark.parametrize("rel", sorted(CASES))
def test_vendor_sample_golden(rel: str) -> None:
    log = SkipLog()
    with (WEARABLES / rel).open("rb") as stream:
        readings = list(CASES[rel](stream, Path(rel).name, log))
    assert readings or rel.endswith("empty-sleep-list.json") or rel.endswith("only-goal.json")
    check_golden(_case_name(rel), _payload(readings, log))


OMH_DIRS = sorted(
    p
    for p in OMH_TEST_DATA.glob("*/*")
    if (p / "shouldPass").is_dir() and p.parent.name not in ("data-point", "header", "sleep-episode")
)


@pytest.mark.parametrize("folder", OMH_DIRS, ids=lambda p: f"{p.parent.name}-{p.name}")
def test_omh_bodies_golden(folder: Path) -> None:
    """Every shouldPass body of a mapped schema: readings, or a clear reason why it cannot be placed."""
    log = SkipLog()
    readings: list[Reading] = []
    for path in sorted((folder / "shouldPass").glob("*.json")):
        body = json.loads(path.read_text(encoding="utf-8"))
        try:
            readings += read_omh_body(
                body,
                folder.parent.name,
                Source("omh", "Open mHealth test data"),
                record_id=path.name,
                location=path.name,
            )
        except MappingError as exc:
            log.add(type(exc)(exc.reason, file=path.name))
    check_golden(f"omh__{folder.parent.name}-{folder.name}", _payload(readings, log))
