"""Open mHealth out (validated with jsonschema), generated FIT monitoring/weight files, constant memory."""

from __future__ import annotations

import gc
import io
import json
import tracemalloc
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from fit_tool.fit_file_builder import FitFileBuilder
from fit_tool.profile.messages.file_id_message import FileIdMessage
from fit_tool.profile.messages.monitoring_info_message import MonitoringInfoMessage
from fit_tool.profile.messages.monitoring_message import MonitoringMessage
from fit_tool.profile.messages.weight_scale_message import WeightScaleMessage
from fit_tool.profile.profile_type import ActivityType, FileType, Manufacturer
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4
from wearable_support import OMH_SCHEMAS, OMH_TEST_DATA, validate_fhir

from mappings.errors import MappingError, SkipLog
from mappings.wearables import (
    Metric,
    Source,
    daily_summaries,
    observation_to_omh,
    read_apple_health,
    read_garmin_fit,
    read_omh,
    read_omh_body,
    reading_to_observation,
)

NOW = datetime(2026, 11, 28, 12, tzinfo=UTC)


OMH_BASE = "https://w3id.org/openmhealth/schemas/omh/"
IEEE_UNIT_VALUE = "https://w3id.org/ieee/ieee-1752-schema/unit-value-1.0.json"


def _registry() -> Registry:
    """Every local schema under its own id and under OMH_BASE + file name (some have no id)."""
    resources = []
    for path in OMH_SCHEMAS.glob("*.json"):
        contents = json.loads(path.read_text(encoding="utf-8"))
        contents.setdefault(
            "$id" if "$schema" in contents and "draft-07" in contents["$schema"] else "id",
            OMH_BASE + path.name,
        )
        resource = Resource.from_contents(contents, default_specification=DRAFT4)
        resources.append((OMH_BASE + path.name, resource))
    # systolic/diastolic-blood-pressure-1.1 $ref the IEEE 1752.1 unit-value schema, which is not available
    # offline; tests/fixtures/README.md says to map it to a local copy: OmH unit-value-1.0 is the same structure
    unit_value = json.loads((OMH_SCHEMAS / "unit-value-1.0.json").read_text(encoding="utf-8"))
    unit_value["id"] = IEEE_UNIT_VALUE
    resources.append((IEEE_UNIT_VALUE, Resource.from_contents(unit_value, default_specification=DRAFT4)))
    return Registry().with_resources(resources)


REGISTRY = _registry()


def _validator(name: str, version: str) -> jsonschema.protocols.Validator:
    schema = json.loads((OMH_SCHEMAS / f"{name}-{version}.json").read_text(encoding="utf-8"))
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft4Validator)
    return cls({"$ref": OMH_BASE + f"{name}-{version}.json"}, registry=REGISTRY)


def test_the_local_schema_registry_agrees_with_the_upstream_test_data() -> None:
    """Sanity check of the validator set-up on schemas that need no IEEE $ref."""
    for name, version in [
        ("step-count", "3.0"),
        ("heart-rate", "2.0"),
        ("blood-pressure", "3.1"),
        ("blood-pressure", "3.0"),
        ("oxygen-saturation", "2.0"),
        ("body-weight", "2.0"),
    ]:
        validator = _validator(name, version)
        folder = OMH_TEST_DATA / name / version
        for path in (folder / "shouldPass").glob("*.json"):
            validator.validate(json.loads(path.read_text(encoding="utf-8")))
        for path in (folder / "shouldFail").glob("*.json"):
            assert not validator.is_valid(json.loads(path.read_text(encoding="utf-8"))), path.name


ROUND_TRIP = [  # (schema, version folder of the upstream shouldPass bodies)
    ("step-count", "3.0"),
    ("step-count", "2.0"),
    ("heart-rate", "2.0"),
    ("heart-rate", "1.0"),
    ("sleep-duration", "2.0"),
    ("body-weight", "2.0"),
    ("blood-pressure", "3.1"),
    ("blood-pressure", "2.0"),
    ("blood-glucose", "3.0"),
    ("oxygen-saturation", "2.0"),
    ("physical-activity", "1.2"),
]


def _bodies(name: str, version: str) -> Iterator[tuple[str, dict[str, Any]]]:
    for path in sorted((OMH_TEST_DATA / name / version / "shouldPass").glob("*.json")):
        yield path.name, json.loads(path.read_text(encoding="utf-8"))


@pytest.mark.parametrize("name, version", ROUND_TRIP)
def test_omh_to_fhir_and_back_validates_and_keeps_values(name: str, version: str) -> None:
    done, refused = 0, []
    for file, body in _bodies(name, version):
        try:
            readings = read_omh_body(body, name, Source("omh", "test"), record_id=file)
        except MappingError as exc:
            # upstream bodies the mapping rightly refuses: no exact bounds (date + part_of_day), no time frame
            # at all (allowed before step-count 2.0), or an interval that ends before it starts (a real
            # quirk of sleep-duration-2.0 shouldPass/with-descriptive-statistic.json)
            assert any(
                p in exc.reason
                for p in ("cannot be placed", "effective_time_frame", "before start", "no duration")
            ), exc
            refused.append(file)
            continue
        for reading in readings:
            obs = reading_to_observation(reading, "Patient/1")
            validate_fhir([obs])
            try:
                point = observation_to_omh(obs, creation_date_time=NOW)
            except MappingError:
                assert reading.metric in (
                    Metric.WORKOUT_ENERGY,
                    Metric.DISTANCE,
                )  # no OmH schema of their own
                continue
            schema = point["header"]["schema_id"]
            _validator("header", "1.2").validate(point["header"])
            _validator(schema["name"], schema["version"]).validate(point["body"])
            again = read_omh_body(point["body"], schema["name"], Source("omh", "test"))[0]
            assert (again.metric, again.start, again.end) == (reading.metric, reading.start, reading.end)
            assert again.value == pytest.approx(reading.value) if reading.value is not None else True
            assert [c.value for c in again.components] == [c.value for c in reading.components]
            done += 1
    assert done > 0, refused


def test_read_omh_data_points_and_json_lines() -> None:
    point = json.loads(
        (OMH_TEST_DATA / "data-point" / "1.0" / "shouldPass" / "valid-data-point.json").read_text()
    )
    log = SkipLog()
    assert list(read_omh(io.StringIO(json.dumps(point)), errors=log)) == []  # date + part_of_day: no bounds
    assert log.count == 1
    hr = {
        "header": {
            "id": "a1",
            "creation_date_time": "2020-01-01T00:00:00Z",
            "schema_id": {"namespace": "omh", "name": "heart-rate", "version": "2.0"},
            "acquisition_provenance": {"source_name": "Polar", "modality": "self-reported"},
        },
        "body": {
            "heart_rate": {"value": 58, "unit": "beats/min"},
            "temporal_relationship_to_physical_activity": "at rest",
            "effective_time_frame": {"date_time": "2020-02-05T07:25:00-08:00"},
        },
    }
    lines = json.dumps(hr) + "\n\n" + json.dumps(hr | {"header": hr["header"] | {"id": "a2"}}) + "\n"
    readings = list(read_omh(io.StringIO(lines)))
    assert [(r.metric, r.value, r.record_id, r.entered_by_user) for r in readings] == [
        (Metric.RESTING_HEART_RATE, 58, "a1", True),
        (Metric.RESTING_HEART_RATE, 58, "a2", True),
    ]
    out = observation_to_omh(reading_to_observation(readings[0], "Patient/1"), creation_date_time=NOW)
    assert out["body"]["temporal_relationship_to_physical_activity"] == "at rest"
    assert out["header"]["acquisition_provenance"]["modality"] == "self-reported"


# --- generated FIT files (the shared samples are activity files only) --------------------------------------

FIT_EPOCH_S = 631065600


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _monitoring_file(day_start_utc: datetime, offset_h: int, counters: list[tuple[int, int, bool]]) -> bytes:
    """counters: (seconds after day start, cumulative steps, write only timestamp_16)."""
    builder = FitFileBuilder(auto_define=True, min_string_size=50)
    file_id = FileIdMessage()
    file_id.type = FileType.MONITORING_B
    file_id.manufacturer = Manufacturer.GARMIN.value
    file_id.product = 1
    file_id.serial_number = 42
    file_id.time_created = _ms(day_start_utc)
    builder.add(file_id)
    info = MonitoringInfoMessage()
    info.timestamp = _ms(day_start_utc)
    info.local_timestamp = int(day_start_utc.timestamp()) - FIT_EPOCH_S + offset_h * 3600
    builder.add(info)
    for seconds, steps, short in counters:
        message = MonitoringMessage()
        at = day_start_utc + timedelta(seconds=seconds)
        if short:
            message.timestamp_16 = (int(at.timestamp()) - FIT_EPOCH_S) & 0xFFFF
        else:
            message.timestamp = _ms(at)
        message.activity_type = ActivityType.WALKING
        message.cycles = steps  # fitparse reads this back as the `steps` sub-field
        builder.add(message)
    return builder.build().to_bytes()


def test_generated_monitoring_file_gives_step_deltas_in_local_time() -> None:
    day_start = datetime(2024, 1, 10, 6, tzinfo=UTC)  # local midnight at UTC-6
    # two timestamp_16 steps of 10 h each: the second lies past the 16-bit rollover (18.2 h) of the full time
    data = _monitoring_file(
        day_start, -6, [(900, 300, False), (10 * 3600, 1000, True), (20 * 3600, 2500, True)]
    )
    readings = list(read_garmin_fit(io.BytesIO(data), file="monitor.fit"))
    steps = [(r.value, r.start.isoformat(), r.end.isoformat()) for r in readings if r.metric is Metric.STEPS]
    assert steps == [
        (300, "2024-01-10T00:00:00-06:00", "2024-01-10T00:15:00-06:00"),
        (700, "2024-01-10T00:15:00-06:00", "2024-01-10T10:00:00-06:00"),
        (1500, "2024-01-10T10:00:00-06:00", "2024-01-10T20:00:00-06:00"),
    ]
    from zoneinfo import ZoneInfo

    (summary,) = daily_summaries(readings, tz=ZoneInfo("America/Chicago"))
    assert summary.value == 2500


def test_generated_weight_scale_file() -> None:
    builder = FitFileBuilder(auto_define=True, min_string_size=50)
    file_id = FileIdMessage()
    file_id.type = FileType.WEIGHT
    file_id.manufacturer = Manufacturer.GARMIN.value
    file_id.product = 2
    file_id.serial_number = 7
    file_id.time_created = _ms(datetime(2024, 2, 1, 7, tzinfo=UTC))
    builder.add(file_id)
    for kg, fat in ((75.8, 22.3), (12.0, None)):
        message = WeightScaleMessage()
        message.timestamp = _ms(datetime(2024, 2, 1, 7, tzinfo=UTC))
        message.weight = kg
        if fat is not None:
            message.percent_fat = fat
        builder.add(message)
    readings = list(read_garmin_fit(io.BytesIO(builder.build().to_bytes()), file="scale.fit"))
    assert [(r.metric, round(r.value, 1), r.implausible is not None) for r in readings] == [
        (Metric.WEIGHT, 75.8, False),
        (Metric.BODY_FAT, 22.3, False),
        (Metric.WEIGHT, 12.0, True),
    ]


# --- constant memory --------------------------------------------------------------------------------------


def _write_export(path: Path, records: int) -> None:
    row = (
        '<Record type="HKQuantityTypeIdentifierStepCount" sourceName="iPhone" sourceVersion="17.2" '
        'unit="count" creationDate="2024-01-01 10:00:00 +0100" startDate="2024-01-01 {h:02d}:{m:02d}:00 +0100" '
        'endDate="2024-01-01 {h:02d}:{m:02d}:59 +0100" value="{v}"><MetadataEntry key="HKTimeZone" '
        'value="Europe/Amsterdam"/></Record>\n'
    )
    with path.open("w", encoding="utf-8") as out:
        out.write(
            '<?xml version="1.0" encoding="UTF-8"?>\n<HealthData locale="en_NL">\n'
            '<ExportDate value="2024-06-01 08:10:05 +0200"/>\n'
        )
        for i in range(records):
            out.write(row.format(h=(i // 60) % 24, m=i % 60, v=i % 97))
        out.write("</HealthData>\n")


def _peak(path: Path) -> tuple[int, int]:
    gc.collect()
    tracemalloc.start()
    count = 0
    with path.open("rb") as stream:
        for _ in read_apple_health(stream):
            count += 1
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return count, peak


@pytest.mark.slow
def test_apple_reader_memory_does_not_grow_with_file_size(tmp_path: Path) -> None:
    small, large = tmp_path / "small.xml", tmp_path / "large.xml"
    _write_export(small, 10_000)  # ~3 MB
    _write_export(large, 80_000)  # ~22 MB
    assert large.stat().st_size > 20_000_000
    small_count, small_peak = _peak(small)
    large_count, large_peak = _peak(large)
    assert (small_count, large_count) == (10_000, 80_000)
    # eight times the data must not need noticeably more memory (a tree kept in memory would need ~8x)
    assert large_peak < small_peak * 1.5 + 1_000_000, (small_peak, large_peak)
