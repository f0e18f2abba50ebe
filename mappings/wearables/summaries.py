"""Daily summaries per patient local day, with source de-duplication, and their FHIR Observations.

The rule (documented here because it decides what a coach sees):

1. **Local day.** Days are calendar days in the *patient's* time zone (passed in), so a DST day is 23 or
   25 hours long. Readings that a source already aggregated per day (``Reading.local_date``) count for that
   date. Instants count on the day they fall in. Intervals of additive metrics (steps, active minutes) are
   split across days in proportion to their overlap. A sleep session counts on the day it **ends** (the
   wake day, as Fitbit's ``dateOfSleep`` and Withings' ``date``).
2. **Per source.** Exact duplicates (same metric, period, source and label, e.g. a file imported twice) are
   dropped. For each source and day: if the source gave day aggregates, they are used (summed: Fitbit's
   export has moderately- and very-active minutes as two day rows); otherwise its interval readings are
   summed. Sleep uses a source's session totals (``SLEEP_DURATION``) when it has them, else the sum of its
   asleep-stage segments (asleep/light/deep/REM; never in-bed or awake). Resting heart rate is the mean.
   Implausible readings are left out.
3. **Across sources: never add.** Phone and watch both count steps; adding them double-counts. Per metric,
   the source that ranks first in :class:`DedupRule` and has data that day is chosen. Sources that match no
   rank come after all ranked ones, the largest value first (the device worn most), then by source key so
   the choice is deterministic.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Any, Final

from mappings import systems as s
from mappings.wearables._common import day_bounds
from mappings.wearables.fhir import device_id, iso, source_to_device
from mappings.wearables.model import Metric, Reading, Source

__all__ = [
    "DEFAULT_RULE",
    "DailySummary",
    "DedupRule",
    "SUMMARY_METRICS",
    "daily_summaries",
    "summaries_to_resources",
    "summary_to_observation",
    "weekly_active_minutes",
]

#: The four daily figures, keyed by the metric the summary reports.
SUMMARY_METRICS: Final = (
    Metric.STEPS,
    Metric.ACTIVE_MINUTES,
    Metric.SLEEP_DURATION,
    Metric.RESTING_HEART_RATE,
)
_ASLEEP: Final = frozenset({Metric.SLEEP_ASLEEP, Metric.SLEEP_LIGHT, Metric.SLEEP_DEEP, Metric.SLEEP_REM})


@dataclass(frozen=True, slots=True)
class DedupRule:
    """Source priority per metric: patterns matched against ``vendor``, ``vendor|name`` or ``name``.

    A pattern matches a source when it equals the vendor, or is a case-insensitive substring of
    ``"vendor|name|device"``. Earlier patterns win. ``default`` applies to metrics not listed.
    """

    default: tuple[str, ...] = ("garmin", "fitbit", "withings", "apple-health|apple watch", "apple-health")
    per_metric: Mapping[Metric, tuple[str, ...]] = field(default_factory=dict)

    def rank(self, metric: Metric, source: Source) -> int:
        """Position of the first matching pattern; unmatched sources rank after all patterns."""
        patterns = self.per_metric.get(metric, self.default)
        key = source.key.lower()
        for position, pattern in enumerate(patterns):
            if pattern.lower() == source.vendor or pattern.lower() in key:
                return position
        return len(patterns)


DEFAULT_RULE: Final = DedupRule()


@dataclass(frozen=True, slots=True)
class DailySummary:
    """One figure for one local day: the chosen source's value and what else was seen."""

    day: date
    metric: Metric
    value: float
    unit: str
    start: datetime
    end: datetime
    source: Source
    candidates: tuple[tuple[str, float], ...]  # (source key, value) of every source with data that day


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC)


def _days_of(reading: Reading, tz: tzinfo, additive: bool) -> list[tuple[date, float]]:
    """(day, share of the value) pairs for the reading in the patient's zone."""
    if reading.local_date is not None:
        return [(reading.local_date, 1.0)]
    if reading.is_instant or not additive:
        anchor = reading.end if (reading.end is not None and not additive) else reading.start
        return [(anchor.astimezone(tz).date(), 1.0)]
    assert reading.end is not None
    start, end = _utc(reading.start), _utc(reading.end)
    total = (end - start).total_seconds()
    out = []
    day = start.astimezone(tz).date()
    while True:
        lo, hi = (_utc(b) for b in day_bounds(day, tz))
        overlap = (min(hi, end) - max(lo, start)).total_seconds()
        if overlap > 0:
            out.append((day, overlap / total))
        if hi >= end:
            return out
        day += timedelta(days=1)


def daily_summaries(
    readings: Iterable[Reading],
    *,
    tz: tzinfo,
    rule: DedupRule = DEFAULT_RULE,
) -> list[DailySummary]:
    """Steps, active minutes, sleep and resting heart rate per local day in ``tz``, de-duplicated."""
    seen: set[tuple[Any, ...]] = set()
    # (metric, day, source key) -> {"daily": [...], "interval": [...], "sessions": [...]}
    buckets: dict[tuple[Metric, date, str], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    sources: dict[str, Source] = {}
    for reading in readings:
        if reading.implausible or reading.value is None:
            continue
        key = (
            reading.metric,
            _utc(reading.start),
            reading.end and _utc(reading.end),
            reading.source.key,
            reading.label,
            reading.local_date,
        )
        if key in seen:
            continue
        seen.add(key)
        target: Metric
        additive: bool
        if reading.metric in (Metric.STEPS, Metric.ACTIVE_MINUTES):
            target, additive = reading.metric, True
        elif reading.metric is Metric.SLEEP_DURATION or reading.metric in _ASLEEP:
            target, additive = Metric.SLEEP_DURATION, False
        elif reading.metric is Metric.RESTING_HEART_RATE:
            target, additive = reading.metric, False
        else:
            continue
        sources[reading.source.key] = reading.source
        if reading.local_date is not None:
            kind = "daily"
        elif reading.metric is Metric.SLEEP_DURATION:
            kind = "sessions"
        else:
            kind = "interval"
        for day, share in _days_of(reading, tz, additive):
            buckets[(target, day, reading.source.key)][kind].append(reading.value * share)

    per_day: dict[tuple[Metric, date], list[tuple[str, float]]] = defaultdict(list)
    for (metric, day, source_key), kinds in buckets.items():
        values = kinds.get("daily") or kinds.get("sessions") or kinds.get("interval") or []
        if not values:
            continue
        value = sum(values) / len(values) if metric is Metric.RESTING_HEART_RATE else sum(values)
        per_day[(metric, day)].append((source_key, value))

    out = []
    for (metric, day), candidates in sorted(
        per_day.items(), key=lambda kv: (kv[0][1], SUMMARY_METRICS.index(kv[0][0]))
    ):
        ordered = sorted(candidates, key=lambda kv: (rule.rank(metric, sources[kv[0]]), -kv[1], kv[0]))
        chosen_key, value = ordered[0]
        start, end = day_bounds(day, tz)
        unit = {"steps": "{steps}", "resting-heart-rate": "/min"}.get(metric.value, "min")
        rounded = round(value) if metric is Metric.STEPS else round(value, 1)
        out.append(
            DailySummary(
                day,
                metric,
                rounded,
                unit,
                start,
                end,
                sources[chosen_key],
                tuple(sorted((k, round(v, 3)) for k, v in candidates)),
            )
        )
    return out


_SUMMARY_CODES: Final = {
    Metric.STEPS: (s.DAILY_STEPS, "/d", (s.CATEGORY_ACTIVITY, s.CATEGORY_PHYSICAL_ACTIVITY)),
    Metric.ACTIVE_MINUTES: (
        s.ACTIVE_MINUTES_DAY,
        "min/d",
        (s.CATEGORY_ACTIVITY, s.CATEGORY_PHYSICAL_ACTIVITY),
    ),
    Metric.SLEEP_DURATION: (s.SLEEP_DURATION, "min", (s.CATEGORY_ACTIVITY,)),
    Metric.RESTING_HEART_RATE: (
        s.RESTING_HEART_RATE,
        "/min",
        (s.CATEGORY_ACTIVITY, s.CATEGORY_PHYSICAL_ACTIVITY),
    ),
}


def _identifier(subject: str, what: str, start: datetime, end: datetime) -> dict[str, str]:
    raw = "\x1f".join([subject, "daily-summary", what, _utc(start).isoformat(), _utc(end).isoformat()])
    return {"system": s.MECR_IDENTIFIER_SYSTEM, "value": hashlib.sha256(raw.encode()).hexdigest()}


def _observation(
    subject: str,
    code: s.Code,
    unit: str,
    categories: tuple[s.Code, ...],
    value: float,
    start: datetime,
    end: datetime,
    source: Source | None,
    what: str,
) -> dict[str, Any]:
    obs: dict[str, Any] = {
        "resourceType": "Observation",
        "meta": {"source": "urn:mecr:wearable:daily-summary"},
        "identifier": [_identifier(subject, what, start, end)],
        "status": "final",
        "category": [{"coding": [c.coding()]} for c in categories],
        "code": {"coding": [code.coding()], "text": code.display},
        "subject": {"reference": subject},
        "effectivePeriod": {"start": iso(start), "end": iso(end)},
        "valueQuantity": {
            "value": int(value) if float(value).is_integer() else value,
            "unit": s.UNIT_DISPLAY.get(unit, unit),
            "system": s.UCUM,
            "code": unit,
        },
    }
    if source is not None:
        obs["device"] = {"reference": f"Device/{device_id(source)}", "display": source.display}
    return obs


def summary_to_observation(summary: DailySummary, subject: str) -> dict[str, Any]:
    """The summary Observation: e.g. daily steps ``41950-7`` ``/d`` over the local day's period."""
    code, unit, categories = _SUMMARY_CODES[summary.metric]
    return _observation(
        subject,
        code,
        unit,
        categories,
        summary.value,
        summary.start,
        summary.end,
        summary.source,
        summary.metric.value,
    )


def summaries_to_resources(summaries: Iterable[DailySummary], subject: str) -> list[dict[str, Any]]:
    """Devices of the chosen sources followed by one Observation per summary."""
    summaries = list(summaries)
    devices = {x.source.key: source_to_device(x.source) for x in summaries}
    return [*devices.values(), *(summary_to_observation(x, subject) for x in summaries)]


def weekly_active_minutes(
    summaries: Iterable[DailySummary], subject: str, tz: tzinfo
) -> list[dict[str, Any]]:
    """MVPA minutes per ISO week (Monday to Monday, local) as ``82290-8`` ``min/wk`` Observations."""
    weeks: dict[date, float] = defaultdict(float)
    for summary in summaries:
        if summary.metric is Metric.ACTIVE_MINUTES:
            weeks[summary.day - timedelta(days=summary.day.weekday())] += summary.value
    out = []
    for monday, minutes in sorted(weeks.items()):
        start = day_bounds(monday, tz)[0]
        end = day_bounds(monday + timedelta(days=6), tz)[1]
        out.append(
            _observation(
                subject,
                s.ACTIVE_MINUTES_WEEK,
                "min/wk",
                (s.CATEGORY_ACTIVITY, s.CATEGORY_PHYSICAL_ACTIVITY),
                round(minutes, 1),
                start,
                end,
                None,
                "active-minutes-week",
            )
        )
    return out
