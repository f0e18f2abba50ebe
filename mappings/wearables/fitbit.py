"""Fitbit Web API JSON and Fitbit account-export per-day JSON -> :class:`Reading`.

Time zones (Fitbit Web API reference, https://dev.fitbit.com/build/reference/web-api/, and the notes of
openmhealth/shimmer, https://github.com/openmhealth/shimmer/blob/master/README.md): the Web API returns local wall time with **no
offset** and none can be inferred, so every reader here takes the user's ``tz`` from the caller. The
account export differs by file: per-minute series (``steps-``, ``heart_rate-``, ``distance-``,
``calories-``) carry **UTC** times while the file is split on local days, and sleep logs are device-local
wall time; :func:`read_fitbit_export` follows that evidence (set ``series_in_utc=False`` to treat the series
as local instead).

Other quirks handled: numbers sent as strings (``"175"``), ``isMainSleep`` (API) vs ``mainSleep``
(export), ``dateOfSleep`` = the day the sleep ended, weight in the account's display unit (``weight_unit``),
the daily summary response does not repeat its date (pass ``day``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import IO, Any, Final

from mappings.errors import MalformedInputError, SkipLog, UnsupportedInputError
from mappings.wearables._common import convert, day_bounds, guarded, load_json, require, to_float
from mappings.wearables.model import Metric, Reading, Source

__all__ = ["read_fitbit", "read_fitbit_export"]

VENDOR: Final = "fitbit"
_API = Source(VENDOR, "Fitbit Web API")
_EXPORT = Source(VENDOR, "Fitbit account export")

_STAGE_METRICS: Final = {"deep": Metric.SLEEP_DEEP, "light": Metric.SLEEP_LIGHT, "rem": Metric.SLEEP_REM}


def _local(raw: Any, tz: tzinfo, what: str) -> datetime:
    """An offset-less Fitbit ISO datetime (``2016-12-13T09:59:00.000``) placed in ``tz``."""
    if not isinstance(raw, str):
        raise MalformedInputError(f"missing {what}")
    try:
        parsed = datetime.fromisoformat(raw)
    except ValueError as exc:
        raise MalformedInputError(f"{what} {raw!r} is not an ISO date-time") from exc
    return parsed.replace(tzinfo=tz) if parsed.tzinfo is None else parsed


def _day(raw: Any, what: str) -> date:
    try:
        return date.fromisoformat(str(raw))
    except ValueError as exc:
        raise MalformedInputError(f"{what} {raw!r} is not a YYYY-MM-DD date") from exc


def _daily(
    metric: Metric, value: float, unit: str | None, day: date, tz: tzinfo, source: Source, where: str
) -> Reading:
    value, canonical = convert(metric, value, unit)
    start, end = day_bounds(day, tz)
    return Reading(metric, value, canonical, start, source, end=end, local_date=day, location=where)


def read_fitbit(
    stream: IO[bytes] | IO[str],
    *,
    tz: tzinfo,
    file: str = "fitbit.json",
    day: date | None = None,
    weight_unit: str = "kg",
    errors: SkipLog | None = None,
) -> Iterator[Reading]:
    """Yield readings from one Fitbit Web API response (steps, heart, activities, body weight, sleep).

    The layout is recognised from the top-level keys. ``tz`` is the user's time zone (the API has none);
    ``day`` is the request date of a daily activity summary, which the response does not repeat.
    """
    doc = load_json(stream, file)
    if not isinstance(doc, dict):
        raise UnsupportedInputError("expected a JSON object from the Fitbit Web API", file=file)
    found = False
    if "activities-steps" in doc:
        found = True
        yield from _steps(doc, tz, file, errors)
    if "activities-heart" in doc:
        found = True
        yield from _heart(doc, tz, file, errors)
    if "summary" in doc and "activities" in doc:
        found = True
        yield from _activity_day(doc, tz, file, day, errors)
    if "weight" in doc:
        found = True
        yield from guarded(
            _list(doc, "weight", file),
            lambda w: _weight(w, tz, weight_unit, _API, file),
            errors=errors,
            file=file,
            locate=lambda i, _w: f"weight[{i}]",
        )
    if "sleep" in doc:
        found = True
        yield from guarded(
            _list(doc, "sleep", file),
            lambda s: _sleep(s, tz, _API, file),
            errors=errors,
            file=file,
            locate=lambda i, s: f"sleep[{i}] logId {s.get('logId') if isinstance(s, dict) else '?'}",
        )
    if not found:
        raise UnsupportedInputError(f"unrecognised Fitbit response with keys {sorted(doc)[:6]}", file=file)


def _list(doc: dict[str, Any], key: str, file: str) -> list[Any]:
    value = doc.get(key)
    if not isinstance(value, list):
        raise MalformedInputError(f"{key!r} is not a list", file=file)
    return value


def _steps(doc: dict[str, Any], tz: tzinfo, file: str, errors: SkipLog | None) -> Iterator[Reading]:
    days = _list(doc, "activities-steps", file)

    def day_total(item: Any) -> Iterable[Reading]:
        d = _day(require(item, "dateTime"), "dateTime")
        return [
            _daily(
                Metric.STEPS,
                to_float(require(item, "value"), "steps"),
                "count",
                d,
                tz,
                _API,
                f"{file}:activities-steps {d}",
            )
        ]

    yield from guarded(
        days, day_total, errors=errors, file=file, locate=lambda i, _x: f"activities-steps[{i}]"
    )
    intraday = doc.get("activities-steps-intraday")
    if intraday is not None:
        yield from _intraday(intraday, days, Metric.STEPS, "count", tz, file, errors)


def _intraday(
    block: Any, days: list[Any], metric: Metric, unit: str, tz: tzinfo, file: str, errors: SkipLog | None
) -> Iterator[Reading]:
    if not isinstance(block, dict) or not isinstance(block.get("dataset"), list):
        raise MalformedInputError("intraday block has no dataset list", file=file)
    if len(days) != 1:
        raise MalformedInputError("an intraday response must cover exactly one day", file=file)
    the_day = _day(require(days[0], "dateTime"), "dateTime")
    step = timedelta(minutes=int(block.get("datasetInterval") or 1))
    if block.get("datasetType", "minute") == "second":
        step = timedelta(seconds=int(block.get("datasetInterval") or 1))

    def point(item: Any) -> Iterable[Reading]:
        raw_time = require(item, "time")
        try:
            at = datetime.combine(the_day, time.fromisoformat(raw_time), tzinfo=tz)
        except ValueError as exc:
            raise MalformedInputError(f"time {raw_time!r} is not HH:MM:SS") from exc
        value, canonical = convert(metric, to_float(require(item, "value"), "value"), unit)
        where = f"{file}:intraday {raw_time}"
        if metric is Metric.HEART_RATE:
            return [Reading(metric, value, canonical, at, _API, location=where)]
        return [Reading(metric, value, canonical, at, _API, end=at + step, location=where)]

    yield from guarded(
        block["dataset"], point, errors=errors, file=file, locate=lambda i, _x: f"dataset[{i}]"
    )


def _heart(doc: dict[str, Any], tz: tzinfo, file: str, errors: SkipLog | None) -> Iterator[Reading]:
    days = _list(doc, "activities-heart", file)

    def resting(item: Any) -> Iterable[Reading]:
        d = _day(require(item, "dateTime"), "dateTime")
        value = item.get("value")
        # the real API sends {"restingHeartRate": 63, ...}; older samples send a bare string
        if isinstance(value, dict) and value.get("restingHeartRate") is not None:
            return [
                _daily(
                    Metric.RESTING_HEART_RATE,
                    to_float(value["restingHeartRate"], "restingHeartRate"),
                    "/min",
                    d,
                    tz,
                    _API,
                    f"{file}:activities-heart {d}",
                )
            ]
        if errors is not None:
            errors.ignore("Fitbit heart day without restingHeartRate")
        return []

    yield from guarded(days, resting, errors=errors, file=file, locate=lambda i, _x: f"activities-heart[{i}]")
    intraday = doc.get("activities-heart-intraday")
    if intraday is not None:
        yield from _intraday(intraday, days, Metric.HEART_RATE, "/min", tz, file, errors)


def _activity_day(
    doc: dict[str, Any], tz: tzinfo, file: str, day: date | None, errors: SkipLog | None
) -> Iterator[Reading]:
    summary = doc["summary"]
    if not isinstance(summary, dict):
        raise MalformedInputError("'summary' is not an object", file=file)
    if day is None:
        raise MalformedInputError(
            "a Fitbit daily activity summary needs the request date (day=...)", file=file
        )
    where = f"{file}:summary {day}"
    if summary.get("steps") is not None:
        yield _daily(
            Metric.STEPS, to_float(summary["steps"], "steps"), "count", day, tz, _API, where
        ).checked()
    fairly, very = summary.get("fairlyActiveMinutes"), summary.get("veryActiveMinutes")
    if fairly is not None or very is not None:
        # Fitbit's "fairly" + "very" active minutes are its moderate-to-vigorous minutes
        minutes = to_float(fairly or 0, "fairlyActiveMinutes") + to_float(very or 0, "veryActiveMinutes")
        yield _daily(Metric.ACTIVE_MINUTES, minutes, "min", day, tz, _API, where).checked()
    if summary.get("activityCalories") is not None:
        yield _daily(
            Metric.ACTIVE_ENERGY,
            to_float(summary["activityCalories"], "activityCalories"),
            "kcal",
            day,
            tz,
            _API,
            where,
        ).checked()
    if summary.get("restingHeartRate") is not None:
        yield _daily(
            Metric.RESTING_HEART_RATE,
            to_float(summary["restingHeartRate"], "restingHeartRate"),
            "/min",
            day,
            tz,
            _API,
            where,
        ).checked()
    yield from guarded(
        _list(doc, "activities", file),
        lambda a: _logged_activity(a, tz, file, errors),
        errors=errors,
        file=file,
        locate=lambda i, a: f"activities[{i}] logId {a.get('logId') if isinstance(a, dict) else '?'}",
    )


def _logged_activity(item: Any, tz: tzinfo, file: str, errors: SkipLog | None) -> Iterable[Reading]:
    start_day = _day(require(item, "startDate"), "startDate")
    raw_time = item.get("startTime") or "00:00"
    try:
        start = datetime.combine(start_day, time.fromisoformat(raw_time), tzinfo=tz)
    except ValueError as exc:
        raise MalformedInputError(f"startTime {raw_time!r} is not HH:MM") from exc
    name = str(item.get("name") or item.get("activityParentName") or "activity")
    record_id = str(require(item, "logId"))
    where = f"{file}:activity {record_id}"
    out: list[Reading] = []
    if item.get("duration") is None:
        # Fitbit omits duration for some logged activities (the Swimming sample): nothing to place in time
        if errors is not None:
            errors.ignore("Fitbit logged activity without duration")
        return out
    minutes, _ = convert(Metric.EXERCISE, to_float(item["duration"], "duration"), "ms")
    end = start + timedelta(minutes=minutes)
    out.append(
        Reading(
            Metric.EXERCISE,
            minutes,
            "min",
            start,
            _API,
            end=end,
            label=name,
            record_id=record_id,
            location=where,
        )
    )
    if item.get("calories") is not None:
        out.append(
            Reading(
                Metric.WORKOUT_ENERGY,
                to_float(item["calories"], "calories"),
                "kcal",
                start,
                _API,
                end=end,
                label=name,
                record_id=record_id,
                location=where,
            )
        )
    return out


def _weight(item: Any, tz: tzinfo, unit: str, source: Source, file: str) -> Iterable[Reading]:
    raw_date, raw_time = require(item, "date"), item.get("time") or "00:00:00"
    d = _parse_export_or_iso_date(raw_date)
    try:
        at = datetime.combine(d, time.fromisoformat(raw_time), tzinfo=tz)
    except ValueError as exc:
        raise MalformedInputError(f"time {raw_time!r} is not HH:MM:SS") from exc
    record_id = str(item.get("logId")) if item.get("logId") is not None else None
    where = f"{file}:weight {record_id}"
    value, canonical = convert(Metric.WEIGHT, to_float(require(item, "weight"), "weight"), unit)
    out = [Reading(Metric.WEIGHT, value, canonical, at, source, record_id=record_id, location=where)]
    if item.get("bmi") is not None:
        out.append(
            Reading(
                Metric.BMI,
                to_float(item["bmi"], "bmi"),
                "kg/m2",
                at,
                source,
                record_id=record_id,
                location=where,
            )
        )
    if item.get("fat") is not None:
        out.append(
            Reading(
                Metric.BODY_FAT,
                to_float(item["fat"], "fat"),
                "%",
                at,
                source,
                record_id=record_id,
                location=where,
            )
        )
    return out


def _sleep(item: Any, tz: tzinfo, source: Source, file: str) -> Iterable[Reading]:
    start = _local(require(item, "startTime"), tz, "startTime")
    end = _local(require(item, "endTime"), tz, "endTime")
    record_id = str(require(item, "logId"))
    main = item.get("isMainSleep", item.get("mainSleep"))
    label = "nap" if main is False else ("main" if main is True else None)
    where = f"{file}:sleep {record_id}"
    asleep = to_float(require(item, "minutesAsleep"), "minutesAsleep")
    out = [
        Reading(
            Metric.SLEEP_DURATION,
            asleep,
            "min",
            start,
            source,
            end=end,
            label=label,
            record_id=record_id,
            location=where,
        )
    ]
    if item.get("timeInBed") is not None:
        out.append(
            Reading(
                Metric.SLEEP_IN_BED,
                to_float(item["timeInBed"], "timeInBed"),
                "min",
                start,
                source,
                end=end,
                label=label,
                record_id=record_id,
                location=where,
            )
        )
    levels = item.get("levels")
    if item.get("type") == "stages" and isinstance(levels, dict) and isinstance(levels.get("summary"), dict):
        for stage, metric in _STAGE_METRICS.items():
            entry = levels["summary"].get(stage)
            if isinstance(entry, dict) and entry.get("minutes") is not None:
                out.append(
                    Reading(
                        metric,
                        to_float(entry["minutes"], f"{stage} minutes"),
                        "min",
                        start,
                        source,
                        end=end,
                        label=label,
                        record_id=record_id,
                        location=where,
                    )
                )
    return out


# --- account export (user-site-export/, one JSON array per type and day) ---------------------------------

_EXPORT_SERIES: Final = {
    "steps": (Metric.STEPS, "count"),
    "distance": (Metric.DISTANCE, "cm"),  # the export writes centimetres (unverified, see reference §2.2)
    "heart_rate": (Metric.HEART_RATE, "/min"),
}
_EXPORT_DAILY_MINUTES: Final = ("moderately_active_minutes", "very_active_minutes")


def _export_datetime(raw: Any) -> datetime:
    """``MM/DD/YY HH:MM:SS`` without an offset."""
    try:
        return datetime.strptime(str(raw), "%m/%d/%y %H:%M:%S")
    except ValueError as exc:
        raise MalformedInputError(f"dateTime {raw!r} is not MM/DD/YY HH:MM:SS") from exc


def _parse_export_or_iso_date(raw: Any) -> date:
    text = str(raw)
    try:
        return date.fromisoformat(text) if "-" in text else datetime.strptime(text, "%m/%d/%y").date()
    except ValueError as exc:
        raise MalformedInputError(f"date {raw!r} is neither YYYY-MM-DD nor MM/DD/YY") from exc


def read_fitbit_export(
    stream: IO[bytes] | IO[str],
    *,
    name: str,
    tz: tzinfo,
    series_in_utc: bool = True,
    weight_unit: str = "lb",
    errors: SkipLog | None = None,
) -> Iterator[Reading]:
    """Yield readings from one file of the Fitbit account export, e.g. ``steps-2015-12-13.json``.

    ``name`` is the file name; its prefix says what the file holds (``steps``, ``heart_rate``,
    ``distance``, ``resting_heart_rate``, ``moderately_active_minutes``, ``very_active_minutes``,
    ``sleep``, ``weight``). Weight is in the account's display unit, pounds by default.
    """
    base = name.rsplit("/", 1)[-1]
    kind = base.rsplit("-", 3)[0] if base.count("-") >= 3 else base.removesuffix(".json")
    doc = load_json(stream, name)
    if not isinstance(doc, list):
        raise MalformedInputError("an account-export file holds a JSON array", file=name)
    locate = lambda i, _x: f"[{i}]"  # noqa: E731
    if kind in _EXPORT_SERIES:
        metric, unit = _EXPORT_SERIES[kind]
        yield from guarded(
            doc,
            lambda p: _export_point(p, metric, unit, tz, series_in_utc, name),
            errors=errors,
            file=name,
            locate=locate,
        )
    elif kind == "resting_heart_rate":
        yield from guarded(
            doc, lambda p: _export_resting(p, tz, name, errors), errors=errors, file=name, locate=locate
        )
    elif kind in _EXPORT_DAILY_MINUTES:
        # one file per intensity: summaries add moderately + very for the day (same source, distinct labels)
        yield from guarded(
            doc, lambda p: _export_minutes(p, kind, tz, name), errors=errors, file=name, locate=locate
        )
    elif kind == "sleep":
        yield from guarded(
            doc, lambda s: _sleep(s, tz, _EXPORT, name), errors=errors, file=name, locate=locate
        )
    elif kind == "weight":
        yield from guarded(
            doc, lambda w: _weight(w, tz, weight_unit, _EXPORT, name), errors=errors, file=name, locate=locate
        )
    else:
        raise UnsupportedInputError(f"unsupported Fitbit export file type {kind!r}", file=name)


def _export_point(
    item: Any, metric: Metric, unit: str, tz: tzinfo, in_utc: bool, file: str
) -> Iterable[Reading]:
    naive = _export_datetime(require(item, "dateTime"))

    at = naive.replace(tzinfo=UTC).astimezone(tz) if in_utc else naive.replace(tzinfo=tz)
    raw = require(item, "value")
    if metric is Metric.HEART_RATE:
        if not isinstance(raw, dict):
            raise MalformedInputError("heart rate value is not an object with bpm")
        value, canonical = convert(metric, to_float(require(raw, "bpm"), "bpm"), unit)
        return [Reading(metric, value, canonical, at, _EXPORT, location=f"{file}:{item['dateTime']}")]
    value, canonical = convert(metric, to_float(raw, "value"), unit)
    if value == 0:
        return []  # the export writes a zero for every idle minute: nothing to record
    return [
        Reading(
            metric,
            value,
            canonical,
            at,
            _EXPORT,
            end=at + timedelta(minutes=1),
            location=f"{file}:{item['dateTime']}",
        )
    ]


def _export_resting(item: Any, tz: tzinfo, file: str, errors: SkipLog | None) -> Iterable[Reading]:
    value = require(item, "value")
    if not isinstance(value, dict):
        raise MalformedInputError("resting heart rate value is not an object")
    if value.get("date") is None or not value.get("value"):
        if errors is not None:
            errors.ignore("Fitbit day without resting heart rate")  # written as date null, value 0.0
        return []
    d = _parse_export_or_iso_date(value["date"])
    return [
        _daily(
            Metric.RESTING_HEART_RATE,
            to_float(value["value"], "value"),
            "/min",
            d,
            tz,
            _EXPORT,
            f"{file}:{value['date']}",
        )
    ]


def _export_minutes(item: Any, kind: str, tz: tzinfo, file: str) -> Iterable[Reading]:
    d = _export_datetime(require(item, "dateTime")).date()
    reading = _daily(
        Metric.ACTIVE_MINUTES,
        to_float(require(item, "value"), "value"),
        "min",
        d,
        tz,
        _EXPORT,
        f"{file}:{item['dateTime']}",
    )
    return [replace(reading, label=kind)]
