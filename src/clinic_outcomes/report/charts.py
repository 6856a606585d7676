"""The report's charts: hand-written SVG (no script, no fonts to fetch, a few kB each), and the relief
curves sampled for them."""

from __future__ import annotations

import html
import math
from dataclasses import dataclass
from typing import Any

import polars as pl
from markupsafe import Markup

from clinic_outcomes.report.wording import CURVE_POINTS, Formatter, label_of, small_cell


# Presentation as SVG attributes, not CSS: WeasyPrint's SVG renderer ignores stylesheet properties.
TICK = 'font-size="10" fill="#5b6475"'
LEGEND = 'font-size="11" fill="#1d2330"'
PALETTE = ("#1f6fb2", "#d95f02", "#1b9e77", "#7570b3", "#e7298a", "#66a61e", "#a6761d", "#666666")


@dataclass
class Series:
    label: str
    points: list[tuple[float, float | None]]  # None: a gap (suppressed month)
    note: str = ""


def esc(text: Any) -> str:
    return html.escape(str(text), quote=True)


def line_chart(
    series: list[Series],
    *,
    title: str,
    x_ticks: list[tuple[float, str]],
    y_ticks: list[tuple[float, str]],
    x_max: float,
    y_max: float,
    step: bool = False,
    width: int = 520,
    height: int = 250,
) -> Markup:
    """A line (or step) chart as inline SVG; the legend lists each series."""
    left, right, top, bottom = 46, 185, 12, 34
    plot_w, plot_h = width - left - right, height - top - bottom

    def sx(x: float) -> float:
        return left + plot_w * (x / x_max if x_max else 0)

    def sy(y: float) -> float:
        return top + plot_h * (1 - (y / y_max if y_max else 0))

    parts = [
        f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" role="img" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}"><title>{esc(title)}</title>'
    ]
    for y, text in y_ticks:
        parts.append(
            f'<line class="grid" x1="{left}" x2="{left + plot_w}" y1="{sy(y):.1f}" y2="{sy(y):.1f}" stroke="#e6e9ef"/>'
            f'<text class="tick" x="{left - 4}" y="{sy(y) + 3:.1f}" text-anchor="end" {TICK}>{esc(text)}</text>'
        )
    for x, text in x_ticks:
        parts.append(
            f'<line class="axis" x1="{sx(x):.1f}" x2="{sx(x):.1f}" y1="{top + plot_h}" y2="{top + plot_h + 4}" stroke="#8a93a3"/>'
            f'<text class="tick" x="{sx(x):.1f}" y="{top + plot_h + 16}" text-anchor="middle" {TICK}>{esc(text)}</text>'
        )
    parts.append(f'<line class="axis" x1="{left}" x2="{left + plot_w}" y1="{top + plot_h}" y2="{top + plot_h}" stroke="#8a93a3"/>')
    for index, one in enumerate(series):
        colour = PALETTE[index % len(PALETTE)]
        path: list[str] = []
        pen_down = False
        previous_y: float | None = None
        for x, y in one.points:
            if y is None:
                pen_down = False
                continue
            if pen_down and step and previous_y is not None:
                path.append(f"L{sx(x):.1f} {sy(previous_y):.1f}")
            path.append(f"{'L' if pen_down else 'M'}{sx(x):.1f} {sy(y):.1f}")
            pen_down, previous_y = True, y
        if path:
            parts.append(
                f'<path class="series" d="{"".join(path)}" stroke="{colour}" fill="none" stroke-width="2"><title>{esc(one.label)}</title></path>'
            )
            if not step:
                for x, y in one.points:
                    if y is not None:
                        parts.append(f'<circle class="dot" cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="2.5" fill="{colour}"/>')
        legend_y = top + 12 + 16 * index
        parts.append(
            f'<rect x="{left + plot_w + 12}" y="{legend_y - 8}" width="10" height="10" fill="{colour}"/>'
            f'<text class="legend" x="{left + plot_w + 26}" y="{legend_y + 1}" {LEGEND}>{esc(one.label)}</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))




def curve_series(curves: pl.DataFrame, group_column: str, max_hours: float) -> dict[Any, list[tuple[float, float]]]:
    """Each curve's survival on an even grid of hours (step value at the last point at or before each grid time)."""
    grid_step = max_hours / CURVE_POINTS
    series: dict[Any, list[tuple[float, float]]] = {}
    for (group_value,), curve in curves.sort("hours").group_by([group_column], maintain_order=True):
        hours = curve["hours"].to_list()
        last_hours = min(hours[-1], max_hours)
        grid = pl.DataFrame({"hours": [i * grid_step for i in range(int(last_hours / grid_step) + 1)] + [last_hours]})
        sampled = grid.join_asof(curve.select("hours", "survival"), on="hours", strategy="backward")
        points = [(0.0, 1.0)] if hours[0] > 0 else []
        for h, s in sampled.iter_rows():
            # a step line needs only the points where it changes, and its end
            if s is not None and (not points or s != points[-1][1]):
                points.append((h, s))
        if points and points[-1][0] < last_hours:
            points.append((last_hours, points[-1][1]))
        series[group_value] = points
    return series


def relief_chart(
    curves: pl.DataFrame, patients: dict[Any, int], group_column: str, fmt: Formatter, title: str, max_hours: float
) -> dict[str, Any]:
    shown, hidden = [], []
    sampled = curve_series(curves, group_column, max_hours) if curves.height else {}
    for group_value in sorted(sampled, key=lambda v: (v is None, str(v))):
        label = label_of(group_value)
        if small_cell(patients.get(group_value), fmt.min_cell) is not None:
            hidden.append(label)
            continue
        shown.append(Series(label, sampled[group_value]))
    days = max_hours / 24
    tick_days = [d for d in (0, 3, 7, 14, 21, 28, 35, 42, 56, 70, 84) if d <= days]
    chart = (
        line_chart(
            shown,
            title=title,
            x_ticks=[(d * 24, f"{d}d") for d in tick_days],
            y_ticks=[(v / 100, f"{v}%") for v in (0, 25, 50, 75, 100)],
            x_max=max_hours,
            y_max=1.0,
            step=True,
        )
        if shown
        else None
    )
    return {"chart": chart, "hidden": hidden, "title": title}



def nice_ceiling(value: float) -> float:
    if value <= 0:
        return 1.0
    magnitude = 10 ** math.floor(math.log10(value))
    for factor in (1, 2, 2.5, 4, 5, 8, 10):
        if value <= factor * magnitude:
            return factor * magnitude
    return 10 * magnitude




def funnel_chart(units: list[dict[str, Any]], *, title: str, scale: float, unit_text: str,
                 width: int = 520, height: int = 250) -> Markup:
    """R8's funnel plot as inline SVG: each unit's adjusted difference (dot, y) against its number of plans or
    sessions (x), with its own 95% and 99.8% limits around 0 as whiskers (the limits depend on each unit's size
    and case mix, so they are drawn per unit, not as a smooth funnel). `units`: dicts with unit_id, n,
    difference, limit_95, limit_998 (only units that may be shown); `scale` multiplies the values for the
    axis (100 for shares, in percentage points)."""
    left, right, top, bottom = 56, 20, 12, 34
    plot_w, plot_h = width - left - right, height - top - bottom
    x_max = nice_ceiling(max((u["n"] for u in units), default=1) * 1.05)
    reach = max([abs(u["difference"]) for u in units] + [u["limit_998"] or 0 for u in units] + [1e-9]) * scale
    y_max = nice_ceiling(reach * 1.1)

    def sx(x: float) -> float:
        return left + plot_w * x / x_max

    def sy(y: float) -> float:
        return top + plot_h * (0.5 - y * scale / (2 * y_max))

    parts = [
        f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" role="img" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}"><title>{esc(title)}</title>'
    ]
    for tick in (-y_max, -y_max / 2, 0.0, y_max / 2, y_max):
        y = top + plot_h * (0.5 - tick / (2 * y_max))
        parts.append(
            f'<line class="grid" x1="{left}" x2="{left + plot_w}" y1="{y:.1f}" y2="{y:.1f}" '
            f'stroke="{"#8a93a3" if tick == 0 else "#e6e9ef"}"/>'
            f'<text class="tick" x="{left - 4}" y="{y + 3:.1f}" text-anchor="end" {TICK}>{"0" if tick == 0 else f"{tick:+g}"}</text>'
        )
    for index in range(5):
        x = x_max * index / 4
        parts.append(f'<text class="tick" x="{sx(x):.1f}" y="{top + plot_h + 16}" text-anchor="middle" {TICK}>{x:,.0f}</text>')
    parts.append(f'<text class="tick" x="{left + plot_w / 2:.1f}" y="{height - 2}" text-anchor="middle" {TICK}>{esc(unit_text)}</text>')
    for unit in units:
        x = sx(unit["n"])
        for limit, colour in ((unit.get("limit_998"), "#d7dbe3"), (unit.get("limit_95"), "#9aa3b2")):
            if limit is not None:
                parts.append(f'<line class="limit" x1="{x:.1f}" x2="{x:.1f}" y1="{sy(-limit):.1f}" y2="{sy(limit):.1f}" '
                             f'stroke="{colour}" stroke-width="5"/>')
        parts.append(f'<circle class="funnel-dot" cx="{x:.1f}" cy="{sy(unit["difference"]):.1f}" r="3.5" fill="{PALETTE[0]}">'
                     f'<title>{esc(unit["unit_id"])}: {unit["difference"] * scale:+.1f}</title></circle>')
    parts.append("</svg>")
    return Markup("".join(parts))
