"""Run charts that agree with themselves: one figure object, from which the sentence, the marks, the
``aria-label`` and the data table are all drawn (pure: no I/O, no clock).

:meth:`RunChartFigure.from_service` takes :meth:`CoachingService.run_chart`'s result (the Anhøj analysis of
the series against its own median, the phases a PDSA change starts, the points each rule flagged) and keeps
it as it is; nothing here re-analyses. Then:

- :meth:`RunChartFigure.sentence` says what the chart shows: the period, the median of all days and of
  every phase by name, the signal or why none is reported, the limits phrased with their direction
  ("crossings 12 — fewer than 34 would be a signal"), and how many points are marked and why;
- :func:`draw` draws the same points, medians, marks and PDSA changes, with the sentence as its text
  alternative; its PDSA labels are shortened to the room they have, the full text in a ``<title>`` (hover)
  and, always, in the caption, which prints;
- :meth:`RunChartFigure.table` lists every point with its phase, that phase's median and its mark.

Rules and sources: ``fhir_ecr/coaching/runchart.py`` and docs/coaching.md ("Run-chart signals and PDSA changes").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from html import escape
from typing import Any

from markupsafe import Markup

from .charts import fmt_number

__all__ = ["ChartPhase", "ChartPoint", "RunChartFigure", "draw"]


@dataclass(frozen=True)
class ChartPoint:
    """One day of the series, the phase it belongs to and what marks it."""

    day: date
    value: float
    shift: bool
    astronomical: bool
    phase: int

    @property
    def mark(self) -> str:
        """ "shift", "astronomical", both, or "" (the data table's column and the mark's class)."""
        return " and ".join(m for m, on in (("shift", self.shift), ("astronomical", self.astronomical)) if on)


@dataclass(frozen=True)
class ChartPhase:
    """A stretch with its own median: the days before the first PDSA change, or after one."""

    name: str
    start: date
    end: date
    median: float
    change: str | None = None  # the PDSA change that starts it (full title)


@dataclass(frozen=True)
class RunChartFigure:
    """Everything a run chart says, once."""

    label: str
    unit: str | None
    start: date | None
    end: date | None
    points: tuple[ChartPoint, ...]
    median: float | None
    phases: tuple[ChartPhase, ...]
    changes: tuple[tuple[date, str], ...]  # PDSA changes in the window: (day, title)
    signal: bool
    rules: tuple[str, ...]
    direction: str | None
    shifts: tuple[
        tuple[str, date, date, int], ...
    ]  # runs longer than the limit: (above|below, from, to, points)
    longest_run: int | None
    longest_run_limit: int | None
    crossings: int | None
    crossings_limit: int | None
    useful: int | None
    withheld: str | None
    baseline: Mapping[str, Any] | None
    #: Outcomes of the goal's community referrals in the window: (day, words), e.g. "food pantry enrolled".
    #: Marked on the chart without starting a phase (they are not a PDSA change of the coaching plan).
    events: tuple[tuple[date, str], ...] = ()

    @classmethod
    def from_service(cls, data: Mapping[str, Any], label: str) -> RunChartFigure:
        """The figure of :meth:`CoachingService.run_chart`'s result (``point``, ``median``, ``analysis``,
        ``phase``, ``annotation``, ``baseline``)."""
        raw_phases = [p for p in data.get("phase", []) if p.get("median") is not None]
        notes = [(a["date"], str(a.get("title") or a.get("text") or "")) for a in data.get("annotation", [])]
        phases: list[ChartPhase] = []
        if len(raw_phases) > 1:
            for i, p in enumerate(raw_phases):
                if i == 0:
                    name = f"before {_quote(notes[0][1])}" if notes else "baseline"
                    phases.append(ChartPhase(name, p["from"], p["to"], float(p["median"])))
                else:
                    day, title = (
                        notes[i - 1] if i - 1 < len(notes) else (p["from"], str(p.get("label") or ""))
                    )
                    phases.append(
                        ChartPhase(
                            f"after {_quote(title)} ({day:%b %-d})",
                            p["from"],
                            p["to"],
                            float(p["median"]),
                            title,
                        )
                    )
        points = []
        for p in data.get("point", []):
            index = 0
            for i, ph in enumerate(phases):
                if p["date"] >= ph.start:
                    index = i
            points.append(
                ChartPoint(
                    p["date"], float(p["value"]), bool(p.get("shift")), bool(p.get("astronomical")), index
                )
            )
        a = data.get("analysis") or {}
        return cls(
            label=label,
            unit=data.get("unit"),
            start=data.get("from"),
            end=data.get("to"),
            points=tuple(points),
            median=data.get("median"),
            phases=tuple(phases),
            changes=tuple(notes),
            signal=bool(a.get("signal")),
            rules=tuple(a.get("rule") or ()),
            direction=a.get("direction"),
            shifts=tuple((r["side"], r["from"], r["to"], int(r["points"])) for r in a.get("shift") or []),
            longest_run=a.get("longestRun"),
            longest_run_limit=a.get("longestRunLimit"),
            crossings=a.get("crossings"),
            crossings_limit=a.get("crossingsLimit"),
            useful=a.get("useful"),
            withheld=a.get("withheld"),
            baseline=data.get("baseline"),
        )

    # -- words ---------------------------------------------------------------------------------------------

    def n(self, value: float | None) -> str:
        return fmt_number(value, self.unit)

    @property
    def marked(self) -> tuple[ChartPoint, ...]:
        """The points drawn as signal marks (a shift, or an astronomical point)."""
        return tuple(p for p in self.points if p.shift or p.astronomical)

    def medians_text(self) -> str:
        """Every median the chart draws, by name."""
        if not self.points:
            return ""
        text = f"Median of all {len(self.points)} days {self.n(self.median)}"
        if self.phases:
            text += "; " + "; ".join(f"{ph.name}: median {self.n(ph.median)}" for ph in self.phases)
        return text + "."

    def signal_text(self) -> str:
        """The signal, or why there is none."""
        if not self.points:
            return ""
        if self.signal:
            parts = []
            if "shift" in self.rules:
                parts += [
                    f"{n} points in a row {side} the median ({start:%b %-d} to {end:%b %-d})"
                    for side, start, end, n in self.shifts
                ] or ["a shift"]
            if "crossings" in self.rules:
                parts.append("too few crossings of the median")
            said = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
            return f"Signal: {said} — the process has changed."
        if self.withheld == "not enough baseline yet" and self.baseline:
            return (
                f"No signal reported: not enough baseline yet ({self.baseline.get('points')} of "
                f"{self.baseline.get('needed')} points before the latest PDSA change)."
            )
        if self.withheld:
            return (
                f"No signal reported: {self.withheld} ({self.useful or 0} points off the median; 10 needed)."
            )
        return "No signal: the points vary at random around the median."

    def limits_text(self) -> str:
        """The two Anhøj figures with their limits, phrased with the limits' direction."""
        if self.longest_run_limit is None or self.crossings_limit is None:
            return ""
        return (
            f"Longest run {self.longest_run} — more than {self.longest_run_limit} would be a signal; "
            f"crossings {self.crossings} — fewer than {self.crossings_limit} would be a signal."
        )

    def marks_text(self) -> str:
        """How many points are marked, and for what."""
        if not self.points:
            return ""
        shift = sum(1 for p in self.points if p.shift)
        astro = sum(1 for p in self.points if p.astronomical)
        if not shift and not astro:
            return "No point is marked."
        why = []
        if shift:
            why.append(f"{shift} in a shift")
        if astro:
            why.append(f"{astro} astronomical (far outside the usual spread)")
        n = len(self.marked)
        return f"{n} point{'s' if n != 1 else ''} marked in red: {', '.join(why)}."

    def sentence(self) -> str:
        """What the chart says, in words (its text alternative and its caption)."""
        if not self.points:
            return f"Run chart of {self.label}: no data in this period."
        head = (
            f"Run chart of {self.label}, {self.points[0].day:%b %-d} to {self.points[-1].day:%b %-d, %Y}, "
            f"{len(self.points)} days."
        )
        # every PDSA change starts a phase, and the phases are named with the change and its day
        return " ".join(
            x
            for x in (
                head,
                self.medians_text(),
                self.signal_text(),
                self.limits_text(),
                self.marks_text(),
                self.events_text(),
            )
            if x
        )

    def shown_events(self) -> list[tuple[date, str]]:
        """The referral outcomes inside the chart: from its first point to the end of its period (an outcome
        after the latest reading still shows, at the right edge)."""
        if not self.points:
            return []
        end = max(self.points[-1].day, self.end or self.points[-1].day)
        return [(day, text) for day, text in self.events if self.points[0].day <= day <= end]

    def events_text(self) -> str:
        """The referral outcomes marked on the chart, in words."""
        shown = [f"{text}, {day:%b %-d}" for day, text in self.shown_events()]
        return f"Referral outcome{'s' if len(shown) > 1 else ''}: {'; '.join(shown)}." if shown else ""

    def table(self) -> list[dict[str, str]]:
        """One row per point: day, value, phase, that phase's median, mark."""
        rows = []
        for p in self.points:
            phase = self.phases[p.phase] if self.phases else None
            rows.append(
                {
                    "day": f"{p.day:%a %b %-d}",
                    "iso": p.day.isoformat(),
                    "value": self.n(p.value),
                    "phase": phase.name if phase else "all days",
                    "median": self.n(phase.median if phase else self.median),
                    "mark": p.mark,
                }
            )
        return rows


def _quote(text: str) -> str:
    return f"“{text}”"


def _f(x: float) -> str:
    return f"{x:.1f}".rstrip("0").rstrip(".")


def _fit(text: str, room: float, font: float) -> str:
    """``text`` shortened with an ellipsis to about ``room`` user units at ``font`` size."""
    fits = max(int(room / (font * 0.56)), 4)
    return text if len(text) <= fits else text[: fits - 1].rstrip() + "…"


def draw(
    fig: RunChartFigure, *, width: int = 640, height: int = 240, font: float = 12.0, css: str = "runchart"
) -> Markup:
    """The figure as an SVG (scales with its container through ``viewBox``); its text alternative is
    :meth:`RunChartFigure.sentence`. ``font`` is in user units: draw a narrow figure for phones so that
    its labels stay at least 12 px on a 360 px screen (a narrow figure's labels leave the unit to the caption)."""
    narrow = width < 480

    def label(v: float | None) -> str:
        return fmt_number(v, None if narrow else fig.unit)

    summary = fig.sentence()
    head = (
        f'<svg class="{css}" viewBox="0 0 {width} {height}" role="img" aria-label="{escape(summary)}" '
        f'focusable="false" preserveAspectRatio="xMidYMid meet"><title>{escape(summary)}</title>'
    )
    if not fig.points:
        return Markup(
            head + f'<text class="rc-empty" x="{width / 2}" y="{height / 2}" text-anchor="middle" '
            f'font-size="{_f(font)}">No data in this period</text></svg>'
        )
    values = [p.value for p in fig.points]
    medians = [m for m in [fig.median, *(ph.median for ph in fig.phases)] if m is not None]
    lo, hi = min(values + medians), max(values + medians)
    labels = [label(v) for v in (lo, hi)]
    left = max(len(t) for t in labels) * font * 0.58 + 10
    right, top, bottom = width - 6.0, 2.6 * font + 6, height - 1.6 * font - 4
    span = hi - lo or 1.0

    def y(v: float) -> float:
        return bottom - (v - lo) / span * (bottom - top)

    first, last = fig.points[0].day, fig.points[-1].day
    events = fig.shown_events()
    last = max([last, *(d for d, _ in events)])  # an outcome after the latest reading widens the axis
    days = (last - first).days or 1

    def x(d: date) -> float:
        return left + (d - first).days / days * (right - left)

    fs = f' font-size="{_f(font)}"'
    parts = [head]
    on_top: list[str] = []  # the median labels, drawn over the points (with a halo) so none hides them
    for v, text in zip((lo, hi), labels, strict=True):
        parts.append(
            f'<text class="rc-axis" x="{_f(left - 6)}" y="{_f(y(v) + font / 3)}" text-anchor="end"{fs}>'
            f"{escape(text)}</text>"
        )
    parts.append(f'<text class="rc-axis" x="{_f(left)}" y="{_f(height - 4)}"{fs}>{first:%b %-d}</text>')
    parts.append(
        f'<text class="rc-axis" x="{_f(right)}" y="{_f(height - 4)}" text-anchor="end"{fs}>'
        f"{last:%b %-d}</text>"
    )
    # the median of all days: the line every signal is tested against
    if fig.median is not None:
        ym = y(fig.median)
        parts.append(
            f'<line class="rc-median-all" x1="{_f(left)}" x2="{_f(right)}" y1="{_f(ym)}" y2="{_f(ym)}">'
            f"<title>Median of all days: {escape(fig.n(fig.median))}</title></line>"
        )
        name = "median, all days" if fig.phases else "median"
        on_top.append(
            f'<text class="rc-axis rc-median-label" x="{_f(right)}" y="{_f(ym - 4)}" text-anchor="end"{fs}>'
            f"{name} {escape(label(fig.median))}</text>"
        )
    for ph in fig.phases:
        x1, x2 = x(max(ph.start, first)), x(min(ph.end, last))
        yp = y(ph.median)
        parts.append(
            f'<line class="rc-median" x1="{_f(x1)}" x2="{_f(max(x2, x1 + 1))}" y1="{_f(yp)}" '
            f'y2="{_f(yp)}"><title>{escape(ph.name)}: median {escape(fig.n(ph.median))}</title></line>'
        )
        # on the line's side away from the median of all days, with a halo (CSS) so points do not hide it
        below = fig.median is not None and ph.median < fig.median
        on_top.append(
            f'<text class="rc-axis rc-phase-label" x="{_f(x1 + 3)}" '
            f'y="{_f(yp + font + 3 if below else yp - 5)}"{fs}>median {escape(label(ph.median))}</text>'
        )
    shown = [(d, t) for d, t in fig.changes if first <= d <= last]
    for i, (day, title) in enumerate(shown):
        ax = x(day)
        room = (x(shown[i + 1][0]) if i + 1 < len(shown) else right) - ax - 6
        row = top - 6 - (font + 2) * (i % 2)
        parts.append(
            f'<g class="rc-pdsa"><line x1="{_f(ax)}" x2="{_f(ax)}" y1="{_f(row + 2)}" y2="{_f(bottom)}"/>'
            f'<text x="{_f(ax + 3)}" y="{_f(row)}"{fs}>{escape(_fit("PDSA: " + title, room, font))}</text>'
            f"<title>PDSA change on {day:%b %-d}: {escape(title)}</title></g>"
        )
    for day, text in events:
        if first <= day <= last:
            ax = x(day)
            anchor = "end" if ax > (left + right) / 2 else "start"
            tx = ax - 3 if anchor == "end" else ax + 3
            parts.append(
                f'<g class="rc-event"><line x1="{_f(ax)}" x2="{_f(ax)}" y1="{_f(top)}" y2="{_f(bottom)}"/>'
                f'<text x="{_f(tx)}" y="{_f(bottom - 4)}" text-anchor="{anchor}"{fs}>'
                f"{escape(_fit(f'{text}, {day:%b %-d}', (right - left) / 2, font))}</text>"
                f"<title>Referral outcome on {day:%b %-d}: {escape(text)}</title></g>"
            )
    coords = " ".join(f"{_f(x(p.day))},{_f(y(p.value))}" for p in fig.points)
    parts.append(f'<polyline class="rc-line" points="{coords}"/>')
    r = max(font / 5.5, 2.0)
    for p in fig.points:
        if p.shift or p.astronomical:
            cls = "rc-signal" + (" rc-astro" if p.astronomical else "")
            parts.append(
                f'<circle class="{cls}" cx="{_f(x(p.day))}" cy="{_f(y(p.value))}" r="{_f(r * 1.6)}"/>'
            )
        else:
            parts.append(f'<circle class="rc-point" cx="{_f(x(p.day))}" cy="{_f(y(p.value))}" r="{_f(r)}"/>')
    parts += on_top
    parts.append("</svg>")
    return Markup("".join(parts))
