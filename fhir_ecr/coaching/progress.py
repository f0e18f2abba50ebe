"""Progress of a measurable goal and its FHIR ``Goal.achievementStatus``.

Input: a :class:`GoalTarget` (at least / at most / within a range, optional due date — FHIR
``Goal.target.detailQuantity`` with its comparator, or ``detailRange``, and ``Goal.target.dueDate``)
and a dated series of :class:`Measurement` values in one unit. Comparators mean what FHIR says
(Quantity.comparator, https://hl7.org/fhir/R4/valueset-quantity-comparator.html): ``>=`` and ``<=`` are
inclusive, ``>`` and ``<`` are **strict** — HbA1c ``< 7 %`` is not met at 7.0 %, ``> 10000`` steps is not met
at 10000 (a strict bound reached exactly is not met, at distance 0). ``detailRange`` bounds are inclusive.

Figures
-------
* **latest** — the last measurement (by date; ties keep input order).
* **baseline** — the mean of the first ``baseline_points`` measurements (default 1: the first value);
  with ``baseline_window_days`` set, only measurements within that many days of the first one are
  eligible, so a late point never leaks into the baseline. ``change = latest - baseline``.
* **distance** — how far the latest value is from the nearest bound it fails (0 when met).
* **percent_of_way** — ``100 * (distance(baseline) - distance(latest)) / distance(baseline)``; negative
  when moving away, 100 when met; ``None`` when the baseline already met the target and the latest
  does not (there was no way to go).
* **trend** — the slope per day over the measurements of the last ``trend_window_days`` days up to
  ``today`` (Theil–Sen by default: the median of pairwise slopes, robust to one odd reading; or
  ordinary least squares). ``trend_change = slope * (days spanned by those measurements)``.
* **noise threshold** — ``noise_threshold`` if given (in the measurement's unit), otherwise estimated
  from the same window as ``mean |moving range| / 1.128`` (the d2 constant for ranges of two, as on an
  individuals chart). A trend whose ``|trend_change|`` does not exceed it is *flat*.
* **projected_date** — ``latest.when + ceil(distance / |slope|)`` days, only when not met and the trend
  is towards the target and not flat; otherwise ``None``.
* **stale** — the latest measurement meets the target but is older than ``stale_after_days`` (default 28)
  days before ``today``: the goal is achieved (or sustaining) on old evidence only. The status code stays
  (it is what the evidence says); pages and ``$coaching-summary`` show it as achieved-but-stale, not as fresh
  success. A reading 28 days old is fresh, 29 days old is stale.

Achievement status (http://terminology.hl7.org/CodeSystem/goal-achievement), first matching row wins:

====  =========================================================================  ================
rule  condition                                                                  code
====  =========================================================================  ================
R1    no measurements                                                            in-progress
R2    latest meets the target and the trailing run of measurements meeting it   sustaining
      has >= ``sustain_measurements`` points (default 3, the achieving one
      included) or spans >= ``sustain_days`` days (when set)
R3    latest meets the target                                                    achieved
R4    ``today`` is after the due date and ``percent_of_way`` >=                  not-achieved
      ``no_progress_below`` (default 10 %)
R5    ``today`` is after the due date otherwise (little or no progress, or      no-progress
      regression from a baseline that met the target)
R6    ``max_rate_per_day`` is set, the due date is ahead, and closing            not-attainable
      ``distance`` by the due date needs a faster rate than that (e.g. a safe
      weight-loss rate); due on the latest measurement's date counts as too fast
R7    fewer than ``min_trend_points`` measurements (or fewer than two distinct   in-progress
      dates) in the trend window: too little evidence
R8    the trend is flat (``|trend_change| <= noise threshold``)                   no-change
R9    the trend moves towards the target                                         improving
R10   the trend moves away from the target                                       worsening
====  =========================================================================  ================

A goal that was met earlier and then regressed falls through to R4–R10 (FHIR: "in-progress ... also
applies if the goal was reached in the past but there has been regression"); ``ever_met`` tells pages.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum

from fhir_ecr.coaching.errors import GoalError

__all__ = [
    "ACHIEVEMENT_SYSTEM",
    "AchievementStatus",
    "Comparator",
    "GoalProgress",
    "GoalTarget",
    "Measurement",
    "ProgressPolicy",
    "SlopeMethod",
    "goal_progress",
    "least_squares_slope",
    "theil_sen_slope",
]

ACHIEVEMENT_SYSTEM = "http://terminology.hl7.org/CodeSystem/goal-achievement"

# d2 for subgroups of two: E[|X1 - X2|] = 1.128 sigma for independent normal X (Montgomery, SQC, App. VI).
_D2 = 1.128


class AchievementStatus(StrEnum):
    """Codes of http://terminology.hl7.org/CodeSystem/goal-achievement."""

    IN_PROGRESS = "in-progress"
    IMPROVING = "improving"
    WORSENING = "worsening"
    NO_CHANGE = "no-change"
    ACHIEVED = "achieved"
    SUSTAINING = "sustaining"
    NOT_ACHIEVED = "not-achieved"
    NO_PROGRESS = "no-progress"
    NOT_ATTAINABLE = "not-attainable"

    @property
    def display(self) -> str:
        """The code system's display text, e.g. ``"Not Achieved"``."""
        return self.value.replace("-", " ").title()

    def coding(self) -> dict[str, str]:
        """A FHIR Coding (JSON) for ``Goal.achievementStatus.coding``."""
        return {"system": ACHIEVEMENT_SYSTEM, "code": self.value, "display": self.display}


class Comparator(StrEnum):
    """Which side of the target is good."""

    AT_LEAST = ">="
    AT_MOST = "<="
    RANGE = "range"


class SlopeMethod(StrEnum):
    """How the recent trend is estimated."""

    THEIL_SEN = "theil-sen"
    LEAST_SQUARES = "least-squares"


@dataclass(frozen=True)
class GoalTarget:
    """A goal's measurable target. Build one with :meth:`at_least`, :meth:`at_most` or :meth:`between`."""

    comparator: Comparator
    low: float | None = None
    high: float | None = None
    due: date | None = None
    low_strict: bool = False  # ">": the value must be above ``low``, not equal to it
    high_strict: bool = False  # "<": the value must be below ``high``, not equal to it

    def __post_init__(self) -> None:
        if self.comparator is Comparator.AT_LEAST and self.low is None:
            raise GoalError("an 'at least' target needs a low value")
        if self.comparator is Comparator.AT_MOST and self.high is None:
            raise GoalError("an 'at most' target needs a high value")
        if self.comparator is Comparator.RANGE:
            if self.low is None or self.high is None:
                raise GoalError("a range target needs both low and high")
            if self.low > self.high:
                raise GoalError(f"range target low ({self.low}) is above high ({self.high})")
        for bound in (self.low, self.high):
            if bound is not None and not math.isfinite(bound):
                raise GoalError(f"target bounds must be finite numbers, got {bound}")
        if self.due is not None and isinstance(self.due, datetime):
            raise GoalError("the due date must be a date, not a datetime")

    @classmethod
    def at_least(cls, value: float, due: date | None = None, *, strict: bool = False) -> GoalTarget:
        """Met when the value is ``>= value`` (``> value`` when ``strict``, FHIR comparator ``>``)."""
        return cls(Comparator.AT_LEAST, low=value, due=due, low_strict=strict)

    @classmethod
    def at_most(cls, value: float, due: date | None = None, *, strict: bool = False) -> GoalTarget:
        """Met when the value is ``<= value`` (``< value`` when ``strict``, FHIR comparator ``<``)."""
        return cls(Comparator.AT_MOST, high=value, due=due, high_strict=strict)

    @classmethod
    def between(cls, low: float, high: float, due: date | None = None) -> GoalTarget:
        """Met when ``low <= value <= high``."""
        return cls(Comparator.RANGE, low=low, high=high, due=due)

    def needed_direction(self, value: float) -> int:
        """+1 when the value must go up, -1 when it must go down, 0 when it meets the target."""
        if self.low is not None and (value < self.low or (self.low_strict and value == self.low)):
            return 1
        if self.high is not None and (value > self.high or (self.high_strict and value == self.high)):
            return -1
        return 0

    def is_met(self, value: float) -> bool:
        """True when ``value`` satisfies the target."""
        return self.needed_direction(value) == 0

    def distance(self, value: float) -> float:
        """How far ``value`` is from the bound it fails; 0 when met (and on a strict bound, which is not met)."""
        if self.low is not None and value < self.low:
            return self.low - value
        if self.high is not None and value > self.high:
            return value - self.high
        return 0.0


@dataclass(frozen=True)
class Measurement:
    """One measured value on one local date."""

    when: date
    value: float

    def __post_init__(self) -> None:
        if isinstance(self.when, datetime) or not isinstance(self.when, date):
            raise GoalError(f"measurement date must be a local date, got {type(self.when).__name__}")
        if not math.isfinite(self.value):
            raise GoalError(f"measurement value must be a finite number, got {self.value}")


@dataclass(frozen=True)
class ProgressPolicy:
    """Knobs of the progress figures and the status rule; see the module docstring."""

    baseline_points: int = 1
    baseline_window_days: int | None = None
    trend_window_days: int = 28
    min_trend_points: int = 3
    slope_method: SlopeMethod = SlopeMethod.THEIL_SEN
    noise_threshold: float | None = None
    sustain_measurements: int = 3
    sustain_days: int | None = None
    no_progress_below: float = 10.0
    max_rate_per_day: float | None = None
    stale_after_days: int = 28

    def __post_init__(self) -> None:
        positive = {
            "baseline_points": self.baseline_points,
            "trend_window_days": self.trend_window_days,
            "sustain_measurements": self.sustain_measurements,
            "stale_after_days": self.stale_after_days,
        }
        for name, value in positive.items():
            if value < 1:
                raise GoalError(f"{name} must be at least 1, got {value}")
        if self.min_trend_points < 2:
            raise GoalError(f"min_trend_points must be at least 2, got {self.min_trend_points}")
        for name, optional in (
            ("baseline_window_days", self.baseline_window_days),
            ("sustain_days", self.sustain_days),
        ):
            if optional is not None and optional < 1:
                raise GoalError(f"{name} must be at least 1 when set, got {optional}")
        if self.noise_threshold is not None and self.noise_threshold < 0:
            raise GoalError(f"noise_threshold cannot be negative, got {self.noise_threshold}")
        if self.max_rate_per_day is not None and self.max_rate_per_day <= 0:
            raise GoalError(f"max_rate_per_day must be positive, got {self.max_rate_per_day}")


@dataclass(frozen=True)
class GoalProgress:
    """Every figure of the module docstring, plus the status and the rule (``R1``..``R10``) that set it."""

    status: AchievementStatus
    rule: str
    latest: Measurement | None = None
    baseline: float | None = None
    change: float | None = None
    distance: float | None = None
    percent_of_way: float | None = None
    met: bool = False
    ever_met: bool = False
    achieved_on: date | None = None
    slope_per_day: float | None = None
    trend_change: float | None = None
    noise_threshold: float | None = None
    trend_points: int = 0
    projected_date: date | None = None
    stale: bool = False  # met only by a latest measurement older than ``stale_after_days``


def theil_sen_slope(points: Sequence[tuple[float, float]]) -> float:
    """Median of the slopes of all pairs of points with different x (Sen 1968)."""
    slopes = [
        (y2 - y1) / (x2 - x1) for i, (x1, y1) in enumerate(points) for x2, y2 in points[i + 1 :] if x2 != x1
    ]
    if not slopes:
        raise GoalError("a slope needs at least two points with different x")
    return statistics.median(slopes)


def least_squares_slope(points: Sequence[tuple[float, float]]) -> float:
    """Ordinary least-squares slope of y on x."""
    xs = [x for x, _ in points]
    if len(set(xs)) < 2:
        raise GoalError("a slope needs at least two points with different x")
    slope, _intercept = statistics.linear_regression(xs, [y for _, y in points])
    return slope


def goal_progress(
    target: GoalTarget,
    measurements: Iterable[Measurement],
    *,
    today: date,
    policy: ProgressPolicy | None = None,
) -> GoalProgress:
    """Progress figures and achievement status as of ``today`` (see the module docstring)."""
    if isinstance(today, datetime):
        raise GoalError("today must be a local date, not a datetime")
    policy = policy or ProgressPolicy()
    series = sorted((m for m in measurements if m.when <= today), key=lambda m: m.when)
    if not series:
        return GoalProgress(AchievementStatus.IN_PROGRESS, "R1")

    latest = series[-1]
    baseline = _baseline(series, policy)
    met = target.is_met(latest.value)
    distance = target.distance(latest.value)
    base_distance = target.distance(baseline)
    if base_distance > 0:
        percent: float | None = 100.0 * (base_distance - distance) / base_distance
    else:
        percent = 100.0 if met else None

    trailing_met = 0
    for m in reversed(series):
        if not target.is_met(m.value):
            break
        trailing_met += 1
    achieved_on = series[-trailing_met].when if trailing_met else None
    ever_met = trailing_met > 0 or any(target.is_met(m.value) for m in series)

    trend = _trend(series, today, policy)
    slope, trend_change, noise, n_trend = trend
    flat = trend_change is not None and noise is not None and abs(trend_change) <= noise
    towards = slope is not None and not flat and slope * target.needed_direction(latest.value) > 0
    projected = None
    if not met and towards and slope is not None:
        # Round off float fuzz first: 1200 / (600 / 7) is 14.000000000000002, and that is 14 days, not 15.
        projected = latest.when + timedelta(days=math.ceil(round(distance / abs(slope), 9)))

    status, rule = _status(
        target,
        policy,
        today=today,
        latest=latest,
        met=met,
        distance=distance,
        percent=percent,
        trailing_met=trailing_met,
        achieved_on=achieved_on,
        slope=slope,
        flat=flat,
        towards=towards,
    )
    return GoalProgress(
        status=status,
        rule=rule,
        latest=latest,
        baseline=baseline,
        change=latest.value - baseline,
        distance=distance,
        percent_of_way=percent,
        met=met,
        ever_met=ever_met,
        achieved_on=achieved_on,
        slope_per_day=slope,
        trend_change=trend_change,
        noise_threshold=noise,
        trend_points=n_trend,
        projected_date=projected,
        stale=met and (today - latest.when).days > policy.stale_after_days,
    )


def _baseline(series: Sequence[Measurement], policy: ProgressPolicy) -> float:
    eligible = series
    if policy.baseline_window_days is not None:
        last_day = series[0].when + timedelta(days=policy.baseline_window_days - 1)
        eligible = [m for m in series if m.when <= last_day]
    return statistics.fmean(m.value for m in eligible[: policy.baseline_points])


def _trend(
    series: Sequence[Measurement], today: date, policy: ProgressPolicy
) -> tuple[float | None, float | None, float | None, int]:
    window_first = today - timedelta(days=policy.trend_window_days - 1)
    recent = [m for m in series if m.when >= window_first]
    if len(recent) < policy.min_trend_points or len({m.when for m in recent}) < 2:
        return None, None, None, len(recent)
    origin = recent[0].when
    points = [(float((m.when - origin).days), m.value) for m in recent]
    if policy.slope_method is SlopeMethod.THEIL_SEN:
        slope = theil_sen_slope(points)
    else:
        slope = least_squares_slope(points)
    span = (recent[-1].when - origin).days
    if policy.noise_threshold is not None:
        noise = policy.noise_threshold
    else:
        moving_ranges = [abs(b.value - a.value) for a, b in zip(recent, recent[1:], strict=False)]
        noise = statistics.fmean(moving_ranges) / _D2
    return slope, slope * span, noise, len(recent)


def _status(
    target: GoalTarget,
    policy: ProgressPolicy,
    *,
    today: date,
    latest: Measurement,
    met: bool,
    distance: float,
    percent: float | None,
    trailing_met: int,
    achieved_on: date | None,
    slope: float | None,
    flat: bool,
    towards: bool,
) -> tuple[AchievementStatus, str]:
    if met:
        sustained_days = (
            policy.sustain_days is not None
            and achieved_on is not None
            and (latest.when - achieved_on).days >= policy.sustain_days
        )
        if trailing_met >= policy.sustain_measurements or sustained_days:
            return AchievementStatus.SUSTAINING, "R2"
        return AchievementStatus.ACHIEVED, "R3"
    if target.due is not None and today > target.due:
        if percent is not None and percent >= policy.no_progress_below:
            return AchievementStatus.NOT_ACHIEVED, "R4"
        return AchievementStatus.NO_PROGRESS, "R5"
    if policy.max_rate_per_day is not None and target.due is not None:
        days_available = (target.due - latest.when).days
        if days_available <= 0 or distance / days_available > policy.max_rate_per_day:
            return AchievementStatus.NOT_ATTAINABLE, "R6"
    if slope is None:
        return AchievementStatus.IN_PROGRESS, "R7"
    if flat:
        return AchievementStatus.NO_CHANGE, "R8"
    if towards:
        return AchievementStatus.IMPROVING, "R9"
    return AchievementStatus.WORSENING, "R10"
