"""Inline SVG sparklines for the pages, as pure functions (no I/O, no clock); run charts: :mod:`.runcharts`.

Tufte's sparkline: a word-sized line with no axes or gridlines; the latest value marked, the minimum and
maximum marked, and the target drawn as a pale band, so "where is it now, against where it should be" reads
at a glance. Every chart carries its own text alternative (``role="img"``, ``<title>`` and ``aria-label``),
and :func:`describe_series` gives the same sentence for use next to the chart.

Usage::

    svg = sparkline([(date(2026, 3, 1), 5200), (date(2026, 3, 2), 8100)], band=(8000, None),
                    label="Steps per day", unit="steps")
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import date
from html import escape

from markupsafe import Markup

__all__ = ["describe_series", "fmt_number", "sparkline"]

Band = tuple[float | None, float | None]  # (low, high); None = open towards that edge


def fmt_number(value: float | None, unit: str | None = None) -> str:
    """A value for people: thousands separators, at most one decimal, and a short unit."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    text = f"{round(value):,}" if abs(value) >= 100 or float(value).is_integer() else f"{value:,.1f}"
    short = _UNIT_WORDS.get(unit or "", unit or "")
    return f"{text} {short}".strip()


_UNIT_WORDS = {
    "/d": "steps",
    "h": "h",
    "min": "min",
    "/min": "bpm",
    "kg": "kg",
    "[lb_av]": "lb",
    "1": "",
    "kcal": "kcal",
    "/wk": "/wk",
    "%": "%",
    "mm[Hg]": "mmHg",
    "{score}": "",
}


def _f(x: float) -> str:
    return f"{x:.1f}".rstrip("0").rstrip(".")


def _band_text(band: Band | None, unit: str | None) -> str:
    if band is None:
        return ""
    low, high = band
    if low is not None and high is not None:
        return f"; target {fmt_number(low, unit)} to {fmt_number(high, unit)}"
    if low is not None:
        return f"; target at least {fmt_number(low, unit)}"
    if high is not None:
        return f"; target at most {fmt_number(high, unit)}"
    return ""


def describe_series(
    points: Sequence[tuple[date, float]], *, label: str, unit: str | None = None, band: Band | None = None
) -> str:
    """One sentence that says what a sparkline shows (its text alternative)."""
    if not points:
        return f"{label}: no data yet{_band_text(band, unit)}."
    values = [v for _, v in points]
    last_day, last = points[-1]
    lo, hi = min(values), max(values)
    return (
        f"{label}: latest {fmt_number(last, unit)} on {last_day:%b %-d}; lowest {fmt_number(lo, unit)}, "
        f"highest {fmt_number(hi, unit)} over {len(points)} days{_band_text(band, unit)}."
    )


def _scale(lo: float, hi: float, top: float, bottom: float):  # type: ignore[no-untyped-def]
    span = hi - lo or 1.0
    return lambda v: bottom - (v - lo) / span * (bottom - top)


def _x_scale(first: date, last: date, left: float, right: float):  # type: ignore[no-untyped-def]
    span = (last - first).days or 1
    return lambda d: left + (d - first).days / span * (right - left)


def sparkline(
    points: Sequence[tuple[date, float]],
    *,
    label: str,
    unit: str | None = None,
    band: Band | None = None,
    width: int = 120,
    height: int = 28,
) -> Markup:
    """A word-sized line chart of daily values, with the target band, min/max marks and the latest point."""
    text = describe_series(points, label=label, unit=unit, band=band)
    head = (
        f'<svg class="spark" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
        f'aria-label="{escape(text)}" focusable="false"><title>{escape(text)}</title>'
    )
    if not points:
        return Markup(
            head + f'<line class="spark-empty" x1="2" x2="{width - 2}" y1="{height / 2}" '
            f'y2="{height / 2}"/></svg>'
        )
    pts = sorted(points)
    values = [v for _, v in pts]
    lo, hi = min(values), max(values)
    if band is not None:  # the band's finite edges belong in view, so "below target" is visible
        lo = min(lo, *(b for b in band if b is not None))
        hi = max(hi, *(b for b in band if b is not None))
    pad = 3.0
    y = _scale(lo, hi, pad, height - pad)
    x = _x_scale(pts[0][0], pts[-1][0], pad, width - pad)
    parts = [head]
    if band is not None and (band[0] is not None or band[1] is not None):
        top = y(band[1]) if band[1] is not None else 0.0
        bottom = y(band[0]) if band[0] is not None else float(height)
        parts.append(
            f'<rect class="spark-band" x="0" y="{_f(top)}" width="{width}" '
            f'height="{_f(max(bottom - top, 1.0))}"/>'
        )
    # the polyline's points with plain arithmetic on day numbers (a caseload draws hundreds of these)
    day0, span = pts[0][0].toordinal(), (pts[-1][0].toordinal() - pts[0][0].toordinal()) or 1
    kx, ky, base = (width - 2 * pad) / span, (height - 2 * pad) / ((hi - lo) or 1.0), height - pad
    coords = " ".join([f"{pad + (d.toordinal() - day0) * kx:.1f},{base - (v - lo) * ky:.1f}" for d, v in pts])
    if len(pts) == 1:
        parts.append(f'<circle class="spark-last" cx="{_f(x(pts[0][0]))}" cy="{_f(y(pts[0][1]))}" r="2"/>')
    else:
        parts.append(f'<polyline class="spark-line" points="{coords}"/>')
        i_min = min(range(len(pts)), key=lambda i: (values[i], i))
        i_max = max(range(len(pts)), key=lambda i: (values[i], -i))
        parts.append(
            f'<circle class="spark-min" cx="{_f(x(pts[i_min][0]))}" cy="{_f(y(values[i_min]))}" r="1.6"/>'
        )
        parts.append(
            f'<circle class="spark-max" cx="{_f(x(pts[i_max][0]))}" cy="{_f(y(values[i_max]))}" r="1.6"/>'
        )
        parts.append(f'<circle class="spark-last" cx="{_f(x(pts[-1][0]))}" cy="{_f(y(values[-1]))}" r="2"/>')
    parts.append("</svg>")
    return Markup("".join(parts))
