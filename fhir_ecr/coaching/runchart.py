"""Run-chart signals for the Model for Improvement: the Anhøj rules plus astronomical points.

The centre line is the **median** of a baseline: all points by default, or the first ``baseline_points``
(a frozen baseline that later points are tested against). Points exactly on the median are not
*useful*: they are dropped before runs and crossings are counted, so they neither break nor extend a
run. With ``n`` useful observations (Anhøj & Olesen 2014, https://doi.org/10.1371/journal.pone.0113825;
Anhøj 2015, https://doi.org/10.1371/journal.pone.0121349; as implemented in qicharts2
``runs.analysis``):

* **shift** (unusually long run) — the longest run of consecutive useful points on one side of the
  median is longer than ``round(log2(n) + 3)`` (Schilling 2012). Every point of every run longer than
  that limit is reported.
* **crossings** (unusually few crossings) — the number of crossings (adjacent useful points on opposite
  sides, i.e. runs - 1) is below ``qbinom(0.05, n - 1, 0.5)``, the lower 5th percentile of
  Binomial(n - 1, 1/2) (Chen 2010). Computed exactly with :func:`math.comb`.

**Below** :data:`MIN_USEFUL` **(10) useful observations no Anhøj signal is reported**: the rules' limits are
published and studied for n = 10 to 100 (Anhøj & Olesen 2014; Anhøj & Wentzel-Larsen 2020,
https://doi.org/10.1371/journal.pone.0233920), and with fewer points a run chart cannot tell a shift from
chance. The analysis then says why (``withheld = "too-few-useful-points"``) and gives no limits.

Anhøj & Olesen report that together the two rules keep the false-signal rate around 5 % on random data,
largely independent of ``n`` (but see below).

* **astronomical** — *The Health Care Data Guide* (Provost & Murray 2011) calls a point "astronomical"
  when it is blatantly different from the rest, and leaves the call to judgement. We make it
  reproducible by borrowing the individuals-chart estimate of common-cause spread from the baseline
  (as on the I chart of the same book): ``sigma = MR-bar / 1.128``, the mean moving range of
  consecutive baseline points over the d2 constant for ranges of two. A point is astronomical when it
  lies strictly beyond ``median ± 3.5 * sigma``: wider than Shewhart's 3-sigma limits because the
  centre is the median, not the mean, and because the rule is meant to catch only the obvious. For 24
  independent normal points it fires on about 2 % of charts (3-sigma limits would fire on about 8 %).
  Moving ranges are deliberately *not* screened (Nelson's ``3.267 * MR-bar`` cut): on random data the
  screening shrinks sigma enough to double the false alarms. With fewer than two baseline points or
  zero spread, no point is called astronomical. This rule is reported separately: the Anhøj
  ``signal`` covers shift and crossings only.

A centre line frozen elsewhere (a median carried over from an earlier chart) can be passed as
``median``; the baseline points then only feed the astronomical sigma.

The false-signal rate of the Anhøj rules depends on where the median comes from. Against a fixed centre
(the true process median) the useful points are independent fair coin flips and, for 24 points, the
rules fire on 6.6 % of random series; against the median of the same 24 points (12 above, 12 below by
construction) the runs are constrained and they fire on 3.1 %. Both are exact values that the tests
recompute by enumeration and check by simulation. Against a median **frozen from a short baseline** and
extended over later points the rate is far higher, because the baseline's median is itself uncertain: on
random daily data over an 84-day window, with the baseline the points before a change, it is 44 % for a
5-point baseline, 29 % for 10 points and still 19 % for 20 points (measured for issue #15).

**Signals across a PDSA change** (:func:`analyse_changes`, what the coaching summary and the run-chart
operation report): the series is analysed against **its own median** (the Anhøj setting, ≈ 5 %); a change
that moved the process shows as an unusually long run or too few crossings around it. The points before
the **latest** change are the baseline, and a signal is only reported once the baseline has at least
:data:`MIN_BASELINE` (20) useful points — the upper end of the run-chart literature's usual 10-20 points
for a baseline (Perla, Provost & Murray 2011, https://doi.org/10.1136/bmjqs.2009.037895; Provost & Murray,
*The Health Care Data Guide*, 2011); below it the analysis says "not enough baseline yet"
(``withheld = "not-enough-baseline"``) instead of a signal. Each change also starts a phase with its own
median (:func:`analyse_phases`, qicharts2's ``part``), for display.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from fractions import Fraction
from functools import lru_cache

from fhir_ecr.coaching.errors import RunChartError

__all__ = [
    "ChangeChart",
    "MIN_BASELINE",
    "MIN_USEFUL",
    "Phase",
    "Run",
    "RunChartAnalysis",
    "RunChartRule",
    "analyse_changes",
    "analyse_phases",
    "analyse_run_chart",
    "binomial_quantile",
    "crossings_limit",
    "longest_run_limit",
]

ASTRONOMICAL_SIGMAS = 3.5
MIN_USEFUL = 10  # fewest useful observations with Anhøj limits (published for n = 10..100)
MIN_BASELINE = 20  # fewest useful points before the latest PDSA change before a signal is reported
TOO_FEW_POINTS = "too-few-useful-points"
NOT_ENOUGH_BASELINE = "not-enough-baseline"
# d2 for moving ranges of two points (Montgomery, Introduction to SQC, App. VI).
_D2 = 1.128


class RunChartRule(StrEnum):
    """The rules that can fire on a run chart."""

    SHIFT = "shift"
    CROSSINGS = "crossings"
    ASTRONOMICAL = "astronomical"


@dataclass(frozen=True)
class Run:
    """A maximal run of useful points on one side of the median (indices into the whole series)."""

    side: int
    indices: tuple[int, ...]

    @property
    def length(self) -> int:
        """Number of useful points in the run."""
        return len(self.indices)


@dataclass(frozen=True)
class Phase:
    """A stretch of the series that gets its own median: from index ``start`` to the next phase."""

    start: int
    label: str = ""
    baseline_points: int | None = None


@dataclass(frozen=True)
class RunChartAnalysis:
    """The median, the limits used, and which rule fired on which points (indices into the series)."""

    first: int
    last: int
    label: str
    median: float
    baseline_first: int
    baseline_last: int
    n_obs: int
    n_useful: int
    runs: tuple[Run, ...]
    longest_run: int
    longest_run_limit: int | None
    crossings: int
    crossings_limit: int | None
    shift_points: tuple[int, ...]
    astronomical_points: tuple[int, ...]
    sigma: float | None
    astronomical_low: float | None
    astronomical_high: float | None
    rules: tuple[RunChartRule, ...]
    withheld: str | None = None  # why no Anhøj rule was applied: TOO_FEW_POINTS or NOT_ENOUGH_BASELINE

    @property
    def signal(self) -> bool:
        """True when an Anhøj rule (shift or crossings) fired."""
        return RunChartRule.SHIFT in self.rules or RunChartRule.CROSSINGS in self.rules

    @property
    def any_signal(self) -> bool:
        """True when any rule fired, astronomical points included."""
        return bool(self.rules)


@lru_cache(maxsize=1024)
def binomial_quantile(q: float, size: int, prob: float = 0.5) -> int:
    """Smallest ``x`` with ``P(X <= x) >= q`` for ``X ~ Binomial(size, prob)``, like R's ``qbinom``.

    Exact rational arithmetic, so no floating-point fuzz is needed at the boundary.
    """
    if size < 0:
        raise RunChartError(f"binomial size cannot be negative, got {size}")
    q_exact, p_exact = Fraction(str(q)), Fraction(str(prob))
    if not (0 <= q_exact <= 1 and 0 <= p_exact <= 1):
        raise RunChartError("binomial quantile needs 0 <= q <= 1 and 0 <= prob <= 1")
    cumulative = Fraction(0)
    for x in range(size + 1):
        cumulative += math.comb(size, x) * p_exact**x * (1 - p_exact) ** (size - x)
        if cumulative >= q_exact:
            return x
    return size


def longest_run_limit(n_useful: int) -> int:
    """Upper limit for the longest run: ``round(log2(n) + 3)``; a longer run signals a shift."""
    if n_useful < 1:
        raise RunChartError("the longest-run limit needs at least one useful observation")
    # log2(n) + 3 is never exactly k + 0.5 for whole n, so half-up and half-even rounding agree.
    return math.floor(math.log2(n_useful) + 3 + 0.5)


def crossings_limit(n_useful: int) -> int:
    """Lower limit for crossings: ``qbinom(0.05, n - 1, 0.5)``; fewer crossings is a signal."""
    if n_useful < 1:
        raise RunChartError("the crossings limit needs at least one useful observation")
    return binomial_quantile(0.05, n_useful - 1, 0.5)


def analyse_run_chart(
    values: Sequence[float],
    *,
    baseline_points: int | None = None,
    median: float | None = None,
    astronomical_sigmas: float = ASTRONOMICAL_SIGMAS,
) -> RunChartAnalysis:
    """Runs analysis of the whole series against the median of its first ``baseline_points`` (or all).

    ``median`` overrides the centre line with one frozen elsewhere.
    """
    if median is not None and not math.isfinite(median):
        raise RunChartError(f"median must be a finite number, got {median}")
    return _analyse(_checked(values), 0, len(values), "", baseline_points, astronomical_sigmas, median)


def analyse_phases(
    values: Sequence[float],
    phases: Sequence[Phase],
    *,
    astronomical_sigmas: float = ASTRONOMICAL_SIGMAS,
) -> list[RunChartAnalysis]:
    """One analysis per phase, each with its own median and runs analysis (qicharts2 ``part``)."""
    series = _checked(values)
    if not phases:
        raise RunChartError("at least one phase is needed")
    starts = [p.start for p in phases]
    if starts[0] != 0:
        raise RunChartError("the first phase must start at index 0")
    if any(b <= a for a, b in zip(starts, starts[1:], strict=False)) or starts[-1] >= len(series):
        raise RunChartError("phase starts must increase and lie inside the series")
    ends = [*starts[1:], len(series)]
    return [
        _analyse(series, phase.start, end, phase.label, phase.baseline_points, astronomical_sigmas)
        for phase, end in zip(phases, ends, strict=True)
    ]


def _checked(values: Sequence[float]) -> list[float]:
    series = [float(v) for v in values]
    if not series:
        raise RunChartError("a run chart needs at least one point")
    if not all(math.isfinite(v) for v in series):
        raise RunChartError("run-chart values must be finite numbers")
    return series


def _analyse(
    series: Sequence[float],
    first: int,
    stop: int,
    label: str,
    baseline_points: int | None,
    astronomical_sigmas: float,
    frozen_median: float | None = None,
    withhold: str | None = None,
) -> RunChartAnalysis:
    if astronomical_sigmas <= 0:
        raise RunChartError(f"astronomical_sigmas must be positive, got {astronomical_sigmas}")
    n_obs = stop - first
    if baseline_points is None:
        baseline_points = n_obs
    if not 1 <= baseline_points <= n_obs:
        raise RunChartError(f"baseline_points must be between 1 and {n_obs}, got {baseline_points}")
    baseline = series[first : first + baseline_points]
    median = statistics.median(baseline) if frozen_median is None else frozen_median

    useful = [(i, 1 if series[i] > median else -1) for i in range(first, stop) if series[i] != median]
    runs: list[Run] = []
    for index, side in useful:
        if runs and runs[-1].side == side:
            runs[-1] = Run(side, (*runs[-1].indices, index))
        else:
            runs.append(Run(side, (index,)))
    n_useful = len(useful)
    longest = max((r.length for r in runs), default=0)
    crossings = max(len(runs) - 1, 0)
    rules: list[RunChartRule] = []
    shift_points: tuple[int, ...] = ()
    run_limit = cross_limit = None
    if withhold is None and n_useful < MIN_USEFUL:
        withhold = TOO_FEW_POINTS
    if withhold is None:
        run_limit = longest_run_limit(n_useful)
        cross_limit = crossings_limit(n_useful)
        if longest > run_limit:
            rules.append(RunChartRule.SHIFT)
            shift_points = tuple(i for r in runs if r.length > run_limit for i in r.indices)
        if crossings < cross_limit:
            rules.append(RunChartRule.CROSSINGS)

    sigma = _sigma(baseline)
    low = high = None
    astronomical: tuple[int, ...] = ()
    if sigma is not None:
        low, high = median - astronomical_sigmas * sigma, median + astronomical_sigmas * sigma
        astronomical = tuple(i for i in range(first, stop) if series[i] < low or series[i] > high)
        if astronomical:
            rules.append(RunChartRule.ASTRONOMICAL)

    return RunChartAnalysis(
        first=first,
        last=stop - 1,
        label=label,
        median=median,
        baseline_first=first,
        baseline_last=first + baseline_points - 1,
        n_obs=n_obs,
        n_useful=n_useful,
        runs=tuple(runs),
        longest_run=longest,
        longest_run_limit=run_limit,
        crossings=crossings,
        crossings_limit=cross_limit,
        shift_points=shift_points,
        astronomical_points=astronomical,
        sigma=sigma,
        astronomical_low=low,
        astronomical_high=high,
        rules=tuple(rules),
        withheld=withhold,
    )


def _sigma(baseline: Sequence[float]) -> float | None:
    moving_ranges = [abs(b - a) for a, b in zip(baseline, baseline[1:], strict=False)]
    if not moving_ranges:
        return None
    mr_bar = statistics.fmean(moving_ranges)
    if mr_bar == 0:
        return None
    return mr_bar / _D2


@dataclass(frozen=True)
class ChangeChart:
    """A series with PDSA changes: the overall analysis (against the series' own median), one analysis per
    phase, and whether the baseline before the latest change is long enough for a signal."""

    overall: RunChartAnalysis
    phases: tuple[RunChartAnalysis, ...]
    changes: tuple[int, ...]  # indices where a change starts a phase, oldest first
    baseline_useful: int | None  # useful points before the latest change; None without a change
    min_baseline: int

    @property
    def enough_baseline(self) -> bool:
        """False while the latest change has fewer than ``min_baseline`` useful points before it."""
        return self.baseline_useful is None or self.baseline_useful >= self.min_baseline

    @property
    def signal(self) -> bool:
        """True when an Anhøj rule fired over a long enough baseline."""
        return self.overall.signal


def analyse_changes(
    values: Sequence[float],
    changes: Sequence[int] = (),
    labels: Sequence[str] = (),
    *,
    min_baseline: int = MIN_BASELINE,
    astronomical_sigmas: float = ASTRONOMICAL_SIGMAS,
) -> ChangeChart:
    """Signals of a series with PDSA changes at the indices ``changes`` (see the module docstring).

    The whole series is analysed against its own median; with a change, the Anhøj rules are applied only when
    at least ``min_baseline`` useful points (off that median) precede the latest change.
    """
    series = _checked(values)
    starts = list(changes)
    if any(b <= a for a, b in zip(starts, starts[1:], strict=False)) or (
        starts and (starts[0] < 1 or starts[-1] >= len(series))
    ):
        raise RunChartError("change indices must increase and lie inside the series, after its first point")
    if min_baseline < MIN_USEFUL:
        raise RunChartError(f"min_baseline must be at least {MIN_USEFUL}, got {min_baseline}")
    center = statistics.median(series)
    baseline_useful = None
    if starts:
        baseline_useful = sum(1 for v in series[: starts[-1]] if v != center)
    short = baseline_useful is not None and baseline_useful < min_baseline
    overall = _analyse(
        series, 0, len(series), "", None, astronomical_sigmas, withhold=NOT_ENOUGH_BASELINE if short else None
    )
    names = list(labels) + [""] * (len(starts) - len(labels))
    phases = analyse_phases(
        series,
        [Phase(0, "baseline"), *(Phase(i, n) for i, n in zip(starts, names, strict=False))],
        astronomical_sigmas=astronomical_sigmas,
    )
    return ChangeChart(overall, tuple(phases), tuple(starts), baseline_useful, min_baseline)
