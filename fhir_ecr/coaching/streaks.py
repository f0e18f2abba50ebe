"""Current and best streaks of a habit, with repair and pause.

A streak counts **kept occurrences in a row**: days for daily / weekday / every-n-days habits (off days
are simply not occurrences), calendar weeks for times-per-week habits. The occurrences come from
:func:`fhir_ecr.coaching.schedule.occurrences`, from the habit's start up to ``today``, and are walked in
order with these rules (first matching row wins):

===========================  ===========================================================================
occurrence                   effect on the running streak
===========================  ===========================================================================
paused                       skipped: neither breaks nor extends the streak (vacation, illness)
pending                      skipped: today / the current week is not over and not yet kept
done                         kept: length + 1 (a streak starts here if none is running)
partly                       kept if ``partly_keeps_streak`` (default True), otherwise treated as missed
missed, no streak running    nothing to protect; length stays 0
missed, repair budget left   **repaired**: the streak survives, length unchanged, the date is recorded
missed, no budget left       the streak ends; length back to 0
===========================  ===========================================================================

Repair budget (``max_repairs``, default 1; 0 disables repair), counted only among the repairs of the
streak that is running — a new streak starts with a fresh budget:

* day unit: at most ``max_repairs`` repaired days per **calendar week** (the schedule's ``week_start``,
  Monday by default, ISO 8601). So two misses in one week end the streak, while a miss on Sunday and
  another on the next Monday are both repaired (they fall in different weeks).
* week unit: at most ``max_repairs`` repaired weeks in any ``repair_window_weeks`` (default 4)
  consecutive weeks.

A streak's ``start`` and ``end`` are its first and last *kept* occurrences; ``repaired`` lists the
repaired occurrences (dates, or week starts) between them — and, for the current streak only, repairs
after its last kept occurrence, which are what is keeping it alive. A streak is *current* when it is
still running on ``today``. The *best* streak is the longest; on a tie the more recent one wins.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta

from fhir_ecr.coaching.errors import ScheduleError
from fhir_ecr.coaching.schedule import (
    CheckIn,
    Occurrence,
    OccurrenceState,
    Pause,
    Schedule,
    Unit,
    occurrences,
    week_bounds,
)

__all__ = ["Streak", "StreakPolicy", "Streaks", "streaks"]


@dataclass(frozen=True)
class StreakPolicy:
    """Knobs of the streak rule; see the module docstring."""

    max_repairs: int = 1
    repair_window_weeks: int = 4
    partly_keeps_streak: bool = True

    def __post_init__(self) -> None:
        if self.max_repairs < 0:
            raise ScheduleError(f"max_repairs cannot be negative, got {self.max_repairs}")
        if self.repair_window_weeks < 1:
            raise ScheduleError(f"repair_window_weeks must be at least 1, got {self.repair_window_weeks}")


@dataclass(frozen=True)
class Streak:
    """A run of kept occurrences: ``length`` counts kept ones only, never repaired ones."""

    length: int
    start: date
    end: date
    repaired: tuple[date, ...] = ()


@dataclass(frozen=True)
class Streaks:
    """The current and the best streak of one habit, in the habit's unit."""

    unit: Unit
    current: Streak | None
    best: Streak | None

    @property
    def current_length(self) -> int:
        """Length of the current streak, 0 when none is running."""
        return self.current.length if self.current else 0

    @property
    def best_length(self) -> int:
        """Length of the best streak ever, 0 when there was none."""
        return self.best.length if self.best else 0


@dataclass
class _Run:
    length: int = 0
    start: date | None = None
    end: date | None = None
    repaired: list[date] = field(default_factory=list)

    def freeze(self, *, keep_trailing_repairs: bool) -> Streak:
        if self.start is None or self.end is None:
            raise ScheduleError("internal error: an empty run cannot become a streak")
        end = self.end
        repaired = [d for d in self.repaired if keep_trailing_repairs or d <= end]
        return Streak(self.length, self.start, end, tuple(repaired))


def streaks(
    schedule: Schedule,
    checkins: Iterable[CheckIn],
    pauses: Iterable[Pause] = (),
    *,
    today: date,
    policy: StreakPolicy | None = None,
) -> Streaks:
    """Current and best streak as of ``today`` (see the module docstring for the exact rule)."""
    policy = policy or StreakPolicy()
    occs = occurrences(schedule, checkins, pauses, start=schedule.start, end=today, today=today)
    run = _Run()
    best: Streak | None = None

    def close() -> None:
        nonlocal best, run
        if run.length:
            finished = run.freeze(keep_trailing_repairs=False)
            if best is None or finished.length >= best.length:
                best = finished
        run = _Run()

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
        elif run.length and _can_repair(schedule, policy, run, occ):
            run.repaired.append(occ.start)
        else:
            close()

    current: Streak | None = None
    if run.length:
        current = run.freeze(keep_trailing_repairs=True)
        if best is None or current.length >= best.length:
            best = run.freeze(keep_trailing_repairs=False)
    return Streaks(schedule.unit, current, best)


def _can_repair(schedule: Schedule, policy: StreakPolicy, run: _Run, occ: Occurrence) -> bool:
    if schedule.unit is Unit.DAY:
        week_first, week_last = week_bounds(occ.start, schedule.week_start)
        used = sum(1 for d in run.repaired if week_first <= d <= week_last)
    else:
        # Rolling window of weeks ending with this one: earlier repairs whose week starts within it.
        window_first = occ.start - timedelta(days=7 * (policy.repair_window_weeks - 1))
        used = sum(1 for d in run.repaired if window_first <= d)
    return used < policy.max_repairs
