"""How the coaching views shape their results (pure): run-chart signals, analyses and goal progress as the
dicts the summary, the page and ``$run-chart`` return."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any

from fhir_ecr.coaching import resources as res
from fhir_ecr.coaching.progress import GoalProgress
from fhir_ecr.coaching.runchart import ChangeChart, RunChartAnalysis, analyse_changes

__all__ = ["shift_direction"]


def _codings(obs: Mapping[str, Any]) -> set[tuple[Any, Any]]:
    return {(c.get("system"), c.get("code")) for c in (obs.get("code") or {}).get("coding", []) or []}


def _run_chart(
    days: Sequence[date], values: Sequence[float], notes: Sequence[res.PdsaNote]
) -> tuple[ChangeChart, list[res.PdsaNote]] | None:
    """The series' signals with its PDSA changes (runchart.analyse_changes): analysed against its own median,
    reported only once at least ``MIN_BASELINE`` useful points precede the latest change; each change starts a
    phase with its own median. A change on the series' first day starts no phase (there is nothing before it).
    """
    if not values:
        return None
    starts: list[int] = []
    used: list[res.PdsaNote] = []
    for note in sorted(notes, key=lambda n: n.day):
        index = next((i for i, d in enumerate(days) if d >= note.day), None)
        if index is None or index == 0 or (starts and index <= starts[-1]):
            continue
        starts.append(index)
        used.append(note)
    return analyse_changes(values, starts, [n.title for n in used]), used


_WITHHELD_TEXT = {
    "not-enough-baseline": "not enough baseline yet",
    "too-few-useful-points": "too few points for a signal",
}


def _analysis_dict(a: RunChartAnalysis, series_dates: Sequence[date]) -> dict[str, Any]:
    return {
        "label": a.label or None,
        "from": series_dates[a.first],
        "to": series_dates[a.last],
        "median": a.median,
        "baselineTo": series_dates[a.baseline_last],
        "points": a.n_obs,
        "useful": a.n_useful,
        "longestRun": a.longest_run,
        "longestRunLimit": a.longest_run_limit,
        "crossings": a.crossings,
        "crossingsLimit": a.crossings_limit,
        "signal": a.signal,
        "rule": [r.value for r in a.rules],
        "shiftFrom": series_dates[min(a.shift_points)] if a.shift_points else None,
        "direction": shift_direction(a),
        # every run longer than the limit, oldest first: which side of the median, from, to, how many points
        "shift": [
            {
                "side": "above" if r.side > 0 else "below",
                "from": series_dates[r.indices[0]],
                "to": series_dates[r.indices[-1]],
                "points": r.length,
            }
            for r in a.runs
            if a.longest_run_limit is not None and r.length > a.longest_run_limit
        ],
        "withheld": _WITHHELD_TEXT.get(a.withheld or ""),
    }


def _baseline_dict(chart: ChangeChart) -> dict[str, Any] | None:
    if chart.baseline_useful is None:
        return None
    return {"points": chart.baseline_useful, "needed": chart.min_baseline, "enough": chart.enough_baseline}


def shift_direction(a: RunChartAnalysis) -> str | None:
    """``"up"`` or ``"down"``: the side of the median of the latest run longer than the limit (a shift), or
    None when no shift fired (a signal of too few crossings alone has no direction)."""
    if a.longest_run_limit is None:
        return None
    runs = [r for r in a.runs if r.length > a.longest_run_limit]
    if not runs:
        return None
    return "up" if max(runs, key=lambda r: r.indices[-1]).side > 0 else "down"


def _signals_dict(chart: tuple[ChangeChart, list[res.PdsaNote]]) -> dict[str, Any]:
    analysis, notes = chart
    overall = analysis.overall
    return {
        "median": overall.median,
        "points": overall.n_obs,
        "signal": analysis.signal,
        "rule": [r.value for r in overall.rules],
        "direction": shift_direction(overall) if analysis.signal else None,
        "pdsa": [n.title for n in notes],
        "baseline": _baseline_dict(analysis),
        "withheld": _WITHHELD_TEXT.get(overall.withheld or ""),
    }


def _progress_dict(p: GoalProgress, info: res.GoalInfo) -> dict[str, Any]:
    return {
        "achievementStatus": p.status.coding(),
        "statusRule": p.rule,
        "unit": info.unit,
        "latest": p.latest.value if p.latest else None,
        "latestDate": p.latest.when if p.latest else None,
        "baseline": p.baseline,
        "percentOfWay": p.percent_of_way,
        "met": p.met,
        "everMet": p.ever_met,
        "slopePerDay": p.slope_per_day,
        "projectedDate": p.projected_date,
        # achieved (or sustaining) on a latest reading older than ProgressPolicy.stale_after_days: not fresh
        "stale": p.stale,
    }
