"""The report's charts (issue 17): every month labelled, the partial month marked, legends whole and below the
plot, the plot over the whole width, survival curves with their 95% band and numbers at risk, funnel dots
labelled without overlapping labels; and a chart as an image draws the same PDF as inline.

Mutants tried (each made a test here fail):
- charts.month_ticks labelling every other month -> test_every_month_is_labelled_with_its_year_where_it_changes;
- line_chart without the partial shading (`partial_from < x_max` -> `>`) -> test_the_partial_month_is_marked;
- _legend never starting a new row -> test_legends_wrap_and_stay_inside_the_chart;
- the em estimate halved (TEXT_EM 0.31: legends wrap too late) -> test_legends_wrap_and_stay_inside_the_chart
  (it survived while the test measured lines with the module's own estimate; the test now uses its own 0.6 em);
- curve_series at risk as `hours > tick` (the episodes relapsing exactly at a tick miscounted) ->
  test_numbers_at_risk_under_the_axis;
- relief_chart showing at-risk counts under the minimum as they are -> test_numbers_at_risk_under_the_axis;
- curve_series keeping rows with `at_risk < min_cell` -> test_a_curve_ends_where_too_few_are_followed;
- relief_chart keeping every tick of the follow-up window (the axis not shortened to the longest curve) ->
  test_numbers_at_risk_under_the_axis;
- _band_path taking the upper limit for the lower edge at each step -> test_survival_curves_carry_their_band (it
  survived a first version of the test that compared the edges' averages; the test now reads the limits back);
- _dot_labels without moving labels apart (`placed[-1] + gap` -> `placed[-1]`) -> test_funnel_labels_do_not_overlap.
"""

from __future__ import annotations

import base64
import html
import re

import polars as pl
from hypothesis import given
from hypothesis import strategies as st

from clinic_outcomes.report.charts import (
    CHART_WIDTH, LEGEND_SIZE, Series, curve_series, funnel_chart, line_chart, month_ticks, relief_chart,
)
from clinic_outcomes.report.print_report import chart_image
from clinic_outcomes.report.wording import Formatter

MONTHS = [f"2025-{m:02d}" for m in (11, 12)] + [f"2026-{m:02d}" for m in range(1, 12)]


def _texts(svg: str, cls: str) -> list[str]:
    """The text of every <text class="cls"> element (exactly that class), its tspans joined by spaces."""
    found = re.findall(rf'<text class="{cls}"[^>]*>(.*?)</text>', svg, re.S)
    return [html.unescape(" ".join(part for part in re.findall(r">([^<]*)<", f"<x>{body}</x>") if part))
            for body in found]


def _trend(values=None) -> str:
    values = values or [float(10 + i) for i in range(len(MONTHS))]
    return str(line_chart([Series("Sessions with meaningful relief", list(enumerate(values)))], title="t",
                          x_ticks=month_ticks(MONTHS), y_ticks=[(0, "0"), (40, "40")], x_min=-0.5,
                          x_max=len(MONTHS) - 0.5, y_max=40, partial_from=len(MONTHS) - 1.5))


def test_every_month_is_labelled_with_its_year_where_it_changes():
    labels = _texts(_trend(), "tick x-tick")
    assert labels == ["Nov 2025", "Dec", "Jan 2026", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct",
                      "Nov"]


def test_the_partial_month_is_marked():
    svg = _trend()
    rect = re.search(r'<rect class="partial" x="([\d.]+)" y="[\d.]+" width="([\d.]+)"', svg)
    assert rect and "to date" in _texts(svg, "partial-label")
    # the shaded slot is the last month's: from half-way between the last two points to the plot's right edge
    dots = [float(x) for x in re.findall(r'<circle class="dot[^"]*" cx="([\d.]+)"', svg)]
    assert abs(float(rect.group(1)) - (dots[-2] + dots[-1]) / 2) < 0.2
    assert abs(float(rect.group(1)) + float(rect.group(2)) - (dots[-1] + (dots[-1] - dots[-2]) / 2)) < 0.2
    assert svg.count('class="dot partial"') == 1 and 'fill="#ffffff"' in svg  # the last dot hollow
    assert 'class="series partial"' in svg and 'stroke-dasharray' in svg  # the segment into it dashed


def test_the_plot_spans_the_width_and_scales():
    svg = _trend()
    dots = [float(x) for x in re.findall(r'<circle class="dot[^"]*" cx="([\d.]+)"', svg)]
    assert dots[0] < 0.15 * CHART_WIDTH and dots[-1] > 0.9 * CHART_WIDTH
    assert 'preserveAspectRatio="xMinYMin meet"' in svg and f'viewBox="0 0 {CHART_WIDTH} ' in svg


def test_a_single_series_needs_no_legend_and_several_get_one():
    assert "legend" not in _trend()
    two = str(line_chart([Series("a", [(0, 1.0)]), Series("b", [(0, 2.0)])], title="t", x_ticks=[(0, "0")],
                         y_ticks=[(0, "0")], x_max=1, y_max=2))
    assert _texts(two, "legend") == ["a", "b"]


def test_legends_wrap_and_stay_inside_the_chart():
    labels = ["Sessions with meaningful relief", "Carpal tunnel syndrome", "Headache from the neck",
              "Shoulder pain", "Not recorded", "Low back pain",
              "A condition with a very long name that no single line of the chart could ever hold at this size"]
    svg = str(line_chart([Series(label, [(0, 1.0), (1, 0.5)]) for label in labels], title="t", x_ticks=[(0, "0")],
                         y_ticks=[(0, "0")], x_max=1, y_max=1))
    assert _texts(svg, "legend") == labels  # every label whole
    height = float(re.search(r'viewBox="0 0 \d+ (\d+)"', svg).group(1))
    axis = max(float(y) for y in re.findall(r'<line class="axis" x1="[\d.]+" x2="[\d.]+" y1="([\d.]+)"', svg))
    for x, y, body in re.findall(r'<text class="legend" x="([\d.]+)" y="([\d.]+)"[^>]*>(.*?)</text>', svg, re.S):
        lines = re.findall(r">([^<]*)</tspan>", body)
        assert float(y) > axis and float(y) + (len(lines) - 1) * (LEGEND_SIZE + 3) < height  # below the plot
        # DejaVu Sans advances about 0.6 em per character on such words: each line fits the chart
        assert all(float(x) + len(line) * 0.6 * LEGEND_SIZE <= CHART_WIDTH for line in lines), lines
    assert len({y for _, y, _ in re.findall(r'<text class="legend" x="([\d.]+)" y="([\d.]+)"[^>]*>(.*?)</text>', svg,
                                            re.S)}) >= 3  # wrapped over rows


def _curves() -> pl.DataFrame:
    rows = [
        # group, hours, survival, ci_low, ci_high, at_risk
        ("ice", 0.0, 1.0, 1.0, 1.0, 40), ("ice", 24.0, 0.9, 0.8, 0.95, 40), ("ice", 72.0, 0.7, 0.55, 0.8, 30),
        ("ice", 168.0, 0.5, 0.35, 0.65, 20), ("ice", 200.0, 0.4, 0.2, 0.6, 12), ("ice", 336.0, 0.3, 0.1, 0.5, 8),
        ("heat", 0.0, 1.0, 1.0, 1.0, 25), ("heat", 168.0, 0.6, 0.4, 0.8, 15), ("heat", 300.0, 0.5, 0.3, 0.7, 5),
    ]
    return pl.DataFrame(rows, schema=["group_value", "hours", "survival", "ci_low", "ci_high", "at_risk"], orient="row")


def _relief(curves=None, min_cell=11):
    return relief_chart(curves if curves is not None else _curves(), {"ice": 30, "heat": 20}, "group_value",
                        Formatter(min_cell), "Still in relief", 28 * 24.0)


def test_survival_curves_carry_their_band():
    svg = str(_relief()["chart"])
    bands = re.findall(r'<path class="band" d="([^"]+)"', svg)
    assert len(bands) == 2
    # the band encloses its curve: along the top at the upper limits, back along the lower ones
    ys = [float(y) for y in re.findall(r"[ML][\d.]+ ([\d.]+)", bands[1])]  # ice (sorted: heat, ice)
    line = [float(y) for y in re.findall(r"[ML][\d.]+ ([\d.]+)",
                                         re.findall(r'<path class="series" d="([^"]+)"', svg)[1])]
    assert min(ys) <= min(line) and max(ys) >= max(line) and max(ys) - min(ys) > 0
    # read back as shares (the 0% and 100% grid lines give the scale): the top edge is at ice's upper limits
    # only, the bottom edge at its lower limits only (up to the curve's end, where at_risk falls under 11)
    grid = {text: float(y) for y, text in re.findall(r'<text class="tick" x="[\d.]+" y="([\d.]+)"[^>]*>(\d+%)<', svg)}
    zero, full = grid["0%"] - 3, grid["100%"] - 3
    shares = [round((zero - y) / (zero - full), 2) for y in ys]
    upper, lower = shares[: len(shares) // 2], shares[len(shares) // 2:]
    assert set(upper) == {1.0, 0.95, 0.8, 0.65, 0.6} and set(lower) == {1.0, 0.8, 0.55, 0.35, 0.2}


def test_numbers_at_risk_under_the_axis():
    chart = _relief()
    svg = str(chart["chart"])
    ticks = _texts(svg, "tick x-tick")
    # the axis ends at the tick after the longest curve (ice, to 200 hours), not at the 28-day window's end
    assert ticks == ["0d", "7d", "14d"]
    assert "Number at risk" in _texts(svg, "at-risk-title")
    at_risk = _texts(svg, "at-risk")
    # heat, then ice; at a tick: the episodes whose duration is at least the tick (the first row at or after it);
    # under the minimum cell: "<11"; after the last row: 0
    assert at_risk == ["25", "15", "0", "40", "20", "<11"]
    axis = max(float(y) for y in re.findall(r'<line class="axis" x1="[\d.]+" x2="[\d.]+" y1="([\d.]+)"', svg))
    assert all(float(y) > axis for y in re.findall(r'<text class="at-risk" x="[\d.]+" y="([\d.]+)"', svg))


def test_a_curve_ends_where_too_few_are_followed():
    svg = str(_relief()["chart"])
    ice = re.findall(r'<path class="series" d="([^"]+)"', svg)[1]
    last_x = max(float(x) for x in re.findall(r"[ML]([\d.]+) ", ice))
    xs = {label: float(x) for x, label in re.findall(r'<text class="tick x-tick" x="([\d.]+)"[^>]*><tspan[^>]*>([^<]+)<', svg)}
    # ice: 12 episodes still followed at 200 h (8.3 days), 8 at 336 h: the curve stops at 200 h
    assert abs(last_x - (xs["0d"] + (xs["7d"] - xs["0d"]) * 200 / 168)) < 1.0
    everyone = str(_relief(min_cell=2)["chart"])
    ice_all = re.findall(r'<path class="series" d="([^"]+)"', everyone)[1]
    assert max(float(x) for x in re.findall(r"[ML]([\d.]+) ", ice_all)) > last_x + 50


def test_small_groups_are_left_out_and_named():
    chart = relief_chart(_curves(), {"ice": 30, "heat": 5}, "group_value", Formatter(11), "t", 28 * 24.0)
    assert chart["hidden"] == ["Heat"] and _texts(str(chart["chart"]), "legend") == ["Ice"]


def _unit(unit_id, n, difference):
    return {"unit_id": unit_id, "label": f"Clinic {unit_id}", "n": n, "difference": difference,
            "limit_95": 0.05, "limit_998": 0.08}


def test_funnel_labels_do_not_overlap():
    units = [_unit("a", 100, 0.01), _unit("b", 110, 0.012), _unit("c", 120, 0.011), _unit("d", 400, -0.02),
             _unit("e", 410, -0.021)]
    svg = str(funnel_chart(units, title="t", scale=100, unit_text="plans"))
    labels = re.findall(r'<text class="dot-label" x="([\d.]+)" y="([\d.]+)" text-anchor="(\w+)"[^>]*>([^<]+)<', svg)
    assert sorted(text for *_, text in labels) == [f"Clinic {u}" for u in "abcde"]
    # labels of both sides together: one running left from a dot can meet one running right
    assert {anchor for _, _, anchor, _ in labels} == {"start", "end"}
    ys = sorted(float(y) for _, y, _, _ in labels)
    assert all(b - a >= 10 - 0.11 for a, b in zip(ys, ys[1:])), ys
    assert svg.count('class="leader"') >= 2  # moved labels point at their dots


def test_a_chart_as_image_draws_the_same_pdf_as_inline():
    # WeasyPrint draws an SVG image and an inline SVG with the same renderer: the PDFs are the same bytes.
    # Fails if a WeasyPrint release draws them differently (then charts must go inline again).
    import weasyprint

    chart = line_chart(
        [Series("Ice & heat", [(0, 1.0), (24, 0.8), (48, None), (72, 0.5)], band=[(0, 0.9, 1.0), (72, 0.4, 0.6)],
                at_risk=["12", "<11"]), Series("None", [(0, 1.0), (72, 0.9)])],
        title="Still in relief", x_ticks=[(0, "0d"), (72, "3d")], y_ticks=[(0, "0%"), (1, "100%")],
        x_max=72, y_max=1.0, step=True,
    )
    css = "body { font-family: 'DejaVu Sans'; } .chart { display: block; width: 100%; height: auto; }"
    inline = f"<html><head><style>{css}</style></head><body><figure>{chart}</figure></body></html>"
    image = chart_image(chart)
    assert base64.b64decode(re.search(r'base64,([^"]+)"', image).group(1)).decode("utf-8") == str(chart)
    as_image = inline.replace(str(chart), str(image))
    pdfs = [weasyprint.HTML(string=document, base_url=None).write_pdf() for document in (inline, as_image)]
    assert pdfs[0] == pdfs[1]


@given(
    hours=st.lists(st.floats(0, 500, allow_nan=False), min_size=1, max_size=12, unique=True),
    risks=st.lists(st.one_of(st.none(), st.integers(0, 99)), min_size=12, max_size=12),
    ticks=st.lists(st.floats(0, 600, allow_nan=False), max_size=6),
)
def test_numbers_at_risk_are_those_at_the_first_time_at_or_after_each_tick(hours, risks, ticks):
    """Against the plain definition: the first row at or after the tick, its at_risk (0 when none or null)."""
    hours = sorted(hours)
    rows = [("g", h, 1.0 - i / 20, None, None, risks[i]) for i, h in enumerate(hours)]
    curve = pl.DataFrame(rows, schema=["group_value", "hours", "survival", "ci_low", "ci_high", "at_risk"],
                         orient="row")
    expected = []
    for tick in ticks:
        later = [r for h, r in zip(hours, risks) if h >= tick]
        expected.append(later[0] if later and later[0] is not None else 0)
    got = curve_series(curve, "group_value", max_hours=600.0, ticks=tuple(ticks))["g"]["at_risk"]
    assert got == expected
