"""Habit schedules, check-ins, pauses, and the ledger of scheduled occurrences.

Everything here works on **local calendar dates** (``datetime.date``): the wiring layer converts each
check-in's instant to the patient's local date once, with :func:`local_date`, and from then on nothing
depends on a clock or a time zone. ``today`` is always passed in.

Schedules mirror FHIR ``Timing.repeat`` (https://hl7.org/fhir/R4/datatypes.html#Timing) at the granularity
of one check-in per local day:

=================  ==========================================  ============================================
kind               FHIR ``Timing.repeat``                      unit of adherence and streaks
=================  ==========================================  ============================================
daily              frequency=f, period=1, periodUnit=d          the day
weekdays           dayOfWeek=[mon, wed, ...]                    the scheduled day (other days are off days)
every-n-days       frequency=1, period=n, periodUnit=d          the scheduled day (anchored at ``start``)
times-per-week     frequency=n, period=1, periodUnit=wk         the calendar week (any days)
=================  ==========================================  ============================================

For *times-per-week* habits the week is the unit: no single day is ever "due" or "missed"; a week is met
when ``required`` days in it have a check-in. ``required`` is ``n`` for a full week and is pro-rated,
``ceil(n * available / 7)``, when only ``available`` days of the week can count (the habit started or
ended mid-week, or some days are paused). A week whose ``required`` is 0 is a paused week. Weeks start on
Monday (ISO 8601) unless the schedule says otherwise.

The ledger (:func:`occurrences`) classifies every occurrence up to ``today`` as ``done``, ``partly``,
``missed``, ``paused`` or ``pending`` (today, or the current week, which is not over yet and not yet
met). A pause wins over a check-in on the same day: paused days are outside the schedule, so a check-in
on a paused day neither helps nor hurts. :func:`ledger` keeps it as a :class:`Ledger` of parallel lists (no
object per occurrence), built once per habit and shared by adherence and streaks; :func:`occurrences` gives
the same ledger as :class:`Occurrence` objects.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from enum import IntEnum, StrEnum
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fhir_ecr.coaching.errors import ScheduleError

__all__ = [
    "CheckIn",
    "CheckInStatus",
    "Occurrence",
    "OccurrenceState",
    "Pause",
    "Schedule",
    "ScheduleKind",
    "Unit",
    "Weekday",
    "Ledger",
    "due_dates",
    "ledger",
    "local_date",
    "occurrences",
    "schedule_from_timing",
    "week_bounds",
]


class Weekday(IntEnum):
    """Days of the week, numbered like :meth:`datetime.date.weekday` (Monday is 0)."""

    MON = 0
    TUE = 1
    WED = 2
    THU = 3
    FRI = 4
    SAT = 5
    SUN = 6

    @property
    def fhir_code(self) -> str:
        """The FHIR ``days-of-week`` code (``mon`` .. ``sun``)."""
        return self.name.lower()

    @classmethod
    def from_fhir(cls, code: str) -> Weekday:
        """Parse a FHIR ``days-of-week`` code such as ``"mon"``."""
        try:
            return cls[str(code).strip().upper()]
        except KeyError as exc:
            raise ScheduleError(f"unknown day of week {code!r}; expected one of mon..sun") from exc


class ScheduleKind(StrEnum):
    """The four schedule shapes a habit can have."""

    DAILY = "daily"
    WEEKDAYS = "weekdays"
    EVERY_N_DAYS = "every-n-days"
    TIMES_PER_WEEK = "times-per-week"


class Unit(StrEnum):
    """What one occurrence of a habit is: a day or a calendar week."""

    DAY = "day"
    WEEK = "week"


class CheckInStatus(StrEnum):
    """A check-in's self-reported outcome for one local date."""

    DONE = "done"
    PARTLY = "partly"
    NOT_DONE = "not-done"


class OccurrenceState(StrEnum):
    """How one scheduled occurrence (a day or a week) turned out, as of ``today``."""

    DONE = "done"
    PARTLY = "partly"
    MISSED = "missed"
    PAUSED = "paused"
    PENDING = "pending"


def _require_date(value: object, what: str) -> date:
    # datetime is a subclass of date; letting one through would smuggle a time zone back in.
    if isinstance(value, datetime) or not isinstance(value, date):
        raise ScheduleError(f"{what} must be a local date (datetime.date), got {type(value).__name__}")
    return value


@dataclass(frozen=True)
class Schedule:
    """When a habit is meant to happen. Build one with the class-method constructors."""

    kind: ScheduleKind
    start: date
    end: date | None = None
    weekdays: frozenset[Weekday] = frozenset()
    times_per_week: int = 0
    interval_days: int = 1
    week_start: Weekday = Weekday.MON

    def __post_init__(self) -> None:
        _require_date(self.start, "schedule start")
        if self.end is not None:
            _require_date(self.end, "schedule end")
            if self.end < self.start:
                raise ScheduleError(f"schedule ends ({self.end}) before it starts ({self.start})")
        if self.kind is ScheduleKind.WEEKDAYS and not self.weekdays:
            raise ScheduleError("a weekday schedule needs at least one day of the week")
        if self.kind is ScheduleKind.TIMES_PER_WEEK and not 1 <= self.times_per_week <= 7:
            raise ScheduleError(f"times per week must be 1..7, got {self.times_per_week}")
        if self.kind is ScheduleKind.EVERY_N_DAYS and self.interval_days < 1:
            raise ScheduleError(f"interval must be at least 1 day, got {self.interval_days}")

    @classmethod
    def daily(cls, start: date, end: date | None = None, *, week_start: Weekday = Weekday.MON) -> Schedule:
        """Every day from ``start`` (to ``end``, inclusive)."""
        return cls(ScheduleKind.DAILY, start, end, week_start=week_start)

    @classmethod
    def on_weekdays(
        cls,
        days: Iterable[Weekday | str],
        start: date,
        end: date | None = None,
        *,
        week_start: Weekday = Weekday.MON,
    ) -> Schedule:
        """On the given days of the week, e.g. ``Schedule.on_weekdays(["mon", "wed", "fri"], start)``."""
        parsed = frozenset(d if isinstance(d, Weekday) else Weekday.from_fhir(d) for d in days)
        return cls(ScheduleKind.WEEKDAYS, start, end, weekdays=parsed, week_start=week_start)

    @classmethod
    def per_week(
        cls, times: int, start: date, end: date | None = None, *, week_start: Weekday = Weekday.MON
    ) -> Schedule:
        """``times`` check-ins per calendar week, on any days."""
        return cls(ScheduleKind.TIMES_PER_WEEK, start, end, times_per_week=times, week_start=week_start)

    @classmethod
    def every_n_days(
        cls, n: int, start: date, end: date | None = None, *, week_start: Weekday = Weekday.MON
    ) -> Schedule:
        """Every ``n``-th day counted from ``start`` (``start`` itself is scheduled)."""
        return cls(ScheduleKind.EVERY_N_DAYS, start, end, interval_days=n, week_start=week_start)

    @property
    def unit(self) -> Unit:
        """The occurrence unit: weeks for times-per-week habits, days otherwise."""
        return Unit.WEEK if self.kind is ScheduleKind.TIMES_PER_WEEK else Unit.DAY

    def is_active(self, day: date) -> bool:
        """True when ``day`` lies between the habit's start and end (inclusive)."""
        return self.start <= day and (self.end is None or day <= self.end)

    def is_due(self, day: date) -> bool:
        """True when ``day`` is individually scheduled; always False for times-per-week habits."""
        if not self.is_active(day):
            return False
        if self.kind is ScheduleKind.DAILY:
            return True
        if self.kind is ScheduleKind.WEEKDAYS:
            return Weekday(day.weekday()) in self.weekdays
        if self.kind is ScheduleKind.EVERY_N_DAYS:
            return (day - self.start).days % self.interval_days == 0
        # Times-per-week: the week is the unit, so no day on its own is due (or missed).
        return False


@dataclass(frozen=True)
class CheckIn:
    """One self-report for one local date; ``quantity`` is carried for display, ``status`` decides credit."""

    day: date
    status: CheckInStatus
    quantity: float | None = None

    def __post_init__(self) -> None:
        _require_date(self.day, "check-in day")
        if not isinstance(self.status, CheckInStatus):
            object.__setattr__(self, "status", _parse_status(self.status))


def _parse_status(value: object) -> CheckInStatus:
    try:
        return CheckInStatus(str(value))
    except ValueError as exc:
        raise ScheduleError(f"unknown check-in status {value!r}; expected done, partly or not-done") from exc


@dataclass(frozen=True)
class Pause:
    """Days the habit is deliberately off (vacation, illness): ``start`` to ``end`` inclusive, open if None."""

    start: date
    end: date | None = None
    reason: str = ""

    def __post_init__(self) -> None:
        _require_date(self.start, "pause start")
        if self.end is not None:
            _require_date(self.end, "pause end")
            if self.end < self.start:
                raise ScheduleError(f"pause ends ({self.end}) before it starts ({self.start})")

    def covers(self, day: date) -> bool:
        """True when ``day`` falls inside the pause."""
        return self.start <= day and (self.end is None or day <= self.end)


@dataclass(frozen=True)
class Occurrence:
    """One scheduled day, or one calendar week of a times-per-week habit, and how it went."""

    start: date
    end: date
    required: int
    done: int
    partly: int
    state: OccurrenceState


def local_date(instant: datetime, tz_name: str) -> date:
    """The calendar date of an aware ``instant`` in the IANA time zone ``tz_name``.

    >>> from datetime import timezone
    >>> local_date(datetime(2024, 3, 10, 4, 30, tzinfo=timezone.utc), "America/New_York")
    datetime.date(2024, 3, 9)
    """
    if instant.tzinfo is None or instant.tzinfo.utcoffset(instant) is None:
        # A naive datetime has no instant: guessing its zone is exactly the bug this helper prevents.
        raise ScheduleError("local_date needs an aware datetime (with tzinfo)")
    try:
        zone = ZoneInfo(tz_name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ScheduleError(f"unknown time zone {tz_name!r}") from exc
    return instant.astimezone(zone).date()


def week_bounds(day: date, week_start: Weekday = Weekday.MON) -> tuple[date, date]:
    """First and last date of the calendar week containing ``day``."""
    first = day - timedelta(days=(day.weekday() - week_start) % 7)
    return first, first + timedelta(days=6)


def due_dates(schedule: Schedule, start: date, end: date) -> list[date]:
    """The local dates in ``[start, end]`` on which the habit is individually scheduled.

    Times-per-week habits have no individually due dates (the week is the unit), so they return ``[]``.
    """
    _require_date(start, "range start")
    _require_date(end, "range end")
    first, last = max(start, schedule.start), end if schedule.end is None else min(end, schedule.end)
    if last < first:
        return []
    return [date.fromordinal(o) for o in _due_ordinals(schedule, first.toordinal(), last.toordinal())]


def _due_ordinals(schedule: Schedule, first: int, last: int) -> Sequence[int]:
    """Ordinals of the due days in ``[first, last]`` (already clipped to the schedule's active range)."""
    if schedule.kind is ScheduleKind.DAILY:
        return range(first, last + 1)
    if schedule.kind is ScheduleKind.WEEKDAYS:
        # date.fromordinal(1) is Monday 1 January of year 1, so an ordinal's weekday is (ordinal - 1) % 7.
        days = {int(d) for d in schedule.weekdays}
        return [o for o in range(first, last + 1) if (o - 1) % 7 in days]
    if schedule.kind is ScheduleKind.EVERY_N_DAYS:
        n = schedule.interval_days
        begin = first + (-(first - schedule.start.toordinal())) % n
        return range(begin, last + 1, n)
    return ()


# Ranks of a day's best check-in; a day without one has no rank.
_STATUS_RANK = {CheckInStatus.NOT_DONE: 0, CheckInStatus.PARTLY: 1, CheckInStatus.DONE: 2}
_PARTLY_RANK, _DONE_RANK = 1, 2


def _best_rank_by_day(checkins: Iterable[CheckIn], today: int) -> dict[int, int]:
    # Several check-ins on one day (a correction, two devices): the best outcome is what happened.
    best: dict[int, int] = {}
    for checkin in checkins:
        day = checkin.day.toordinal()
        if day > today:
            continue
        rank = _STATUS_RANK[checkin.status]
        if best.get(day, -1) < rank:
            best[day] = rank
    return best


def _paused_ordinals(pauses: Iterable[Pause], first: int, last: int) -> set[int]:
    paused: set[int] = set()
    for p in pauses:
        lo = max(p.start.toordinal(), first)
        hi = last if p.end is None else min(p.end.toordinal(), last)
        if lo <= hi:
            paused.update(range(lo, hi + 1))
    return paused


@dataclass(frozen=True)
class Ledger:
    """The occurrences of one habit as parallel lists (no object per occurrence), oldest first.

    ``starts`` are date ordinals (:meth:`datetime.date.toordinal`) of each scheduled day, or of the first
    day of each calendar week for times-per-week habits. Build one with :func:`ledger`; it answers
    adherence over any trailing window (:mod:`~fhir_ecr.coaching.adherence`) and streaks
    (:mod:`~fhir_ecr.coaching.streaks`) without walking the calendar again.
    """

    schedule: Schedule
    today: date
    starts: list[int]
    required: list[int]
    done: list[int]
    partly: list[int]
    states: list[OccurrenceState]

    def __len__(self) -> int:
        return len(self.starts)

    def index_from(self, day: date) -> int:
        """Index of the first occurrence that touches ``day`` or later (a week touches all of its days)."""
        first = day.toordinal()
        if self.schedule.unit is Unit.WEEK:
            first -= (day.weekday() - self.schedule.week_start) % 7
        return bisect_left(self.starts, first)

    def occurrence(self, i: int) -> Occurrence:
        """The ``i``-th occurrence as an :class:`Occurrence`."""
        start = date.fromordinal(self.starts[i])
        end = start + timedelta(days=6) if self.schedule.unit is Unit.WEEK else start
        return Occurrence(start, end, self.required[i], self.done[i], self.partly[i], self.states[i])


def ledger(
    schedule: Schedule,
    checkins: Iterable[CheckIn],
    pauses: Iterable[Pause] = (),
    *,
    today: date,
    start: date | None = None,
    end: date | None = None,
) -> Ledger:
    """The :class:`Ledger` of every occurrence touching ``[start, end]`` (default: the habit's whole life) up to
    and including ``today``; see :func:`occurrences` for the rule."""
    _require_date(today, "today")
    start = schedule.start if start is None else _require_date(start, "range start")
    end = today if end is None else _require_date(end, "range end")
    first = max(start, schedule.start).toordinal()
    last = min(end, today) if schedule.end is None else min(end, today, schedule.end)
    led = Ledger(schedule, today, [], [], [], [], [])
    if last.toordinal() < first:
        return led
    last_o, today_o = last.toordinal(), today.toordinal()
    rank = _best_rank_by_day(checkins, today_o)
    pause_list = list(pauses)
    if schedule.unit is Unit.DAY:
        _fill_days(led, schedule, rank, _paused_ordinals(pause_list, first, last_o), first, last_o, today_o)
    else:
        _fill_weeks(led, schedule, rank, pause_list, first, last_o, today_o)
    return led


def _fill_days(
    led: Ledger,
    schedule: Schedule,
    rank: Mapping[int, int],
    paused: set[int],
    first: int,
    last: int,
    today: int,
) -> None:
    for o in _due_ordinals(schedule, first, last):
        if o in paused:
            state, req, n_done, n_partly = OccurrenceState.PAUSED, 0, 0, 0
        else:
            r = rank.get(o)
            if r == _DONE_RANK:
                state, req, n_done, n_partly = OccurrenceState.DONE, 1, 1, 0
            elif r == _PARTLY_RANK:
                state, req, n_done, n_partly = OccurrenceState.PARTLY, 1, 0, 1
            else:
                # Today is not missed until it is over.
                state = OccurrenceState.MISSED if o < today else OccurrenceState.PENDING
                req, n_done, n_partly = 1, 0, 0
        led.starts.append(o)
        led.required.append(req)
        led.done.append(n_done)
        led.partly.append(n_partly)
        led.states.append(state)


def _fill_weeks(
    led: Ledger,
    schedule: Schedule,
    rank: Mapping[int, int],
    pauses: Sequence[Pause],
    first: int,
    last: int,
    today: int,
) -> None:
    week_first = first - (date.fromordinal(first).weekday() - schedule.week_start) % 7
    # A week is judged whole, so its days beyond the range (later this week, or before a window's start) count.
    active_first = schedule.start.toordinal()
    active_last = schedule.end.toordinal() if schedule.end is not None else None
    paused = _paused_ordinals(pauses, week_first, last + 6)
    times = schedule.times_per_week
    while week_first <= last:
        lo = max(week_first, active_first)
        hi = week_first + 6 if active_last is None else min(week_first + 6, active_last)
        countable = [d for d in range(lo, hi + 1) if d not in paused]
        # Pro-rate the weekly target to the days that can count, rounding up so a short week still asks for
        # at least one check-in per started 7/n days.
        req = -(-times * len(countable) // 7)
        n_done = n_partly = 0
        for d in countable:
            r = rank.get(d)
            if r == _DONE_RANK:
                n_done += 1
            elif r == _PARTLY_RANK:
                n_partly += 1
        if req == 0:
            state = OccurrenceState.PAUSED
        elif n_done >= req:
            state = OccurrenceState.DONE
        elif n_done + n_partly >= req:
            state = OccurrenceState.PARTLY
        elif countable[-1] < today:
            state = OccurrenceState.MISSED
        else:
            state = OccurrenceState.PENDING
        led.starts.append(week_first)
        led.required.append(req)
        led.done.append(n_done)
        led.partly.append(n_partly)
        led.states.append(state)
        week_first += 7


def occurrences(
    schedule: Schedule,
    checkins: Iterable[CheckIn],
    pauses: Iterable[Pause] = (),
    *,
    start: date,
    end: date,
    today: date,
) -> list[Occurrence]:
    """Every occurrence of the habit that touches ``[start, end]``, up to and including ``today``.

    Day-unit habits yield one occurrence per due date in the range. Times-per-week habits yield one
    occurrence per calendar week that overlaps the range, judged on the *whole* week (its days outside
    the range still count), so a window boundary never splits a week.
    """
    for value, what in ((start, "range start"), (end, "range end"), (today, "today")):
        _require_date(value, what)
    led = ledger(schedule, checkins, pauses, today=today, start=start, end=end)
    return [led.occurrence(i) for i in range(len(led))]


# --- FHIR Timing.repeat -------------------------------------------------------------------------------

_SECONDS = {"s": 1, "min": 60, "h": 3600}
_DAY_SECONDS = 86400


def _positive_int(value: object, what: str) -> int:
    try:
        number = Decimal(str(value))
    except InvalidOperation as exc:
        raise ScheduleError(f"Timing.repeat.{what} is not a number: {value!r}") from exc
    if number <= 0 or number != number.to_integral_value():
        raise ScheduleError(f"Timing.repeat.{what} must be a positive whole number, got {value!r}")
    return int(number)


def schedule_from_timing(
    repeat: Mapping[str, Any],
    *,
    start: date,
    end: date | None = None,
    week_start: Weekday = Weekday.MON,
) -> Schedule:
    """Build a :class:`Schedule` from the JSON of a FHIR ``Timing.repeat`` element.

    Check-ins are per local day, so several times a day is one daily occurrence, and 7 or more times a
    week is daily. ``frequencyMax`` is ignored (``frequency`` is the minimum that meets the habit).
    Monthly and yearly periods, and ``dayOfWeek`` combined with a weekly count other than one per listed
    day, are refused: they have no day/week ledger.

    >>> schedule_from_timing({"frequency": 3, "period": 1, "periodUnit": "wk"}, start=date(2024, 1, 1)).kind
    <ScheduleKind.TIMES_PER_WEEK: 'times-per-week'>
    """
    frequency = _positive_int(repeat.get("frequency", 1), "frequency")
    period = repeat.get("period", 1)
    unit = str(repeat.get("periodUnit", "d"))
    days_of_week = repeat.get("dayOfWeek") or []
    if days_of_week:
        once_per_listed_day = (
            unit == "wk" and _positive_int(period, "period") == 1 and frequency == len(days_of_week)
        )
        daily_or_finer = unit in _SECONDS or (unit == "d" and _positive_int(period, "period") == 1)
        if not (daily_or_finer or once_per_listed_day):
            raise ScheduleError("dayOfWeek is supported with a daily period or once per listed day each week")
        return Schedule.on_weekdays(days_of_week, start, end, week_start=week_start)
    if unit in _SECONDS:
        try:
            seconds = Decimal(str(period)) * _SECONDS[unit]
        except InvalidOperation as exc:
            raise ScheduleError(f"Timing.repeat.period is not a number: {period!r}") from exc
        if seconds <= 0:
            raise ScheduleError(f"Timing.repeat.period must be positive, got {period!r}")
        if seconds <= _DAY_SECONDS:
            return Schedule.daily(start, end, week_start=week_start)
        if frequency == 1 and seconds % _DAY_SECONDS == 0:
            return Schedule.every_n_days(int(seconds // _DAY_SECONDS), start, end, week_start=week_start)
        raise ScheduleError(f"a period of {period} {unit} does not map to whole days")
    if unit == "d":
        days = _positive_int(period, "period")
        if days == 1:
            return Schedule.daily(start, end, week_start=week_start)
        if frequency == 1:
            return Schedule.every_n_days(days, start, end, week_start=week_start)
        raise ScheduleError(f"{frequency} times per {days} days is not supported; use a weekly count")
    if unit == "wk":
        weeks = _positive_int(period, "period")
        if weeks == 1:
            if frequency >= 7:
                return Schedule.daily(start, end, week_start=week_start)
            return Schedule.per_week(frequency, start, end, week_start=week_start)
        if frequency == 1:
            return Schedule.every_n_days(7 * weeks, start, end, week_start=week_start)
        raise ScheduleError(f"{frequency} times per {weeks} weeks is not supported")
    raise ScheduleError(f"periodUnit {unit!r} is not supported for habits (use s, min, h, d or wk)")
