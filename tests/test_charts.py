"""directory/charts.py: well-formed SVG, values drawn where they belong, text escaped, empty data said."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from directory import charts

SVG = "{http://www.w3.org/2000/svg}"


def _points(svg: ET.Element) -> list[tuple[float, float]]:
    (line,) = svg.iter(f"{SVG}polyline")
    return [tuple(map(float, pair.split(","))) for pair in line.get("points").split()]


def test_sparkline_scales_values_into_the_box():
    svg = ET.fromstring(charts.sparkline([10, 20, None, 30], label="users", width=100, height=20))
    assert svg.get("viewBox") == "0 0 100 20" and svg.get("role") == "img"
    assert svg.find(f"{SVG}title").text == "users"
    points = _points(svg)
    assert len(points) == 3  # the missing day is skipped
    xs, ys = zip(*points, strict=True)
    assert xs[0] == 3 and xs[-1] == 97  # the padding on each side; the third value sits at index 3
    assert ys[0] == 17 and ys[-1] == 3  # lowest value at the bottom, highest at the top
    assert ys[1] == pytest.approx(10)


def test_sparkline_of_a_flat_or_empty_series():
    flat = ET.fromstring(charts.sparkline([5, 5, 5], label="flat"))
    assert len({y for _, y in _points(flat)}) == 1
    empty = ET.fromstring(charts.sparkline([None, None], label="nothing"))
    assert empty.find(f"{SVG}text").text == "no data" and empty.find(f"{SVG}polyline") is None
    single = ET.fromstring(charts.sparkline([None, 7], label="one"))
    assert single.find(f"{SVG}polyline") is None and len(list(single.iter(f"{SVG}circle"))) == 1


def test_line_chart_draws_each_series_with_a_legend_and_escapes_names():
    svg_text = charts.line_chart(
        [charts.Series("a <b> & c", [1, 2, 3]), charts.Series("second", [None, 4, 2])],
        ["d1", "d2", "d3"], label='users "per" pool',
    )
    svg = ET.fromstring(svg_text)  # parses: every text was escaped
    assert "<b>" not in svg_text
    texts = [t.text for t in svg.iter(f"{SVG}text")]
    assert "a <b> & c" in texts and "second" in texts
    assert "d1" in texts and "d3" in texts
    lines = list(svg.iter(f"{SVG}polyline"))
    assert [len(line.get("points").split()) for line in lines] == [3, 2]
    assert lines[0].get("stroke") != lines[1].get("stroke")
    # The y axis runs from 0 to the largest value: 4 is at the top of the plot.
    tops = [float(p.split(",")[1]) for line in lines for p in line.get("points").split()]
    assert min(tops) == 10
    assert "4" in texts and "0" in texts


def test_bar_chart_heights_are_proportional_and_colours_kept():
    svg = ET.fromstring(charts.bar_chart(
        [("a", 10), ("b", 5), ("c", 0)], label="durations", unit=" s", colours=["#111", "#222", "#333"], height=122,
    ))
    bars = list(svg.iter(f"{SVG}rect"))
    heights = [float(b.get("height")) for b in bars]
    assert heights[0] == pytest.approx(90) and heights[1] == pytest.approx(45) and heights[2] == 0
    assert [b.get("fill") for b in bars] == ["#111", "#222", "#333"]
    assert [b.find(f"{SVG}title").text for b in bars] == ["a: 10 s", "b: 5 s", "c: 0 s"]


@pytest.mark.parametrize("chart", [
    lambda: charts.bar_chart([], label="nothing"),
    lambda: charts.line_chart([charts.Series("x", [None])], ["d"], label="nothing"),
    lambda: charts.line_chart([], [], label="nothing"),
])
def test_empty_charts_say_so(chart):
    svg = ET.fromstring(chart())
    assert svg.find(f"{SVG}text").text == "no data yet"


@pytest.mark.parametrize(("value", "text"), [
    (0, "0"), (12, "12"), (1234, "1,234"), (25_000, "25k"), (1_250_000, "1.25M"), (0.5, "0.5"), (2.25, "2.2"),
])
def test_format_value(value, text):
    assert charts.format_value(value) == text
