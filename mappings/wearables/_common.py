"""Helpers shared by the readers: unit conversion, time parsing, and skip-or-raise handling."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, date, datetime, time, timedelta, timezone, tzinfo
from typing import IO, Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from mappings.errors import MalformedInputError, MappingError, SkipLog, UnsupportedInputError
from mappings.wearables.model import CANONICAL_UNITS, Metric, Reading

__all__ = [
    "convert",
    "day_bounds",
    "fixed_offset",
    "guarded",
    "load_json",
    "parse_offset",
    "require",
    "to_float",
    "unit_factor",
    "zone",
]

T = TypeVar("T")

# factor to the canonical unit, by spelling (sources disagree: Apple `count/min`, OmH `beats/min`, ...)
_MASS = {
    "kg": 1.0,
    "g": 0.001,
    "mg": 1e-6,
    "lb": 0.45359237,
    "lbs": 0.45359237,
    "[lb_av]": 0.45359237,
    "st": 6.35029318,
    "stone": 6.35029318,
    "oz": 0.028349523125,
    "[oz_av]": 0.028349523125,
}
_LENGTH_M = {
    "m": 1.0,
    "km": 1000.0,
    "cm": 0.01,
    "mm": 0.001,
    "mi": 1609.344,
    "[mi_i]": 1609.344,
    "ft": 0.3048,
    "[ft_i]": 0.3048,
    "in": 0.0254,
    "[in_i]": 0.0254,
    "yd": 0.9144,
    "[yd_i]": 0.9144,
}
_ENERGY = {"kcal": 1.0, "Cal": 1.0, "[Cal]": 1.0, "kJ": 1 / 4.184, "cal": 0.001}
_MINUTES = {"min": 1.0, "s": 1 / 60, "sec": 1 / 60, "ms": 1 / 60000, "h": 60.0, "hr": 60.0, "d": 1440.0}
_RATE = {"/min": 1.0, "count/min": 1.0, "beats/min": 1.0, "bpm": 1.0, "{beats}/min": 1.0, "1/min": 1.0}
_COUNT = {"count": 1.0, "steps": 1.0, "{steps}": 1.0, "": 1.0, "{count}": 1.0}
_PRESSURE = {"mm[Hg]": 1.0, "mmHg": 1.0, "kPa": 7.500616827}
_BMI = {"kg/m2": 1.0, "kg/m^2": 1.0, "count": 1.0, "": 1.0}

_FACTORS: dict[Metric, dict[str, float]] = {
    Metric.STEPS: _COUNT,
    Metric.DISTANCE: _LENGTH_M,
    Metric.HEART_RATE: _RATE,
    Metric.RESTING_HEART_RATE: _RATE,
    Metric.AVG_HEART_RATE: _RATE,
    Metric.ACTIVE_ENERGY: _ENERGY,
    Metric.WORKOUT_ENERGY: _ENERGY,
    Metric.WEIGHT: _MASS,
    Metric.HEIGHT: {k: v * 100 for k, v in _LENGTH_M.items()},
    Metric.BMI: _BMI,
    Metric.SYSTOLIC_BP: _PRESSURE,
    Metric.DIASTOLIC_BP: _PRESSURE,
}
for _m in (
    Metric.ACTIVE_MINUTES,
    Metric.EXERCISE,
    Metric.SLEEP_DURATION,
    Metric.SLEEP_ASLEEP,
    Metric.SLEEP_LIGHT,
    Metric.SLEEP_DEEP,
    Metric.SLEEP_REM,
    Metric.SLEEP_AWAKE,
    Metric.SLEEP_IN_BED,
):
    _FACTORS[_m] = _MINUTES

_GLUCOSE_MMOL = re.compile(r"^mmol(<[\d.]+>)?/L$")


def convert(metric: Metric, value: float, unit: str | None) -> tuple[float, str]:
    """Convert ``value`` in ``unit`` (as the source spells it) to the metric's canonical UCUM unit.

    Percentages given as a fraction (Apple writes SpO2 0.97 with unit ``%``) are scaled to 0-100.
    """
    u = (unit or "").strip()
    if metric is Metric.BLOOD_GLUCOSE:
        if u in ("mg/dL", "mg/dl"):
            return value, "mg/dL"
        if _GLUCOSE_MMOL.match(u) or u == "mmol/l":
            # Apple spells it with the molar mass of glucose: mmol<180.1558800000541>/L
            return value, "mmol/L"
        raise UnsupportedInputError(f"unknown blood glucose unit {unit!r}")
    if metric in (Metric.SPO2, Metric.BODY_FAT):
        if u not in ("%", "percent", ""):
            raise UnsupportedInputError(f"unknown {metric.value} unit {unit!r}")
        return (value * 100 if 0 < value <= 1 else value), "%"
    if metric is Metric.BODY_TEMPERATURE:
        if u in ("degC", "Cel", "C", "°C"):
            return value, "Cel"
        if u in ("degF", "[degF]", "F", "°F"):
            return (value - 32) * 5 / 9, "Cel"
        raise UnsupportedInputError(f"unknown temperature unit {unit!r}")
    factors = _FACTORS.get(metric)
    if factors is None or u not in factors:
        raise UnsupportedInputError(f"unknown {metric.value} unit {unit!r}")
    factor = factors[u]
    return (value if factor == 1.0 else round(value * factor, 6)), CANONICAL_UNITS[metric]


def unit_factor(metric: Metric, unit: str | None) -> float | None:
    """The factor :func:`convert` multiplies a ``metric`` value in ``unit`` by (then rounding to 6 decimals when
    it is not 1), for the metrics converted by a plain factor; None for an unknown unit or a metric converted
    otherwise (blood glucose, percentages, temperature)."""
    factors = _FACTORS.get(metric)
    return None if factors is None else factors.get((unit or "").strip())


def to_float(raw: Any, what: str) -> float:
    """Parse a number that sources send as a number or a string (Fitbit sends ``"175"``)."""
    if isinstance(raw, bool):
        raise MalformedInputError(f"{what} is a boolean, not a number")
    if isinstance(raw, int | float):
        return float(raw)
    if isinstance(raw, str):
        try:
            return float(raw.strip())
        except ValueError as exc:
            raise MalformedInputError(f"{what} {raw!r} is not a number") from exc
    raise MalformedInputError(f"{what} is missing or not a number ({raw!r})")


def require(obj: Any, key: str, what: str | None = None) -> Any:
    """``obj[key]``, or a clear error when ``obj`` is not an object or the key is absent/null."""
    if not isinstance(obj, dict):
        raise MalformedInputError(f"expected an object holding {key!r}, got {type(obj).__name__}")
    value = obj.get(key)
    if value is None:
        raise MalformedInputError(f"missing {what or key!r}")
    return value


def zone(name: str) -> ZoneInfo:
    """An IANA time zone, with a mapping error for unknown names."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise MalformedInputError(f"unknown time zone {name!r}") from exc


_OFFSET = re.compile(r"^([+-])(\d{2}):?(\d{2})$")


def parse_offset(raw: Any) -> timezone:
    """A fixed UTC offset from ``"+0100"``, ``"-08:00"`` or an integer (hours, or HHMM when > 14)."""
    if isinstance(raw, int) and not isinstance(raw, bool):
        hours, minutes = (raw // 100, raw % 100) if abs(raw) > 14 else (raw, 0)
        if raw < 0 and abs(raw) > 14:
            hours, minutes = -(abs(raw) // 100), -(abs(raw) % 100)
        return fixed_offset(timedelta(hours=hours, minutes=minutes))
    if isinstance(raw, str):
        m = _OFFSET.match(raw.strip())
        if m:
            sign = -1 if m.group(1) == "-" else 1
            return fixed_offset(sign * timedelta(hours=int(m.group(2)), minutes=int(m.group(3))))
    raise MalformedInputError(f"time zone offset {raw!r} is not like +0100")


def fixed_offset(delta: timedelta) -> timezone:
    """A fixed-offset tzinfo (UTC itself for zero)."""
    if abs(delta) >= timedelta(hours=24):
        raise MalformedInputError(f"UTC offset {delta} is out of range")
    return UTC if not delta else timezone(delta)


def day_bounds(day: date, tz: tzinfo) -> tuple[datetime, datetime]:
    """Local midnight to the next local midnight; 23 or 25 hours long on DST change days."""
    return datetime.combine(day, time(0), tzinfo=tz), datetime.combine(
        day + timedelta(days=1), time(0), tzinfo=tz
    )


def load_json(stream: IO[bytes] | IO[str], file: str) -> Any:
    """Parse a whole JSON document, translating decode errors and empty input."""
    raw = stream.read()
    if not raw or not raw.strip():
        raise MalformedInputError("the file is empty", file=file)
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        line = getattr(exc, "lineno", None)
        raise MalformedInputError(f"not valid JSON ({exc})", file=file, line=line) from exc


def guarded(
    items: Iterable[T],
    build: Callable[[T], Iterable[Reading]],
    *,
    errors: SkipLog | None,
    file: str,
    locate: Callable[[int, T], str],
) -> Iterator[Reading]:
    """Map each item with ``build``; on a :class:`MappingError` raise it, located, or log and skip it."""
    for index, item in enumerate(items):
        try:
            readings = list(build(item))
        except MappingError as exc:
            located = type(exc)(
                exc.reason, file=exc.file or file, line=exc.line, record=exc.record or locate(index, item)
            )
            if errors is None:
                raise located from exc
            errors.add(located)
            continue
        for reading in readings:
            yield reading.checked()
