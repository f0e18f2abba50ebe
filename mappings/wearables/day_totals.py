"""Daily totals of a stream of readings in constant memory (the importer's summary inputs).

:func:`~mappings.wearables.summaries.daily_summaries` holds every reading of its input; a multi-GB export cannot
afford that. :class:`DayTotals` keeps only the partial sums that function would form and hands it one day-total
reading per (metric, local day, source) at the end, so the cross-source rule and the rounding stay in one place.
Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, tzinfo
from typing import Any, Final

from ._common import day_bounds
from .model import Metric, Reading, Source
from .summaries import DailySummary, DedupRule, daily_summaries
from .summaries import _days_of as days_of  # the same day-splitting rule as the summaries

__all__ = ["DayTotals", "INTRADAY", "SUMMARY_INPUTS"]

#: Readings that feed the daily summaries (stored themselves only with ``samples=True``).
SUMMARY_INPUTS: Final = frozenset(
    {
        Metric.STEPS,
        Metric.ACTIVE_MINUTES,
        Metric.SLEEP_DURATION,
        Metric.SLEEP_ASLEEP,
        Metric.SLEEP_LIGHT,
        Metric.SLEEP_DEEP,
        Metric.SLEEP_REM,
        Metric.RESTING_HEART_RATE,
    }
)
#: Intraday samples of other metrics: not stored unless asked (a source's own day totals are stored).
INTRADAY: Final = frozenset(
    {Metric.DISTANCE, Metric.HEART_RATE, Metric.ACTIVE_ENERGY, Metric.SLEEP_AWAKE, Metric.SLEEP_IN_BED}
)
#: summary input -> (the summary it adds to, whether it is additive): as DayTotals.add decides
_TARGETS: Final = {
    m: (
        (m, True)
        if m in (Metric.STEPS, Metric.ACTIVE_MINUTES)
        else (m, False)
        if m is Metric.RESTING_HEART_RATE
        else (Metric.SLEEP_DURATION, False)
    )
    for m in SUMMARY_INPUTS
}
_EPOCH_ORDINAL: Final = date(1970, 1, 1).toordinal()
_SUMMARY_UNITS: Final = {Metric.STEPS: "{steps}", Metric.RESTING_HEART_RATE: "/min"}


class DayTotals:
    """Per (summary metric, local day, source) partial sums, kept as the stream goes by.

    :func:`daily_summaries` holds every reading of its input (its exact-duplicate set), which a multi-GB export
    cannot afford. This keeps only the sums that function would form — same day-splitting (``_days_of``),
    same kinds (a source's day totals, else its sleep sessions, else its intervals), mean for resting heart
    rate — and hands it one day-total reading per bucket, so the cross-source choice and rounding stay there.
    Exact duplicates (same metric, source, period and label) are dropped within a source's current UTC day,
    which catches every duplicate of a time-ordered stream (Apple Health writes each type and source in time
    order) in memory bounded by one day of one stream.
    """

    def __init__(self, tz: tzinfo) -> None:
        self.tz = tz
        # (metric, day, source key) -> [day sum, day n, session sum, session n, interval sum, interval n]
        self.buckets: dict[tuple[Metric, date, str], list[float]] = {}
        self.sources: dict[str, Source] = {}
        self._recent: dict[tuple[Metric, str], tuple[int, set[tuple[Any, ...]]]] = {}
        self._offsets: dict[
            int, int | bool
        ] = {}  # UTC day -> the zone's offset all that day (False: it changes)
        self._dates: dict[int, date] = {}

    def add(self, reading: Reading) -> bool:
        """Count the reading; False when it is an exact duplicate of one already counted."""
        metric = reading.metric
        source = reading.source
        key = source.key
        start, end = reading.start, reading.end
        t0 = start.timestamp()
        stream = (metric, key)
        marker = int(t0 // 86400)
        recent = self._recent.get(stream)
        if recent is None or recent[0] != marker:
            recent = (marker, set())
            self._recent[stream] = recent
        ident = (t0, end.timestamp() if end is not None else None, reading.label, reading.local_date)
        if ident in recent[1]:
            return False
        recent[1].add(ident)
        if key not in self.sources:
            self.sources[key] = source
        target: Metric
        parts: tuple[tuple[date, float], ...]
        if metric is Metric.STEPS or metric is Metric.ACTIVE_MINUTES:
            target, additive = metric, True
        elif metric is Metric.RESTING_HEART_RATE:
            target, additive = metric, False
        else:
            target, additive = Metric.SLEEP_DURATION, False
        if reading.local_date is not None:
            slot, parts = 0, ((reading.local_date, 1.0),)
        else:
            slot = 2 if metric is Metric.SLEEP_DURATION else 4
            tz = self.tz
            if end is None or end == start or not additive:
                anchor = end if (end is not None and not additive) else start
                parts = ((anchor.astimezone(tz).date(), 1.0),)
            else:
                first = start.astimezone(tz).date()
                parts = (
                    ((first, 1.0),)
                    if end.astimezone(tz).date() == first
                    else tuple(days_of(reading, tz, True))
                )
        value = reading.value
        assert value is not None
        self._accumulate(target, key, slot, value, parts)
        return True

    def add_light(
        self, metric: Metric, value: float, source: Source, key: str, t0: int, t1: int | None
    ) -> bool:
        """:meth:`add` for a light record of the Apple Health reader (epoch seconds, no label, no local day):
        the same buckets and duplicate rule, without a Reading and its datetimes."""
        stream = (metric, key)
        marker = t0 // 86400
        recent = self._recent.get(stream)
        if recent is None or recent[0] != marker:
            recent = (marker, set())
            self._recent[stream] = recent
        ident = (t0, t1, None, None)  # equal (and hashing equal) to add()'s float timestamps
        seen = recent[1]
        if ident in seen:
            return False
        seen.add(ident)
        if key not in self.sources:
            self.sources[key] = source
        target, additive = _TARGETS[metric]
        slot = 2 if metric is Metric.SLEEP_DURATION else 4
        day = self._day
        if t1 is None or not additive:
            parts: Iterable[tuple[date, float]] = (
                (day(t1 if (t1 is not None and not additive) else t0), 1.0),
            )
        else:
            first = day(t0)
            if day(t1) == first:
                parts = ((first, 1.0),)
            else:  # across local midnight: the summaries' own split
                reading = Reading(
                    metric,
                    value,
                    "",
                    datetime.fromtimestamp(t0, UTC),
                    source,
                    end=datetime.fromtimestamp(t1, UTC),
                )
                parts = days_of(reading, self.tz, True)
        self._accumulate(target, key, slot, value, parts)
        return True

    def _accumulate(
        self, target: Any, key: str, slot: int, value: float, parts: Iterable[tuple[date, float]]
    ) -> None:
        """Add ``value`` (split over local days by ``parts``) to the day buckets at ``slot`` (sum, count)."""
        buckets = self.buckets
        for d, share in parts:
            bucket = buckets.get((target, d, key))
            if bucket is None:
                bucket = buckets[(target, d, key)] = [0.0, 0, 0.0, 0, 0.0, 0]
            bucket[slot] += value * share
            bucket[slot + 1] += 1

    def _day(self, t: int) -> date:
        """The patient-local date of epoch second ``t``: the zone's offset is looked up once per UTC day, and
        exactly (per instant) on a day whose offset changes (DST)."""
        utc_day = t // 86400
        offset = self._offsets.get(utc_day)
        if offset is None:
            first = datetime.fromtimestamp(utc_day * 86400, self.tz).utcoffset()
            last = datetime.fromtimestamp(utc_day * 86400 + 86399, self.tz).utcoffset()
            offset = self._offsets[utc_day] = (
                int(first.total_seconds()) if first == last and first is not None else False
            )
        if offset is False:
            return datetime.fromtimestamp(t, self.tz).date()
        n = (t + offset) // 86400
        found = self._dates.get(n)
        if found is None:
            found = self._dates[n] = date.fromordinal(n + _EPOCH_ORDINAL)
        return found

    def summaries(self, rule: DedupRule) -> list[DailySummary]:
        """The daily summaries of everything added, through :func:`daily_summaries` (its cross-source rule)."""
        totals = []
        for (metric, day, key), b in self.buckets.items():
            slot = 0 if b[1] else (2 if b[3] else 4)
            value = b[slot] / b[slot + 1] if metric is Metric.RESTING_HEART_RATE else b[slot]
            start, end = day_bounds(day, self.tz)
            totals.append(
                Reading(
                    metric,
                    value,
                    _SUMMARY_UNITS.get(metric, "min"),
                    start,
                    self.sources[key],
                    end=end,
                    local_date=day,
                )
            )
        return daily_summaries(totals, tz=self.tz, rule=rule)
