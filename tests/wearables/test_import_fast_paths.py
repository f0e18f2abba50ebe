"""The import's fast paths change nothing: light records give the daily summaries that Readings give, and an
export.xml read in two processes gives what one process gives (summaries, spot readings, counts, problems
with their lines, and errors)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

import fhir_ecr.wearables.parallel as parallel_module
from fhir_ecr.wearables import ImportOptions, WearableImporter, WearableImportError
from tests.wearables.support import (
    PHONE,
    Rec,
    apple_export,
    hours,
    make_patient,
    observations,
    summaries_by_day,
)

CODES = {"steps": "41950-7", "sleep": "93832-4", "resting": "40443-4", "active": "68516-4"}
SLEEP = "HKCategoryTypeIdentifierSleepAnalysis"


def _sleep(start: str, end: str, stage: str) -> Rec:
    return Rec(SLEEP, start, end, f"HKCategoryValueSleepAnalysis{stage}", unit="")


def _export_records() -> list[Rec]:
    records: list[Rec] = []
    for day in ("2026-03-07", "2026-03-08", "2026-03-09"):  # the US spring-forward weekend
        offset = "-0500" if day == "2026-03-07" else "-0400"
        records += hours(day, 6, 22, 400, offset=offset)
        if (
            day == "2026-03-08"
        ):  # exact duplicates of the watch's last records (in time order, as Apple writes)
            records += hours(day, 20, 22, 400, offset=offset)
        records += hours(day, 7, 21, 350, offset=offset, source="iPhone", device=PHONE)
        records.append(_sleep(f"{day} 00:10:00 {offset}", f"{day} 01:40:00 {offset}", "AsleepCore"))
        records.append(_sleep(f"{day} 01:40:00 {offset}", f"{day} 02:25:00 {offset}", "AsleepDeep"))
        records.append(_sleep(f"{day} 02:25:00 {offset}", f"{day} 02:40:00 {offset}", "Awake"))
        records.append(_sleep(f"{day} 00:00:00 {offset}", f"{day} 06:00:00 {offset}", "InBed"))
        records.append(
            Rec("RestingHeartRate", f"{day} 00:05:00 {offset}", f"{day} 23:55:00 {offset}", 57, "count/min")
        )
        records.append(
            Rec("AppleExerciseTime", f"{day} 18:00:00 {offset}", f"{day} 18:01:00 {offset}", 1, "min")
        )
        records.append(
            Rec("HeartRate", f"{day} 12:00:00 {offset}", f"{day} 12:00:00 {offset}", 70, "count/min")
        )
        records.append(
            Rec(
                "BodyMass", f"{day} 07:00:00 {offset}", f"{day} 07:00:00 {offset}", 160.2, "lb", "Scale", None
            )
        )
    records.append(
        Rec("StepCount", "2026-03-09 23:50:00 -0400", "2026-03-10 00:20:00 -0400", 300)
    )  # midnight
    records.append(
        Rec("StepCount", "2026-03-10 03:30:00 +0000", "2026-03-10 03:40:00 +0000", 77)
    )  # UTC offset
    return records


def _import(repo: Any, patient: str, path: Path, **options: Any) -> Any:
    return WearableImporter(repo, options=ImportOptions(**options)).import_path(patient, path)


def _day_values(repo: Any, patient: str) -> dict[str, dict[str, float]]:
    return {name: summaries_by_day(repo, patient, code) for name, code in CODES.items()}


def test_light_records_give_the_summaries_that_readings_give(repo: Any, tmp_path: Path) -> None:
    path = tmp_path / "export.xml"
    path.write_bytes(apple_export(_export_records()))
    light, plain = make_patient(repo), make_patient(repo)
    a = _import(repo, light, path)
    b = _import(repo, plain, path, samples=True)  # every record a Reading (and the samples stored)
    values = _day_values(repo, light)
    assert values == _day_values(repo, plain)
    assert values["steps"] == {"2026-03-07": 6800, "2026-03-08": 6800, "2026-03-09": 6977, "2026-03-10": 200}
    assert values["sleep"]["2026-03-08"] == 135 and values["resting"]["2026-03-09"] == 57
    assert values["active"] == {"2026-03-07": 1, "2026-03-08": 1, "2026-03-09": 1}
    assert (a.read, a.summarised, a.days) == (b.read, b.summarised, b.days)
    assert a.skipped_reasons["duplicate reading (same source, metric and period)"] == 3
    assert a.skipped_reasons["intraday heart-rate sample (kept only with --samples)"] == 3


def _essence(repo: Any, patient: str) -> list[tuple[Any, ...]]:
    out = []
    for obs in observations(repo, patient):
        period = obs.get("effectivePeriod") or {}
        value = (obs.get("valueQuantity") or {}).get("value")
        out.append(
            (
                obs["code"]["coding"][0]["code"],
                obs.get("effectiveDateTime"),
                period.get("start"),
                period.get("end"),
                value,
                (obs.get("meta") or {}).get("source"),
            )
        )
    return sorted(out, key=repr)


@pytest.fixture
def split_everything(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Split exports of any size, and record the splits made."""
    monkeypatch.setattr(parallel_module, "_PARALLEL_MIN", 0)
    # the test process may run other tests' threads; the second process only reads the file and a temp file
    monkeypatch.setattr(parallel_module, "_can_fork", lambda: True)
    made: list[Any] = []
    plan = parallel_module.SplitExport.plan.__func__  # type: ignore[attr-defined]

    def recording(cls: Any, *args: Any) -> Any:
        split = plan(cls, *args)
        made.append(split)
        return split

    monkeypatch.setattr(parallel_module.SplitExport, "plan", classmethod(recording))
    return made


def test_an_export_read_in_two_processes_imports_as_in_one(
    repo: Any, tmp_path: Path, split_everything: list[Any]
) -> None:
    records = _export_records()
    bad = [
        Rec("StepCount", "2026-03-09 12:00:00 -0400", "2026-03-09 12:30:00 -0400", 250_000),
        Rec(
            "BodyMass", "2026-03-09 07:05:00 -0400", "2026-03-09 07:05:00 -0400", "heavy", "kg", "Scale", None
        ),
    ]
    path = tmp_path / "export.xml"
    path.write_bytes(apple_export([*records, *bad, *records[:5]]))  # bad records and duplicates after the cut
    two, one = make_patient(repo), make_patient(repo)
    split = _import(repo, two, path)
    assert split_everything and split_everything[0] is not None and split_everything[0].first.complete
    single = _import(repo, one, path, parallel=False)
    ignore = {"seconds"}
    assert {k: v for k, v in split.to_dict().items() if k not in ignore} == {
        k: v for k, v in single.to_dict().items() if k not in ignore
    }
    assert [(p["line"], p["reason"]) for p in split.to_dict()["problems"]] == [
        (len(records) + 4, "steps 250000 {steps} outside plausible range 0..200000"),
        (len(records) + 5, "value 'heavy' is not a number"),
    ]
    assert _essence(repo, two) == _essence(repo, one)


def test_an_error_in_the_second_part_stops_the_import_as_in_one_process(
    repo: Any, tmp_path: Path, split_everything: list[Any]
) -> None:
    data = apple_export(_export_records())
    cut = data.rindex(b"<Record", 0, len(data) - 100)
    path = tmp_path / "export.xml"
    path.write_bytes(data[:cut] + b"<Record & broken\n" + data[cut:])
    errors = []
    for patient, parallel in ((make_patient(repo), True), (make_patient(repo), False)):
        with pytest.raises(WearableImportError) as exc:
            _import(repo, patient, path, parallel=parallel)
        errors.append((str(exc.value), exc.value.line, len(observations(repo, patient))))
    assert split_everything[0] is not None
    assert errors[0] == errors[1] and "not well-formed" in errors[0][0]


def test_the_second_part_is_replayed_while_the_second_process_still_reads(
    repo: Any, tmp_path: Path, split_everything: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # about 3,000 records in the second part: its first batch of 2,000 items is announced before it ends
    first_day = date(2025, 1, 1)
    records = [r for d in range(400) for r in hours((first_day + timedelta(days=d)).isoformat(), 6, 21, 300)]
    path = tmp_path / "export.xml"
    path.write_bytes(apple_export(records))
    gate, parent = tmp_path / "replayed", os.getpid()
    read = parallel_module.read_apple_health

    def held(*args: Any, **kwargs: Any) -> Iterator[Any]:
        """The second process stops after its first batch until this process has replayed some of it."""
        for n, item in enumerate(read(*args, **kwargs), 1):
            if n == 2001 and os.getpid() != parent:
                deadline = time.monotonic() + 10
                while not gate.exists():
                    if time.monotonic() > deadline:
                        raise RuntimeError("nothing was replayed while the second part was read")
                    time.sleep(0.01)
            yield item

    messages = parallel_module.SplitExport._messages

    def replaying(self: Any, reader: Any) -> Iterator[Any]:
        for message in messages(self, reader):
            gate.touch()
            yield message

    monkeypatch.setattr(parallel_module, "read_apple_health", held)
    monkeypatch.setattr(parallel_module.SplitExport, "_messages", replaying)
    two, one = make_patient(repo), make_patient(repo)
    split = _import(repo, two, path)
    assert split_everything[0] is not None and split_everything[0].first.complete and gate.exists()
    single = _import(repo, one, path, parallel=False)
    ignore = {"seconds"}
    assert {k: v for k, v in split.to_dict().items() if k not in ignore} == {
        k: v for k, v in single.to_dict().items() if k not in ignore
    }
    assert split.days == 400 and _essence(repo, two) == _essence(repo, one)
