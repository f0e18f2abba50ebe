"""The wearable import service over the real store: idempotency, overlap, batches and resume, bad input, DST,
source priority and habit check-ins."""

from __future__ import annotations

import gc
import io
import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from fhir_ecr.coaching import resources as coaching_res
from fhir_ecr.coaching.service import CoachingService
from fhir_ecr.heap import BULK_YOUNG_THRESHOLD
from fhir_ecr.wearables import ImportOptions, WearableImporter, WearableImportError, parse_source_priority
from fhir_ecr.wearables.upsert import IMPORT_CACHE_KIB, BatchWriter
from tests.coaching.coaching_support import make_world
from tests.wearables.support import (
    FIXTURES,
    PHONE,
    Rec,
    apple_export,
    hours,
    make_patient,
    observations,
    summaries_by_day,
)

STEPS, RHR, WEIGHT = "41950-7", "40443-4", "29463-7"


def _importer(repo: Any, **options: Any) -> WearableImporter:
    return WearableImporter(repo, coaching=CoachingService(repo), options=ImportOptions(**options))


def _run(repo: Any, patient: str, data: bytes, name: str = "export.xml", **options: Any) -> Any:
    return _importer(repo, **options).import_stream(patient, io.BytesIO(data), name)


def _max_version(repo: Any, patient: str) -> int:
    return max(int(o["meta"]["versionId"]) for o in observations(repo, patient))


@pytest.mark.parametrize(
    "fixture",
    [
        "apple-health/healthkit-to-sqlite-export.zip",
        "apple-health/apple-health-parser-export.zip",
        "apple-health/export6s3sample.xml",
        "withings-api/withings-body-measures.json",
        "fitbit-api/fitbit-sleep-date.json",
        "fitbit-api/fitbit-activities-steps-timeseries.json",
        "garmin-fit/garmin-fenix-5-walk.fit",
        "ihealth-api/ihealth-bp.json",
        "googlefit-api/googlefit-merge-step-deltas.json",
    ],
)
def test_importing_a_real_export_twice_writes_nothing_the_second_time(repo: Any, fixture: str) -> None:
    patient = make_patient(repo)
    first = _importer(repo).import_path(patient, FIXTURES / fixture)
    assert first.created > 0 and first.read >= first.mapped > 0
    stored = observations(repo, patient)
    assert len(stored) == first.created
    again = _importer(repo, skip_verified=False).import_path(patient, FIXTURES / fixture)
    assert (again.created, again.updated, again.unchanged) == (0, 0, first.created)
    assert again.read == first.read
    assert len(observations(repo, patient)) == len(stored)
    assert _max_version(repo, patient) == 1
    ids = [o["identifier"][0]["value"] for o in stored]
    assert len(ids) == len(set(ids)) and all(o["id"] == o["identifier"][0]["value"] for o in stored)


def test_a_file_imported_before_is_verified_not_parsed_unless_its_resources_changed(repo: Any) -> None:
    patient = make_patient(repo)
    data = apple_export(
        [
            *hours("2026-03-10", 8, 17, 500),
            Rec("BodyMass", "2026-03-10 07:00:00 -0400", "2026-03-10 07:00:00 -0400", 80, "kg"),
        ]
    )
    first = _run(repo, patient, data)
    assert (first.created, first.already_imported) == (2, 0)
    again = _run(repo, patient, data)
    assert (again.already_imported, again.read, again.unchanged, again.created) == (1, 0, 2, 0)
    compared = _run(repo, patient, data, skip_verified=False)  # the full path: parse, map, compare
    assert (compared.already_imported, compared.read, compared.unchanged) == (0, 11, 2)
    weight = next(o for o in observations(repo, patient) if o["code"]["coding"][0]["code"] == WEIGHT)
    repo.delete("Observation", weight["id"])
    restored = _run(repo, patient, data)  # a resource it wrote is gone: the file is imported again
    assert (restored.already_imported, restored.created, restored.unchanged) == (0, 1, 1)
    assert len(observations(repo, patient)) == 2


def test_an_overlapping_newer_export_updates_changed_days_and_adds_new_ones(repo: Any) -> None:
    patient = make_patient(repo)
    weight = Rec("BodyMass", "2026-03-11 07:00:00 -0400", "2026-03-11 07:00:00 -0400", 80.5, "kg", "Withings")
    old = apple_export([*hours("2026-03-10", 8, 17, 500), *hours("2026-03-11", 8, 12, 500), weight])
    new = apple_export([*hours("2026-03-11", 8, 20, 500), weight, *hours("2026-03-12", 9, 10, 700)])
    first = _run(repo, patient, old)
    assert first.created == 3 and summaries_by_day(repo, patient, STEPS) == {
        "2026-03-10": 5000,
        "2026-03-11": 2500,
    }
    second = _run(repo, patient, new)
    # day 11 grew (updated), day 12 is new, the weight is the same reading; day 10 is left as it was
    assert (second.created, second.updated, second.unchanged) == (1, 1, 1)
    assert summaries_by_day(repo, patient, STEPS) == {
        "2026-03-10": 5000,
        "2026-03-11": 6500,
        "2026-03-12": 1400,
    }
    weights = [o for o in observations(repo, patient) if o["code"]["coding"][0]["code"] == WEIGHT]
    assert len(weights) == 1 and weights[0]["valueQuantity"]["value"] == 80.5


def _resume_file() -> bytes:
    records = []
    for day in ("2026-03-10", "2026-03-11", "2026-03-12"):
        records += hours(day, 9, 12, 1000)
        records.append(
            Rec("RestingHeartRate", f"{day} 06:00:00 -0400", f"{day} 06:00:00 -0400", 58, "count/min")
        )
        records += [
            Rec(
                "BodyMass",
                f"{day} {h:02d}:00:00 -0400",
                f"{day} {h:02d}:00:00 -0400",
                80 + h / 10,
                "kg",
                "Health Mate",
                None,
            )
            for h in (6, 7, 20, 21)
        ]
    return apple_export(records)


class CrashingWriter(BatchWriter):
    """The importer's batch writer, failing (as a crash would) when asked for batch ``after + 1``."""

    def __init__(self, repo: Any, rule: Any, after: int) -> None:
        super().__init__(repo, rule)
        self.after = after
        self.batches = 0

    def run(self, write: Any) -> Any:
        self.batches += 1
        if self.batches > self.after:
            raise RuntimeError("simulated crash")
        return super().run(write)


@pytest.mark.parametrize("crash_after", [2, 4])
def test_a_crash_halfway_leaves_whole_batches_and_resuming_finishes_without_duplicates(
    repo: Any, crash_after: int
) -> None:
    patient, reference = make_patient(repo), make_patient(repo)
    data = _resume_file()
    options = {"batch_readings": 4, "batch_days": 1}  # 12 weights: 3 reading batches; then 1 batch per day
    opts = ImportOptions(**options)
    crashing = WearableImporter(
        repo,
        coaching=CoachingService(repo),
        options=opts,
        writer=CrashingWriter(repo, opts.rule, crash_after),
    )
    with pytest.raises(RuntimeError, match="simulated crash"):
        crashing.import_stream(patient, io.BytesIO(data), "export.xml")
    partial = observations(repo, patient)
    weights = [o for o in partial if o["code"]["coding"][0]["code"] == WEIGHT]
    assert len(weights) == min(crash_after, 3) * 4
    days = {}
    for obs in partial:
        if "effectivePeriod" in obs:
            days.setdefault(obs["effectivePeriod"]["start"][:10], set()).add(obs["code"]["coding"][0]["code"])
    assert all(codes == {STEPS, RHR} for codes in days.values()), days  # never half a day
    assert len(days) == max(0, crash_after - 3)

    resumed = _importer(repo, **options).import_stream(patient, io.BytesIO(data), "export.xml")
    assert resumed.resumed == len(weights) + 2 * len(days)
    clean = _importer(repo, **options).import_stream(reference, io.BytesIO(data), "export.xml")
    assert resumed.created + len(partial) == clean.created == 12 + 6

    def essence(pid: str) -> list[tuple[Any, ...]]:
        return sorted(
            (
                o["code"]["coding"][0]["code"],
                json.dumps(o.get("effectiveDateTime") or o["effectivePeriod"]),
                o["valueQuantity"]["value"],
            )
            for o in observations(repo, pid)
        )

    assert essence(patient) == essence(reference)
    # the state is complete now (a resumed run keeps no manifest): importing again runs in full, changes nothing
    again = _importer(repo, **options).import_stream(patient, io.BytesIO(data), "export.xml")
    assert (again.resumed, again.created, again.updated, again.unchanged, again.already_imported) == (
        0,
        0,
        0,
        18,
        0,
    )


def test_bad_records_are_reported_with_file_line_and_reason_and_not_stored(repo: Any) -> None:
    patient = make_patient(repo)
    data = apple_export(
        [
            *hours("2026-03-10", 9, 10, 1000),
            Rec("StepCount", "2026-03-10 12:00:00 -0400", "2026-03-10 12:30:00 -0400", 250_000),  # line 6
            Rec(
                "BodyMass", "2026-03-10 07:00:00 -0400", "2026-03-10 07:00:00 -0400", 15, "kg", "Scale", None
            ),
            Rec(
                "BodyMass",
                "2026-03-10 07:05:00 -0400",
                "2026-03-10 07:05:00 -0400",
                "heavy",
                "kg",
                "Scale",
                None,
            ),
            Rec(
                "BodyMass",
                "2026-03-10 07:10:00 -0400",
                "2026-03-10 07:10:00 -0400",
                70,
                "furlong",
                "Scale",
                None,
            ),
            Rec(
                "BodyMass",
                "2026-03-10 07:15:00 -0400",
                "2026-03-10 07:15:00 -0400",
                71.5,
                "kg",
                "Scale",
                None,
            ),
        ]
    )
    result = _run(repo, patient, data, name="bad-export.xml")
    problems = {(p.file, p.line): p.reason for p in result.problems}
    assert set(problems) == {("bad-export.xml", n) for n in (6, 7, 8, 9)}
    assert "outside plausible range" in problems[("bad-export.xml", 6)]
    assert "weight 15 kg outside plausible range" in problems[("bad-export.xml", 7)]
    assert "'heavy' is not a number" in problems[("bad-export.xml", 8)]
    assert "unknown weight unit 'furlong'" in problems[("bad-export.xml", 9)]
    assert result.skipped == 4 and result.read == 7 and result.mapped == 3
    assert summaries_by_day(repo, patient, STEPS) == {"2026-03-10": 2000}
    weights = [
        o["valueQuantity"]["value"]
        for o in observations(repo, patient)
        if o["code"]["coding"][0]["code"] == WEIGHT
    ]
    assert weights == [71.5]
    report = result.to_dict()
    assert {"file": "bad-export.xml", "line": 7, "reason": problems[("bad-export.xml", 7)]} in report[
        "problems"
    ]


def _truncated_zip() -> bytes:
    data = (FIXTURES / "apple-health/healthkit-to-sqlite-export.zip").read_bytes()
    return data[: len(data) // 2]


@pytest.mark.parametrize(
    ("data", "name", "message"),
    [
        (b"", "export.zip", "the file is empty"),
        (_truncated_zip(), "export.zip", "zip"),
        (b"<html><body>not health data</body></html>", "export.xml", "not HealthData"),
        (apple_export(hours("2026-03-10", 9, 12, 10))[:-40], "export.xml", "not well-formed XML"),
        (b'{"foo": 1}', "data.json", "no known wearable layout"),
        (b"\x00\x01 random bytes", "data.bin", "unrecognised file"),
    ],
)
def test_a_bad_file_is_a_clear_error_naming_the_file_and_stores_nothing(
    repo: Any, data: bytes, name: str, message: str
) -> None:
    patient = make_patient(repo)
    with pytest.raises(WearableImportError, match=message) as exc:
        _run(repo, patient, data, name=name)
    assert exc.value.file is not None and exc.value.file.startswith(name)
    assert observations(repo, patient) == []


def test_daily_summaries_follow_the_patients_local_days_across_dst_and_export_offsets(repo: Any) -> None:
    patient = make_patient(repo, "America/New_York")
    spring = [
        Rec(
            "StepCount",
            f"2026-03-08 {h:02d}:00:00 {'-0500' if h < 2 else '-0400'}",
            f"2026-03-08 {h:02d}:30:00 {'-0500' if h < 2 else '-0400'}",
            100,
        )
        for h in range(24)
        if h != 2
    ]
    # fall back: 01:00-02:00 happens twice (EDT, then EST): 25 hourly records
    autumn = [
        Rec("StepCount", f"2026-11-01 {h:02d}:00:00 -0400", f"2026-11-01 {h:02d}:30:00 -0400", 100)
        for h in range(2)
    ]
    autumn += [
        Rec("StepCount", f"2026-11-01 {h:02d}:00:00 -0500", f"2026-11-01 {h:02d}:30:00 -0500", 100)
        for h in range(1, 24)
    ]
    # written with the phone's offset at export time (UTC): 03:30Z on the 11th is 23:30 on the 10th in New York
    late = [Rec("StepCount", "2026-03-11 03:30:00 +0000", "2026-03-11 03:40:00 +0000", 777)]
    _run(repo, patient, apple_export([*spring, *autumn, *late]))
    assert summaries_by_day(repo, patient, STEPS) == {
        "2026-03-08": 2300,
        "2026-11-01": 2500,
        "2026-03-10": 777,
    }
    periods = {o["effectivePeriod"]["start"][:10]: o["effectivePeriod"] for o in observations(repo, patient)}
    assert periods["2026-03-08"] == {"start": "2026-03-08T00:00:00-05:00", "end": "2026-03-09T00:00:00-04:00"}
    assert periods["2026-11-01"] == {"start": "2026-11-01T00:00:00-04:00", "end": "2026-11-02T00:00:00-05:00"}


def test_a_day_keeps_the_higher_priority_source_whatever_the_import_order(repo: Any) -> None:
    patient = make_patient(repo)
    apple = apple_export(hours("2026-03-10", 8, 17, 500))  # Apple Watch: 5000
    fitbit = json.dumps({"activities-steps": [{"dateTime": "2026-03-10", "value": "7000"}]}).encode()
    _run(repo, patient, apple)
    assert summaries_by_day(repo, patient, STEPS) == {"2026-03-10": 5000}
    replaced = _run(repo, patient, fitbit, name="steps.json")
    assert replaced.updated == 1 and summaries_by_day(repo, patient, STEPS) == {"2026-03-10": 7000}
    kept = _run(repo, patient, apple)  # Apple again: Fitbit ranks first by default
    assert kept.updated == 0 and summaries_by_day(repo, patient, STEPS) == {"2026-03-10": 7000}
    assert any("higher-priority source" in reason for reason in kept.skipped_reasons)
    # the patient prefers the watch: the next import applies that rule
    rule = parse_source_priority(["steps=apple watch,fitbit"])
    _run(repo, patient, apple, rule=rule)
    assert summaries_by_day(repo, patient, STEPS) == {"2026-03-10": 5000}


def test_phone_and_watch_steps_are_never_added(repo: Any) -> None:
    patient = make_patient(repo)
    watch = hours("2026-03-10", 8, 17, 500)
    phone = hours("2026-03-10", 8, 17, 450, source="iPhone", device=PHONE)
    result = _run(repo, patient, apple_export([*phone, *watch, *watch]))  # the watch's records twice
    assert summaries_by_day(repo, patient, STEPS) == {"2026-03-10": 5000}
    assert result.skipped_reasons["duplicate reading (same source, metric and period)"] == 10


def test_a_day_at_the_habit_target_becomes_a_done_check_in_once(repo: Any) -> None:
    w = make_world(repo)  # New York; daily walk habit, 8000 steps/day, from 2026-03-01; today is 2026-03-20
    data = apple_export(
        [
            *hours("2026-03-10", 8, 16, 1000),
            *hours("2026-03-11", 8, 12, 1000),
            *hours("2026-02-20", 8, 17, 1000),
        ]
    )
    first = _importer(repo).import_stream(w.patient, io.BytesIO(data), "export.xml")
    assert first.checkins == 1
    checkins = repo.search_params(
        "Observation",
        [("patient", f"Patient/{w.patient}"), ("code", f"{coaching_res.MECR_CODES}|habit-check-in")],
    ).matches
    [checkin] = [c.content for c in checkins]
    assert checkin["effectiveDateTime"] == "2026-03-10"
    assert checkin["valueCodeableConcept"]["coding"][0]["code"] == "done"
    summary_id = checkin["derivedFrom"][0]["reference"].removeprefix("Observation/")
    assert repo.read("Observation", summary_id).content["valueQuantity"]["value"] == 9000
    again = _importer(repo).import_stream(w.patient, io.BytesIO(data), "export.xml")
    assert (again.checkins, again.created, again.updated, again.already_imported) == (0, 0, 0, 1)


def test_source_priority_specs_are_parsed_and_refused_when_wrong() -> None:
    rule = parse_source_priority(["garmin,fitbit", "sleep-duration=withings"])
    assert rule.default == ("garmin", "fitbit")
    assert [(m.value, p) for m, p in rule.per_metric.items()] == [("sleep-duration", ("withings",))]
    for bad in ("walking=fitbit", " , "):
        with pytest.raises(ValueError):
            parse_source_priority([bad])


def test_a_file_on_disk_and_an_unknown_patient(repo: Any, tmp_path: Path) -> None:
    from fhir_ecr.outcomes import FhirError

    path = tmp_path / "export.xml"
    path.write_bytes(apple_export(hours("2026-03-10", 8, 9, 10)))
    with pytest.raises(FhirError) as exc:
        _importer(repo).import_path("nobody", path)
    assert exc.value.status == 404
    with pytest.raises(WearableImportError, match="cannot read"):
        _importer(repo).import_path(make_patient(repo), tmp_path / "missing.xml")


class RetryCounting(BatchWriter):
    """Counts the batches that had to be run a second time (after a 409)."""

    retries = 0

    def run(self, write: Any) -> Any:
        def counted(uow: Any, retry: bool) -> Any:
            self.retries += retry
            return write(uow, retry)

        return super().run(counted)


def test_a_deleted_reading_and_device_are_written_again_in_the_first_try(repo: Any) -> None:
    patient = make_patient(repo)
    data = apple_export(
        [
            *hours("2026-03-10", 8, 17, 500),
            Rec(
                "BodyMass", "2026-03-10 07:00:00 -0400", "2026-03-10 07:00:00 -0400", 80, "kg", "Scale", None
            ),
        ]
    )
    assert _run(repo, patient, data).created == 2
    weight = next(o for o in observations(repo, patient) if o["code"]["coding"][0]["code"] == WEIGHT)
    device = weight["device"]["reference"].removeprefix("Device/")
    repo.delete("Observation", weight["id"])
    repo.delete("Device", device)
    opts = ImportOptions(skip_verified=False)
    writer = RetryCounting(repo, opts.rule)
    again = WearableImporter(repo, options=opts, writer=writer).import_stream(
        patient, io.BytesIO(data), "export.xml"
    )
    # the key lookups see the deleted versions: no create that the store refuses, no second run of the batch
    assert (again.created, again.unchanged, writer.retries) == (1, 1, 0)
    assert repo.read("Device", device).version_id == 3
    assert repo.read("Observation", weight["id"]).content["valueQuantity"]["value"] == 80


class CacheRecording(BatchWriter):
    """Records the SQLite page cache setting of each batch's connection while the batch is written."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.settings: list[int] = []

    def run(self, write: Any) -> Any:
        def recorded(uow: Any, retry: bool) -> Any:
            self.settings.append(uow.conn.exec_driver_sql("PRAGMA cache_size").scalar_one())
            return write(uow, retry)

        return super().run(recorded)


@pytest.mark.parametrize(
    "backend", ["sqlite"]
)  # the page cache bound is SQLite's: PostgreSQL has no such cache
def test_batches_run_with_a_bounded_page_cache_and_give_the_connection_its_own_back(repo: Any) -> None:
    with repo.unit() as uow:
        assert not uow.is_postgres
        own = uow.conn.exec_driver_sql("PRAGMA cache_size").scalar_one()
    assert own != -IMPORT_CACHE_KIB
    patient = make_patient(repo)
    opts = ImportOptions()
    writer = CacheRecording(repo, opts.rule)
    data = apple_export([*hours("2026-03-10", 8, 17, 500)])
    WearableImporter(repo, options=opts, writer=writer).import_stream(patient, io.BytesIO(data), "export.xml")
    assert writer.settings and set(writer.settings) == {-IMPORT_CACHE_KIB}
    with repo.unit() as uow:
        assert uow.conn.exec_driver_sql("PRAGMA cache_size").scalar_one() == own


class CollectorRecording(BatchWriter):
    """Records the garbage collector's state while each batch is written."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.states: list[tuple[int, int]] = []

    def run(self, write: Any) -> Any:
        self.states.append((gc.get_threshold()[0], gc.get_freeze_count()))
        return super().run(write)


def test_an_import_runs_with_the_collector_aside_and_puts_it_back(repo: Any) -> None:
    patient = make_patient(repo)
    opts = ImportOptions()
    writer = CollectorRecording(repo, opts.rule)
    data = apple_export([*hours("2026-03-10", 8, 17, 500)])
    # As in `mecr wearables import`: a heap nobody settled. This test process may have settled it when it
    # started an app (a settled heap is left as it is: tests/test_heap.py, and test_collector_aside_… below),
    # and its frozen objects may be freed meanwhile, so its count is no measure: start from the defaults.
    settled, threshold = gc.get_freeze_count(), gc.get_threshold()
    gc.unfreeze()
    gc.set_threshold(700, *threshold[1:])
    try:
        WearableImporter(repo, options=opts, writer=writer).import_stream(
            patient, io.BytesIO(data), "export.xml"
        )
        assert writer.states and all(
            t == BULK_YOUNG_THRESHOLD and frozen > 1000 for t, frozen in writer.states
        )
        assert gc.get_threshold()[0] == 700 and gc.get_freeze_count() == 0  # put back
    finally:
        gc.set_threshold(*threshold)
        if settled:
            gc.freeze()


@pytest.mark.parametrize(
    ("aside", "young"),
    [("collector_aside", "YOUNG_THRESHOLD"), ("bulk_collector_aside", "BULK_YOUNG_THRESHOLD")],
)
def test_collector_aside_restores_the_collector_and_leaves_a_settled_heap_alone(
    aside: str, young: str
) -> None:
    # in a fresh interpreter, whose collector this test may change
    code = textwrap.dedent(
        f"""
        import gc
        from fhir_ecr.heap import {young} as YOUNG, {aside} as aside
        gc.set_threshold(700, 10, 10)
        assert gc.get_freeze_count() == 0
        try:
            with aside():
                assert gc.get_freeze_count() > 1000
                assert gc.get_threshold() == (YOUNG, 10, 10)
                raise ValueError
        except ValueError:
            pass
        assert gc.get_freeze_count() == 0 and gc.get_threshold() == (700, 10, 10)
        gc.freeze()
        frozen = gc.get_freeze_count()
        gc.set_threshold(5000, 10, 10)
        with aside():
            assert gc.get_freeze_count() == frozen and gc.get_threshold() == (5000, 10, 10)
        assert gc.get_freeze_count() == frozen and gc.get_threshold() == (5000, 10, 10)
        print("ok")
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
