"""The Apple Health reader's fast paths give what its plain path gives.

Every export here is read five ways and must come out the same: the plain reader (every record a Reading),
light records with the fast path (one-line records matched by a regular expression), light records through
expat only, the same with a tiny read chunk (every record cut across chunks), and in two parts
(:func:`split_export`, as the importer reads a large file in two processes). Light records are compared with
the plain Readings they stand for; errors by type, reason and line, with the readings that came before them.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from wearable_support import WEARABLES

from mappings.errors import MappingError, SkipLog
from mappings.wearables import Metric, Reading, read_apple_health
from mappings.wearables import apple_health as ah
from mappings.wearables import apple_health_scan as ah_scan

LA = ZoneInfo("America/Los_Angeles")
LIGHT = frozenset(
    {
        Metric.STEPS,
        Metric.ACTIVE_MINUTES,
        Metric.SLEEP_ASLEEP,
        Metric.SLEEP_LIGHT,
        Metric.SLEEP_DEEP,
        Metric.SLEEP_REM,
        Metric.RESTING_HEART_RATE,
    }
)
COUNTED = (Metric.HEART_RATE, Metric.DISTANCE, Metric.ACTIVE_ENERGY, Metric.SLEEP_AWAKE, Metric.SLEEP_IN_BED)
WATCH = (
    'sourceName="Apple Watch" sourceVersion="9.0" device="&lt;&lt;HKDevice: 0x283a0c0f0&gt;, name:Apple '
    'Watch, manufacturer:Apple Inc., model:Watch, hardware:Watch6,2, software:9.0&gt;"'
)
Q = "HKQuantityTypeIdentifier"
Outcome = tuple[list[Any], Any, list[Any], dict[Metric, int]]


def _rec(
    kind: str,
    start: str,
    end: str,
    value: str,
    unit: str | None = "count",
    source: str = WATCH,
    children: str = "",
) -> str:
    unit_attr = f' unit="{unit}"' if unit is not None else ""
    head = (
        f' <Record type="{kind}" {source}{unit_attr} creationDate="{end}" startDate="{start}" '
        f'endDate="{end}" value="{value}"'
    )
    return f"{head}>\n{children} </Record>\n" if children else f"{head}/>\n"


def _meta(key: str, value: str) -> str:
    return f'  <MetadataEntry key="{key}" value="{value}"/>\n'


def _export(
    *records: str, prolog: str = '<?xml version="1.0" encoding="UTF-8"?>\n', tail: str = "</HealthData>\n"
) -> bytes:
    return (
        prolog
        + '<HealthData locale="en_US">\n <ExportDate value="2024-06-01 08:10:05 -0700"/>\n'
        + "".join(records)
        + tail
    ).encode()


def _outcome(read: Callable[[SkipLog | None, dict[Metric, int]], Iterator[Any]], skip: bool) -> Outcome:
    log = SkipLog() if skip else None
    counted = dict.fromkeys(COUNTED, 0)
    items: list[Any] = []
    error = None
    try:
        for item in read(log, counted):
            items.append(item)
    except MappingError as exc:
        error = (type(exc).__name__, exc.reason, exc.line)
    return items, error, list(log.skipped) if log else [], counted


def _as_light(readings: list[Any], counted: dict[Metric, int]) -> list[Any]:
    """Readings that a light record could stand for, as that light record (or counted). A light reader may
    still give a Reading for one (a record in an unusual spelling takes the plain path): both sides of a
    comparison go through this."""
    out: list[Any] = []
    for r in readings:
        if isinstance(r, tuple):
            out.append(r)
            continue
        plain_record = r.local_date is None and r.value is not None and not r.implausible and r.label is None
        if plain_record and r.metric in counted:
            counted[r.metric] += 1
        elif plain_record and r.metric in LIGHT:
            out.append(
                (
                    r.metric,
                    r.value,
                    r.source,
                    r.source.key,
                    int(r.start.timestamp()),
                    None if r.end is None else int(r.end.timestamp()),
                )
            )
        else:
            out.append(r)
    return out


def _split(data: bytes, log: SkipLog | None, counted: dict[Metric, int]) -> Iterator[Any]:
    parts = ah.split_export(io.BytesIO(data), len(data))
    assert parts is not None
    first, second = parts
    stream = io.BytesIO(data)
    options: dict[str, Any] = {"errors": log, "summary_tz": LA, "light": LIGHT, "counted": counted}
    yield from read_apple_health(stream, part=first, **options)
    if first.complete:
        second.line_offset = first.lines
        yield from read_apple_health(stream, part=second, **options)


def _same_every_way(
    data: bytes, monkeypatch: pytest.MonkeyPatch, *, skip: bool = True, split: bool = True
) -> Outcome:
    plain = _outcome(lambda log, _: read_apple_health(io.BytesIO(data), errors=log, summary_tz=LA), skip)
    expected_counted = dict.fromkeys(COUNTED, 0)
    expected = (_as_light(plain[0], expected_counted), plain[1], plain[2], expected_counted)

    def light(fast: bool) -> Callable[[SkipLog | None, dict[Metric, int]], Iterator[Any]]:
        return lambda log, counted: read_apple_health(
            io.BytesIO(data), errors=log, summary_tz=LA, light=LIGHT, counted=counted, fast_path=fast
        )

    def normalised(outcome: Outcome) -> Outcome:
        counted = dict(outcome[3])
        return _as_light(outcome[0], counted), outcome[1], outcome[2], counted

    assert normalised(_outcome(light(True), skip)) == expected
    assert normalised(_outcome(light(False), skip)) == expected
    with monkeypatch.context() as m:
        m.setattr(ah_scan, "_CHUNK", 61)
        assert normalised(_outcome(light(True), skip)) == expected
    if split:
        assert normalised(_outcome(lambda log, counted: _split(data, log, counted), skip)) == expected
    return _outcome(light(True), skip)


@pytest.mark.parametrize("name", sorted(p.name for p in (WEARABLES / "apple-health").glob("*.x*")))
def test_every_apple_fixture_reads_the_same_every_way(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    data = (WEARABLES / "apple-health" / name).read_bytes()
    items, error, _, _ = _same_every_way(
        data, monkeypatch, split=b"\n <Record type=" in data[len(data) // 2 :]
    )
    assert items and error is None


def _day(kind: str, values: list[str], day: str = "2024-03-10", offset: str = "-0800") -> list[str]:
    return [
        _rec(kind, f"{day} {h:02d}:00:00 {offset}", f"{day} {h:02d}:10:00 {offset}", v)
        for h, v in enumerate(values)
    ]


def test_dst_hktimezone_and_export_offsets(monkeypatch: pytest.MonkeyPatch) -> None:
    tz = _meta("HKTimeZone", "America/Los_Angeles")
    data = _export(
        *_day(f"{Q}StepCount", ["100", "200", "300"], "2024-03-10", "-0800"),
        *_day(f"{Q}StepCount", ["400", "500"], "2024-03-11", "-0700"),
        _rec(f"{Q}StepCount", "2024-03-10 01:30:00 -0800", "2024-03-10 03:30:00 -0700", "700", children=tz),
        _rec(f"{Q}StepCount", "2024-11-03 01:30:00 -0700", "2024-11-03 01:30:00 -0800", "800"),
        _rec(
            f"{Q}StepCount", "2024-03-10 23:50:00 -0700", "2024-03-11 00:20:00 -0700", "90"
        ),  # across midnight
        _rec(
            f"{Q}StepCount", "2024-03-10 08:00:00 -0700", "2024-03-12 08:00:00 -0700", "250000"
        ),  # 2 days: ok
        _rec(
            f"{Q}HeartRate",
            "2024-03-10 08:00:00 +0100",
            "2024-03-10 08:00:00 +0100",
            "61",
            "count/min",
            children=_meta("HKMetadataKeyHeartRateMotionContext", "1") + tz,
        ),
        _rec(
            f"{Q}HeartRate",
            "2024-03-10 08:01:00 -0800",
            "2024-03-10 08:01:00 -0800",
            "62",
            "count/min",
            children=_meta("HKMetadataKeyHeartRateMotionContext", "1"),
        ),
        _rec(
            f"{Q}RestingHeartRate",
            "2024-03-10 00:01:00 -0800",
            "2024-03-10 23:59:00 -0700",
            "55",
            "count/min",
        ),
    )
    items, error, skipped, counted = _same_every_way(data, monkeypatch)
    assert error is None and not skipped and counted[Metric.HEART_RATE] == 2
    light = [i for i in items if isinstance(i, tuple)]
    # a valid HKTimeZone does not change the instant: such a record is light too (the zone matters to a Reading)
    assert [i[1] for i in light] == [100, 200, 300, 400, 500, 700, 800, 90, 250000, 55]
    assert light[5][4:] == (1710063000, 1710066600) and light[6][4:] == (1730622600, 1730626200)
    assert not [i for i in items if isinstance(i, Reading)]


def test_sleep_stages_of_ios_16(monkeypatch: pytest.MonkeyPatch) -> None:
    stages = ["InBed", "AsleepCore", "AsleepDeep", "AsleepREM", "Awake", "AsleepUnspecified", "Asleep"]
    records = [
        _rec(
            "HKCategoryTypeIdentifierSleepAnalysis",
            f"2024-03-09 23:{8 * i:02d}:00 -0800",
            f"2024-03-09 23:{8 * i + 7:02d}:30 -0800",
            f"HKCategoryValueSleepAnalysis{s}",
            unit=None,
        )
        for i, s in enumerate(stages)
    ]
    records.append(
        _rec(
            "HKCategoryTypeIdentifierSleepAnalysis",
            "2024-03-10 01:00:00 -0800",
            "2024-03-10 01:30:00 -0800",
            "HKCategoryValueSleepAnalysisDozing",
            unit=None,
        )
    )
    items, error, skipped, counted = _same_every_way(_export(*records), monkeypatch)
    assert error is None and counted[Metric.SLEEP_IN_BED] == 1 and counted[Metric.SLEEP_AWAKE] == 1
    assert [(i[0], i[1]) for i in items] == [
        (Metric.SLEEP_LIGHT, 7.5),
        (Metric.SLEEP_DEEP, 7.5),
        (Metric.SLEEP_REM, 7.5),
        (Metric.SLEEP_ASLEEP, 7.5),
        (Metric.SLEEP_ASLEEP, 7.5),
    ]
    assert len(skipped) == 1 and "Dozing" in skipped[0].reason


BAD_RECORDS = {
    "not a number": _rec(f"{Q}StepCount", "2024-03-10 08:00:00 -0800", "2024-03-10 08:10:00 -0800", "lots"),
    "unknown unit": _rec(
        f"{Q}StepCount", "2024-03-10 08:00:00 -0800", "2024-03-10 08:10:00 -0800", "5", "furlong"
    ),
    "end before start": _rec(f"{Q}StepCount", "2024-03-10 08:00:00 -0800", "2024-03-10 07:00:00 -0800", "5"),
    "bad month": _rec(f"{Q}StepCount", "2024-13-10 08:00:00 -0800", "2024-13-10 08:10:00 -0800", "5"),
    "bad zone": _rec(
        f"{Q}StepCount",
        "2024-03-10 08:00:00 -0800",
        "2024-03-10 08:10:00 -0800",
        "5",
        children=_meta("HKTimeZone", "Mars/Olympus"),
    ),
    "implausible": _rec(f"{Q}StepCount", "2024-03-10 08:00:00 -0800", "2024-03-10 08:10:00 -0800", "250000"),
    "implausible counted": _rec(
        f"{Q}HeartRate", "2024-03-10 08:00:00 -0800", "2024-03-10 08:00:00 -0800", "900", "count/min"
    ),
    "other date spelling": _rec(f"{Q}StepCount", "2024-3-10 8:00:00 -0800", "2024-03-10 08:10:00 -0800", "5"),
}


@pytest.mark.parametrize("case", sorted(BAD_RECORDS))
@pytest.mark.parametrize("skip", [True, False])
def test_bad_records_are_reported_alike(case: str, skip: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    good = _day(f"{Q}StepCount", ["10", "20"])
    items, error, skipped, _ = _same_every_way(
        _export(*good, BAD_RECORDS[case], *good), monkeypatch, skip=skip
    )
    if case.startswith("implausible") or case == "other date spelling":  # a Reading: flagged, or as spelt
        assert error is None and not skipped and any(isinstance(i, Reading) for i in items)
    elif skip:
        assert error is None and [s.line for s in skipped] == [6] and len(items) == 4
    else:
        assert error is not None and error[2] == 6 and len(items) == 2


XML_CASES = {
    "bad entity": (
        _rec(
            f"{Q}StepCount",
            "2024-03-10 08:00:00 -0800",
            "2024-03-10 08:10:00 -0800",
            "5",
            source='sourceName="A &bogus; B"',
        ),
        "not well-formed",
    ),
    "bad entity in the device": (
        _rec(
            f"{Q}StepCount",
            "2024-03-10 08:00:00 -0800",
            "2024-03-10 08:10:00 -0800",
            "5",
            source='sourceName="x" device="&lt;&lt;HKDevice &bad&gt;"',
        ),
        "not well-formed",
    ),
    "control character": (
        _rec(f"{Q}StepCount", "2024-03-10 08:00:00 -0800", "2024-03-10 08:10:00 -0800", "5\x01"),
        "not well-formed",
    ),
    "'<' in a value": (
        _rec(
            "HKQuantityType<IdentifierStepCount",
            "2024-03-10 08:00:00 -0800",
            "2024-03-10 08:10:00 -0800",
            "5",
        ),
        "not well-formed",
    ),
    "unclosed record": (
        ' <Record type="HKQuantityTypeIdentifierStepCount" sourceName="x" '
        'startDate="2024-03-10 08:00:00 -0800" endDate="2024-03-10 08:10:00 -0800" value="5">\n',
        "not well-formed",
    ),
}


@pytest.mark.parametrize("case", sorted(XML_CASES))
def test_malformed_xml_is_rejected_alike_with_its_line(case: str, monkeypatch: pytest.MonkeyPatch) -> None:
    good = _day(f"{Q}StepCount", ["10", "20"])
    record, message = XML_CASES[case]
    items, error, _, _ = _same_every_way(_export(*good, record, *good), monkeypatch)
    assert error is not None and message in error[1] and error[2] >= 6
    assert len(items) == (4 if case == "unclosed record" else 2)  # there, the next records are its children


def test_a_truncated_file_gives_what_came_before_then_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    data = _export(*_day(f"{Q}StepCount", [str(v) for v in range(20)]))
    cut = data[: data.index(b'value="12"') + 4]
    items, error, _, _ = _same_every_way(cut, monkeypatch, split=False)
    assert error is not None and "not well-formed" in error[1] and len(items) == 12


def test_records_in_comments_correlations_and_unusual_places_take_the_plain_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    step = _rec(f"{Q}StepCount", "2024-03-10 08:00:00 -0800", "2024-03-10 08:10:00 -0800", "5")
    systolic = _rec(
        f"{Q}BloodPressureSystolic", "2024-03-10 08:00:00 -0800", "2024-03-10 08:00:00 -0800", "120", "mmHg"
    )
    diastolic = _rec(
        f"{Q}BloodPressureDiastolic", "2024-03-10 08:00:00 -0800", "2024-03-10 08:00:00 -0800", "80", "mmHg"
    )
    correlation = (
        f' <Correlation type="HKCorrelationTypeIdentifierBloodPressure" {WATCH} '
        'startDate="2024-03-10 08:00:00 -0800" endDate="2024-03-10 08:00:00 -0800">\n'
        + step
        + systolic
        + diastolic
        + " </Correlation>\n"
    )
    reordered = (
        ' <Record sourceName="x" type="HKQuantityTypeIdentifierStepCount" unit="count" '
        'startDate="2024-03-10 09:00:00 -0800" endDate="2024-03-10 09:10:00 -0800" value="6"/>\n'
    )
    data = _export(
        step,
        " <!-- a comment\n" + step + " -->\n",
        step,
        "<?pi data?>\n",
        step,
        correlation,
        " <![CDATA[" + step.strip() + "]]>\n",
        reordered,
        step,
        ' <Workout workoutActivityType="HKWorkoutActivityTypeWalking" duration="40" durationUnit="min" '
        f'{WATCH} startDate="2024-03-10 18:00:00 -0800" endDate="2024-03-10 18:40:00 -0800">\n'
        + step
        + " </Workout>\n",
        step,
    )
    items, error, skipped, _ = _same_every_way(data, monkeypatch)
    assert error is None
    assert sum(1 for i in items if isinstance(i, tuple)) == 7  # not the commented, CDATA or correlation's own
    assert [i.metric for i in items if isinstance(i, Reading)] == [Metric.BLOOD_PRESSURE, Metric.EXERCISE]


@pytest.mark.parametrize(
    "prolog",
    [
        '<?xml version="1.0" encoding="ISO-8859-1"?>\n',
        '<?xml version="1.0"?>\n<!DOCTYPE HealthData [\n<!ATTLIST Record unit CDATA "count">\n]>\n',
        '<?xml version="1.0"?>\n<!DOCTYPE HealthData [\n<!ENTITY watch "Apple Watch">\n]>\n',
    ],
)
def test_declarations_that_change_values_leave_records_to_expat(
    prolog: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = 'sourceName="&watch;"' if "ENTITY" in prolog else 'sourceName="Caf\u00e9"'
    records = [
        _rec(
            f"{Q}StepCount",
            f"2024-03-10 0{h}:00:00 -0800",
            f"2024-03-10 0{h}:10:00 -0800",
            "5",
            unit=None if "ATTLIST" in prolog else "count",
            source=source,
        )
        for h in range(3)
    ]
    data = _export(*records, prolog=prolog)
    if "ISO" in prolog:
        data = data.decode().encode("latin-1")
    items, error, _, _ = _same_every_way(data, monkeypatch)
    assert error is None and len(items) == 3
    assert items[0][2].name == ("Apple Watch" if "ENTITY" in prolog else "Caf\u00e9")


def test_a_split_that_falls_inside_an_element_is_not_taken(monkeypatch: pytest.MonkeyPatch) -> None:
    """The cut lands inside a comment: the first part reads on to the end and the second is not needed."""
    steps = _day(f"{Q}StepCount", [str(v) for v in range(10)])
    data = _export(*steps[:3], " <!--\n" + "".join(steps[3:]) + " -->\n", *steps[:2])
    parts = ah.split_export(io.BytesIO(data), len(data))
    assert parts is not None
    items = list(read_apple_health(io.BytesIO(data), part=parts[0], light=LIGHT, summary_tz=LA))
    assert not parts[0].complete and len(items) == 5


def test_one_line_records_do_not_reach_expat(monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[str] = []
    start = ah._Scanner._start
    monkeypatch.setattr(
        ah._Scanner, "_start", lambda self, name, attrs: (started.append(name), start(self, name, attrs))
    )
    hr = _rec(
        f"{Q}HeartRate",
        "2024-03-10 08:00:00 -0800",
        "2024-03-10 08:00:00 -0800",
        "61",
        "count/min",
        children=_meta("HKMetadataKeyHeartRateMotionContext", "1"),
    )
    data = _export(*_day(f"{Q}StepCount", [str(v) for v in range(20)]), hr, hr)
    counted = dict.fromkeys(COUNTED, 0)
    items = list(read_apple_health(io.BytesIO(data), light=LIGHT, counted=counted))
    assert len(items) == 20 and counted[Metric.HEART_RATE] == 2
    assert started == ["HealthData", "ExportDate"]
