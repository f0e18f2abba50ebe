"""Schedules, local dates, FHIR Timing mapping and the occurrence ledger."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from fhir_ecr.coaching import (
    CheckIn,
    CheckInStatus,
    OccurrenceState,
    Pause,
    Schedule,
    ScheduleError,
    ScheduleKind,
    Unit,
    Weekday,
    due_dates,
    local_date,
    occurrences,
    schedule_from_timing,
    week_bounds,
)

MON = date(2024, 1, 1)  # 2024-01-01 is a Monday


def d(day: int, month: int = 1) -> date:
    return date(2024, month, day)


# --- schedules ----------------------------------------------------------------------------------------


def test_daily_schedule_is_due_every_day_between_start_and_end() -> None:
    schedule = Schedule.daily(d(3), d(6))
    assert due_dates(schedule, d(1), d(10)) == [d(3), d(4), d(5), d(6)]


def test_weekday_schedule_only_on_listed_days() -> None:
    schedule = Schedule.on_weekdays(["mon", "wed", "fri"], MON)
    assert due_dates(schedule, d(1), d(14)) == [d(1), d(3), d(5), d(8), d(10), d(12)]
    assert all(day.weekday() in (0, 2, 4) for day in due_dates(schedule, d(1), d(31)))


def test_weekday_schedule_accepts_enum_members() -> None:
    schedule = Schedule.on_weekdays([Weekday.SAT, Weekday.SUN], MON)
    assert due_dates(schedule, d(1), d(8)) == [d(6), d(7)]


def test_every_n_days_is_anchored_at_start() -> None:
    schedule = Schedule.every_n_days(3, d(2))
    assert due_dates(schedule, d(1), d(12)) == [d(2), d(5), d(8), d(11)]
    # Querying from the middle keeps the phase of the anchor.
    assert due_dates(schedule, d(6), d(12)) == [d(8), d(11)]


def test_times_per_week_has_no_individually_due_days() -> None:
    schedule = Schedule.per_week(3, MON)
    assert schedule.unit is Unit.WEEK
    assert due_dates(schedule, d(1), d(31)) == []
    assert not schedule.is_due(d(3))


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: Schedule.daily(d(5), d(4)), "ends"),
        (lambda: Schedule.on_weekdays([], MON), "at least one day"),
        (lambda: Schedule.per_week(0, MON), "1..7"),
        (lambda: Schedule.per_week(8, MON), "1..7"),
        (lambda: Schedule.every_n_days(0, MON), "at least 1 day"),
        (lambda: Schedule.on_weekdays(["funday"], MON), "unknown day"),
        (lambda: Schedule.daily(datetime(2024, 1, 1, 8, 0)), "local date"),  # type: ignore[arg-type]
    ],
)
def test_invalid_schedules_are_refused(build, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ScheduleError, match=message):
        build()


@pytest.mark.parametrize(
    ("day", "week_start", "expected"),
    [
        (d(3), Weekday.MON, (d(1), d(7))),  # Wednesday, ISO week
        (d(7), Weekday.MON, (d(1), d(7))),  # Sunday ends the ISO week
        (d(7), Weekday.SUN, (d(7), d(13))),  # ... but starts a Sunday week
        (d(6), Weekday.SUN, (date(2023, 12, 31), d(6))),
    ],
)
def test_week_bounds_follow_the_configured_week_start(day: date, week_start: Weekday, expected) -> None:  # type: ignore[no-untyped-def]
    assert week_bounds(day, week_start) == expected


# --- local dates ----------------------------------------------------------------------------------------


def test_local_date_near_midnight_utc() -> None:
    # 23:30 UTC on Jan 1 is already Jan 2 in Berlin and still Jan 1 in New York.
    instant = datetime(2024, 1, 1, 23, 30, tzinfo=UTC)
    assert local_date(instant, "Europe/Berlin") == d(2)
    assert local_date(instant, "America/New_York") == d(1)
    assert local_date(instant, "UTC") == d(1)


def test_local_date_across_spring_forward() -> None:
    # New York moves from EST (UTC-5) to EDT (UTC-4) at 2024-03-10 02:00 local.
    zone = "America/New_York"
    assert local_date(datetime(2024, 3, 10, 4, 59, tzinfo=UTC), zone) == date(2024, 3, 9)
    assert local_date(datetime(2024, 3, 10, 5, 0, tzinfo=UTC), zone) == date(2024, 3, 10)
    # The next midnight comes an hour earlier in UTC: 04:00Z is 00:00 EDT. A fixed -5 h offset would
    # still say March 10 here.
    assert local_date(datetime(2024, 3, 11, 3, 59, tzinfo=UTC), zone) == date(2024, 3, 10)
    assert local_date(datetime(2024, 3, 11, 4, 0, tzinfo=UTC), zone) == date(2024, 3, 11)


def test_local_date_across_fall_back() -> None:
    # New York goes back to EST at 2024-11-03 02:00 local; that day has 25 hours.
    zone = "America/New_York"
    assert local_date(datetime(2024, 11, 3, 3, 59, tzinfo=UTC), zone) == date(2024, 11, 2)
    assert local_date(datetime(2024, 11, 3, 4, 0, tzinfo=UTC), zone) == date(2024, 11, 3)
    # 04:30Z on Nov 4 is 23:30 EST on Nov 3 (a fixed -4 h offset would give 00:30 on Nov 4).
    assert local_date(datetime(2024, 11, 4, 4, 30, tzinfo=UTC), zone) == date(2024, 11, 3)
    assert local_date(datetime(2024, 11, 4, 5, 0, tzinfo=UTC), zone) == date(2024, 11, 4)


def test_local_date_converts_from_any_offset_and_across_the_date_line() -> None:
    # 10:00 in Tokyo (+09:00) on Jan 2 is 01:00 UTC, which is 14:00 on Jan 2 in Auckland (+13:00, NZDT)
    # and 15:00 on Jan 1 in Honolulu (-10:00).
    instant = datetime(2024, 1, 2, 10, 0, tzinfo=timezone(timedelta(hours=9)))
    assert local_date(instant, "Pacific/Auckland") == d(2)
    assert local_date(instant, "Pacific/Honolulu") == d(1)


def test_local_date_refuses_naive_datetimes_and_unknown_zones() -> None:
    with pytest.raises(ScheduleError, match="aware"):
        local_date(datetime(2024, 1, 1, 12, 0), "UTC")
    with pytest.raises(ScheduleError, match="time zone"):
        local_date(datetime(2024, 1, 1, 12, 0, tzinfo=UTC), "Mars/Olympus_Mons")


def test_checkins_from_instants_land_on_the_patients_local_day() -> None:
    # A late-evening walk in Los Angeles is stored in UTC as the next day; the streak must still see
    # consecutive local days.
    instants = [datetime(2024, 1, day, 6, 30, tzinfo=UTC) for day in (2, 3, 4)]  # 22:30 PST the day before
    checkins = [CheckIn(local_date(i, "America/Los_Angeles"), CheckInStatus.DONE) for i in instants]
    assert [c.day for c in checkins] == [d(1), d(2), d(3)]
    occs = occurrences(Schedule.daily(d(1)), checkins, start=d(1), end=d(3), today=d(3))
    assert [o.state for o in occs] == [OccurrenceState.DONE] * 3


# --- FHIR Timing.repeat ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("repeat", "kind", "detail"),
    [
        ({"frequency": 1, "period": 1, "periodUnit": "d"}, ScheduleKind.DAILY, None),
        ({"frequency": 3, "period": 1, "periodUnit": "d"}, ScheduleKind.DAILY, None),
        ({"frequency": 2, "period": 8, "periodUnit": "h"}, ScheduleKind.DAILY, None),
        ({"frequency": 1, "period": 48, "periodUnit": "h"}, ScheduleKind.EVERY_N_DAYS, 2),
        ({"frequency": 1, "period": 3, "periodUnit": "d"}, ScheduleKind.EVERY_N_DAYS, 3),
        ({"frequency": 1, "period": 2, "periodUnit": "wk"}, ScheduleKind.EVERY_N_DAYS, 14),
        ({"frequency": 3, "period": 1, "periodUnit": "wk"}, ScheduleKind.TIMES_PER_WEEK, 3),
        ({"frequency": 3, "period": 1.0, "periodUnit": "wk"}, ScheduleKind.TIMES_PER_WEEK, 3),
        ({"frequency": 7, "period": 1, "periodUnit": "wk"}, ScheduleKind.DAILY, None),
        ({"dayOfWeek": ["mon", "thu"]}, ScheduleKind.WEEKDAYS, {Weekday.MON, Weekday.THU}),
        (
            {"frequency": 2, "period": 1, "periodUnit": "wk", "dayOfWeek": ["tue", "sat"]},
            ScheduleKind.WEEKDAYS,
            {Weekday.TUE, Weekday.SAT},
        ),
    ],
)
def test_schedule_from_timing(repeat: dict[str, object], kind: ScheduleKind, detail: object) -> None:
    schedule = schedule_from_timing(repeat, start=MON, end=d(31))
    assert schedule.kind is kind
    assert (schedule.start, schedule.end) == (MON, d(31))
    if kind is ScheduleKind.EVERY_N_DAYS:
        assert schedule.interval_days == detail
    elif kind is ScheduleKind.TIMES_PER_WEEK:
        assert schedule.times_per_week == detail
    elif kind is ScheduleKind.WEEKDAYS:
        assert schedule.weekdays == detail


@pytest.mark.parametrize(
    ("repeat", "message"),
    [
        ({"frequency": 1, "period": 1, "periodUnit": "mo"}, "periodUnit"),
        ({"frequency": 2, "period": 3, "periodUnit": "d"}, "not supported"),
        ({"frequency": 2, "period": 2, "periodUnit": "wk"}, "not supported"),
        ({"frequency": 1, "period": 1.5, "periodUnit": "d"}, "whole number"),
        ({"frequency": 0, "period": 1, "periodUnit": "d"}, "whole number"),
        ({"frequency": 1, "period": 36, "periodUnit": "h"}, "whole days"),
        ({"frequency": 1, "period": 1, "periodUnit": "wk", "dayOfWeek": ["mon", "wed"]}, "dayOfWeek"),
        ({"dayOfWeek": ["someday"]}, "unknown day"),
    ],
)
def test_schedule_from_timing_refuses_what_has_no_day_ledger(repeat: dict[str, object], message: str) -> None:
    with pytest.raises(ScheduleError, match=message):
        schedule_from_timing(repeat, start=MON)


# --- check-ins, pauses and the ledger --------------------------------------------------------------------


def test_checkin_status_parses_fhir_style_strings_and_refuses_others() -> None:
    assert CheckIn(d(1), "not-done").status is CheckInStatus.NOT_DONE  # type: ignore[arg-type]
    with pytest.raises(ScheduleError, match="status"):
        CheckIn(d(1), "skipped")  # type: ignore[arg-type]
    with pytest.raises(ScheduleError, match="local date"):
        CheckIn(datetime(2024, 1, 1, 9, 0), CheckInStatus.DONE)


def test_pause_validation_and_open_end() -> None:
    with pytest.raises(ScheduleError, match="before it starts"):
        Pause(d(5), d(4))
    open_pause = Pause(d(5), None, "illness")
    assert open_pause.covers(d(5)) and open_pause.covers(date(2025, 6, 1))
    assert not open_pause.covers(d(4))


def test_day_ledger_states() -> None:
    checkins = [
        CheckIn(d(1), CheckInStatus.DONE),
        CheckIn(d(2), CheckInStatus.PARTLY),
        CheckIn(d(3), CheckInStatus.NOT_DONE),
        CheckIn(d(5), CheckInStatus.DONE),  # paused day: the pause wins
    ]
    occs = occurrences(
        Schedule.daily(d(1)), checkins, [Pause(d(5), d(5), "vacation")], start=d(1), end=d(31), today=d(6)
    )
    assert [(o.start, o.state) for o in occs] == [
        (d(1), OccurrenceState.DONE),
        (d(2), OccurrenceState.PARTLY),
        (d(3), OccurrenceState.MISSED),
        (d(4), OccurrenceState.MISSED),
        (d(5), OccurrenceState.PAUSED),
        (d(6), OccurrenceState.PENDING),  # today is not over
    ]


def test_duplicate_checkins_keep_the_best_outcome() -> None:
    checkins = [
        CheckIn(d(1), CheckInStatus.NOT_DONE),
        CheckIn(d(1), CheckInStatus.DONE),
        CheckIn(d(1), "partly"),  # type: ignore[arg-type]
    ]
    (occ,) = occurrences(Schedule.daily(d(1)), checkins, start=d(1), end=d(1), today=d(2))
    assert occ.state is OccurrenceState.DONE


def test_checkins_after_today_are_ignored() -> None:
    (occ,) = occurrences(
        Schedule.per_week(1, MON), [CheckIn(d(6), CheckInStatus.DONE)], start=d(1), end=d(7), today=d(3)
    )
    assert occ.state is OccurrenceState.PENDING and occ.done == 0


def test_week_ledger_prorates_partial_and_paused_weeks() -> None:
    schedule = Schedule.per_week(3, d(3))  # starts on a Wednesday: 5 days left in the first week
    pauses = [Pause(d(8), d(11), "vacation")]  # Mon-Thu of week 2 paused: 3 days left
    occs = occurrences(schedule, [], pauses, start=d(1), end=d(21), today=d(22))
    # ceil(3 * 5 / 7) = 3 for the first week, ceil(3 * 3 / 7) = 2 for the paused one.
    assert [(o.start, o.required) for o in occs] == [(d(1), 3), (d(8), 2), (d(15), 3)]
    fully_paused = occurrences(schedule, [], [Pause(d(8), d(14))], start=d(8), end=d(14), today=d(22))
    assert [(o.required, o.state) for o in fully_paused] == [(0, OccurrenceState.PAUSED)]


def test_week_is_met_by_any_days_and_pending_until_over() -> None:
    schedule = Schedule.per_week(2, MON)
    done = [CheckIn(d(2), CheckInStatus.DONE)]
    (week,) = occurrences(schedule, done, start=d(1), end=d(7), today=d(7))
    assert week.state is OccurrenceState.PENDING  # Sunday is not over
    (week,) = occurrences(schedule, done, start=d(1), end=d(7), today=d(8))
    assert week.state is OccurrenceState.MISSED
    met = [*done, CheckIn(d(6), CheckInStatus.DONE)]
    (week,) = occurrences(schedule, met, start=d(1), end=d(7), today=d(6))
    assert week.state is OccurrenceState.DONE  # met before the week is over
    with_partly = [*done, CheckIn(d(6), CheckInStatus.PARTLY)]
    (week,) = occurrences(schedule, with_partly, start=d(1), end=d(7), today=d(9))
    assert (week.state, week.done, week.partly) == (OccurrenceState.PARTLY, 1, 1)


def test_week_ends_early_when_its_last_days_are_paused() -> None:
    schedule = Schedule.per_week(1, MON)
    (week,) = occurrences(schedule, [], [Pause(d(6), d(7))], start=d(1), end=d(7), today=d(6))
    # Only Mon-Fri could count and Friday is over: the week is missed on Saturday already.
    assert (week.required, week.state) == (1, OccurrenceState.MISSED)


def test_ledger_respects_schedule_end_and_start() -> None:
    schedule = Schedule.daily(d(5), d(7))
    occs = occurrences(schedule, [], start=d(1), end=d(31), today=d(20))
    assert [o.start for o in occs] == [d(5), d(6), d(7)]
    assert occurrences(schedule, [], start=d(8), end=d(31), today=d(20)) == []
