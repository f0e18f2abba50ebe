"""Garmin ``.fit`` (activity, monitoring and weight-scale files) -> :class:`Reading`, via ``fitparse``.

FIT rules applied (Garmin FIT protocol and profile, https://developer.garmin.com/fit/protocol/; fitparse,
https://github.com/dtcooper/python-fitparse; tests/fixtures/README.md):

* Timestamps are UTC (seconds since 1989-12-31). The local offset is ``local_timestamp - timestamp`` of the
  ``activity`` message (activity files) or of ``monitoring_info`` (monitoring files); readings are expressed
  in that offset so their local day is right.
* Monitoring messages may carry only ``timestamp_16``, the low 16 bits of the time, which rolls over every
  18.2 hours: the full time is rebuilt from the last full timestamp.
* Monitoring step counts are **cumulative per activity type** within the day; a reading is the increase
  since the previous message of that type (a decrease means the counter was reset). fitparse resolves the
  ``cycles`` field to its ``steps`` sub-field for walking and running; other activity types count strokes
  or cycles, not steps, and are not steps.
* Activity sessions: ``total_strides`` counts one foot, so steps = 2 x strides; when the session lacks it (the
  Fenix 2 sample), steps are derived from record cadence (strides/min + ``fractional_cadence``) x 2 over each
  record's duration. The mean heart rate falls back to the mean of record heart rates likewise.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import IO, Any, Final

import fitparse

from mappings.errors import MalformedInputError, MappingError, SkipLog, UnsupportedInputError
from mappings.wearables._common import fixed_offset
from mappings.wearables.model import Metric, Reading, Source

__all__ = ["read_garmin_fit"]

VENDOR: Final = "garmin"
_MAX_RECORD_GAP: Final = timedelta(seconds=10)  # a longer gap is a pause: no steps are credited for it
_STEP_TYPES: Final = frozenset({"walking", "running"})


def read_garmin_fit(
    stream: IO[bytes], *, file: str = "activity.fit", errors: SkipLog | None = None
) -> Iterator[Reading]:
    """Yield readings from one FIT file: sessions of an activity file, monitoring steps/heart rate, weights."""
    data = stream.read()
    if not data:
        raise MalformedInputError("the file is empty", file=file)
    try:
        fit = fitparse.FitFile(data, check_crc=True)
        messages = [(m.name, m.get_values()) for m in fit.get_messages()]
    except fitparse.FitParseError as exc:
        raise MalformedInputError(f"not a readable FIT file ({exc})", file=file) from exc
    file_ids = [v for n, v in messages if n == "file_id"]
    if not file_ids:
        raise MalformedInputError("FIT file has no file_id message", file=file)
    file_id = file_ids[0]
    source = _source(file_id)
    kind = file_id.get("type")
    if kind == "activity":
        readings = _activity(messages, source, file)
    elif kind in ("monitoring_a", "monitoring_b", "monitoring_daily"):
        readings = _monitoring(messages, source, file, errors)
    elif kind == "weight":
        readings = _weight(messages, source, file, errors)
    else:
        raise UnsupportedInputError(f"FIT file type {kind!r} is not mapped", file=file)
    for reading in readings:
        yield reading.checked()


def _source(file_id: dict[str, Any]) -> Source:
    manufacturer = str(file_id.get("manufacturer") or "unknown")
    product = file_id.get("garmin_product") or file_id.get("product")
    name = f"{manufacturer} {product}" if product is not None else manufacturer
    serial = file_id.get("serial_number")
    return Source(VENDOR, name, f"{name} #{serial}" if serial is not None else None)


def _utc(value: Any) -> datetime:
    if not isinstance(value, datetime):
        raise MalformedInputError(f"timestamp {value!r} is not a date-time")
    return value.replace(tzinfo=UTC)


def _offset_from(message: dict[str, Any] | None) -> timezone:
    """``local_timestamp - timestamp``; UTC when the file does not say."""
    if not message or message.get("local_timestamp") is None or message.get("timestamp") is None:
        return UTC
    local = message["local_timestamp"]
    if isinstance(local, int):  # fitparse leaves local_date_time raw in some messages
        local = datetime(1989, 12, 31) + timedelta(seconds=local)
    delta = local - message["timestamp"]
    # offsets are whole quarter hours; the two stamps can differ by a second or so
    quarters = round(delta.total_seconds() / 900)
    return fixed_offset(timedelta(minutes=15 * quarters))


def _activity(messages: list[tuple[str, dict[str, Any]]], source: Source, file: str) -> Iterator[Reading]:
    activity = next((v for n, v in messages if n == "activity"), None)
    tz = _offset_from(activity)
    records = [v for n, v in messages if n == "record" and v.get("timestamp") is not None]
    sessions = [v for n, v in messages if n == "session"]
    if not sessions:
        raise MalformedInputError("activity file has no session message", file=file)
    for index, session in enumerate(sessions):
        where = f"{file}:session[{index}]"
        start = _utc(session.get("start_time")).astimezone(tz)
        elapsed = session.get("total_elapsed_time")
        if elapsed is None:
            raise MalformedInputError(
                "session has no total_elapsed_time", file=file, record=f"session[{index}]"
            )
        end = start + timedelta(seconds=float(elapsed))
        sport = str(session.get("sport") or "generic")
        timer = session.get("total_timer_time", elapsed)
        common: dict[str, Any] = {
            "end": end,
            "label": sport,
            "location": where,
            "record_id": f"session[{index}]",
        }
        yield Reading(Metric.EXERCISE, round(float(timer) / 60, 4), "min", start, source, **common)
        in_session = [r for r in records if start <= _utc(r["timestamp"]) <= end]
        strides = session.get("total_strides")
        if strides is not None:
            yield Reading(Metric.STEPS, float(strides) * 2, "{steps}", start, source, **common)
        elif sport in _STEP_TYPES and any(r.get("cadence") is not None for r in in_session):
            yield Reading(
                Metric.STEPS, float(_steps_from_cadence(in_session)), "{steps}", start, source, **common
            )
        if session.get("total_calories") is not None:
            yield Reading(
                Metric.WORKOUT_ENERGY, float(session["total_calories"]), "kcal", start, source, **common
            )
        if session.get("total_distance") is not None:
            yield Reading(Metric.DISTANCE, float(session["total_distance"]), "m", start, source, **common)
        heart = session.get("avg_heart_rate")
        if heart is None:
            rates = [r["heart_rate"] for r in in_session if r.get("heart_rate")]
            heart = round(sum(rates) / len(rates), 1) if rates else None
        if heart is not None:
            yield Reading(Metric.AVG_HEART_RATE, float(heart), "/min", start, source, **common)


def _steps_from_cadence(records: list[dict[str, Any]]) -> int:
    """Steps = sum over records of (cadence + fractional) strides/min x 2 x the record's duration."""
    total = 0.0
    for here, after in zip(records, records[1:], strict=False):
        gap = _utc(after["timestamp"]) - _utc(here["timestamp"])
        if gap <= timedelta(0) or gap > _MAX_RECORD_GAP or here.get("cadence") is None:
            continue
        strides_per_min = float(here["cadence"]) + float(here.get("fractional_cadence") or 0)
        total += strides_per_min * 2 * gap.total_seconds() / 60
    return round(total)


def _monitoring(
    messages: list[tuple[str, dict[str, Any]]], source: Source, file: str, errors: SkipLog | None
) -> Iterator[Reading]:
    info = next((v for n, v in messages if n == "monitoring_info"), None)
    tz = _offset_from(info)
    last_full: datetime | None = _utc(info["timestamp"]) if info and info.get("timestamp") else None
    day_start = last_full
    previous: dict[str, tuple[datetime, float]] = {}  # activity type -> (time, cumulative steps)
    index = -1
    for name, values in messages:
        if name == "monitoring_info" and values.get("timestamp") is not None:
            # a new info block starts a new day of cumulative counters
            last_full = day_start = _utc(values["timestamp"])
            previous.clear()
            tz = _offset_from(values)
            continue
        if name != "monitoring":
            continue
        index += 1
        where = f"{file}:monitoring[{index}]"
        try:
            if values.get("timestamp") is not None:
                at = _utc(values["timestamp"])
                last_full = at
            elif values.get("timestamp_16") is not None:
                if last_full is None:
                    raise MalformedInputError("timestamp_16 before any full timestamp")
                low = int(values["timestamp_16"])
                fit_seconds = int((last_full - _FIT_EPOCH).total_seconds())
                at = last_full + timedelta(seconds=(low - (fit_seconds & 0xFFFF)) & 0xFFFF)
                last_full = (
                    at  # the next timestamp_16 is relative to this one (FIT profile: time is monotonic)
                )
            else:
                raise MalformedInputError("monitoring message has no timestamp")
            local = at.astimezone(tz)
            if values.get("heart_rate"):
                yield Reading(
                    Metric.HEART_RATE, float(values["heart_rate"]), "/min", local, source, location=where
                )
            activity_type = str(values.get("activity_type") or "")
            steps = values.get("steps")
            if steps is None and values.get("cycles") is not None and activity_type in _STEP_TYPES:
                steps = float(values["cycles"]) * 2
            if steps is None:
                continue
            steps = float(steps)
            before = previous.get(activity_type)
            previous[activity_type] = (at, steps)
            if before is None:
                # the first counter of a day counts from the day's start (monitoring_info timestamp)
                begin = (day_start or at).astimezone(tz)
                delta = steps
            else:
                begin = before[0].astimezone(tz)
                delta = steps - before[1] if steps >= before[1] else steps
            if delta > 0:
                yield Reading(
                    Metric.STEPS,
                    delta,
                    "{steps}",
                    begin,
                    source,
                    end=local,
                    label=activity_type,
                    location=where,
                )
        except MappingError as exc:
            located = type(exc)(exc.reason, file=file, record=f"monitoring[{index}]")
            if errors is None:
                raise located from exc
            errors.add(located)


_FIT_EPOCH: Final = datetime(1989, 12, 31, tzinfo=UTC)


def _weight(
    messages: list[tuple[str, dict[str, Any]]], source: Source, file: str, errors: SkipLog | None
) -> Iterator[Reading]:
    index = -1
    for name, values in messages:
        if name != "weight_scale":
            continue
        index += 1
        where = f"{file}:weight_scale[{index}]"
        try:
            at = _utc(values.get("timestamp"))
            user = values.get("user_profile_index")
            label = f"user {user}" if user is not None else None
            if values.get("weight") is None or not isinstance(values["weight"], int | float):
                raise MalformedInputError("weight_scale message has no weight")
            yield Reading(
                Metric.WEIGHT, float(values["weight"]), "kg", at, source, label=label, location=where
            )
            if isinstance(values.get("percent_fat"), int | float):
                yield Reading(
                    Metric.BODY_FAT,
                    float(values["percent_fat"]),
                    "%",
                    at,
                    source,
                    label=label,
                    location=where,
                )
        except MappingError as exc:
            located = type(exc)(exc.reason, file=file, record=f"weight_scale[{index}]")
            if errors is None:
                raise located from exc
            errors.add(located)
