"""Apple Health ``export.zip`` / ``export.xml`` -> :class:`Reading`, streamed in constant memory.

Format (``shared/reference/mappings.md`` §2.1): ``<HealthData>`` holding ``<Record>`` (quantity and category
samples), ``<Correlation>`` (blood pressure), ``<Workout>`` and ``<ActivitySummary>`` elements; dates are
``2016-11-20 17:57:19 -0700``. Rules enforced here:

* The XML is parsed with ``lxml.etree.iterparse`` and every handled element is cleared and detached from the
  root, so memory does not grow with the file (exports reach gigabytes). An inline DTD (older exports,
  "HealthKit Export Version: 3") is tolerated; external entities and the network are never loaded.
* Dates carry the phone's offset *at export time*, not at recording (fixtures README). When a record has an
  ``HKTimeZone`` metadata entry the instant is re-expressed in that zone, so the offset and the local day are
  right; otherwise the offset is kept as written.
* Records nested in a ``<Correlation>`` also appear top-level (the DTD says so): blood pressure is read once,
  from the correlation, and the loose systolic/diastolic records are ignored.
* Sleep (iOS 16+): ``AsleepCore``/``AsleepDeep``/``AsleepREM``/``AsleepUnspecified``/``Asleep``,
  ``InBed`` and ``Awake`` become separate metrics; time asleep is the sum of the asleep stages, never InBed.
* Units follow the locale (``lb``, ``mi``, ``degF``, ``count/min``, ``kcal``, ``kJ``); values are converted
  to canonical units. ``%`` quantities are fractions (0.97) and are scaled to percent.
"""

from __future__ import annotations

import io
import re
import zipfile
import zlib
from collections.abc import Iterator
from datetime import date, datetime, tzinfo
from typing import IO, Final

from lxml import etree

from mappings.errors import MalformedInputError, MappingError, SkipLog, UnsupportedInputError
from mappings.wearables._common import convert, day_bounds, to_float, zone
from mappings.wearables.model import Component, Metric, Reading, Source

__all__ = ["QUANTITY_TYPES", "SLEEP_VALUES", "read_apple_health"]

VENDOR: Final = "apple-health"

#: HealthKit quantity type -> metric.
QUANTITY_TYPES: Final[dict[str, Metric]] = {
    "HKQuantityTypeIdentifierStepCount": Metric.STEPS,
    "HKQuantityTypeIdentifierDistanceWalkingRunning": Metric.DISTANCE,
    "HKQuantityTypeIdentifierHeartRate": Metric.HEART_RATE,
    "HKQuantityTypeIdentifierRestingHeartRate": Metric.RESTING_HEART_RATE,
    "HKQuantityTypeIdentifierActiveEnergyBurned": Metric.ACTIVE_ENERGY,
    "HKQuantityTypeIdentifierAppleExerciseTime": Metric.ACTIVE_MINUTES,
    "HKQuantityTypeIdentifierBodyMass": Metric.WEIGHT,
    "HKQuantityTypeIdentifierHeight": Metric.HEIGHT,
    "HKQuantityTypeIdentifierBodyMassIndex": Metric.BMI,
    "HKQuantityTypeIdentifierBodyFatPercentage": Metric.BODY_FAT,
    "HKQuantityTypeIdentifierBodyTemperature": Metric.BODY_TEMPERATURE,
    "HKQuantityTypeIdentifierOxygenSaturation": Metric.SPO2,
    "HKQuantityTypeIdentifierBloodGlucose": Metric.BLOOD_GLUCOSE,
}

#: HKCategoryValueSleepAnalysis* -> metric (iOS 16 stages and the deprecated ``Asleep``).
SLEEP_VALUES: Final[dict[str, Metric]] = {
    "HKCategoryValueSleepAnalysisInBed": Metric.SLEEP_IN_BED,
    "HKCategoryValueSleepAnalysisAsleep": Metric.SLEEP_ASLEEP,
    "HKCategoryValueSleepAnalysisAsleepUnspecified": Metric.SLEEP_ASLEEP,
    "HKCategoryValueSleepAnalysisAsleepCore": Metric.SLEEP_LIGHT,
    "HKCategoryValueSleepAnalysisAsleepDeep": Metric.SLEEP_DEEP,
    "HKCategoryValueSleepAnalysisAsleepREM": Metric.SLEEP_REM,
    "HKCategoryValueSleepAnalysisAwake": Metric.SLEEP_AWAKE,
}

_BP_CORRELATION = "HKCorrelationTypeIdentifierBloodPressure"
_BP_PARTS = {
    "HKQuantityTypeIdentifierBloodPressureSystolic": Metric.SYSTOLIC_BP,
    "HKQuantityTypeIdentifierBloodPressureDiastolic": Metric.DIASTOLIC_BP,
}
_DATE_FORMAT = "%Y-%m-%d %H:%M:%S %z"
_DATE = re.compile(r"^(\d{4}-\d{2}-\d{2}) (\d{2}:\d{2}:\d{2}) ([+-]\d{2})(\d{2})$")
_DEVICE_FIELD = re.compile(r"(name|manufacturer|model|hardware):([^,>]*)")


def read_apple_health(
    stream: IO[bytes],
    *,
    file: str = "export.xml",
    errors: SkipLog | None = None,
    summary_tz: tzinfo | None = None,
) -> Iterator[Reading]:
    """Yield readings from an Apple Health ``export.zip`` or ``export.xml`` byte stream.

    A zip is recognised by its signature and must be seekable; its ``*/export.xml`` is read (``__MACOSX``
    and ``.DS_Store`` entries are ignored). ``ActivitySummary`` rows are local calendar days without a zone:
    they are placed in ``summary_tz`` or, when not given, in the fixed offset of ``ExportDate``.
    """
    head = stream.read(4)
    if not head:
        raise MalformedInputError("the file is empty", file=file)
    if stream.seekable():
        stream.seek(0)
    if head.startswith(b"PK"):
        yield from _read_zip(stream if stream.seekable() else io.BytesIO(head + stream.read()), file, errors, summary_tz)
        return
    body: IO[bytes] = stream if stream.seekable() else _Prefixed(head, stream)
    yield from _read_xml(body, file, errors, summary_tz)


def _read_zip(stream: IO[bytes], file: str, errors: SkipLog | None, summary_tz: tzinfo | None) -> Iterator[Reading]:
    try:
        archive = zipfile.ZipFile(stream)
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise MalformedInputError(f"not a readable zip archive ({exc})", file=file) from exc
    with archive:
        names = [
            n for n in archive.namelist()
            if n.rsplit("/", 1)[-1] == "export.xml" and not n.startswith("__MACOSX/")
        ]
        if not names:
            raise MalformedInputError("the zip holds no export.xml", file=file)
        member = min(names, key=len)  # apple_health_export/export.xml, not a nested copy
        label = f"{file}!{member}"
        try:
            with archive.open(member) as xml:
                yield from _read_xml(xml, label, errors, summary_tz)
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:
            raise MalformedInputError(f"the zip archive is truncated or corrupt ({exc})", file=label) from exc


class _Prefixed(io.RawIOBase):
    """A non-seekable stream with its already-read first bytes put back."""

    def __init__(self, head: bytes, rest: IO[bytes]) -> None:
        self._head = head
        self._rest = rest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        if self._head:
            n = min(len(buffer), len(self._head))
            buffer[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        data = self._rest.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def _read_xml(stream: IO[bytes], file: str, errors: SkipLog | None, summary_tz: tzinfo | None) -> Iterator[Reading]:
    context = etree.iterparse(
        stream,
        events=("end",),
        tag=("ExportDate", "Record", "Correlation", "Workout", "ActivitySummary"),
        resolve_entities=False,
        load_dtd=False,
        no_network=True,
        huge_tree=True,
        remove_comments=True,
    )
    export_tz: tzinfo | None = None
    seen_root = False
    try:
        for _event, elem in context:
            seen_root = True
            tag = elem.tag
            parent = elem.getparent()
            if tag == "Record" and parent is not None and parent.tag == "Correlation":
                continue  # read with (and cleared by) its correlation
            try:
                if tag == "ExportDate":
                    export_tz = _parse_date(elem.get("value"), "ExportDate").tzinfo
                elif tag == "Record":
                    yield from (r.checked() for r in _record(elem, file, errors))
                elif tag == "Correlation":
                    yield from (r.checked() for r in _correlation(elem, file, errors))
                elif tag == "Workout":
                    yield from (r.checked() for r in _workout(elem, file))
                elif tag == "ActivitySummary":
                    yield from (r.checked() for r in _activity_summary(elem, file, summary_tz or export_tz))
            except MappingError as exc:
                located = type(exc)(exc.reason, file=file, line=elem.sourceline, record=exc.record or tag)
                if errors is None:
                    raise located from exc
                errors.add(located)
            finally:
                # constant memory: drop this element and everything before it
                elem.clear(keep_tail=False)
                if parent is not None and parent.tag != "Correlation":
                    while elem.getprevious() is not None:
                        del parent[0]
        root = getattr(context, "root", None)
    except etree.XMLSyntaxError as exc:
        line = exc.position[0] if exc.position else None
        raise MalformedInputError(f"not well-formed XML ({exc.msg})", file=file, line=line) from exc
    if not seen_root and (root is None or root.tag != "HealthData"):
        tag = root.tag if root is not None else None
        raise MalformedInputError(f"root element is {tag!r}, not HealthData: not an Apple Health export", file=file)


def _parse_date(raw: str | None, what: str) -> datetime:
    if not raw:
        raise MalformedInputError(f"missing {what}")
    text = raw.strip()
    try:
        match = _DATE.match(text)
        if match:  # fast path: fromisoformat is ~20x faster than strptime, and exports hold millions of dates
            return datetime.fromisoformat(f"{match[1]}T{match[2]}{match[3]}:{match[4]}")
        return datetime.strptime(text, _DATE_FORMAT)
    except ValueError as exc:
        raise MalformedInputError(f"{what} {raw!r} is not like 2016-11-20 17:57:19 -0700") from exc


def _metadata(elem: etree._Element) -> dict[str, str]:
    return {m.get("key", ""): m.get("value", "") for m in elem.iterfind("MetadataEntry")}


def _source(elem: etree._Element) -> Source:
    device = elem.get("device")
    model = None
    if device:
        fields = dict(_DEVICE_FIELD.findall(device))
        # the "<<HKDevice: 0x...>" address changes per record: identity uses name/model/hardware only
        parts = [fields.get("name"), fields.get("hardware") or fields.get("model")]
        model = ", ".join(p.strip() for p in parts if p and p.strip()) or None
    return Source(VENDOR, elem.get("sourceName") or "unknown", model, elem.get("sourceVersion"))


def _times(elem: etree._Element, meta: dict[str, str]) -> tuple[datetime, datetime, str | None]:
    start = _parse_date(elem.get("startDate"), "startDate")
    end = _parse_date(elem.get("endDate"), "endDate")
    tz_name = meta.get("HKTimeZone")
    if tz_name:
        tz = zone(tz_name)
        start, end = start.astimezone(tz), end.astimezone(tz)
    return start, end, tz_name


def _record(elem: etree._Element, file: str, errors: SkipLog | None) -> Iterator[Reading]:
    kind = elem.get("type") or ""
    meta = _metadata(elem)
    if kind == "HKCategoryTypeIdentifierSleepAnalysis":
        metric = SLEEP_VALUES.get(elem.get("value") or "")
        if metric is None:
            raise UnsupportedInputError(f"unknown sleep analysis value {elem.get('value')!r}", record=kind)
        start, end, tz_name = _times(elem, meta)
        yield Reading(metric, round((end - start).total_seconds() / 60, 4), "min", start, _source(elem), end=end,
                      time_zone=tz_name, location=f"{file}:{elem.sourceline}",
                      entered_by_user=meta.get("HKWasUserEntered") == "1")
        return
    if kind in _BP_PARTS:
        if errors is not None:
            errors.ignore("blood pressure part outside its correlation")
        return
    metric = QUANTITY_TYPES.get(kind)
    if metric is None:
        if errors is not None:
            errors.ignore(f"unmapped type {kind}")
        return
    value, unit = convert(metric, to_float(elem.get("value"), "value"), elem.get("unit"))
    start, end, tz_name = _times(elem, meta)
    yield Reading(metric, value, unit, start, _source(elem), end=None if start == end else end,
                  time_zone=tz_name, location=f"{file}:{elem.sourceline}",
                  entered_by_user=meta.get("HKWasUserEntered") == "1")


def _correlation(elem: etree._Element, file: str, errors: SkipLog | None) -> Iterator[Reading]:
    if elem.get("type") != _BP_CORRELATION:
        if errors is not None:
            errors.ignore(f"unmapped correlation {elem.get('type')}")
        return
    parts: dict[Metric, Component] = {}
    for record in elem.iterfind("Record"):
        metric = _BP_PARTS.get(record.get("type") or "")
        if metric is not None:
            value, unit = convert(metric, to_float(record.get("value"), "value"), record.get("unit"))
            parts[metric] = Component(metric, value, unit)
    if set(parts) != {Metric.SYSTOLIC_BP, Metric.DIASTOLIC_BP}:
        raise MalformedInputError("blood pressure correlation lacks a systolic or diastolic record")
    meta = _metadata(elem)
    start, end, tz_name = _times(elem, meta)
    yield Reading(Metric.BLOOD_PRESSURE, None, "mm[Hg]", start, _source(elem), end=None if start == end else end,
                  components=(parts[Metric.SYSTOLIC_BP], parts[Metric.DIASTOLIC_BP]), time_zone=tz_name,
                  location=f"{file}:{elem.sourceline}", entered_by_user=meta.get("HKWasUserEntered") == "1")


def _workout(elem: etree._Element, file: str) -> Iterator[Reading]:
    meta = _metadata(elem)
    start, end, tz_name = _times(elem, meta)
    activity = (elem.get("workoutActivityType") or "HKWorkoutActivityTypeOther").removeprefix("HKWorkoutActivityType")
    source = _source(elem)
    where = f"{file}:{elem.sourceline}"
    raw_duration = elem.get("duration")
    if raw_duration is not None:
        minutes, _ = convert(Metric.EXERCISE, to_float(raw_duration, "duration"), elem.get("durationUnit") or "min")
    else:
        minutes = (end - start).total_seconds() / 60
    yield Reading(Metric.EXERCISE, round(minutes, 4), "min", start, source, end=end, time_zone=tz_name,
                  label=activity, location=where)
    energy = elem.get("totalEnergyBurned")
    if energy is not None:
        value, unit = convert(Metric.WORKOUT_ENERGY, to_float(energy, "totalEnergyBurned"),
                              elem.get("totalEnergyBurnedUnit") or "kcal")
        yield Reading(Metric.WORKOUT_ENERGY, value, unit, start, source, end=end, time_zone=tz_name,
                      label=activity, location=where)


def _activity_summary(elem: etree._Element, file: str, tz: tzinfo | None) -> Iterator[Reading]:
    raw = elem.get("dateComponents")
    try:
        day = date.fromisoformat(raw or "")
    except ValueError as exc:
        raise MalformedInputError(f"dateComponents {raw!r} is not a date") from exc
    if tz is None:
        raise MalformedInputError("ActivitySummary before ExportDate and no summary_tz given")
    start, end = day_bounds(day, tz)
    # Activity rings are computed by the Health app from all sources: name it as such.
    source = Source(VENDOR, "Activity Summary")
    where = f"{file}:{elem.sourceline}"
    energy = elem.get("activeEnergyBurned")
    if energy is not None:
        value, unit = convert(Metric.ACTIVE_ENERGY, to_float(energy, "activeEnergyBurned"),
                              elem.get("activeEnergyBurnedUnit") or "kcal")
        yield Reading(Metric.ACTIVE_ENERGY, value, unit, start, source, end=end, local_date=day, location=where)
    exercise = elem.get("appleExerciseTime")
    if exercise is not None:
        yield Reading(Metric.ACTIVE_MINUTES, to_float(exercise, "appleExerciseTime"), "min", start, source,
                      end=end, local_date=day, location=where)
