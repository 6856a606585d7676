"""The report's charts: hand-written SVG (no script, no fonts to fetch, a few kB each), and the relief
curves sampled for them. The same SVG goes into the HTML (inline) and the PDF (as an image).

Why hand-written SVG and not matplotlib (issue 17; measured 2026-12-07 on the shared 2-core machine, load average
8 to 12, so absolute times are inflated): importing matplotlib took 7.8 to 11.5 s and one step chart with a band
and a legend 390 to 560 ms (20 kB of SVG, every glyph drawn as a path); this module draws a like chart in
0.16 ms (4 kB, text as text, searchable in the PDF). matplotlib is no longer a direct dependency (lifelines
still pulls it in). A report night draws about 10 charts per clinic: matplotlib would cost seconds per clinic, more than
the whole report stage may take (issue 18). What matplotlib did better (ticks, legends that do not get cut,
bands) is done here: every month is labelled, legends sit below the plot and wrap, the plot spans the width,
survival curves carry their 95% band and the numbers at risk under the axis, the partial current month is
shaded and its segment dashed.

Text widths are estimated (TEXT_EM em per character, an upper bound for DejaVu Sans/Liberation Sans at these
sizes) to wrap legends: an estimate too wide only wraps early, never cuts.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl
from markupsafe import Markup

from clinic_outcomes.report.wording import CURVE_POINTS, Formatter, label_of, small_cell


# Presentation as SVG attributes, not CSS: WeasyPrint's SVG renderer ignores stylesheet properties.
TICK_SIZE, LEGEND_SIZE = 10, 11
TICK = f'font-size="{TICK_SIZE}" fill="#5b6475"'
LEGEND = f'font-size="{LEGEND_SIZE}" fill="#1d2330"'
PALETTE = ("#1f6fb2", "#d95f02", "#1b9e77", "#7570b3", "#e7298a", "#66a61e", "#a6761d", "#666666")
TEXT_EM = 0.62  # estimated advance of one character, in em (DejaVu Sans averages ~0.55 on these labels)
PARTIAL_FILL = "#eef1f6"
CHART_WIDTH = 560  # viewBox units; the chart scales to its box (CSS width 100%)


@dataclass
class Series:
    label: str
    points: list[tuple[float, float | None]]  # None: a gap (suppressed month)
    note: str = ""
    band: list[tuple[float, float, float]] = field(default_factory=list)  # (x, low, high), a step band
    at_risk: list[str] = field(default_factory=list)  # as shown, one per x tick (relief curves)


def esc(text: Any) -> str:
    return html.escape(str(text), quote=True)


def text_width(text: str, size: float) -> float:
    return len(text) * size * TEXT_EM


def wrap_words(text: str, width: float, size: float) -> list[str]:
    """The text in lines no wider than `width` (estimated); a single word longer than that keeps its line."""
    lines: list[str] = []
    for word in text.split():
        if lines and text_width(f"{lines[-1]} {word}", size) <= width:
            lines[-1] = f"{lines[-1]} {word}"
        else:
            lines.append(word)
    return lines or [""]


def _legend(series: list[Series], left: float, width: float, top: float) -> tuple[list[str], float]:
    """The legend below the plot: items left to right, a new row when the next one would not fit, a label
    wider than the chart wrapped over lines. Returns the SVG parts and the height used."""
    parts: list[str] = []
    x, y, row_height, line = left, top, 0.0, LEGEND_SIZE + 3
    for index, one in enumerate(series):
        colour = PALETTE[index % len(PALETTE)]
        lines = wrap_words(one.label, width - 16, LEGEND_SIZE)
        item = 16 + max(text_width(text, LEGEND_SIZE) for text in lines) + 14
        if x > left and x + item > left + width:
            x, y, row_height = left, y + row_height, 0.0
        spans = "".join(
            f'<tspan x="{x + 16:.1f}" dy="{0 if i == 0 else line}">{esc(text)}</tspan>' for i, text in enumerate(lines)
        )
        parts.append(
            f'<rect x="{x:.1f}" y="{y + 2:.1f}" width="10" height="10" fill="{colour}"/>'
            f'<text class="legend" x="{x + 16:.1f}" y="{y + 11:.1f}" {LEGEND}>{spans}</text>'
        )
        x += item
        row_height = max(row_height, line * len(lines) + 4)
    return parts, (y + row_height - top) if series else 0.0


def line_chart(
    series: list[Series],
    *,
    title: str,
    x_ticks: list[tuple[float, str]],
    y_ticks: list[tuple[float, str]],
    x_max: float,
    y_max: float,
    x_min: float = 0.0,
    step: bool = False,
    width: int = CHART_WIDTH,
    plot_height: int = 170,
    partial_from: float | None = None,
    legend: bool | None = None,
    x_title: str = "",
) -> Markup:
    """A line (or step) chart as inline SVG, as wide as its box.

    x tick texts may hold a line break ("Jan\\n2026"). `partial_from`: data beyond this x is partial (the
    current month): the area is shaded and labelled "to date", the segment into it dashed and its dots hollow.
    A series' `band` is drawn as a shaded step band behind its line; its `at_risk` texts as a row under the
    axis ("Number at risk"). `legend`: below the plot, by default when there is more than one series.
    """
    left, right, top = 48, 22, 10
    plot_w, plot_h = width - left - right, plot_height
    legend = len(series) > 1 if legend is None else legend
    tick_lines = max((len(text.split("\n")) for _, text in x_ticks), default=1)
    span = (x_max - x_min) or 1.0

    def sx(x: float) -> float:
        return left + plot_w * (x - x_min) / span

    def sy(y: float) -> float:
        return top + plot_h * (1 - (y / y_max if y_max else 0))

    body: list[str] = []
    if partial_from is not None and partial_from < x_max:
        x0 = sx(max(partial_from, x_min))
        body.append(
            f'<rect class="partial" x="{x0:.1f}" y="{top}" width="{left + plot_w - x0:.1f}" height="{plot_h}" fill="{PARTIAL_FILL}"/>'
            f'<text class="partial-label" x="{(x0 + left + plot_w) / 2:.1f}" y="{top + 10}" text-anchor="middle" {TICK}>to date</text>'
        )
    for y, text in y_ticks:
        body.append(
            f'<line class="grid" x1="{left}" x2="{left + plot_w}" y1="{sy(y):.1f}" y2="{sy(y):.1f}" stroke="#e6e9ef"/>'
            f'<text class="tick" x="{left - 5}" y="{sy(y) + 3:.1f}" text-anchor="end" {TICK}>{esc(text)}</text>'
        )
    axis_y = top + plot_h
    for x, text in x_ticks:
        spans = "".join(
            f'<tspan x="{sx(x):.1f}" dy="{0 if i == 0 else TICK_SIZE + 2}">{esc(part)}</tspan>'
            for i, part in enumerate(text.split("\n"))
        )
        body.append(
            f'<line class="axis" x1="{sx(x):.1f}" x2="{sx(x):.1f}" y1="{axis_y}" y2="{axis_y + 4}" stroke="#8a93a3"/>'
            f'<text class="tick x-tick" x="{sx(x):.1f}" y="{axis_y + 15}" text-anchor="middle" {TICK}>{spans}</text>'
        )
    body.append(f'<line class="axis" x1="{left}" x2="{left + plot_w}" y1="{axis_y}" y2="{axis_y}" stroke="#8a93a3"/>')
    for index, one in enumerate(series):
        colour = PALETTE[index % len(PALETTE)]
        if one.band:
            body.append(_band_path(one.band, sx, sy, colour))
        body.extend(_series_paths(one, sx, sy, colour, step, partial_from))
    y = axis_y + 15 + (TICK_SIZE + 2) * (tick_lines - 1) + 6
    if x_title:
        y += 10
        body.append(f'<text class="axis-title" x="{left + plot_w / 2:.1f}" y="{y:.1f}" text-anchor="middle" {TICK}>{esc(x_title)}</text>')
        y += 4
    rows = [(index, one) for index, one in enumerate(series) if one.at_risk]
    if rows:
        y += 13
        body.append(f'<text class="at-risk-title" x="4" y="{y:.1f}" {TICK} font-weight="bold">Number at risk</text>')
        for index, one in rows:
            y += 13
            colour = PALETTE[index % len(PALETTE)]
            body.append(f'<rect x="4" y="{y - 8:.1f}" width="14" height="8" fill="{colour}"><title>{esc(one.label)}</title></rect>')
            body.extend(
                f'<text class="at-risk" x="{sx(x):.1f}" y="{y:.1f}" text-anchor="middle" {TICK}>{esc(text)}</text>'
                for (x, _), text in zip(x_ticks, one.at_risk)
            )
        y += 4
    if legend and series:
        parts, used = _legend(series, left, plot_w, y + 6)
        body.extend(parts)
        y += 6 + used
    height = math.ceil(y + 4)
    return Markup(
        f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" role="img" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" preserveAspectRatio="xMinYMin meet"><title>{esc(title)}</title>'
        + "".join(body) + "</svg>"
    )


def _band_path(band: list[tuple[float, float, float]], sx, sy, colour: str) -> str:
    """The 95% band as one closed step shape: along the upper limits, back along the lower ones."""
    upper: list[str] = []
    lower: list[tuple[float, float]] = []
    for i, (x, low, high) in enumerate(band):
        if i:
            upper.append(f"L{sx(x):.1f} {sy(band[i - 1][2]):.1f}")
            lower.append((sx(x), sy(band[i - 1][1])))
        upper.append(f"{'L' if i else 'M'}{sx(x):.1f} {sy(high):.1f}")
        lower.append((sx(x), sy(low)))
    back = "".join(f"L{x:.1f} {y:.1f}" for x, y in reversed(lower))
    return f'<path class="band" d="{"".join(upper)}{back}Z" fill="{colour}" fill-opacity="0.15" stroke="none"/>'


def _series_paths(one: Series, sx, sy, colour: str, step: bool, partial_from: float | None) -> list[str]:
    def path_of(points: list[tuple[float, float | None]]) -> str:
        path: list[str] = []
        pen_down, previous_y = False, None
        for x, y in points:
            if y is None:
                pen_down = False
                continue
            if pen_down and step and previous_y is not None:
                path.append(f"L{sx(x):.1f} {sy(previous_y):.1f}")
            path.append(f"{'L' if pen_down else 'M'}{sx(x):.1f} {sy(y):.1f}")
            pen_down, previous_y = True, y
        return "".join(path)

    full = [p for p in one.points if partial_from is None or p[0] <= partial_from]
    partial = [p for p in one.points if partial_from is not None and p[0] > partial_from]
    out = []
    drawn = path_of(full)
    if drawn:
        out.append(f'<path class="series" d="{drawn}" stroke="{colour}" fill="none" stroke-width="2">'
                   f'<title>{esc(one.label)}</title></path>')
    if partial and partial[0][1] is not None:
        lead = [full[-1]] if full and full[-1][1] is not None else []
        dashed = path_of(lead + partial)
        if "L" in dashed:
            out.append(f'<path class="series partial" d="{dashed}" stroke="{colour}" fill="none" stroke-width="2" '
                       f'stroke-dasharray="4 3"/>')
    if not step:
        for x, y in one.points:
            if y is None:
                continue
            hollow = partial_from is not None and x > partial_from
            out.append(f'<circle class="dot{" partial" if hollow else ""}" cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="2.8" '
                       f'fill="{"#ffffff" if hollow else colour}" stroke="{colour}" stroke-width="1.5"/>')
    return out


def month_ticks(months: list[str]) -> list[tuple[float, str]]:
    """Every month labelled ("Mar"), its year under the first month and under each January."""
    import datetime as dt

    ticks = []
    for index, month in enumerate(months):
        day = dt.date(int(month[:4]), int(month[5:]), 1)
        text = f"{day:%b}\n{day:%Y}" if index == 0 or day.month == 1 else f"{day:%b}"
        ticks.append((float(index), text))
    return ticks


def curve_series(curves: pl.DataFrame, group_column: str, max_hours: float, min_cell: int = 0,
                 ticks: tuple[float, ...] = ()) -> dict[Any, dict[str, Any]]:
    """Each curve on an even grid of hours (the step value at the last point at or before each grid time):
    its points, its 95% band where the curves carry one (ci_low, ci_high), and its numbers at risk at `ticks`.

    A curve ends where fewer than `min_cell` episodes are still followed (at_risk): beyond, the step line would
    show a handful of sessions, which the relief table words as "not enough patients followed"."""
    grid_step = max_hours / CURVE_POINTS
    has_band = {"ci_low", "ci_high"} <= set(curves.columns)
    has_risk = "at_risk" in curves.columns
    series: dict[Any, dict[str, Any]] = {}
    for (group_value,), curve in curves.sort("hours").group_by([group_column], maintain_order=True):
        at_risk_at = []
        if has_risk:
            # at each tick, the number at risk at the curve's first time at or after it (0 past its end)
            hours_at = curve["hours"].to_numpy()
            risk_at = curve["at_risk"].to_list()
            for position in np.searchsorted(hours_at, np.asarray(ticks, dtype=float), side="left"):
                value = risk_at[position] if position < len(risk_at) else None
                at_risk_at.append(int(value) if value is not None else 0)
            if min_cell:
                followed = curve.filter(pl.col("at_risk") >= min_cell)
                curve = followed if followed.height else curve.head(1)
        hours = curve["hours"].to_list()
        last_hours = min(hours[-1], max_hours)
        grid = pl.DataFrame({"hours": [i * grid_step for i in range(int(last_hours / grid_step) + 1)] + [last_hours]})
        columns = ["hours", "survival", *(["ci_low", "ci_high"] if has_band else [])]
        sampled = grid.join_asof(curve.select(columns), on="hours", strategy="backward")
        points: list[tuple[float, float]] = [(0.0, 1.0)] if hours[0] > 0 else []
        band: list[tuple[float, float, float]] = []
        for row in sampled.iter_rows(named=True):
            h, s = row["hours"], row["survival"]
            # a step line needs only the points where it changes, and its end
            if s is not None and (not points or s != points[-1][1]):
                points.append((h, s))
            if has_band and row["ci_low"] is not None and row["ci_high"] is not None:
                if not band or (row["ci_low"], row["ci_high"]) != band[-1][1:]:
                    band.append((h, row["ci_low"], row["ci_high"]))
        if points and points[-1][0] < last_hours:
            points.append((last_hours, points[-1][1]))
        if band and band[-1][0] < last_hours:
            band.append((last_hours, band[-1][1], band[-1][2]))
        series[group_value] = {"points": points, "band": band, "at_risk": at_risk_at}
    return series


def relief_chart(
    curves: pl.DataFrame, patients: dict[Any, int], group_column: str, fmt: Formatter, title: str, max_hours: float
) -> dict[str, Any]:
    """Still in relief over time, a step curve per group with its 95% band and numbers at risk; groups of
    fewer than min_cell patients are left out (named under the chart)."""
    days = max_hours / 24
    # weekly ticks (fortnightly past six weeks): evenly spaced, so the numbers at risk under them never crowd
    every = 7 if days <= 42 else 14
    tick_days = list(range(0, int(days) + 1, every))
    ticks = tuple(d * 24.0 for d in tick_days)
    shown, hidden = [], []
    sampled = curve_series(curves, group_column, max_hours, fmt.min_cell, ticks) if curves.height else {}
    for group_value in sorted(sampled, key=lambda v: (v is None, str(v))):
        label = label_of(group_value)
        if small_cell(patients.get(group_value), fmt.min_cell) is not None:
            hidden.append(label)
            continue
        one = sampled[group_value]
        at_risk = [f"{n:,}" if n >= fmt.min_cell or n == 0 else f"<{fmt.min_cell}" for n in one["at_risk"]]
        shown.append(Series(label, one["points"], band=one["band"], at_risk=at_risk))
    # the axis ends at the tick after the longest curve drawn (curves end where too few are followed), so the
    # curves use the width instead of a follow-up window that is mostly empty
    longest = max((x for one in shown for x, _ in one.points), default=max_hours)
    kept = next((i for i, d in enumerate(tick_days) if d * 24 >= longest), len(tick_days) - 1) + 1
    tick_days = tick_days[:max(kept, 2)]
    for one in shown:
        one.at_risk = one.at_risk[:len(tick_days)]
    chart = (
        line_chart(
            shown,
            title=title,
            x_ticks=[(d * 24, f"{d}d") for d in tick_days],
            y_ticks=[(v / 100, f"{v}%") for v in (0, 25, 50, 75, 100)],
            x_max=min(max_hours, tick_days[-1] * 24.0),
            y_max=1.0,
            step=True,
            legend=True,
            x_title="days since the needling session",
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
                 width: int = CHART_WIDTH, height: int = 230) -> Markup:
    """R8's funnel plot as inline SVG: each unit's adjusted difference (dot, y) against its number of plans or
    sessions (x), with its own 95% and 99.8% limits around 0 as whiskers (the limits depend on each unit's size
    and case mix, so they are drawn per unit, not as a smooth funnel), each dot labelled with its unit (on
    paper nothing can be hovered). `units`: dicts with unit_id (and optionally label), n, difference,
    limit_95, limit_998 (only units that may be shown); `scale` multiplies the values for the axis (100 for
    shares, in percentage points)."""
    left, right, top, bottom = 56, 22, 12, 38
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
        f'width="{width}" height="{height}" preserveAspectRatio="xMinYMin meet"><title>{esc(title)}</title>'
    ]
    for tick in (-y_max, -y_max / 2, 0.0, y_max / 2, y_max):
        y = top + plot_h * (0.5 - tick / (2 * y_max))
        parts.append(
            f'<line class="grid" x1="{left}" x2="{left + plot_w}" y1="{y:.1f}" y2="{y:.1f}" '
            f'stroke="{"#8a93a3" if tick == 0 else "#e6e9ef"}"/>'
            f'<text class="tick" x="{left - 5}" y="{y + 3:.1f}" text-anchor="end" {TICK}>{"0" if tick == 0 else f"{tick:+g}"}</text>'
        )
    divisions = next((d for d in (4, 5) if float(x_max / d).is_integer()), 4)  # 0, 50, ..., 250 not 62.5
    for index in range(divisions + 1):
        x = x_max * index / divisions
        parts.append(f'<text class="tick" x="{sx(x):.1f}" y="{top + plot_h + 15}" text-anchor="middle" {TICK}>{x:,.0f}</text>')
    parts.append(f'<text class="tick" x="{left + plot_w / 2:.1f}" y="{height - 6}" text-anchor="middle" {TICK}>{esc(unit_text)}</text>')
    labels = []
    for unit in units:
        x = sx(unit["n"])
        for limit, colour in ((unit.get("limit_998"), "#d7dbe3"), (unit.get("limit_95"), "#9aa3b2")):
            if limit is not None:
                parts.append(f'<line class="limit" x1="{x:.1f}" x2="{x:.1f}" y1="{sy(-limit):.1f}" y2="{sy(limit):.1f}" '
                             f'stroke="{colour}" stroke-width="5"/>')
        label = unit.get("label") or unit["unit_id"]
        y = sy(unit["difference"])
        parts.append(f'<circle class="funnel-dot" cx="{x:.1f}" cy="{y:.1f}" r="3.5" fill="{PALETTE[0]}">'
                     f'<title>{esc(label)}: {unit["difference"] * scale:+.1f}</title></circle>')
        labels.append((x, y, label))
    parts.extend(_dot_labels(labels, left + plot_w * 0.7))
    parts.append("</svg>")
    return Markup("".join(parts))


def _dot_labels(labels: list[tuple[float, float, str]], flip_at: float) -> list[str]:
    """Each dot's label beside it (left of the dots right of `flip_at`), the labels moved apart vertically
    (all together: a label of one side can run over one of the other), with a thin leader line from a moved
    label to its dot."""
    out: list[str] = []
    gap = 10.0
    ordered = sorted(labels, key=lambda item: item[1])
    placed: list[float] = []
    for _, y, _ in ordered:
        placed.append(max(y, placed[-1] + gap) if placed else y)
    for (x, y, label), label_y in zip(ordered, placed):
        anchor, dx = ("end", -7) if x > flip_at else ("start", 7)
        if abs(label_y - y) > 1:
            out.append(f'<line class="leader" x1="{x:.1f}" y1="{y:.1f}" x2="{x + dx * 0.8:.1f}" y2="{label_y:.1f}" '
                       f'stroke="#8a93a3" stroke-width="0.6"/>')
        out.append(f'<text class="dot-label" x="{x + dx:.1f}" y="{label_y + 3:.1f}" text-anchor="{anchor}" '
                   f'font-size="9" fill="#1d2330">{esc(label)}</text>')
    return out
