"""The sparkline builder: text alternatives, target bands, min/max and latest marks (run charts: test_runcharts)."""

from __future__ import annotations

import re
from datetime import date, timedelta
from xml.etree import ElementTree

from fhir_ecr.web.charts import describe_series, fmt_number, sparkline

D0 = date(2026, 3, 1)


def days(values):
    return [(D0 + timedelta(days=i), v) for i, v in enumerate(values)]


def parse(svg):
    return ElementTree.fromstring(str(svg))


def test_sparkline_marks_latest_min_max_and_band():
    svg = sparkline(days([5000, 9000, 4000, 8200]), label="Steps", unit="/d", band=(8000, None))
    root = parse(svg)
    assert root.get("role") == "img"
    label = root.get("aria-label")
    assert label == root.find("title").text
    assert "latest 8,200 steps on Mar 4" in label and "lowest 4,000" in label and "highest 9,000" in label
    assert "target at least 8,000" in label
    classes = [el.get("class") for el in root]
    assert classes.count("spark-band") == 1 and classes.count("spark-line") == 1
    assert {"spark-min", "spark-max", "spark-last"} <= set(classes)
    # min mark sits lowest (largest y), max highest; the latest point is the last x
    by = {el.get("class"): el for el in root if el.tag == "circle"}
    assert float(by["spark-min"].get("cy")) > float(by["spark-max"].get("cy"))
    assert float(by["spark-last"].get("cx")) == max(float(c.get("cx")) for c in by.values())
    # an "at least" band runs from the target up to the top edge
    band = next(el for el in root if el.get("class") == "spark-band")
    assert float(band.get("y")) == 0.0


def test_sparkline_band_is_in_view_even_when_all_values_are_below_it():
    svg = sparkline(days([3000, 3500, 3200]), label="Steps", unit="/d", band=(8000, None), height=30)
    band = next(el for el in parse(svg) if el.get("class") == "spark-band")
    line = next(el for el in parse(svg) if el.get("class") == "spark-line")
    ys = [float(p.split(",")[1]) for p in line.get("points").split()]
    assert float(band.get("y")) + float(band.get("height")) <= min(ys)  # the band is above every point


def test_sparkline_without_data_says_so_and_escapes_labels():
    svg = str(sparkline([], label="Sleep <b>&", unit="h"))
    assert "no data yet" in svg and "<b>" not in svg and "&lt;b&gt;" in svg
    parse(svg)


def test_sparkline_single_point_and_uneven_days():
    root = parse(sparkline([(D0, 7.5)], label="Sleep", unit="h"))
    assert [el.get("class") for el in root if el.tag == "circle"] == ["spark-last"]
    # x is by date: a gap of 9 days takes 9 times the room of one day
    line = next(
        el
        for el in parse(
            sparkline([(D0, 1), (D0 + timedelta(days=1), 2), (D0 + timedelta(days=10), 3)], label="x")
        )
        if el.get("class") == "spark-line"
    )
    xs = [float(p.split(",")[0]) for p in line.get("points").split()]
    assert abs((xs[2] - xs[1]) / (xs[1] - xs[0]) - 9) < 0.1


def test_describe_and_format():
    assert (
        describe_series([], label="Weight", unit="kg", band=(None, 75))
        == "Weight: no data yet; target at most 75 kg."
    )
    assert fmt_number(8612.4, "/d") == "8,612 steps"
    assert fmt_number(7.25, "h") == "7.2 h"
    assert fmt_number(None) == "–"
    assert re.fullmatch(r"62 bpm", fmt_number(62, "/min"))
