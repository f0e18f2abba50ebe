"""The coaching resources' shared vocabulary: canonical URLs and code systems, ids of references, local
dates in a patient's time zone, unit conversion and the day's measurement of a series."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fhir_ecr.canonical import (  # the IG's canonical URLs, defined once; re-exported for the coaching modules
    CANONICAL as CANONICAL,
)
from fhir_ecr.canonical import (
    CHECKIN_ID_SYSTEM as CHECKIN_ID_SYSTEM,
)
from fhir_ecr.canonical import (
    CHECKIN_PROFILE as CHECKIN_PROFILE,
)
from fhir_ecr.canonical import (
    CHECKIN_RESULT_SYSTEM as CHECKIN_RESULT_SYSTEM,
)
from fhir_ecr.canonical import (
    COACH_PROFILE as COACH_PROFILE,
)
from fhir_ecr.canonical import (
    GOAL_CATEGORY_SYSTEM as GOAL_CATEGORY_SYSTEM,
)
from fhir_ecr.canonical import (
    GOAL_PROFILE as GOAL_PROFILE,
)
from fhir_ecr.canonical import (
    HABIT_ID_URL as HABIT_ID_URL,
)
from fhir_ecr.canonical import (
    HABIT_PAUSE_URL as HABIT_PAUSE_URL,
)
from fhir_ecr.canonical import (
    MECR_CODES as MECR_CODES,
)
from fhir_ecr.canonical import (
    MODALITY_SYSTEM as MODALITY_SYSTEM,
)
from fhir_ecr.canonical import (
    MODALITY_URL as MODALITY_URL,
)
from fhir_ecr.canonical import (
    PAUSE_REASON_SYSTEM as PAUSE_REASON_SYSTEM,
)
from fhir_ecr.canonical import (
    PLAN_PROFILE as PLAN_PROFILE,
)
from fhir_ecr.canonical import (
    SESSION_PROFILE as SESSION_PROFILE,
)
from fhir_ecr.coaching.errors import ScheduleError
from fhir_ecr.coaching.progress import Measurement

GOAL_ACHIEVEMENT_SYSTEM = "http://terminology.hl7.org/CodeSystem/goal-achievement"
TIMEZONE_URL = "http://hl7.org/fhir/StructureDefinition/timezone"
PDSA_PREFIX = "PDSA:"

_RESULT_DISPLAY = {"done": "Done", "partly": "Partly done", "not-done": "Not done"}
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_HABIT_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.\-]{0,63}$")
# UCUM units the coaching series convert between, as factors to a base unit of their family.
_UNIT_FAMILIES: dict[str, tuple[str, float]] = {
    "s": ("time", 1.0),
    "min": ("time", 60.0),
    "h": ("time", 3600.0),
    "g": ("mass", 1.0),
    "kg": ("mass", 1000.0),
    "[lb_av]": ("mass", 453.59237),
    # A daily count: the IG's steps unit is /d, wearables and people also write these.
    "/d": ("per-day", 1.0),
    "{steps}": ("per-day", 1.0),
    "{steps}/d": ("per-day", 1.0),
    "1/d": ("per-day", 1.0),
}


# --- small helpers ----------------------------------------------------------------------------------------


def ref_id(reference: Mapping[str, Any] | str | None, rtype: str) -> str | None:
    """The id of a ``rtype/id`` (or absolute ``…/rtype/id``) reference; None when it points elsewhere."""
    raw = reference.get("reference") if isinstance(reference, Mapping) else reference
    if not isinstance(raw, str):
        return None
    parts = raw.split("/")
    if "_history" in parts:
        parts = parts[: parts.index("_history")]
    if len(parts) >= 2 and parts[-2] == rtype and parts[-1]:
        return parts[-1]
    return None


def parse_local_date(value: Any, what: str) -> date:
    """A ``YYYY-MM-DD`` string (or date) as a date; ScheduleError otherwise."""
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not _DATE_RE.match(value):
        raise ScheduleError(f"{what} must be a date (YYYY-MM-DD), got {value!r}")
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise ScheduleError(f"{what} is not a calendar date: {value!r}") from exc


def _instant(value: str) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def effective_local_date(resource: Mapping[str, Any], tz: str) -> date | None:
    """The patient-local date an Observation is for.

    A date-only ``effectiveDateTime`` already *is* the local date (the check-in profile's rule); an instant
    (``effectiveDateTime``, ``effectiveInstant``, or ``effectivePeriod.start`` of a daily summary) is
    converted to the date it falls on in ``tz``.
    """
    raw = resource.get("effectiveDateTime") or resource.get("effectiveInstant")
    if raw is None and isinstance(resource.get("effectivePeriod"), Mapping):
        raw = resource["effectivePeriod"].get("start")
    if not isinstance(raw, str):
        return None
    if _DATE_RE.match(raw):
        return date.fromisoformat(raw)
    instant = _instant(raw)
    if instant is None:
        return None
    return instant.astimezone(ZoneInfo(tz)).date()


def patient_time_zone(patient: Mapping[str, Any] | None, default: str) -> str:
    """The patient's IANA time zone from the ``timezone`` extension, else ``default``.

    An unknown zone name in the extension falls back to ``default`` rather than failing every request for
    that patient; writes through the service refuse unknown names.
    """
    for ext in (patient or {}).get("extension", []) or []:
        if ext.get("url") == TIMEZONE_URL and isinstance(ext.get("valueCode"), str):
            try:
                ZoneInfo(ext["valueCode"])
            except (ZoneInfoNotFoundError, ValueError):
                return default
            return str(ext["valueCode"])
    return default


def _num(value: float) -> int | float:
    return int(value) if float(value).is_integer() else value


def _convert(value: float, from_code: str | None, to_code: str | None) -> float | None:
    """``value`` in ``from_code`` expressed in ``to_code``; None when the units are not comparable."""
    if not from_code or not to_code or from_code == to_code:
        return value
    a, b = _UNIT_FAMILIES.get(from_code), _UNIT_FAMILIES.get(to_code)
    if a is None or b is None or a[0] != b[0]:
        return None
    return value * a[1] / b[1]


def measurement_value(observation: Mapping[str, Any], unit: str | None) -> float | None:
    """``valueQuantity.value`` in ``unit`` (UCUM code), or None when absent, not finite or not convertible."""
    qty = observation.get("valueQuantity")
    if not isinstance(qty, Mapping) or not isinstance(qty.get("value"), (int, float, Decimal)):
        return None
    value = float(qty["value"])
    if not math.isfinite(value):
        return None
    return _convert(value, qty.get("code"), unit)


def _moment(obs: Mapping[str, Any]) -> float:
    """When a reading was taken, as a POSIX instant: the instant of ``effectiveDateTime``/``effectiveInstant`` (or
    of ``effectivePeriod.end``, else ``.start``), whatever offset it is written with; a date without a time sorts
    before every timed reading (it says nothing about the hour)."""
    period: Mapping[str, Any] = (
        obs["effectivePeriod"] if isinstance(obs.get("effectivePeriod"), Mapping) else {}
    )
    raw = (
        obs.get("effectiveDateTime")
        or obs.get("effectiveInstant")
        or period.get("end")
        or period.get("start")
    )
    instant = _instant(raw) if isinstance(raw, str) and not _DATE_RE.match(raw) else None
    return instant.timestamp() if instant is not None else float("-inf")


def measurements_by_day(
    observations: Iterable[Mapping[str, Any]], tz: str, unit: str | None
) -> list[Measurement]:
    """One measurement per local day: the day's latest reading by instant (09:00-05:00 is later than
    13:30+00:00), then storage order."""
    per_day: dict[date, tuple[float, float]] = {}
    for obs in observations:
        if obs.get("status") not in ("final", "amended", "corrected"):
            continue
        day = effective_local_date(obs, tz)
        value = measurement_value(obs, unit)
        if day is None or value is None:
            continue
        when = _moment(obs)
        current = per_day.get(day)
        if current is None or when >= current[0]:
            per_day[day] = (when, value)
    return [Measurement(day, v) for day, (_, v) in sorted(per_day.items())]
