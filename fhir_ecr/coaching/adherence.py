"""Habit adherence over a trailing window of days (7, 30, 90 or any other length).

The rule, for a window of ``days`` days ending on ``today`` (inclusive):

* **Day-unit habits** (daily, weekdays, every n days): each due date in the window is one scheduled
  occurrence. ``done`` earns 1, ``partly`` earns ``partly_credit`` (default 0.5), ``missed`` (a
  ``not-done`` check-in or none at all) earns 0.
* **Times-per-week habits**: each calendar week that overlaps the window counts whole; it asks for its
  (pro-rated) ``required`` check-ins and earns ``min(required, done + partly_credit * partly)``.
* **Excluded from the denominator**: off days (not scheduled), paused days (and fully paused weeks),
  days before the habit started or after it ended, and anything still ``pending`` — today, or the current
  week, until it is over or already met. Today counts only once it has a ``done``/``partly`` check-in.
* ``rate = earned / scheduled``; ``None`` when nothing in the window could be scheduled.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta

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

__all__ = ["Adherence", "AdherencePolicy", "adherence", "adherence_windows", "ledger_adherence"]

_COUNTED = (OccurrenceState.DONE, OccurrenceState.PARTLY, OccurrenceState.MISSED)


@dataclass(frozen=True)
class AdherencePolicy:
    """How much a ``partly`` check-in is worth (0 to 1)."""

    partly_credit: float = 0.5

    def __post_init__(self) -> None:
        if not 0.0 <= self.partly_credit <= 1.0:
            raise ScheduleError(f"partly_credit must be between 0 and 1, got {self.partly_credit}")


@dataclass(frozen=True)
class Adherence:
    """Adherence in one window: what was asked (``scheduled``), what was earned, and the counts behind it.

    For day-unit habits the counts are days; for times-per-week habits ``scheduled`` is the sum of the
    weeks' required check-ins, ``done``/``partly`` count check-in days, and ``missed``/``paused``/
    ``pending`` count weeks.
    """

    window_start: date
    window_end: date
    unit: Unit
    scheduled: int
    earned: float
    done: int
    partly: int
    missed: int
    paused: int
    pending: int
    rate: float | None


def adherence(
    schedule: Schedule,
    checkins: Iterable[CheckIn],
    pauses: Iterable[Pause] = (),
    *,
    today: date,
    days: int = 30,
    policy: AdherencePolicy | None = None,
) -> Adherence:
    """Adherence over the ``days`` days ending on ``today``, per the module rule."""
    if days < 1:
        raise ScheduleError(f"an adherence window needs at least one day, got {days}")
    window_start = today - timedelta(days=days - 1)
    led = ledger(schedule, checkins, pauses, today=today, start=window_start, end=today)
    return ledger_adherence(led, days, policy)


def ledger_adherence(led: Ledger, days: int, policy: AdherencePolicy | None = None) -> Adherence:
    """Adherence over the ``days`` days ending on the ledger's ``today`` (the ledger must cover that window)."""
    if days < 1:
        raise ScheduleError(f"an adherence window needs at least one day, got {days}")
    policy = policy or AdherencePolicy()
    today = led.today
    window_start = today - timedelta(days=days - 1)
    credit = policy.partly_credit
    scheduled = done = partly = missed = paused = pending = 0
    earned = 0.0
    end = led.schedule.end
    # A habit that ended before the window has nothing in it, not even the week it ended in.
    first = len(led) if end is not None and end < window_start else led.index_from(window_start)
    for i in range(first, len(led)):
        state = led.states[i]
        if state in _COUNTED:
            req, n_done, n_partly = led.required[i], led.done[i], led.partly[i]
            scheduled += req
            earned += min(float(req), n_done + credit * n_partly)
            done += n_done
            partly += n_partly
            if state is OccurrenceState.MISSED:
                missed += 1
        elif state is OccurrenceState.PAUSED:
            paused += 1
        else:
            pending += 1
    return Adherence(
        window_start=window_start,
        window_end=today,
        unit=led.schedule.unit,
        scheduled=scheduled,
        earned=earned,
        done=done,
        partly=partly,
        missed=missed,
        paused=paused,
        pending=pending,
        rate=earned / scheduled if scheduled else None,
    )


def adherence_windows(
    schedule: Schedule,
    checkins: Iterable[CheckIn],
    pauses: Iterable[Pause] = (),
    *,
    today: date,
    windows: Sequence[int] = (7, 30, 90),
    policy: AdherencePolicy | None = None,
) -> dict[int, Adherence]:
    """Adherence for several window lengths at once, keyed by the length in days."""
    for days in windows:
        if days < 1:
            raise ScheduleError(f"an adherence window needs at least one day, got {days}")
    longest = max(windows, default=1)
    led = ledger(
        schedule, checkins, pauses, today=today, start=today - timedelta(days=longest - 1), end=today
    )
    return {days: ledger_adherence(led, days, policy) for days in windows}
