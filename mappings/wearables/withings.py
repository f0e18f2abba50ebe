"""Withings API JSON -> :class:`Reading` (body measures, daily activity, intraday activity, sleep).

Rules (Withings API reference, https://developer.withings.com/api-reference/; openmhealth/shimmer,
https://github.com/openmhealth/shimmer; tests/fixtures/README.md):

* Body measures: the value is ``value x 10^unit`` (``{type:1, unit:-3, value:74126}`` = 74.126 kg). Types:
  1 weight kg, 4 height m, 5 fat-free mass, 6 fat ratio %, 8 fat mass, 9 diastolic and 10 systolic mmHg,
  11 heart pulse, 12 and 71 temperature, 54 SpO2 %. Other types are ignored and counted.
* ``category`` 2 is a **goal**, not a measurement: ignored. ``attrib`` 2 and 4 mean entered by hand.
* The response's single ``timezone`` is the profile's *current* zone: it is used only to label readings;
  the instants come from epoch seconds and stay right whatever the zone.
* Daily activity rows have their own ``timezone`` and local ``date`` and arrive out of order.
* Intraday ``series`` is keyed by epoch-second strings; entries holding only a ``duration`` are skipped.
* Sleep summary durations are seconds; ``date`` is the local day the sleep ended. Sleep series ``state``:
  0 awake, 1 light, 2 deep, 3 REM.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import IO, Any, Final

from mappings.errors import MalformedInputError, SkipLog, UnsupportedInputError
from mappings.wearables._common import convert, day_bounds, guarded, load_json, require, to_float, zone
from mappings.wearables.model import Component, Metric, Reading, Source

__all__ = ["MEASURE_TYPES", "read_withings"]

VENDOR: Final = "withings"
_SOURCE = Source(VENDOR, "Withings API")

#: Withings measure type -> (metric, unit of value x 10^unit).
MEASURE_TYPES: Final[dict[int, tuple[Metric, str]]] = {
    1: (Metric.WEIGHT, "kg"),
    4: (Metric.HEIGHT, "m"),
    6: (Metric.BODY_FAT, "%"),
    9: (Metric.DIASTOLIC_BP, "mmHg"),
    10: (Metric.SYSTOLIC_BP, "mmHg"),
    11: (Metric.HEART_RATE, "/min"),
    12: (Metric.BODY_TEMPERATURE, "degC"),
    54: (Metric.SPO2, "%"),
    71: (Metric.BODY_TEMPERATURE, "degC"),
}
_SLEEP_STATES: Final = {
    0: Metric.SLEEP_AWAKE,
    1: Metric.SLEEP_LIGHT,
    2: Metric.SLEEP_DEEP,
    3: Metric.SLEEP_REM,
}
_SLEEP_SUMMARY: Final = {
    "lightsleepduration": Metric.SLEEP_LIGHT,
    "deepsleepduration": Metric.SLEEP_DEEP,
    "remsleepduration": Metric.SLEEP_REM,
    "wakeupduration": Metric.SLEEP_AWAKE,
}


def _epoch(raw: Any, tz: tzinfo, what: str) -> datetime:
    seconds = to_float(raw, what)
    return datetime.fromtimestamp(seconds, UTC).astimezone(tz)


def read_withings(
    stream: IO[bytes] | IO[str],
    *,
    tz: tzinfo | None = None,
    file: str = "withings.json",
    errors: SkipLog | None = None,
) -> Iterator[Reading]:
    """Yield readings from one Withings API response; the layout is recognised from ``body``.

    ``tz`` places readings from responses without a zone (intraday activity, sleep series); it defaults
    to the response's own ``timezone`` and then to UTC.
    """
    doc = load_json(stream, file)
    if not isinstance(doc, dict) or not isinstance(doc.get("body"), dict):
        raise UnsupportedInputError("expected a Withings response object with a 'body'", file=file)
    if doc.get("status", 0) != 0:
        raise MalformedInputError(f"Withings response status {doc.get('status')!r} is an error", file=file)
    body = doc["body"]
    named = body.get("timezone")
    local: tzinfo = zone(named) if isinstance(named, str) else (tz or UTC)
    if tz is not None and not isinstance(named, str):
        local = tz
    if "measuregrps" in body:
        yield from guarded(
            _list(body, "measuregrps", file),
            lambda g: _measure_group(g, local, named, file, errors),
            errors=errors,
            file=file,
            locate=lambda i, g: f"measuregrps[{i}] grpid {_get(g, 'grpid')}",
        )
    elif "activities" in body:
        yield from guarded(
            _list(body, "activities", file),
            lambda a: _activity_day(a, file),
            errors=errors,
            file=file,
            locate=lambda i, a: f"activities[{i}] {_get(a, 'date')}",
        )
    elif isinstance(body.get("series"), dict):
        yield from guarded(
            sorted(body["series"].items()),
            lambda kv: _intraday(kv, local, file),
            errors=errors,
            file=file,
            locate=lambda _i, kv: f"series[{kv[0]}]",
        )
    elif isinstance(body.get("series"), list):
        items = body["series"]
        if items and isinstance(items[0], dict) and "data" in items[0]:
            yield from guarded(
                items,
                lambda s: _sleep_summary(s, local, file),
                errors=errors,
                file=file,
                locate=lambda i, s: f"series[{i}] id {_get(s, 'id')}",
            )
        else:
            yield from guarded(
                items,
                lambda s: _sleep_segment(s, local, file),
                errors=errors,
                file=file,
                locate=lambda i, _s: f"series[{i}]",
            )
    else:
        raise UnsupportedInputError(f"unrecognised Withings body with keys {sorted(body)[:6]}", file=file)


def _get(obj: Any, key: str) -> Any:
    return obj.get(key) if isinstance(obj, dict) else None


def _list(body: dict[str, Any], key: str, file: str) -> list[Any]:
    value = body.get(key)
    if not isinstance(value, list):
        raise MalformedInputError(f"{key!r} is not a list", file=file)
    return value


def _measure_group(
    group: Any, tz: tzinfo, tz_name: Any, file: str, errors: SkipLog | None
) -> Iterable[Reading]:
    if require(group, "category") == 2:
        if errors is not None:
            errors.ignore("Withings goal (category 2)")
        return []
    at = _epoch(require(group, "date"), tz, "date")
    record_id = str(group.get("grpid")) if group.get("grpid") is not None else None
    manual = group.get("attrib") in (2, 4)
    where = f"{file}:grpid {record_id}"
    common: dict[str, Any] = {
        "record_id": record_id,
        "location": where,
        "entered_by_user": manual,
        "time_zone": tz_name if isinstance(tz_name, str) else None,
    }
    measures = require(group, "measures")
    if not isinstance(measures, list):
        raise MalformedInputError("'measures' is not a list")
    values: dict[Metric, tuple[float, str]] = {}
    for measure in measures:
        kind = require(measure, "type")
        if kind not in MEASURE_TYPES:
            if errors is not None:
                errors.ignore(f"Withings measure type {kind}")
            continue
        metric, unit = MEASURE_TYPES[kind]
        value = to_float(require(measure, "value"), "value") * 10 ** int(
            to_float(require(measure, "unit"), "unit")
        )
        values[metric] = convert(metric, round(value, 6), unit)
    out: list[Reading] = []
    sys, dia = values.pop(Metric.SYSTOLIC_BP, None), values.pop(Metric.DIASTOLIC_BP, None)
    if sys and dia:
        out.append(
            Reading(
                Metric.BLOOD_PRESSURE,
                None,
                "mm[Hg]",
                at,
                _SOURCE,
                components=(Component(Metric.SYSTOLIC_BP, *sys), Component(Metric.DIASTOLIC_BP, *dia)),
                **common,
            )
        )
    elif sys or dia:
        raise MalformedInputError("blood pressure group lacks systolic or diastolic")
    for metric, (value, unit) in values.items():
        out.append(Reading(metric, value, unit, at, _SOURCE, **common))
    return out


def _activity_day(item: Any, file: str) -> Iterable[Reading]:
    day_tz = zone(require(item, "timezone"))
    try:
        day = date.fromisoformat(str(require(item, "date")))
    except ValueError as exc:
        raise MalformedInputError(f"date {item.get('date')!r} is not YYYY-MM-DD") from exc
    start, end = day_bounds(day, day_tz)
    common: dict[str, Any] = {
        "end": end,
        "local_date": day,
        "time_zone": item["timezone"],
        "location": f"{file}:activity {day}",
    }
    out = []
    if item.get("steps") is not None:
        out.append(
            Reading(Metric.STEPS, to_float(item["steps"], "steps"), "{steps}", start, _SOURCE, **common)
        )
    if item.get("distance") is not None:
        out.append(
            Reading(Metric.DISTANCE, to_float(item["distance"], "distance"), "m", start, _SOURCE, **common)
        )
    if item.get("calories") is not None:
        out.append(
            Reading(
                Metric.ACTIVE_ENERGY, to_float(item["calories"], "calories"), "kcal", start, _SOURCE, **common
            )
        )
    if item.get("moderate") is not None or item.get("intense") is not None:
        seconds = to_float(item.get("moderate") or 0, "moderate") + to_float(
            item.get("intense") or 0, "intense"
        )
        out.append(Reading(Metric.ACTIVE_MINUTES, round(seconds / 60, 4), "min", start, _SOURCE, **common))
    return out


def _intraday(entry: tuple[str, Any], tz: tzinfo, file: str) -> Iterable[Reading]:
    key, values = entry
    start = _epoch(key, tz, "series key")
    if not isinstance(values, dict):
        raise MalformedInputError("series entry is not an object")
    if values.get("steps") is None:
        return []  # duration-only entries mark time without activity
    end = start + timedelta(seconds=to_float(require(values, "duration"), "duration"))
    return [
        Reading(
            Metric.STEPS,
            to_float(values["steps"], "steps"),
            "{steps}",
            start,
            _SOURCE,
            end=end,
            location=f"{file}:series {key}",
        )
    ]


def _sleep_summary(item: Any, fallback: tzinfo, file: str) -> Iterable[Reading]:
    tz_name = item.get("timezone")
    tz = zone(tz_name) if isinstance(tz_name, str) else fallback
    start = _epoch(require(item, "startdate"), tz, "startdate")
    end = _epoch(require(item, "enddate"), tz, "enddate")
    data = require(item, "data")
    record_id = str(item["id"]) if item.get("id") is not None else None
    common: dict[str, Any] = {
        "end": end,
        "time_zone": tz_name,
        "record_id": record_id,
        "location": f"{file}:sleep {record_id}",
    }
    out = []
    asleep = 0.0
    for key, metric in _SLEEP_SUMMARY.items():
        if data.get(key) is None:
            continue
        minutes = round(to_float(data[key], key) / 60, 4)
        if metric is not Metric.SLEEP_AWAKE:
            asleep += minutes
        out.append(Reading(metric, minutes, "min", start, _SOURCE, **common))
    out.insert(0, Reading(Metric.SLEEP_DURATION, round(asleep, 4), "min", start, _SOURCE, **common))
    return out


def _sleep_segment(item: Any, tz: tzinfo, file: str) -> Iterable[Reading]:
    state = require(item, "state")
    if state not in _SLEEP_STATES:
        raise MalformedInputError(f"unknown sleep state {state!r}")
    start = _epoch(require(item, "startdate"), tz, "startdate")
    end = _epoch(require(item, "enddate"), tz, "enddate")
    minutes = round((end - start).total_seconds() / 60, 4)
    return [
        Reading(
            _SLEEP_STATES[state],
            minutes,
            "min",
            start,
            _SOURCE,
            end=end,
            location=f"{file}:sleep state {state} at {int(start.timestamp())}",
        )
    ]
