"""Run-chart rules: published critical values, worked examples, phases, and false-signal simulations."""

from __future__ import annotations

import itertools
import math
import random
from collections import Counter
from fractions import Fraction

import pytest

from fhir_ecr.coaching import (
    Phase,
    RunChartError,
    RunChartRule,
    analyse_phases,
    analyse_run_chart,
    binomial_quantile,
    crossings_limit,
    longest_run_limit,
)

# Critical values for n = 10..100 useful observations: upper limit for the longest run, lower limit for
# the number of crossings (Anhøj & Olesen 2014, PLoS ONE 9(11): e113825, Table 1). Transcribed from the
# rendered table in Appendix 2 of the qicharts2 vignette ("Critical values for longest run and number
# of crossings", J. Anhøj), which prints those published limits for n = 10..100.
PUBLISHED = """
10 6 2   11 6 2   12 7 3   13 7 3   14 7 4   15 7 4   16 7 4   17 7 5   18 7 5   19 7 6
20 7 6   21 7 6   22 7 7   23 8 7   24 8 8   25 8 8   26 8 8   27 8 9   28 8 9   29 8 10
30 8 10  31 8 11  32 8 11  33 8 11  34 8 12  35 8 12  36 8 13  37 8 13  38 8 14  39 8 14
40 8 14  41 8 15  42 8 15  43 8 16  44 8 16  45 8 17  46 9 17  47 9 17  48 9 18  49 9 18
50 9 19  51 9 19  52 9 20  53 9 20  54 9 21  55 9 21  56 9 21  57 9 22  58 9 22  59 9 23
60 9 23  61 9 24  62 9 24  63 9 25  64 9 25  65 9 25  66 9 26  67 9 26  68 9 27  69 9 27
70 9 28  71 9 28  72 9 29  73 9 29  74 9 29  75 9 30  76 9 30  77 9 31  78 9 31  79 9 32
80 9 32  81 9 33  82 9 33  83 9 34  84 9 34  85 9 34  86 9 35  87 9 35  88 9 36  89 9 36
90 9 37  91 10 37 92 10 38 93 10 38 94 10 39 95 10 39 96 10 39 97 10 40 98 10 40 99 10 41
100 10 41
"""


def published_table() -> dict[int, tuple[int, int]]:
    numbers = [int(x) for x in PUBLISHED.split()]
    rows = [numbers[i : i + 3] for i in range(0, len(numbers), 3)]
    return {n: (run, cross) for n, run, cross in rows}


# --- critical values ------------------------------------------------------------------------------------


def test_published_table_is_complete() -> None:
    assert sorted(published_table()) == list(range(10, 101))


@pytest.mark.parametrize("n", range(10, 101))
def test_limits_match_the_published_table_and_the_formula(n: int) -> None:
    run_limit, cross_limit = published_table()[n]
    assert longest_run_limit(n) == run_limit
    assert crossings_limit(n) == cross_limit
    # The formula, computed independently here: round(log2(n) + 3) and the smallest c with
    # P(Binomial(n - 1, 1/2) <= c) >= 0.05, by brute-force cumulative sums of binomial coefficients.
    assert round(math.log2(n) + 3) == run_limit
    cumulative = itertools.accumulate(math.comb(n - 1, k) for k in range(n))
    assert (
        next(c for c, total in enumerate(cumulative) if Fraction(total, 2 ** (n - 1)) >= Fraction(1, 20))
        == cross_limit
    )


def test_binomial_quantile_matches_r_qbinom_on_known_values() -> None:
    # Values of R's qbinom(p, size, prob), which define the quantile as the smallest x with F(x) >= p.
    assert binomial_quantile(0.05, 23, 0.5) == 8
    assert binomial_quantile(0.05, 22, 0.5) == 7
    assert binomial_quantile(0.5, 10, 0.5) == 5
    assert binomial_quantile(0.0, 10, 0.5) == 0
    assert binomial_quantile(1.0, 10, 0.5) == 10
    assert binomial_quantile(0.05, 0, 0.5) == 0
    assert binomial_quantile(0.95, 20, 0.1) == 4  # P(X <= 3) = 0.867, P(X <= 4) = 0.957
    with pytest.raises(RunChartError):
        binomial_quantile(1.5, 10, 0.5)
    with pytest.raises(RunChartError):
        binomial_quantile(0.05, -1, 0.5)


def test_small_n_limits_can_never_fire() -> None:
    # With 5 useful points a run of 6 is impossible and qbinom(0.05, 4, 0.5) = 0 crossings.
    assert (longest_run_limit(5), crossings_limit(5)) == (5, 0)
    with pytest.raises(RunChartError):
        longest_run_limit(0)


# --- worked examples ------------------------------------------------------------------------------------


def test_steady_rise_has_too_few_crossings() -> None:
    result = analyse_run_chart(list(range(1, 13)))
    # Median 6.5: six points below then six above; one crossing where qbinom(0.05, 11, 0.5) = 3.
    assert (result.median, result.n_useful, result.longest_run, result.crossings) == (6.5, 12, 6, 1)
    assert (result.longest_run_limit, result.crossings_limit) == (7, 3)
    assert RunChartRule.CROSSINGS in result.rules and RunChartRule.SHIFT not in result.rules
    assert result.signal and result.shift_points == ()
    # Against point-to-point noise (every moving range is 1) the ends of a steady climb are far out:
    # 6.5 ± 3.5 / 1.128 = 3.40 .. 9.60, as an individuals chart would also say.
    assert result.astronomical_points == (0, 1, 2, 9, 10, 11)


def test_shift_after_a_change_against_the_frozen_baseline() -> None:
    baseline = [9, 11, 9, 11, 9, 11, 9, 11, 9, 11]
    after_change = [12, 13, 12, 14, 13, 12, 15, 13, 14]  # all inside the astronomical limit 10 ± 6.2
    result = analyse_run_chart(baseline + after_change, baseline_points=10)
    assert (result.median, result.baseline_first, result.baseline_last) == (10, 0, 9)
    # 19 useful points: limit round(log2(19) + 3) = 7; the run above the median runs from index 9 (the
    # last baseline 11) through the end: 10 points.
    assert (result.n_useful, result.longest_run, result.longest_run_limit) == (19, 10, 7)
    assert result.shift_points == tuple(range(9, 19))
    # Nine crossings inside the alternating baseline; qbinom(0.05, 18, 0.5) = 6, so no crossings signal.
    assert (result.crossings, result.crossings_limit) == (9, 6)
    assert result.rules == (RunChartRule.SHIFT,)


def test_points_on_the_median_are_not_useful() -> None:
    values = [1, 3, 2, 2, 3, 1, 2]
    result = analyse_run_chart(values)
    assert result.median == 2
    assert (result.n_obs, result.n_useful) == (7, 4)
    # Points on the median neither break nor extend a run: 3 (index 1) and 3 (index 4) form one run.
    assert [(r.side, r.indices) for r in result.runs] == [(-1, (0,)), (1, (1, 4)), (-1, (5,))]
    assert result.crossings == 2


def test_all_points_on_the_median_give_no_analysis() -> None:
    result = analyse_run_chart([5, 5, 5, 5])
    assert (result.n_useful, result.longest_run_limit, result.crossings_limit, result.rules) == (
        0,
        None,
        None,
        (),
    )
    assert result.sigma is None and not result.any_signal


def test_astronomical_point() -> None:
    values = [10, 12] * 6 + [17, 18]
    result = analyse_run_chart(values, baseline_points=12)
    # Baseline median 11, every moving range 2: sigma = 2 / 1.128; limits 11 ± 3.5 * 1.773 = 11 ± 6.21.
    assert result.sigma == pytest.approx(2 / 1.128)
    assert result.astronomical_high == pytest.approx(11 + 3.5 * 2 / 1.128)
    assert result.astronomical_points == (13,)  # 18 is beyond 17.21; 17 is not
    assert RunChartRule.ASTRONOMICAL in result.rules
    assert not result.signal and result.any_signal  # astronomical is not an Anhøj rule


def test_astronomical_multiplier_is_configurable() -> None:
    values = [10, 12] * 6 + [17, 18]
    result = analyse_run_chart(values, baseline_points=12, astronomical_sigmas=3.0)
    assert result.astronomical_points == (12, 13)
    with pytest.raises(RunChartError):
        analyse_run_chart(values, astronomical_sigmas=0)


def test_frozen_median_from_elsewhere() -> None:
    result = analyse_run_chart([4, 5, 6, 7, 8, 9, 10, 11, 12, 13], median=3.0)
    assert result.median == 3.0
    assert (result.longest_run, result.longest_run_limit) == (10, 6)
    assert result.shift_points == tuple(range(10))
    with pytest.raises(RunChartError):
        analyse_run_chart([1, 2], median=float("nan"))


def test_phases_recompute_the_median_after_a_pdsa_change() -> None:
    before = [9, 11, 9, 11, 9, 11, 9, 11, 9, 11, 9, 11]
    after = [19, 21, 19, 21, 19, 21, 19, 21, 19, 21, 19, 21]
    series = before + after
    frozen = analyse_run_chart(series, baseline_points=12)
    assert RunChartRule.SHIFT in frozen.rules and frozen.shift_points == tuple(range(11, 24))
    baseline, pdsa = analyse_phases(series, [Phase(0, "baseline"), Phase(12, "PDSA 1")])
    assert (baseline.label, baseline.first, baseline.last, baseline.median) == ("baseline", 0, 11, 10)
    assert (pdsa.label, pdsa.first, pdsa.last, pdsa.median) == ("PDSA 1", 12, 23, 20)
    assert not baseline.rules and not pdsa.rules
    assert pdsa.runs[0].indices == (12,)  # indices refer to the whole series


def test_phase_with_its_own_frozen_baseline() -> None:
    series = [5, 7] * 5 + [1, 3] * 3 + [2, 2, 2, 2, 2, 2, 2, 2]
    phases = [Phase(0), Phase(10, "change", baseline_points=6)]
    first, second = analyse_phases(series, phases)
    assert first.median == 6
    assert (second.median, second.baseline_first, second.baseline_last) == (2, 10, 15)
    # The eight 2s sit on the phase median: only the six baseline points are useful.
    assert second.n_useful == 6


@pytest.mark.parametrize(
    ("phases", "message"),
    [
        ([], "at least one phase"),
        ([Phase(1)], "index 0"),
        ([Phase(0), Phase(0)], "increase"),
        ([Phase(0), Phase(10)], "inside"),
        ([Phase(0, baseline_points=0)], "baseline_points"),
    ],
)
def test_bad_phase_layouts_are_refused(phases: list[Phase], message: str) -> None:
    with pytest.raises(RunChartError, match=message):
        analyse_phases(list(range(10)), phases)


def test_bad_series_are_refused() -> None:
    with pytest.raises(RunChartError):
        analyse_run_chart([])
    with pytest.raises(RunChartError):
        analyse_run_chart([1.0, float("inf")])
    with pytest.raises(RunChartError):
        analyse_run_chart([1.0, 2.0], baseline_points=3)


# --- exact false-signal probabilities and simulation ------------------------------------------------------


def exact_signal_probability(n: int, *, balanced: bool) -> Fraction:
    """P(longest run > limit or crossings < limit) for n useful points, by exact enumeration.

    ``balanced=False``: independent fair coin flips (a centre line fixed in advance).
    ``balanced=True``: n/2 points above and n/2 below (the median of the same, even-sized, series).
    """
    run_limit, cross_limit = longest_run_limit(n), crossings_limit(n)
    above_total = n // 2
    # State: (points above so far, last side, current run length, crossings) -> number of sequences
    # whose runs never exceeded the limit.
    states: Counter[tuple[int, int, int, int]] = Counter({(1, 1, 1, 0): 1, (0, 0, 1, 0): 1})
    for position in range(1, n):
        following: Counter[tuple[int, int, int, int]] = Counter()
        for (above, side, run, crossings), count in states.items():
            for new_side in (0, 1):
                new_above = above + new_side
                if balanced and (new_above > above_total or (position + 1 - new_above) > n - above_total):
                    continue
                if new_side == side:
                    if run + 1 <= run_limit:
                        following[(new_above, side, run + 1, crossings)] += count
                else:
                    following[(new_above, new_side, 1, crossings + 1)] += count
        states = following
    no_signal = sum(count for (_, _, _, crossings), count in states.items() if crossings >= cross_limit)
    total = math.comb(n, above_total) if balanced else 2**n
    return 1 - Fraction(no_signal, total)


def test_rules_agree_with_exhaustive_enumeration_for_12_points() -> None:
    # Every one of the 4096 above/below patterns of 12 points against a fixed centre line.
    signals = sum(
        analyse_run_chart([1.0 if bit else -1.0 for bit in pattern], median=0.0).signal
        for pattern in itertools.product((0, 1), repeat=12)
    )
    assert Fraction(signals, 4096) == exact_signal_probability(12, balanced=False)


def simulate(seed: int, runs: int, *, median: float | None) -> tuple[float, float]:
    rng = random.Random(seed)
    anhoej = astronomical = 0
    for _ in range(runs):
        result = analyse_run_chart([rng.gauss(0.0, 1.0) for _ in range(24)], median=median)
        anhoej += result.signal
        astronomical += RunChartRule.ASTRONOMICAL in result.rules
    return anhoej / runs, astronomical / runs


def tolerance(p: float, runs: int) -> float:
    # Four binomial standard errors: a correct implementation fails this about 1 time in 16,000.
    return 4 * math.sqrt(p * (1 - p) / runs)


def test_false_signal_rate_against_a_fixed_centre_line() -> None:
    # 24 independent N(0, 1) points against the true median 0: the useful points are fair coin flips.
    runs = 3000
    exact = float(exact_signal_probability(24, balanced=False))
    assert exact == pytest.approx(0.0662, abs=5e-4)
    share, _ = simulate(20240601, runs, median=0.0)
    assert abs(share - exact) <= tolerance(exact, runs)
    assert 0.03 <= share <= 0.09  # "about 5 %"


def test_false_signal_rate_against_the_series_own_median() -> None:
    # The usual run chart: the median of the same 24 points, so 12 lie above and 12 below. The runs are
    # constrained and the rules fire less often than against a fixed centre line.
    runs = 3000
    exact = float(exact_signal_probability(24, balanced=True))
    assert exact == pytest.approx(0.0306, abs=5e-4)
    share, astronomical = simulate(20240602, runs, median=None)
    assert abs(share - exact) <= tolerance(exact, runs)
    # Astronomical points on random data: about 1.8 % of 24-point charts (20,000-chart pilot run).
    assert 0.005 <= astronomical <= 0.035
