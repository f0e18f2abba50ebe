"""Google Fit REST dataset JSON -> :class:`Reading`.

Rules (Google Fit REST API, https://developers.google.com/fit/rest/v1/reference; openmhealth/shimmer,
https://github.com/openmhealth/shimmer; tests/fixtures/README.md): times are epoch **nanosecond strings**
(``startTimeNanos``), UTC; values are ``intVal`` (steps, activity segments) or ``fpVal`` (heart rate, weight,
calories); points are instants (start == end) or intervals. Read one merged stream (``derived:...:merge_*``):
summing raw and derived streams double-counts. The source of every point is the *stream* (its
``dataSourceId``); the originating app (``originDataSourceId``) is kept as ``Source.app`` and in the record
id. ``user_input`` origins are flagged as entered by the user. Calories from ``from_bmr`` are basal energy,
not active energy, and are ignored. Activity segments: 72 sleeping, 109 light, 110 deep, 111 REM,
112 awake; 0 (in vehicle), 3 (still), 4 (unknown) and 5 (tilting) are not exercise.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta, tzinfo
from typing import IO, Any, Final

from mappings.errors import MalformedInputError, SkipLog, UnsupportedInputError
from mappings.wearables._common import convert, guarded, load_json, require, to_float
from mappings.wearables.model import Metric, Reading, Source

__all__ = ["ACTIVITY_SEGMENTS", "read_google_fit"]

VENDOR: Final = "google-fit"

_DATA_TYPES: Final = {
    "com.google.step_count.delta": (Metric.STEPS, "count"),
    "com.google.heart_rate.bpm": (Metric.HEART_RATE, "/min"),
    "com.google.weight": (Metric.WEIGHT, "kg"),
    "com.google.calories.expended": (Metric.ACTIVE_ENERGY, "kcal"),
    "com.google.height": (Metric.HEIGHT, "m"),
}
#: Google Fit activity types used here (a subset of Google's activity-type table).
ACTIVITY_SEGMENTS: Final[dict[int, str]] = {1: "biking", 7: "walking", 8: "running", 9: "aerobics"}
_SLEEP_SEGMENTS: Final = {
    72: Metric.SLEEP_ASLEEP,
    109: Metric.SLEEP_LIGHT,
    110: Metric.SLEEP_DEEP,
    111: Metric.SLEEP_REM,
    112: Metric.SLEEP_AWAKE,
}
_NOT_EXERCISE: Final = frozenset({0, 3, 4, 5})


def _nanos(raw: Any, tz: tzinfo, what: str) -> datetime:
    try:
        nanos = int(str(raw))
    except ValueError as exc:
        raise MalformedInputError(f"{what} {raw!r} is not an integer of nanoseconds") from exc
    seconds, rest = divmod(nanos, 1_000_000_000)
    at = datetime.fromtimestamp(seconds, UTC) + timedelta(microseconds=rest // 1000)
    return at.astimezone(tz)


def _stream_source(data_source_id: str) -> Source:
    # derived:com.google.step_count.delta:com.google.android.gms:merge_step_deltas
    parts = data_source_id.split(":")
    stream = parts[-1] if parts[-1] else data_source_id
    return Source(VENDOR, stream, None, parts[2] if len(parts) > 2 else None)


def read_google_fit(
    stream: IO[bytes] | IO[str],
    *,
    tz: tzinfo = UTC,
    file: str = "googlefit.json",
    errors: SkipLog | None = None,
) -> Iterator[Reading]:
    """Yield readings from one Google Fit REST dataset response (``{dataSourceId, point: [...]}``).

    Instants are exact in any zone; ``tz`` only chooses the offset they are written with.
    """
    doc = load_json(stream, file)
    if not isinstance(doc, dict) or not isinstance(doc.get("point"), list):
        raise UnsupportedInputError("expected a Google Fit dataset with a 'point' list", file=file)
    source = _stream_source(str(doc.get("dataSourceId") or "unknown"))
    yield from guarded(
        doc["point"],
        lambda p: _point(p, source, tz, file, errors),
        errors=errors,
        file=file,
        locate=lambda i, _p: f"point[{i}]",
    )


def _point(point: Any, source: Source, tz: tzinfo, file: str, errors: SkipLog | None) -> Iterable[Reading]:
    kind = require(point, "dataTypeName")
    start = _nanos(require(point, "startTimeNanos"), tz, "startTimeNanos")
    end = _nanos(require(point, "endTimeNanos"), tz, "endTimeNanos")
    origin = str(point.get("originDataSourceId") or "")
    values = require(point, "value")
    if not isinstance(values, list) or not values or not isinstance(values[0], dict):
        raise MalformedInputError("'value' is not a non-empty list of objects")
    first = values[0]
    raw = first.get("intVal", first.get("fpVal"))
    number = to_float(raw, "intVal/fpVal")
    origin_app = origin.split(":")[2] if origin.count(":") >= 2 else None
    point_source = Source(source.vendor, source.name, source.device, origin_app or source.app)
    common: dict[str, Any] = {
        "end": None if end == start else end,
        "record_id": f"{origin}@{point['startTimeNanos']}",
        "location": f"{file}:{point['startTimeNanos']}",
        "entered_by_user": origin.endswith(":user_input"),
    }
    if kind == "com.google.activity.segment":
        code = int(number)
        if code in _SLEEP_SEGMENTS:
            minutes = round((end - start).total_seconds() / 60, 4)
            return [Reading(_SLEEP_SEGMENTS[code], minutes, "min", start, point_source, **common)]
        if code in _NOT_EXERCISE:
            if errors is not None:
                errors.ignore(f"Google Fit activity type {code}")
            return []
        minutes = round((end - start).total_seconds() / 60, 4)
        return [
            Reading(
                Metric.EXERCISE,
                minutes,
                "min",
                start,
                point_source,
                label=ACTIVITY_SEGMENTS.get(code, f"activity type {code}"),
                **common,
            )
        ]
    if kind not in _DATA_TYPES:
        raise UnsupportedInputError(f"Google Fit data type {kind!r} is not mapped")
    metric, unit = _DATA_TYPES[kind]
    if metric is Metric.ACTIVE_ENERGY and "from_bmr" in origin:
        if errors is not None:
            errors.ignore("Google Fit basal calories (from_bmr)")
        return []
    value, canonical = convert(metric, number, unit)
    return [Reading(metric, value, canonical, start, point_source, **common)]
