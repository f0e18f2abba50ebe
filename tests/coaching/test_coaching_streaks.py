"""Streaks: counting, repair, pause, and their edge cases."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date

import pytest

from fhir_ecr.coaching import (
    CheckIn,
    CheckInStatus,
    Pause,
    Schedule,
    ScheduleError,
    StreakPolicy,
    Unit,
    Weekday,
    streaks,
)

DONE, PARTLY = CheckInStatus.DONE, CheckInStatus.PARTLY
NO_REPAIR = StreakPolicy(max_repairs=0)


def d(day: int, month: int = 1) -> date:
    return date(2024, month, day)  # 2024-01-01 is a Monday


def done_on(*days: int, month: int = 1) -> list[CheckIn]:
    return [CheckIn(d(day, month), DONE) for day in days]


def days(values: Iterable[date]) -> list[int]:
    return [v.day for v in values]


def test_consecutive_days_make_a_current_streak() -> None:
    result = streaks(Schedule.daily(d(1)), done_on(1, 2, 3, 4), today=d(5), policy=NO_REPAIR)
    assert result.unit is Unit.DAY
    assert result.current is not None
    assert (result.current_length, result.current.start, result.current.end) == (4, d(1), d(4))
    assert result.best == result.current


def test_today_without_checkin_does_not_break_the_streak() -> None:
    result = streaks(Schedule.daily(d(1)), done_on(1, 2, 3), today=d(4), policy=NO_REPAIR)
    assert result.current_length == 3
    # ... but yesterday without a check-in does.
    result = streaks(Schedule.daily(d(1)), done_on(1, 2, 3), today=d(5), policy=NO_REPAIR)
    assert (result.current_length, result.best_length) == (0, 3)
    assert result.current is None


def test_today_done_extends_the_streak() -> None:
    assert streaks(Schedule.daily(d(1)), done_on(1, 2, 3, 4), today=d(4)).current_length == 4


def test_weekday_habit_counts_scheduled_days_only() -> None:
    schedule = Schedule.on_weekdays(["mon", "wed", "fri"], d(1))
    result = streaks(schedule, done_on(1, 3, 5, 8, 10), today=d(11), policy=NO_REPAIR)
    # Off days (Tue, Thu, weekend) neither break nor count.
    assert result.current_length == 5


def test_one_miss_per_week_is_repaired_and_reported_but_not_counted() -> None:
    result = streaks(Schedule.daily(d(1)), done_on(1, 2, 4, 5), today=d(6))
    assert result.current is not None
    assert result.current_length == 4  # the repaired Jan 3 does not add to the count
    assert days(result.current.repaired) == [3]
    assert (result.current.start, result.current.end) == (d(1), d(5))


def test_second_miss_in_the_same_iso_week_breaks_the_streak() -> None:
    # Misses on Wed Jan 3 and Fri Jan 5: the second exceeds the one-per-week budget.
    result = streaks(Schedule.daily(d(1)), done_on(1, 2, 4, 6, 7), today=d(8))
    assert result.current is not None
    assert (result.current_length, result.current.start) == (2, d(6))
    assert result.best is not None
    assert (result.best_length, days(result.best.repaired)) == (3, [3])


def test_misses_on_sunday_and_monday_fall_in_different_iso_weeks() -> None:
    # Sun Jan 7 and Mon Jan 8 are back to back but in two ISO weeks: both are repaired.
    result = streaks(Schedule.daily(d(1)), done_on(1, 2, 3, 4, 5, 6, 9, 10), today=d(11))
    assert result.current is not None
    assert result.current_length == 8
    assert days(result.current.repaired) == [7, 8]


def test_week_start_is_configurable_for_the_repair_budget() -> None:
    # With Sunday-start weeks, Sun Jan 7 and Mon Jan 8 share a week: the second miss breaks.
    schedule = Schedule.daily(d(1), week_start=Weekday.SUN)
    result = streaks(schedule, done_on(1, 2, 3, 4, 5, 6, 9, 10), today=d(11))
    assert (result.current_length, result.best_length) == (2, 6)
    # Jan 7's repair did not save the streak, so the finished streak ends on Jan 6 without it.
    assert result.best is not None and result.best.repaired == () and result.best.end == d(6)


def test_repair_budget_is_configurable() -> None:
    checkins = done_on(1, 2, 4, 6, 7)  # misses Jan 3 and Jan 5, same week
    two = streaks(Schedule.daily(d(1)), checkins, today=d(8), policy=StreakPolicy(max_repairs=2))
    assert two.current is not None
    assert (two.current_length, days(two.current.repaired)) == (5, [3, 5])
    none = streaks(Schedule.daily(d(1)), done_on(1, 2, 4), today=d(5), policy=NO_REPAIR)
    assert (none.current_length, none.best_length) == (1, 2)
    with pytest.raises(ScheduleError):
        StreakPolicy(max_repairs=-1)


def test_trailing_repair_keeps_the_current_streak_alive() -> None:
    # Yesterday missed, today not yet checked in: the streak survives on its repair.
    result = streaks(Schedule.daily(d(1)), done_on(1, 2, 3), today=d(5))
    assert result.current is not None
    assert (result.current_length, result.current.end, days(result.current.repaired)) == (3, d(3), [4])
    # The best streak reports only repairs inside its kept span.
    assert result.best is not None and result.best.repaired == ()


def test_a_miss_with_no_running_streak_uses_no_repair() -> None:
    # Jan 1 missed before anything was kept: nothing to protect, so Jan 3's miss can still be repaired.
    result = streaks(Schedule.daily(d(1)), done_on(2, 4), today=d(5))
    assert result.current is not None
    assert (result.current_length, days(result.current.repaired)) == (2, [3])


def test_repair_budget_resets_with_a_new_streak() -> None:
    # Jan 2 repaired, Jan 3 breaks; a new streak starts Jan 4 in the same week with a fresh budget.
    result = streaks(Schedule.daily(d(1)), done_on(1, 4, 6), today=d(7))
    assert result.current is not None
    assert (result.current_length, result.current.start, days(result.current.repaired)) == (2, d(4), [5])


def test_pause_neither_breaks_nor_inflates_the_streak() -> None:
    pause = Pause(d(4), d(10), "vacation")
    checkins = done_on(1, 2, 3, 11, 12)
    result = streaks(Schedule.daily(d(1)), checkins, [pause], today=d(13), policy=NO_REPAIR)
    assert result.current_length == 5  # 3 before + 2 after; the 7 paused days count for nothing
    assert result.current is not None and result.current.repaired == ()


def test_checkins_on_paused_days_do_not_inflate_the_streak() -> None:
    checkins = done_on(1, 2, 3, 4, 5)
    result = streaks(Schedule.daily(d(1)), checkins, [Pause(d(3), d(4))], today=d(6), policy=NO_REPAIR)
    assert result.current_length == 3


def test_an_open_pause_freezes_the_current_streak() -> None:
    result = streaks(
        Schedule.daily(d(1)), done_on(1, 2, 3), [Pause(d(4), None, "illness")], today=d(20), policy=NO_REPAIR
    )
    assert result.current_length == 3


def test_partly_keeps_the_streak_by_default_and_can_be_made_a_miss() -> None:
    checkins = [*done_on(1, 2), CheckIn(d(3), PARTLY), *done_on(4)]
    assert streaks(Schedule.daily(d(1)), checkins, today=d(5), policy=NO_REPAIR).current_length == 4
    strict = StreakPolicy(max_repairs=1, partly_keeps_streak=False)
    result = streaks(Schedule.daily(d(1)), checkins, today=d(5), policy=strict)
    assert result.current is not None
    assert (result.current_length, days(result.current.repaired)) == (3, [3])


def test_best_streak_prefers_the_more_recent_on_a_tie() -> None:
    result = streaks(Schedule.daily(d(1)), done_on(1, 2, 5, 6), today=d(8), policy=NO_REPAIR)
    assert result.best is not None
    assert (result.best_length, result.best.start) == (2, d(5))


def test_no_checkins_no_streaks() -> None:
    result = streaks(Schedule.daily(d(1)), [], today=d(10))
    assert (result.current, result.best, result.current_length, result.best_length) == (None, None, 0, 0)


def test_weekly_habit_streak_counts_weeks() -> None:
    schedule = Schedule.per_week(2, d(1))
    # Weeks of Jan 1, 8, 15 met (any two days); the current week (Jan 22) has one so far.
    checkins = done_on(1, 5, 9, 10, 20, 21, 23)
    result = streaks(schedule, checkins, today=d(24), policy=NO_REPAIR)
    assert result.unit is Unit.WEEK
    assert result.current is not None
    assert (result.current_length, result.current.start, result.current.end) == (3, d(1), d(15))


def test_weekly_habit_repair_window() -> None:
    schedule = Schedule.per_week(1, d(1))
    # Met weeks: Jan 1, 15, 22 and Feb 5; missed: Jan 8 and Jan 29 (three weeks apart).
    checkins = [*done_on(2, 16, 23), CheckIn(d(6, 2), DONE)]
    default = streaks(schedule, checkins, today=d(7, 2))
    # Default: one repaired week per 4-week window; Jan 29's window (Jan 8..29) already holds Jan 8.
    assert (default.current_length, default.best_length) == (1, 3)
    assert default.current is not None and default.current.start == d(5, 2)
    assert default.best is not None and days(default.best.repaired) == [8]
    assert (default.best.start, default.best.end) == (d(1), d(22))
    # A 2-week window (Jan 22..29) holds no earlier repair, so both misses are repaired.
    lenient = streaks(schedule, checkins, today=d(7, 2), policy=StreakPolicy(repair_window_weeks=2))
    assert lenient.current is not None
    assert (lenient.current_length, days(lenient.current.repaired)) == (4, [8, 29])


def test_weekly_habit_paused_week_is_skipped() -> None:
    schedule = Schedule.per_week(2, d(1))
    checkins = done_on(1, 2, 15, 16)
    result = streaks(schedule, checkins, [Pause(d(8), d(14), "vacation")], today=d(22), policy=NO_REPAIR)
    assert result.current_length == 2
