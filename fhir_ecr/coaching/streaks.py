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
from dataclasses import dataclass
from datetime import date

from fhir_ecr.coaching.errors import ScheduleError
from fhir_ecr.coaching.schedule import (
    CheckIn,
    Ledger,
    OccurrenceState,
    Pause,
    Schedule,
    Unit,
    ledger,
)

__all__ = ["Streak", "StreakPolicy", "Streaks", "ledger_streaks", "streaks"]


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


def streaks(
    schedule: Schedule,
    checkins: Iterable[CheckIn],
    pauses: Iterable[Pause] = (),
    *,
    today: date,
    policy: StreakPolicy | None = None,
) -> Streaks:
    """Current and best streak as of ``today`` (see the module docstring for the exact rule)."""
    return ledger_streaks(ledger(schedule, checkins, pauses, today=today), policy)


def ledger_streaks(led: Ledger, policy: StreakPolicy | None = None) -> Streaks:
    """Current and best streak of a ledger that covers the habit's whole life (:func:`ledger` without a range)."""
    policy = policy or StreakPolicy()
    schedule = led.schedule
    by_week = schedule.unit is Unit.DAY
    # The repair budget's window, in days before the occurrence's start: its calendar week for day-unit
    # habits, the last repair_window_weeks weeks for weekly ones.
    window_back = 7 * (policy.repair_window_weeks - 1)
    week_start = int(schedule.week_start)
    max_repairs = policy.max_repairs
    skip = (OccurrenceState.PAUSED, OccurrenceState.PENDING)
    kept_states = (
        (OccurrenceState.DONE, OccurrenceState.PARTLY)
        if policy.partly_keeps_streak
        else (OccurrenceState.DONE,)
    )
    # The running streak: length, first and last kept occurrence, repaired occurrences (ordinals).
    length, first, last = 0, 0, 0
    repaired: list[int] = []
    best: tuple[int, int, int, list[int]] | None = None  # length, first, last, repairs up to last
    starts, states = led.starts, led.states
    for i, state in enumerate(states):
        if state in skip:
            continue
        o = starts[i]
        if state in kept_states:
            if length == 0:
                first = o
            length += 1
            last = o
            continue
        if length:
            # Ordinal o's weekday is (o - 1) % 7 (date.fromordinal(1) is a Monday).
            lo = o - ((o - 1) % 7 - week_start) % 7 if by_week else o - window_back
            used = 0
            for r in reversed(repaired):
                if r < lo:
                    break
                used += 1
            if used < max_repairs:
                repaired.append(o)
                continue
            if best is None or length >= best[0]:
                best = (length, first, last, [r for r in repaired if r <= last])
        length, repaired = 0, []
    current: Streak | None = None
    if length:
        current = _streak(length, first, last, repaired)
        if best is None or length >= best[0]:
            best = (length, first, last, [r for r in repaired if r <= last])
    return Streaks(schedule.unit, current, _streak(*best) if best is not None else None)


def _streak(length: int, first: int, last: int, repaired: list[int]) -> Streak:
    return Streak(
        length, date.fromordinal(first), date.fromordinal(last), tuple(date.fromordinal(r) for r in repaired)
    )
