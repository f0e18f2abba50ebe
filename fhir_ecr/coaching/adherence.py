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
    OccurrenceState,
    Pause,
    Schedule,
    Unit,
    occurrences,
)

__all__ = ["Adherence", "AdherencePolicy", "adherence", "adherence_windows"]

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
    policy = policy or AdherencePolicy()
    window_start = today - timedelta(days=days - 1)
    occs = occurrences(schedule, checkins, pauses, start=window_start, end=today, today=today)
    counted = [o for o in occs if o.state in _COUNTED]
    scheduled = sum(o.required for o in counted)
    earned = sum(min(float(o.required), o.done + policy.partly_credit * o.partly) for o in counted)
    return Adherence(
        window_start=window_start,
        window_end=today,
        unit=schedule.unit,
        scheduled=scheduled,
        earned=earned,
        done=sum(o.done for o in counted),
        partly=sum(o.partly for o in counted),
        missed=sum(1 for o in occs if o.state is OccurrenceState.MISSED),
        paused=sum(1 for o in occs if o.state is OccurrenceState.PAUSED),
        pending=sum(1 for o in occs if o.state is OccurrenceState.PENDING),
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
    checkin_list = list(checkins)
    pause_list = list(pauses)
    return {
        days: adherence(schedule, checkin_list, pause_list, today=today, days=days, policy=policy)
        for days in windows
    }
