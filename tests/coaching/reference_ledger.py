"""The first, day-by-day implementation of the occurrence ledger, adherence and streaks, kept as a test oracle.

The service uses the array ledger of :mod:`fhir_ecr.coaching.schedule` (it is ~20x faster over two years of
days); ``test_coaching_ledger_equivalence`` checks it gives exactly what this plain transcription of the
documented rules gives, on random schedules, pauses and check-ins.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta

from fhir_ecr.coaching import (
    Adherence,
    AdherencePolicy,
    CheckIn,
    CheckInStatus,
    Occurrence,
    OccurrenceState,
    Pause,
    Schedule,
    Streak,
    StreakPolicy,
    Streaks,
    Unit,
    week_bounds,
)

__all__ = ["ref_adherence", "ref_occurrences", "ref_streaks"]

_RANK = {CheckInStatus.NOT_DONE: 0, CheckInStatus.PARTLY: 1, CheckInStatus.DONE: 2}
_COUNTED = (OccurrenceState.DONE, OccurrenceState.PARTLY, OccurrenceState.MISSED)


def _days(first: date, last: date) -> Iterable[date]:
    for offset in range((last - first).days + 1):
        yield first + timedelta(days=offset)


def _best(checkins: Iterable[CheckIn]) -> dict[date, CheckInStatus]:
    best: dict[date, CheckInStatus] = {}
    for c in checkins:
        if c.day not in best or _RANK[c.status] > _RANK[best[c.day]]:
            best[c.day] = c.status
    return best


def _paused(day: date, pauses: Sequence[Pause]) -> bool:
    return any(p.covers(day) for p in pauses)


def ref_occurrences(
    schedule: Schedule,
    checkins: Iterable[CheckIn],
    pauses: Iterable[Pause] = (),
    *,
    start: date,
    end: date,
    today: date,
) -> list[Occurrence]:
    pause_list = list(pauses)
    status = {d: s for d, s in _best(checkins).items() if d <= today}
    first = max(start, schedule.start)
    last = min(end, today) if schedule.end is None else min(end, today, schedule.end)
    if last < first:
        return []
    if schedule.unit is Unit.DAY:
        return [_day(d, status, pause_list, today) for d in _days(first, last) if schedule.is_due(d)]
    out = []
    week_first, _ = week_bounds(first, schedule.week_start)
    while week_first <= last:
        out.append(_week(schedule, week_first, status, pause_list, today))
        week_first += timedelta(days=7)
    return out


def _day(day: date, status: Mapping[date, CheckInStatus], pauses: Sequence[Pause], today: date) -> Occurrence:
    s = status.get(day)
    if _paused(day, pauses):
        return Occurrence(day, day, 0, 0, 0, OccurrenceState.PAUSED)
    if s is CheckInStatus.DONE:
        return Occurrence(day, day, 1, 1, 0, OccurrenceState.DONE)
    if s is CheckInStatus.PARTLY:
        return Occurrence(day, day, 1, 0, 1, OccurrenceState.PARTLY)
    return Occurrence(day, day, 1, 0, 0, OccurrenceState.MISSED if day < today else OccurrenceState.PENDING)


def _week(
    schedule: Schedule,
    week_first: date,
    status: Mapping[date, CheckInStatus],
    pauses: Sequence[Pause],
    today: date,
) -> Occurrence:
    week_last = week_first + timedelta(days=6)
    countable = [d for d in _days(week_first, week_last) if schedule.is_active(d) and not _paused(d, pauses)]
    required = -(-schedule.times_per_week * len(countable) // 7)
    done = sum(1 for d in countable if status.get(d) is CheckInStatus.DONE)
    partly = sum(1 for d in countable if status.get(d) is CheckInStatus.PARTLY)
    if required == 0:
        state = OccurrenceState.PAUSED
    elif done >= required:
        state = OccurrenceState.DONE
    elif done + partly >= required:
        state = OccurrenceState.PARTLY
    elif countable[-1] < today:
        state = OccurrenceState.MISSED
    else:
        state = OccurrenceState.PENDING
    return Occurrence(week_first, week_last, required, done, partly, state)


def ref_adherence(
    schedule: Schedule,
    checkins: Iterable[CheckIn],
    pauses: Iterable[Pause] = (),
    *,
    today: date,
    days: int,
    policy: AdherencePolicy | None = None,
) -> Adherence:
    policy = policy or AdherencePolicy()
    window_start = today - timedelta(days=days - 1)
    occs = ref_occurrences(schedule, checkins, pauses, start=window_start, end=today, today=today)
    counted = [o for o in occs if o.state in _COUNTED]
    scheduled = sum(o.required for o in counted)
    earned = sum(min(float(o.required), o.done + policy.partly_credit * o.partly) for o in counted)
    return Adherence(
        window_start,
        today,
        schedule.unit,
        scheduled,
        earned,
        sum(o.done for o in counted),
        sum(o.partly for o in counted),
        sum(1 for o in occs if o.state is OccurrenceState.MISSED),
        sum(1 for o in occs if o.state is OccurrenceState.PAUSED),
        sum(1 for o in occs if o.state is OccurrenceState.PENDING),
        earned / scheduled if scheduled else None,
    )


@dataclass
class _Run:
    length: int = 0
    start: date | None = None
    end: date | None = None
    repaired: list[date] = field(default_factory=list)

    def freeze(self, keep_trailing: bool) -> Streak:
        assert self.start is not None and self.end is not None
        end = self.end
        return Streak(
            self.length, self.start, end, tuple(d for d in self.repaired if keep_trailing or d <= end)
        )


def ref_streaks(
    schedule: Schedule,
    checkins: Iterable[CheckIn],
    pauses: Iterable[Pause] = (),
    *,
    today: date,
    policy: StreakPolicy | None = None,
) -> Streaks:
    policy = policy or StreakPolicy()
    occs = ref_occurrences(schedule, checkins, pauses, start=schedule.start, end=today, today=today)
    run, best = _Run(), None
    for occ in occs:
        if occ.state in (OccurrenceState.PAUSED, OccurrenceState.PENDING):
            continue
        kept = occ.state is OccurrenceState.DONE or (
            occ.state is OccurrenceState.PARTLY and policy.partly_keeps_streak
        )
        if kept:
            if run.length == 0:
                run.start = occ.start
            run.length += 1
            run.end = occ.start
            continue
        if run.length:
            if schedule.unit is Unit.DAY:
                lo, hi = week_bounds(occ.start, schedule.week_start)
                used = sum(1 for d in run.repaired if lo <= d <= hi)
            else:
                lo = occ.start - timedelta(days=7 * (policy.repair_window_weeks - 1))
                used = sum(1 for d in run.repaired if lo <= d)
            if used < policy.max_repairs:
                run.repaired.append(occ.start)
                continue
            finished = run.freeze(False)
            if best is None or finished.length >= best.length:
                best = finished
        run = _Run()
    current = None
    if run.length:
        current = run.freeze(True)
        if best is None or current.length >= best.length:
            best = run.freeze(False)
    return Streaks(schedule.unit, current, best)
