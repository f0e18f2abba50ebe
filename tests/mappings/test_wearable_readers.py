"""Reader behaviour on the quirks the reference notes list, with synthetic inputs where no sample exists."""

from __future__ import annotations

import io
import json
import zipfile
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from wearable_support import WEARABLES, validate_fhir

from mappings import systems
from mappings.errors import MalformedInputError, MappingError, SkipLog, UnsupportedInputError
from mappings.wearables import (
    CsvColumn,
    CsvMapping,
    Metric,
    Reading,
    Source,
    read_apple_health,
    read_csv,
    read_fitbit,
    read_fitbit_export,
    read_garmin_fit,
    read_google_fit,
    read_ihealth,
    read_omh,
    read_withings,
    reading_to_observation,
)

APPLE = WEARABLES / "apple-health"
AMS = ZoneInfo("Europe/Amsterdam")


def _apple(xml: str, errors: SkipLog | None = None) -> list[Reading]:
    return list(read_apple_health(io.BytesIO(xml.encode()), errors=errors))


def _record(type_: str, value: str, unit: str, start: str, end: str | None = None, extra: str = "") -> str:
    return (
        f'<Record type="HKQuantityTypeIdentifier{type_}" sourceName="iPhone" unit="{unit}" '
        f'startDate="{start}" endDate="{end or start}" value="{value}">{extra}</Record>'
    )


def _export(*records: str) -> str:
    return (
        '<?xml version="1.0"?>\n<HealthData locale="en_US">\n<ExportDate value="2024-06-01 08:10:05 +0200"/>\n'
        + "\n".join(records)
        + "\n</HealthData>\n"
    )


# --- Apple Health -----------------------------------------------------------------------------------------


def test_hktimezone_corrects_the_export_time_offset() -> None:
    """The sample's January records carry the June export offset +0200; HKTimeZone says Amsterdam (+0100)."""
    readings = list(read_apple_health((APPLE / "apple-health-parser-export.xml").open("rb")))
    in_bed = next(r for r in readings if r.metric is Metric.SLEEP_IN_BED)
    assert in_bed.start.utcoffset() == timedelta(hours=1)
    assert in_bed.start.isoformat() == "2023-12-31T23:55:28+01:00"  # 00:55:28 +0200 is New Year's Eve locally
    assert in_bed.time_zone == "Europe/Amsterdam"
    heart = next(
        r for r in readings if r.metric is Metric.HEART_RATE
    )  # no HKTimeZone: offset kept as written
    assert heart.start.isoformat() == "2024-01-01T01:01:36+02:00"


def test_ios16_sleep_stages_are_distinct_metrics() -> None:
    readings = list(read_apple_health((APPLE / "apple-health-parser-export.zip").open("rb")))
    metrics = {r.metric for r in readings}
    assert Metric.SLEEP_IN_BED in metrics and Metric.SLEEP_LIGHT in metrics  # InBed and AsleepCore
    core = next(r for r in readings if r.metric is Metric.SLEEP_LIGHT)
    assert core.value == 12.5  # 03:27:53 -> 03:40:23


def test_zip_and_xml_give_the_same_readings() -> None:
    from_zip = list(read_apple_health((APPLE / "healthkit-to-sqlite-export.zip").open("rb")))
    from_xml = list(read_apple_health((APPLE / "healthkit-to-sqlite-export.xml").open("rb")))
    assert [(r.metric, r.value, r.start) for r in from_zip] == [
        (r.metric, r.value, r.start) for r in from_xml
    ]


def test_inline_dtd_export_matches_the_upstream_csv() -> None:
    """export6s3sample.xml has an inline DTD; its StepCount rows must equal the upstream tool's CSV."""
    xml_steps = [
        r for r in read_apple_health((APPLE / "export6s3sample.xml").open("rb")) if r.metric is Metric.STEPS
    ]
    mapping = CsvMapping(
        start="startDate",
        end="endDate",
        time_format="%Y-%m-%d %H:%M:%S %z",
        source_name="x",
        values=(CsvColumn(Metric.STEPS, "value", unit_column="unit"),),
    )
    csv_steps = list(read_csv((APPLE / "StepCount.csv").open("rb"), mapping))
    assert len(xml_steps) == 10
    assert [(r.value, r.start, r.end) for r in xml_steps] == [(r.value, r.start, r.end) for r in csv_steps]


def test_locale_units_are_converted() -> None:
    readings = _apple(
        _export(
            _record("BodyMass", "165", "lb", "2024-01-02 07:00:00 -0500"),
            _record(
                "DistanceWalkingRunning", "1", "mi", "2024-01-02 07:00:00 -0500", "2024-01-02 07:20:00 -0500"
            ),
            _record("BodyTemperature", "98.6", "degF", "2024-01-02 07:00:00 -0500"),
            _record("OxygenSaturation", "0.97", "%", "2024-01-02 07:00:00 -0500"),
            _record("BloodGlucose", "5.5", "mmol&lt;180.1558800000541&gt;/L", "2024-01-02 07:00:00 -0500"),
        )
    )
    by_metric = {r.metric: r for r in readings}
    assert by_metric[Metric.WEIGHT].value == pytest.approx(74.842741)
    assert by_metric[Metric.DISTANCE].value == pytest.approx(1609.344)
    assert by_metric[Metric.BODY_TEMPERATURE].value == pytest.approx(37.0)
    assert by_metric[Metric.SPO2].value == pytest.approx(97.0)
    assert (by_metric[Metric.BLOOD_GLUCOSE].value, by_metric[Metric.BLOOD_GLUCOSE].unit) == (5.5, "mmol/L")
    glucose = reading_to_observation(by_metric[Metric.BLOOD_GLUCOSE], "Patient/1")
    assert glucose["code"]["coding"][0]["code"] == systems.BLOOD_GLUCOSE_MOLES.code


def test_blood_pressure_is_read_once_from_its_correlation() -> None:
    start = "2024-01-02 07:00:00 -0500"
    correlation = (
        f'<Correlation type="HKCorrelationTypeIdentifierBloodPressure" sourceName="Omron" '
        f'startDate="{start}" endDate="{start}">'
        + _record("BloodPressureSystolic", "121", "mmHg", start)
        + _record("BloodPressureDiastolic", "79", "mmHg", start)
        + "</Correlation>"
    )
    log = SkipLog()
    readings = _apple(
        _export(
            _record("BloodPressureSystolic", "121", "mmHg", start),
            _record("BloodPressureDiastolic", "79", "mmHg", start),
            correlation,
        ),
        log,
    )
    assert [r.metric for r in readings] == [Metric.BLOOD_PRESSURE]
    assert [(c.metric, c.value) for c in readings[0].components] == [
        (Metric.SYSTOLIC_BP, 121),
        (Metric.DIASTOLIC_BP, 79),
    ]
    assert log.ignored["blood pressure part outside its correlation"] == 2
    obs = reading_to_observation(readings[0], "Patient/1")
    validate_fhir([obs])
    assert "valueQuantity" not in obs and obs["code"]["coding"][0]["code"] == "85354-9"


def test_bad_record_raises_with_line_or_is_skipped_and_counted() -> None:
    xml = _export(
        _record("StepCount", "12", "count", "2024-01-02 07:00:00 -0500"),
        _record("StepCount", "lots", "count", "2024-01-02 08:00:00 -0500"),
        _record("StepCount", "30", "count", "2024-01-02 09:00:00 -0500"),
    )
    with pytest.raises(MalformedInputError) as info:
        _apple(xml)
    assert info.value.line == 5 and "'lots' is not a number" in info.value.reason
    log = SkipLog()
    assert [r.value for r in _apple(xml, log)] == [12, 30]
    assert log.count == 1 and log.skipped[0].line == 5


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "empty"),
        (b"this is not xml at all", "not well-formed XML"),
        (b"<?xml version='1.0'?><HealthData><Record type='x'", "not well-formed XML"),
        (b"<?xml version='1.0'?><Something/>", "not an Apple Health export"),
    ],
)
def test_files_that_are_not_exports_are_rejected(content: bytes, message: str) -> None:
    with pytest.raises(MalformedInputError, match=message):
        list(read_apple_health(io.BytesIO(content), errors=SkipLog()))


def test_truncated_zip_is_rejected() -> None:
    data = (APPLE / "healthkit-to-sqlite-export.zip").read_bytes()
    with pytest.raises(MalformedInputError, match="zip"):
        list(read_apple_health(io.BytesIO(data[: len(data) // 2])))


def test_zip_without_export_xml_is_rejected() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("apple_health_export/notes.txt", "hello")
    with pytest.raises(MalformedInputError, match="no export.xml"):
        list(read_apple_health(io.BytesIO(buffer.getvalue())))


def test_implausible_values_are_flagged_and_tagged() -> None:
    readings = _apple(
        _export(
            _record("BodyMass", "15", "kg", "2024-01-02 07:00:00 -0500"),
            _record("StepCount", "250000", "count", "2024-01-02 07:00:00 -0500", "2024-01-02 23:00:00 -0500"),
            _record("StepCount", "9000", "count", "2024-01-02 07:00:00 -0500", "2024-01-02 23:00:00 -0500"),
        )
    )
    assert [r.implausible is not None for r in readings] == [True, True, False]
    obs = reading_to_observation(readings[0], "Patient/1")
    assert obs["meta"]["tag"][0]["code"] == "implausible"


# --- identifiers and FHIR shape ---------------------------------------------------------------------------


def _steps(value: float, source: Source, start: datetime, minutes: int = 60) -> Reading:
    return Reading(Metric.STEPS, value, "{steps}", start, source, end=start + timedelta(minutes=minutes))


def test_identifier_is_deterministic_and_distinguishes_patient_source_and_period() -> None:
    phone, watch = Source("apple-health", "iPhone"), Source("apple-health", "Apple Watch")
    t0 = datetime(2024, 3, 1, 9, tzinfo=AMS)
    ident = lambda r, p="Patient/1": reading_to_observation(r, p)["identifier"][0]["value"]  # noqa: E731
    assert ident(_steps(10, phone, t0)) == ident(_steps(99, phone, t0.astimezone(UTC)))
    assert (
        len(
            {
                ident(_steps(10, phone, t0)),
                ident(_steps(10, watch, t0)),
                ident(_steps(10, phone, t0), "Patient/2"),
                ident(_steps(10, phone, t0, 30)),
            }
        )
        == 4
    )


def test_interval_steps_and_daily_steps_use_their_loinc_codes() -> None:
    source = Source("fitbit", "Fitbit Web API")
    t0 = datetime(2024, 3, 1, tzinfo=AMS)
    interval = reading_to_observation(_steps(10, source, t0), "Patient/1")
    daily = reading_to_observation(
        Reading(
            Metric.STEPS, 7267, "{steps}", t0, source, end=t0 + timedelta(days=1), local_date=date(2024, 3, 1)
        ),
        "Patient/1",
    )
    assert (interval["code"]["coding"][0]["code"], interval["valueQuantity"]["code"]) == (
        "55423-8",
        "{steps}",
    )
    assert (daily["code"]["coding"][0]["code"], daily["valueQuantity"]["code"]) == ("41950-7", "/d")
    assert [c["coding"][0]["code"] for c in daily["category"]] == ["activity", "PhysicalActivity"]
    assert daily["effectivePeriod"] == {
        "start": "2024-03-01T00:00:00+01:00",
        "end": "2024-03-02T00:00:00+01:00",
    }


# --- other vendors ----------------------------------------------------------------------------------------


def test_garmin_activity_steps_are_double_the_strides() -> None:
    walk = list(read_garmin_fit((WEARABLES / "garmin-fit" / "garmin-fenix-5-walk.fit").open("rb")))
    by_metric = {r.metric: r for r in walk}
    assert by_metric[Metric.STEPS].value == 82  # total_strides 41
    assert by_metric[Metric.AVG_HEART_RATE].value == 75
    assert (
        by_metric[Metric.EXERCISE].start.isoformat() == "2017-06-11T07:32:51-07:00"
    )  # local_timestamp: UTC-7


def test_garmin_steps_derived_from_cadence_when_strides_missing() -> None:
    run = list(read_garmin_fit((WEARABLES / "garmin-fit" / "activity-small-fenix2-run.fit").open("rb")))
    by_metric = {r.metric: r for r in run}
    assert by_metric[Metric.EXERCISE].start.utcoffset() == timedelta(hours=2)
    # 47 min at the session's average running cadence of 81 strides/min is about 7,650 steps
    assert by_metric[Metric.STEPS].value == pytest.approx(2 * 81 * 47.2, rel=0.02)
    assert by_metric[Metric.AVG_HEART_RATE].value > 100


def test_garmin_corrupt_file_is_rejected() -> None:
    data = (WEARABLES / "garmin-fit" / "garmin-fenix-5-walk.fit").read_bytes()
    with pytest.raises(MalformedInputError, match="FIT"):
        list(read_garmin_fit(io.BytesIO(data[:-40])))


def test_withings_value_times_ten_to_the_unit_and_goals_ignored() -> None:
    log = SkipLog()
    readings = list(
        read_withings((WEARABLES / "withings-api" / "withings-body-measures.json").open("rb"), errors=log)
    )
    weights = [r.value for r in readings if r.metric is Metric.WEIGHT]
    assert weights == [74.126, 74.128]
    heights = [r.value for r in readings if r.metric is Metric.HEIGHT]
    assert heights == [193.0]
    assert [r.entered_by_user for r in readings if r.metric is Metric.HEART_RATE] == [False, True, True]
    goal_log = SkipLog()
    assert (
        list(
            read_withings(
                (WEARABLES / "withings-api" / "withings-body-measures-only-goal.json").open("rb"),
                errors=goal_log,
            )
        )
        == []
    )
    assert goal_log.ignored["Withings goal (category 2)"] == 1


def test_ihealth_undoes_the_timezone_shift() -> None:
    readings = list(read_ihealth((WEARABLES / "ihealth-api" / "ihealth-bp.json").open("rb")))
    bp = readings[0]
    # MDate 1442491463 is 2015-09-17 12:04:23 as wall time; TimeZone -0800 makes it 20:04:23 UTC
    assert bp.start.isoformat() == "2015-09-17T12:04:23-08:00"
    assert bp.start.astimezone(UTC).hour == 20


def test_ihealth_integer_timezone_and_kpa() -> None:
    doc = {
        "BPUnit": 1,
        "BPDataList": [
            {"HP": 16, "LP": 10.6, "MDate": 1442491463, "TimeZone": -8, "DataID": "x", "DataSource": "Manual"}
        ],
    }
    (reading,) = read_ihealth(io.BytesIO(json.dumps(doc).encode()))
    assert reading.start.utcoffset() == timedelta(hours=-8)
    assert [round(c.value) for c in reading.components] == [120, 80]
    assert reading.entered_by_user


def test_google_fit_nanoseconds_and_basal_calories() -> None:
    (first, *_rest) = read_google_fit(
        (WEARABLES / "googlefit-api" / "googlefit-merge-step-deltas.json").open("rb")
    )
    assert first.start == datetime(2015, 2, 2, 22, 49, 39, 811000, tzinfo=UTC)
    log = SkipLog()
    calories = list(
        read_google_fit(
            (WEARABLES / "googlefit-api" / "googlefit-merge-calories-expended.json").open("rb"), errors=log
        )
    )
    assert len(calories) == 2 and log.ignored["Google Fit basal calories (from_bmr)"] == 1


def test_fitbit_needs_the_day_for_a_daily_summary_and_knows_naps() -> None:
    path = WEARABLES / "fitbit-api" / "fitbit-activities-date-empty-activities-list.json"
    with pytest.raises(MalformedInputError, match="request date"):
        list(read_fitbit(path.open("rb"), tz=AMS))
    sleep = list(read_fitbit((WEARABLES / "fitbit-api" / "fitbit-sleep-date.json").open("rb"), tz=AMS))
    labels = [(r.label, r.value) for r in sleep if r.metric is Metric.SLEEP_DURATION]
    assert labels == [("nap", 63), ("main", 112)]


def test_fitbit_export_series_are_utc_and_sleep_is_local() -> None:
    syd = ZoneInfo("Australia/Sydney")
    steps = [
        {"dateTime": "12/12/15 13:00:00", "value": "0"},
        {"dateTime": "12/12/15 13:01:00", "value": "42"},
    ]
    (reading,) = read_fitbit_export(
        io.BytesIO(json.dumps(steps).encode()), name="steps-2015-12-13.json", tz=syd
    )
    assert reading.start.isoformat() == "2015-12-13T00:01:00+11:00"  # UTC minute series, local midnight file
    sleep = [
        {
            "logId": 1,
            "dateOfSleep": "2017-11-01",
            "startTime": "2017-11-01T02:45:00.000",
            "endTime": "2017-11-01T07:00:00.000",
            "minutesAsleep": 230,
            "mainSleep": True,
            "type": "stages",
            "levels": {
                "summary": {"deep": {"minutes": 50}, "light": {"minutes": 120}, "rem": {"minutes": 60}}
            },
        }
    ]
    readings = list(
        read_fitbit_export(io.BytesIO(json.dumps(sleep).encode()), name="sleep-2017-11-01.json", tz=syd)
    )
    assert readings[0].start.isoformat() == "2017-11-01T02:45:00+11:00"
    assert {r.metric: r.value for r in readings}[Metric.SLEEP_DEEP] == 50
    resting = [
        {"dateTime": "05/18/15 00:00:00", "value": {"date": None, "value": 0.0, "error": 0.0}},
        {"dateTime": "05/19/15 00:00:00", "value": {"date": "05/19/15", "value": 63.0, "error": 100.0}},
    ]
    log = SkipLog()
    (rhr,) = read_fitbit_export(
        io.BytesIO(json.dumps(resting).encode()),
        name="resting_heart_rate-2015-05-18.json",
        tz=syd,
        errors=log,
    )
    assert (rhr.local_date, rhr.value, log.ignored["Fitbit day without resting heart rate"]) == (
        date(2015, 5, 19),
        63,
        1,
    )
    weight = [{"logId": 5, "weight": 191.8, "bmi": 27.77, "date": "05/18/15", "time": "23:59:59"}]
    (lb, _bmi) = read_fitbit_export(
        io.BytesIO(json.dumps(weight).encode()), name="weight-2015-05-18.json", tz=syd
    )
    assert lb.value == pytest.approx(87.0, abs=0.01)


@pytest.mark.parametrize(
    "reader",
    [
        lambda s: read_fitbit(s, tz=AMS),
        lambda s: read_withings(s),
        lambda s: read_google_fit(s),
        lambda s: read_ihealth(s),
        lambda s: read_omh(s),
    ],
)
@pytest.mark.parametrize(
    "content, error",
    [
        (b"", MalformedInputError),
        (b"{not json", MalformedInputError),
        (b'{"unrelated": 1}', UnsupportedInputError),
    ],
)
def test_json_readers_reject_empty_non_json_and_wrong_schema(reader, content: bytes, error: type) -> None:  # noqa: ANN001
    with pytest.raises(error):
        list(reader(io.BytesIO(content)))


def test_json_record_errors_name_the_record() -> None:
    doc = {
        "weight": [
            {"logId": 1, "date": "2015-05-13", "time": "18:28:59", "weight": 56.7},
            {"logId": 2, "date": "2015-05-14", "time": "11:51:57"},
        ]
    }
    with pytest.raises(MappingError, match=r"weight\[1\].*missing 'weight'"):
        list(read_fitbit(io.BytesIO(json.dumps(doc).encode()), tz=AMS, file="w.json"))
    log = SkipLog()
    assert len(list(read_fitbit(io.BytesIO(json.dumps(doc).encode()), tz=AMS, errors=log))) == 1
    assert log.reasons() == {"missing 'weight'": 1}


# --- generic CSV ------------------------------------------------------------------------------------------


def test_csv_with_decimal_comma_and_local_times() -> None:
    text = "Datum;Gewicht (kg);Puls\n2024-03-31 07:30;72,5;61\n2024-04-01 07:30;;60\n"
    mapping = CsvMapping(
        start="Datum",
        time_format="%Y-%m-%d %H:%M",
        tz=AMS,
        delimiter=";",
        decimal=",",
        source_name="Scale",
        values=(
            CsvColumn(Metric.WEIGHT, "Gewicht (kg)", unit="kg"),
            CsvColumn(Metric.HEART_RATE, "Puls", unit="bpm"),
        ),
    )
    readings = list(read_csv(io.StringIO(text), mapping))
    assert [(r.metric, r.value) for r in readings] == [
        (Metric.WEIGHT, 72.5),
        (Metric.HEART_RATE, 61),
        (Metric.HEART_RATE, 60),
    ]
    assert readings[0].start.utcoffset() == timedelta(hours=2)  # CEST from 31 March 2024


def test_csv_errors_carry_the_line_number() -> None:
    mapping = CsvMapping(start="t", source_name="x", values=(CsvColumn(Metric.STEPS, "n", unit="count"),))
    with pytest.raises(MalformedInputError) as info:
        list(read_csv(io.StringIO("t,n\n2024-01-01T00:00:00+00:00,5\nyesterday,6\n"), mapping, file="s.csv"))
    assert (info.value.file, info.value.line) == ("s.csv", 3)
    with pytest.raises(MalformedInputError, match="no header"):
        list(read_csv(io.StringIO(""), mapping))
    with pytest.raises(MalformedInputError, match="missing columns"):
        list(read_csv(io.StringIO("time,steps\n"), mapping))
    assert list(read_csv(io.StringIO("t,n\n"), mapping)) == []
