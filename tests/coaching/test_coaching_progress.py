"""Goal progress figures and the Goal.achievementStatus rule (one test per code, plus transitions)."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest

from fhir_ecr.coaching import (
    ACHIEVEMENT_SYSTEM,
    AchievementStatus,
    Comparator,
    GoalError,
    GoalTarget,
    Measurement,
    ProgressPolicy,
    SlopeMethod,
    goal_progress,
    least_squares_slope,
    theil_sen_slope,
)

JAN1 = date(2024, 1, 1)


def weekly(*values: float, start: date = JAN1) -> list[Measurement]:
    return [Measurement(start + timedelta(days=7 * i), v) for i, v in enumerate(values)]


# Steps per day (weekly average) towards "at least 8000": rises, meets, holds, then slips.
STEPS = weekly(5000, 5600, 6200, 6800, 7400, 8000, 8100, 8200, 7000)
STEPS_TARGET = GoalTarget.at_least(8000, due=date(2024, 12, 31))


def progress_after(count: int):  # type: ignore[no-untyped-def]
    return goal_progress(STEPS_TARGET, STEPS[:count], today=STEPS[count - 1].when)


# --- status transitions ---------------------------------------------------------------------------------


def test_status_transitions_over_a_real_looking_series() -> None:
    assert (progress_after(2).status, progress_after(2).rule) == (AchievementStatus.IN_PROGRESS, "R7")
    assert progress_after(4).status is AchievementStatus.IMPROVING
    assert progress_after(6).status is AchievementStatus.ACHIEVED
    assert progress_after(8).status is AchievementStatus.SUSTAINING
    slipped = progress_after(9)
    # Last 28 days: 8000, 8100, 8200, 7000. Theil-Sen slope = median of the six pairwise slopes
    # = (-47.6 + 14.3) / 2 = -16.7/day, so -350 over 21 days; noise = mean MR (100, 100, 1200) / 1.128
    # = 413.7. |-350| <= 413.7: the trend is flat.
    assert (slipped.status, slipped.rule) == (AchievementStatus.NO_CHANGE, "R8")
    assert slipped.ever_met and not slipped.met and slipped.achieved_on is None
    assert slipped.slope_per_day == pytest.approx((-1000 / 21 + 100 / 7) / 2)
    assert slipped.noise_threshold == pytest.approx(1400 / 3 / 1.128)


def test_improving_figures_and_projection() -> None:
    p = progress_after(4)  # 5000, 5600, 6200, 6800 on Jan 1..22
    assert (p.rule, p.baseline, p.change, p.distance) == ("R9", 5000, 1800, 1200)
    assert p.percent_of_way == pytest.approx(60.0)
    assert p.slope_per_day == pytest.approx(600 / 7)
    assert p.trend_change == pytest.approx(1800)
    # 1200 steps to go at 600/week: two weeks after Jan 22, which is when the series reaches 8000.
    assert p.projected_date == date(2024, 2, 5) == STEPS[5].when


def test_achieved_then_sustaining_by_count() -> None:
    achieved = progress_after(6)
    assert (achieved.rule, achieved.met, achieved.achieved_on, achieved.distance) == (
        "R3",
        True,
        STEPS[5].when,
        0,
    )
    assert achieved.percent_of_way == 100.0 and achieved.projected_date is None
    sustaining = progress_after(8)
    assert (sustaining.rule, sustaining.achieved_on) == ("R2", STEPS[5].when)


def test_sustaining_by_days() -> None:
    series = [Measurement(JAN1, 9000), Measurement(date(2024, 2, 1), 9100)]
    target = GoalTarget.at_least(8000)
    assert goal_progress(target, series, today=date(2024, 2, 1)).status is AchievementStatus.ACHIEVED
    policy = ProgressPolicy(sustain_days=28)
    assert (
        goal_progress(target, series, today=date(2024, 2, 1), policy=policy).status
        is AchievementStatus.SUSTAINING
    )


def test_worsening_has_no_projection() -> None:
    target = GoalTarget.at_most(80, due=date(2024, 6, 1))
    p = goal_progress(target, weekly(90, 90.5, 91, 91.5), today=date(2024, 1, 22))
    assert (p.status, p.rule, p.projected_date) == (AchievementStatus.WORSENING, "R10", None)
    assert p.percent_of_way == pytest.approx(-15.0)


def test_noise_threshold_turns_a_small_trend_into_no_change() -> None:
    target = GoalTarget.at_most(80)
    series = weekly(90, 89.8, 89.6, 89.4)  # -0.6 kg over three weeks
    assert goal_progress(target, series, today=date(2024, 1, 22)).status is AchievementStatus.IMPROVING
    policy = ProgressPolicy(noise_threshold=1.0)  # the scale is only good to about a kilogram
    flat = goal_progress(target, series, today=date(2024, 1, 22), policy=policy)
    assert (flat.status, flat.projected_date) == (AchievementStatus.NO_CHANGE, None)


def test_not_achieved_when_past_due_with_progress() -> None:
    target = GoalTarget.at_most(80, due=date(2024, 3, 1))
    series = [Measurement(JAN1, 90), Measurement(date(2024, 2, 1), 87), Measurement(date(2024, 2, 26), 84)]
    p = goal_progress(target, series, today=date(2024, 3, 10))
    assert (p.status, p.rule, p.percent_of_way) == (AchievementStatus.NOT_ACHIEVED, "R4", pytest.approx(60.0))
    # On the due date itself the goal is still being sought.
    assert goal_progress(target, series, today=date(2024, 3, 1)).rule != "R4"


def test_no_progress_when_past_due_with_little_progress() -> None:
    target = GoalTarget.at_most(80, due=date(2024, 3, 1))
    series = [Measurement(JAN1, 90), Measurement(date(2024, 2, 26), 89.5)]
    p = goal_progress(target, series, today=date(2024, 3, 10))
    assert (p.status, p.rule, p.percent_of_way) == (AchievementStatus.NO_PROGRESS, "R5", pytest.approx(5.0))
    custom = goal_progress(
        target, series, today=date(2024, 3, 10), policy=ProgressPolicy(no_progress_below=5)
    )
    assert custom.status is AchievementStatus.NOT_ACHIEVED


def test_no_progress_after_regressing_from_a_baseline_that_met_the_target() -> None:
    target = GoalTarget.at_most(80, due=date(2024, 3, 1))
    p = goal_progress(
        target, [Measurement(JAN1, 79), Measurement(date(2024, 2, 20), 82)], today=date(2024, 3, 2)
    )
    assert (p.status, p.percent_of_way, p.ever_met) == (AchievementStatus.NO_PROGRESS, None, True)


def test_not_attainable_when_the_needed_rate_exceeds_the_plausible_one() -> None:
    target = GoalTarget.at_most(80, due=date(2024, 2, 1))
    series = weekly(92, 91, 90)  # latest 90 on Jan 15: 10 kg in 17 days is 0.59 kg/day
    policy = ProgressPolicy(max_rate_per_day=1 / 7)  # about 1 kg a week
    p = goal_progress(target, series, today=date(2024, 1, 16), policy=policy)
    assert (p.status, p.rule) == (AchievementStatus.NOT_ATTAINABLE, "R6")
    lenient = goal_progress(
        target, series, today=date(2024, 1, 16), policy=ProgressPolicy(max_rate_per_day=1.0)
    )
    assert lenient.status is AchievementStatus.IMPROVING


def test_in_progress_without_measurements() -> None:
    p = goal_progress(STEPS_TARGET, [], today=JAN1)
    assert (p.status, p.rule, p.latest, p.baseline) == (AchievementStatus.IN_PROGRESS, "R1", None, None)


def test_in_progress_when_recent_evidence_is_thin() -> None:
    # Plenty of old data, but only two points in the last 28 days.
    series = [
        *weekly(5000, 5500, 6000, 6500),
        Measurement(date(2024, 3, 1), 7000),
        Measurement(date(2024, 3, 8), 7200),
    ]
    p = goal_progress(STEPS_TARGET, series, today=date(2024, 3, 8))
    assert (p.status, p.rule, p.trend_points, p.slope_per_day) == (
        AchievementStatus.IN_PROGRESS,
        "R7",
        2,
        None,
    )
    # Several readings on a single day are not a trend either.
    same_day = [Measurement(JAN1, v) for v in (5000, 5100, 5200)]
    assert goal_progress(STEPS_TARGET, same_day, today=JAN1).rule == "R7"


def test_measurements_after_today_are_ignored() -> None:
    p = goal_progress(STEPS_TARGET, STEPS, today=STEPS[3].when)
    assert p.latest == STEPS[3]


# --- figures ----------------------------------------------------------------------------------------------


def test_baseline_options() -> None:
    series = [
        Measurement(JAN1, 10),
        Measurement(date(2024, 1, 2), 12),
        Measurement(date(2024, 1, 3), 14),
        Measurement(date(2024, 2, 9), 20),
    ]
    target = GoalTarget.at_least(30)
    assert goal_progress(target, series, today=date(2024, 2, 9)).baseline == 10
    three = goal_progress(target, series, today=date(2024, 2, 9), policy=ProgressPolicy(baseline_points=3))
    assert (three.baseline, three.change) == (12, 8)
    windowed = ProgressPolicy(baseline_points=3, baseline_window_days=2)
    assert goal_progress(target, series, today=date(2024, 2, 9), policy=windowed).baseline == 11
    # Asking for more baseline points than exist uses them all.
    assert (
        goal_progress(
            target, series[:2], today=date(2024, 2, 9), policy=ProgressPolicy(baseline_points=5)
        ).baseline
        == 11
    )


@pytest.mark.parametrize(
    ("target", "value", "direction", "distance"),
    [
        (GoalTarget.at_least(8000), 6500, 1, 1500),
        (GoalTarget.at_least(8000), 8000, 0, 0),
        (GoalTarget.at_most(80), 84.5, -1, 4.5),
        (GoalTarget.at_most(80), 79, 0, 0),
        (GoalTarget.between(4.0, 5.6), 7.0, -1, 1.4),
        (GoalTarget.between(4.0, 5.6), 3.0, 1, 1.0),
        (GoalTarget.between(4.0, 5.6), 5.6, 0, 0),
    ],
)
def test_target_direction_and_distance(
    target: GoalTarget, value: float, direction: int, distance: float
) -> None:
    assert target.needed_direction(value) == direction
    assert target.distance(value) == pytest.approx(distance)
    assert target.is_met(value) is (direction == 0)


def test_range_target_improving_from_above() -> None:
    target = GoalTarget.between(120, 130)
    p = goal_progress(target, weekly(150, 146, 142, 138), today=date(2024, 1, 22))
    assert (p.status, p.distance, p.percent_of_way) == (AchievementStatus.IMPROVING, 8, pytest.approx(60.0))
    assert p.projected_date == date(2024, 1, 22) + timedelta(days=14)


def test_least_squares_option() -> None:
    policy = ProgressPolicy(slope_method=SlopeMethod.LEAST_SQUARES)
    p = goal_progress(STEPS_TARGET, STEPS[:4], today=STEPS[3].when, policy=policy)
    assert p.slope_per_day == pytest.approx(600 / 7)


def test_theil_sen_resists_an_outlier_that_least_squares_follows() -> None:
    points = [(0.0, 0.0), (1.0, 2.0), (2.0, 4.0), (3.0, 6.0), (4.0, 8.0), (5.0, 40.0)]
    assert theil_sen_slope(points) == pytest.approx(2.0)
    assert least_squares_slope(points) > 5
    assert least_squares_slope([(0.0, 1.0), (1.0, 3.0), (2.0, 5.0)]) == pytest.approx(2.0)
    # Pairs sharing an x are skipped, not divided by zero: the slopes left are 2 and 0.
    assert theil_sen_slope([(0.0, 1.0), (0.0, 5.0), (2.0, 5.0)]) == pytest.approx(1.0)
    with pytest.raises(GoalError):
        theil_sen_slope([(1.0, 1.0), (1.0, 2.0)])
    with pytest.raises(GoalError):
        least_squares_slope([(1.0, 1.0)])


def test_achievement_coding() -> None:
    assert AchievementStatus.NOT_ATTAINABLE.coding() == {
        "system": ACHIEVEMENT_SYSTEM,
        "code": "not-attainable",
        "display": "Not Attainable",
    }
    assert ACHIEVEMENT_SYSTEM == "http://terminology.hl7.org/CodeSystem/goal-achievement"
    assert {s.value for s in AchievementStatus} == {
        "in-progress",
        "improving",
        "worsening",
        "no-change",
        "achieved",
        "sustaining",
        "not-achieved",
        "no-progress",
        "not-attainable",
    }
    assert AchievementStatus.IN_PROGRESS.display == "In Progress"


@pytest.mark.parametrize(
    "build",
    [
        lambda: GoalTarget(Comparator.AT_LEAST),
        lambda: GoalTarget(Comparator.AT_MOST, low=3),
        lambda: GoalTarget.between(5, 4),
        lambda: GoalTarget.at_least(float("nan")),
        lambda: Measurement(datetime(2024, 1, 1, 8, 0), 1.0),
        lambda: Measurement(JAN1, float("inf")),
        lambda: ProgressPolicy(baseline_points=0),
        lambda: ProgressPolicy(min_trend_points=1),
        lambda: ProgressPolicy(sustain_days=0),
        lambda: ProgressPolicy(noise_threshold=-1),
        lambda: ProgressPolicy(max_rate_per_day=0),
    ],
)
def test_invalid_inputs_are_refused(build) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(GoalError):
        build()
