"""Adherence windows against the schedule."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from fhir_ecr.coaching import (
    AdherencePolicy,
    CheckIn,
    CheckInStatus,
    Pause,
    Schedule,
    ScheduleError,
    Unit,
    adherence,
    adherence_windows,
)

DONE, PARTLY, NOT_DONE = CheckInStatus.DONE, CheckInStatus.PARTLY, CheckInStatus.NOT_DONE


def d(day: int, month: int = 1) -> date:
    return date(2024, month, day)


def test_daily_done_partly_missed() -> None:
    # Jan 1..7; today is Jan 7 with no check-in yet, so the window counts Jan 1..6.
    checkins = [CheckIn(d(1), DONE), CheckIn(d(2), DONE), CheckIn(d(3), PARTLY), CheckIn(d(4), NOT_DONE)]
    result = adherence(Schedule.daily(d(1)), checkins, today=d(7), days=7)
    assert (result.window_start, result.window_end) == (d(1), d(7))
    assert (result.scheduled, result.done, result.partly, result.missed, result.pending) == (6, 2, 1, 3, 1)
    assert result.earned == pytest.approx(2.5)
    assert result.rate == pytest.approx(2.5 / 6)


def test_partly_credit_is_configurable() -> None:
    checkins = [CheckIn(d(1), PARTLY), CheckIn(d(2), PARTLY)]
    schedule = Schedule.daily(d(1))
    assert adherence(schedule, checkins, today=d(2), days=2).rate == pytest.approx(0.5)
    full = adherence(schedule, checkins, today=d(2), days=2, policy=AdherencePolicy(partly_credit=1.0))
    none = adherence(schedule, checkins, today=d(2), days=2, policy=AdherencePolicy(partly_credit=0.0))
    assert (full.rate, none.rate) == (pytest.approx(1.0), pytest.approx(0.0))
    with pytest.raises(ScheduleError, match="partly_credit"):
        AdherencePolicy(partly_credit=1.5)


def test_today_counts_once_checked_in_but_never_as_missed() -> None:
    schedule = Schedule.daily(d(1))
    before = adherence(schedule, [CheckIn(d(1), DONE)], today=d(2), days=2)
    assert (before.scheduled, before.pending, before.rate) == (1, 1, 1.0)
    after = adherence(schedule, [CheckIn(d(1), DONE), CheckIn(d(2), DONE)], today=d(2), days=2)
    assert (after.scheduled, after.pending, after.rate) == (2, 0, 1.0)
    # A not-done check-in today is still not a miss: the day is not over.
    not_yet = adherence(schedule, [CheckIn(d(1), DONE), CheckIn(d(2), NOT_DONE)], today=d(2), days=2)
    assert (not_yet.scheduled, not_yet.missed, not_yet.pending) == (1, 0, 1)


def test_off_days_are_not_in_the_denominator() -> None:
    schedule = Schedule.on_weekdays(["mon", "wed", "fri"], d(1))
    checkins = [CheckIn(day, DONE) for day in (d(1), d(3), d(5), d(8), d(10), d(12))]
    result = adherence(schedule, checkins, today=d(14), days=14)
    assert (result.scheduled, result.rate) == (6, 1.0)


def test_paused_days_and_days_before_start_are_excluded() -> None:
    schedule = Schedule.daily(d(10))
    pauses = [Pause(d(12), d(15), "illness")]
    checkins = [CheckIn(day, DONE) for day in (d(10), d(11), d(16), d(17))]
    result = adherence(schedule, checkins, pauses, today=d(18), days=30)
    # Window Dec 20..Jan 18; the habit exists from Jan 10; Jan 12-15 paused; Jan 18 is today.
    assert (result.scheduled, result.paused, result.pending, result.rate) == (4, 4, 1, 1.0)


def test_no_scheduled_occurrence_gives_no_rate() -> None:
    result = adherence(Schedule.daily(d(20)), [], today=d(10), days=7)
    assert (result.scheduled, result.rate) == (0, None)
    with pytest.raises(ScheduleError, match="at least one day"):
        adherence(Schedule.daily(d(1)), [], today=d(10), days=0)


def test_times_per_week_does_not_penalise_off_days() -> None:
    # 3 times a week, done Mon/Wed/Fri in each of two ISO weeks; the other 8 days are simply off.
    schedule = Schedule.per_week(3, d(1))
    checkins = [CheckIn(day, DONE) for day in (d(1), d(3), d(5), d(8), d(10), d(12))]
    result = adherence(schedule, checkins, today=d(15), days=15)
    assert result.unit is Unit.WEEK
    # Week of Jan 15 has no check-in yet and is not over: pending, not missed.
    assert (result.scheduled, result.earned, result.missed, result.pending) == (6, 6.0, 0, 1)
    assert result.rate == 1.0
    # The same six check-ins under a daily schedule would be 6 of 14 finished days.
    daily = adherence(Schedule.daily(d(1)), checkins, today=d(15), days=15)
    assert daily.rate == pytest.approx(6 / 14)


def test_times_per_week_credits_partly_and_caps_extra_days() -> None:
    schedule = Schedule.per_week(2, d(1))
    checkins = [
        CheckIn(d(1), DONE),
        CheckIn(d(2), DONE),
        CheckIn(d(3), DONE),  # 3 of 2: capped at 2
        CheckIn(d(8), DONE),
        CheckIn(d(9), PARTLY),  # met only with a partly day: earns 1.5 of 2
        CheckIn(d(15), PARTLY),  # missed week: earns 0.5 of 2
    ]
    result = adherence(schedule, checkins, today=d(22), days=22)
    assert (result.scheduled, result.missed, result.pending) == (6, 1, 1)
    assert result.earned == pytest.approx(2 + 1.5 + 0.5)


def test_week_window_counts_whole_weeks_it_overlaps() -> None:
    # A 7-day window ending on a Wednesday touches last week and this week; last week counts whole,
    # including the check-ins before the window started.
    schedule = Schedule.per_week(2, d(1))
    checkins = [CheckIn(d(8), DONE), CheckIn(d(9), DONE)]
    result = adherence(schedule, checkins, today=d(17), days=7)
    assert result.window_start == d(11)
    assert (result.scheduled, result.earned, result.pending) == (2, 2.0, 1)


def test_windows_of_7_30_90_days() -> None:
    schedule = Schedule.daily(date(2023, 10, 1))
    today = d(31)
    # Done every day except every 4th day (counted back from yesterday).
    checkins = [CheckIn(today - timedelta(days=k), DONE) for k in range(1, 200) if k % 4 != 0]
    result = adherence_windows(schedule, checkins, today=today)
    assert sorted(result) == [7, 30, 90]
    assert (result[7].scheduled, result[7].done) == (6, 5)  # k=1..6, k=4 missed
    assert (result[30].scheduled, result[30].done) == (29, 22)  # 7 multiples of 4 in 1..29
    assert (result[90].scheduled, result[90].done) == (89, 67)  # 22 multiples of 4 in 1..89
