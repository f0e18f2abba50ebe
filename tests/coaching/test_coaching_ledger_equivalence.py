"""The array ledger (what the service uses) agrees with the plain day-by-day transcription of the rules."""

from __future__ import annotations

import random
from datetime import date, timedelta

import pytest

from fhir_ecr.coaching import (
    AdherencePolicy,
    CheckIn,
    CheckInStatus,
    Pause,
    Schedule,
    StreakPolicy,
    Weekday,
    adherence,
    adherence_windows,
    occurrences,
    streaks,
)
from tests.coaching.reference_ledger import ref_adherence, ref_occurrences, ref_streaks

BASE = date(2024, 1, 1)


def random_case(rnd: random.Random) -> tuple[Schedule, list[CheckIn], list[Pause], date]:
    start = BASE + timedelta(days=rnd.randrange(0, 30))
    end = start + timedelta(days=rnd.randrange(0, 200)) if rnd.random() < 0.3 else None
    week_start = Weekday(rnd.randrange(7)) if rnd.random() < 0.3 else Weekday.MON
    kind = rnd.randrange(4)
    if kind == 0:
        schedule = Schedule.daily(start, end, week_start=week_start)
    elif kind == 1:
        days = rnd.sample(list(Weekday), rnd.randrange(1, 8))
        schedule = Schedule.on_weekdays(days, start, end, week_start=week_start)
    elif kind == 2:
        schedule = Schedule.every_n_days(rnd.randrange(1, 6), start, end, week_start=week_start)
    else:
        schedule = Schedule.per_week(rnd.randrange(1, 8), start, end, week_start=week_start)
    today = start + timedelta(days=rnd.randrange(-5, 160))
    p_done, p_none = rnd.random(), rnd.random() * 0.5
    checkins = []
    for n in range((today - BASE).days + 10):
        day = BASE + timedelta(days=n)
        if rnd.random() < p_none:
            continue
        for _ in range(rnd.choice((1, 1, 1, 2))):  # sometimes two check-ins on one day
            r = rnd.random()
            status = (
                CheckInStatus.DONE
                if r < p_done
                else rnd.choice([CheckInStatus.PARTLY, CheckInStatus.NOT_DONE])
            )
            checkins.append(CheckIn(day, status))
    pauses: list[Pause] = []
    cursor = start + timedelta(days=rnd.randrange(0, 40))
    for _ in range(rnd.randrange(0, 4)):
        length = rnd.randrange(0, 20)
        open_ended = rnd.random() < 0.2
        pauses.append(Pause(cursor, None if open_ended else cursor + timedelta(days=length), "travel"))
        if open_ended:
            break
        cursor += timedelta(days=length + rnd.randrange(1, 30))
    return schedule, checkins, pauses, today


@pytest.mark.parametrize("seed", range(300))
def test_ledger_matches_the_day_by_day_rules(seed: int) -> None:
    rnd = random.Random(seed)
    schedule, checkins, pauses, today = random_case(rnd)
    window_start = today - timedelta(days=rnd.randrange(0, 60))
    assert occurrences(
        schedule, checkins, pauses, start=window_start, end=today, today=today
    ) == ref_occurrences(schedule, checkins, pauses, start=window_start, end=today, today=today)
    policy = AdherencePolicy(partly_credit=rnd.choice([0.0, 0.5, 1.0]))
    windows = adherence_windows(
        schedule, checkins, pauses, today=today, windows=(1, 7, 30, 90), policy=policy
    )
    for days, got in windows.items():
        expected = ref_adherence(schedule, checkins, pauses, today=today, days=days, policy=policy)
        assert got == expected
        assert adherence(schedule, checkins, pauses, today=today, days=days, policy=policy) == expected
    streak_policy = StreakPolicy(
        max_repairs=rnd.randrange(0, 3),
        repair_window_weeks=rnd.randrange(1, 6),
        partly_keeps_streak=rnd.random() < 0.7,
    )
    assert streaks(schedule, checkins, pauses, today=today, policy=streak_policy) == ref_streaks(
        schedule, checkins, pauses, today=today, policy=streak_policy
    )
