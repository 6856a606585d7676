"""The PDF (issue 17): a print document of its own, typeset from the same content as the screen report.

The screen report (templates/report.html.j2) is long, interactive and per section; on paper a manager wants a
few pages. This module lays out, from the very dicts the HTML renders (sections.Builder's Section, whose
figures come from marts.report_cells through CellTables, R7), two documents for WeasyPrint:

- the network's (aim: at most 4 A4 landscape pages): headline figures; ONE table across clinics (a row per
  clinic, the key measures: each is a figure its clinic's HTML report shows); relief by condition and role;
  how long relief lasts (curves with bands and numbers at risk, and a compact table); the case-mix adjusted
  comparison (funnels and a table, a row per clinic); safety; the monthly trends; a line on data quality; what
  the figures mean (the definitions of the figures printed, not all of them);
- a clinic's (one or two pages): its headline figures beside the network's, its relief and adjusted figures,
  its monthly trends, its case list (the first PRINT_CASES rows; the rest are "N more in the HTML report").

Nothing here computes a figure: every text printed is a text the HTML report shows (issue 14, R7). Real HTML
tables, few cells (a cell costs WeasyPrint about half a millisecond of layout); no "?" links and no hover-only
text; small-cell words kept ("fewer than 11"). Charts go in as images of the same SVG (a data: URL): WeasyPrint
parses an SVG image with an XML parser and styles it by its own attributes only, cheaper than inline SVG.

Decisions where the spec is silent: the clinics table shows the last 30 days' headline figures, and re-treatment
flags (last 30 days) and adverse events per 100 sessions (all time) as the HTML report's tables word them; the
adjusted comparison shows each measure's difference and interval with observed/expected and the funnel's
verdict underneath; the case list keeps its order (most recent first).
"""

from __future__ import annotations

import base64
import datetime as dt
from typing import Any, Callable

from markupsafe import Markup

from clinic_outcomes.report.sections import Section

PRINT_CASES = 12  # case-list rows on paper; the HTML report lists up to wording.RETREATMENT_LIST_MAX

# The headline measures across clinics (Section.headline keys), in the clinics table's order.
CLINIC_COLUMNS = ("patients", "needling_sessions", "meaningful_relief", "median_relief", "plans_complete", "mcid_plans")
# The definitions printed under "What the figures mean" (wording.definitions keys): those of the figures printed.
PRINTED_TERMS = ("needling_sessions", "meaningful_relief", "median_relief", "in_relief", "plans_complete", "mcid_plans",
                 "retreatment", "adverse_events", "adjusted", "intervals", "small_cells")
CLINIC_TERMS = ("meaningful_relief", "median_relief", "in_relief", "plans_complete", "mcid_plans", "retreatment",
                "adjusted", "small_cells")


def chart_image(chart: Markup | None) -> Markup | None:
    """An SVG chart as an <img> of itself (a data: URL) for WeasyPrint."""
    if chart is None:
        return None
    data = base64.b64encode(str(chart).encode("utf-8")).decode("ascii")
    return Markup(f'<img class="chart" alt="" src="data:image/svg+xml;base64,{data}">')


def _charts(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"title": item["title"], "image": chart_image(item.get("chart")), "hidden": item.get("hidden", [])}
            for item in items]


def _headline(section: Section) -> dict[str, dict[str, Any]]:
    return {figure["key"]: figure for figure in section.headline}


def _all_sessions_row(section: Section) -> dict[str, Any]:
    """The relief table's first row, all needling sessions (the same row the HTML shows first)."""
    rows = section.relief.get("table") or []
    return rows[0] if rows else {}


def _adverse_all(section: Section) -> str:
    """The HTML's "All adverse events" rate, first column (the network's, or this clinic's)."""
    rows = section.safety.get("adverse", {}).get("rows") or []
    return rows[-1]["cells"][0] if rows and rows[-1]["cells"] else ""


def clinics_table(network: Section, clinics: dict[str, Section], name_of: Callable[[str], str]) -> list[dict[str, Any]]:
    """A row per clinic (then the network's): its headline figures, its re-treatment flags in the last 30 days
    and its adverse events per 100 sessions, each as its own report shows them."""
    flags = {row["clinic_id"]: row for row in network.retreatment.get("counts", [])}

    def row(label: str, section: Section, flag_key: str) -> dict[str, Any]:
        headline = _headline(section)
        return {"label": label, "total": section.clinic_id is None,
                "cells": [headline[key]["text"] if key in headline else "" for key in CLINIC_COLUMNS],
                "flags": flags.get(flag_key, {}).get("recent", ""),
                "adverse": _adverse_all(section)}

    rows = [row(name_of(clinic_id), section, clinic_id) for clinic_id, section in clinics.items()]
    return rows + [row("All clinics", network, "All clinics")]


def adjusted_by_clinic(rows: list[dict[str, Any]], measures: list[str], name_of: Callable[[str], str]) -> list[dict[str, Any]]:
    """The adjusted comparison's rows (Builder.adjusted, a row per measure and clinic) as a row per clinic."""
    by_unit: dict[str, dict[str, dict[str, Any]]] = {}
    for row in rows:
        by_unit.setdefault(row["unit"], {})[row["measure"]] = row
    out = []
    for unit, found in by_unit.items():
        cells = []
        for measure in measures:
            one = found.get(measure)
            if one is None:
                cells.append({"text": "", "detail": ""})
                continue
            interval = f" ({one['interval']})" if one["interval"] else ""
            detail = f"observed {one['observed']}, expected {one['expected']}"
            cells.append({"text": f"{one['difference']}{interval}",
                          "detail": f"{detail}; {one['funnel']}" if one["funnel"] else detail})
        out.append({"label": name_of(unit), "n": [found[m]["n"] if m in found else "" for m in measures], "cells": cells})
    return out


def quality_line(quality: dict[str, Any]) -> str:
    """One sentence on the run's data quality, from the figures the HTML's data-quality section shows."""
    if quality.get("run_id") is None:
        return "No run recorded yet."
    rejected = sum(row.get("rows_rejected") or 0 for row in quality.get("rejected", []))
    files = sorted({row.get("entity") for row in quality.get("rejected", []) if row.get("rows_rejected")})
    failed = len(quality.get("expectations", []))
    rows_text = (f"{rejected:,} rows rejected ({', '.join(str(f) for f in files)})" if rejected
                 else "no rows rejected")
    checks = "every data check passed" if not failed else f"{failed} data check{'s' if failed != 1 else ''} failed"
    return f"Run {quality['run_id']}: {rows_text}; {checks}. The HTML report's data-quality section has the details."


def network_context(*, network: Section, clinics: dict[str, Section], quality: dict[str, Any],
                    definitions: dict[str, tuple[str, str]], name_of: Callable[[str], str], as_of: dt.date,
                    period: str, min_cell: int) -> dict[str, Any]:
    measures = list(dict.fromkeys(row["measure"] for row in network.adjusted.get("rows", [])))
    return {
        "kind": "network", "title": "All clinics", "as_of": as_of, "period": period, "min_cell": min_cell,
        "headline": network.headline, "labels": {key: text for key, (text, _) in definitions.items()},
        "clinic_columns": [definitions[key][0] for key in CLINIC_COLUMNS],
        "clinics": clinics_table(network, clinics, name_of),
        "pain": network.pain,
        "relief_charts": _charts(network.relief.get("charts", [])),
        "relief": network.relief.get("table", []),
        "comparison": [{"title": f["title"], "verdict": f["verdict"]} for f in network.relief.get("comparison", [])],
        "adjusted_available": network.adjusted.get("available", False),
        "adjusted_charts": _charts(network.adjusted.get("charts", [])),
        "adjusted_measures": measures,
        "adjusted": adjusted_by_clinic(network.adjusted.get("rows", []), measures, name_of),
        "safety": network.safety,
        "trend_charts": _charts(network.trends.get("charts", [])),
        "quality": quality_line(quality),
        "terms": [definitions[key] for key in PRINTED_TERMS if key in definitions],
    }


def clinic_context(*, clinic: Section, network: Section, definitions: dict[str, tuple[str, str]],
                   name_of: Callable[[str], str], as_of: dt.date, period: str, min_cell: int) -> dict[str, Any]:
    mine, everyone = _headline(clinic), _headline(network)
    comparison = [
        {"label": definitions[key][0], "text": figure["text"], "previous": figure["previous"],
         "change": figure["change"], "network": everyone.get(key, {}).get("text", "")}
        for key, figure in mine.items()
    ]
    own_relief, network_relief = _all_sessions_row(clinic), _all_sessions_row(network)
    for field, label in (("median", "Median relief duration, all time"), ("in_relief_7d", "Still in relief at 7 days, all time")):
        comparison.append({"label": label, "text": own_relief.get(field, ""), "previous": "", "change": "",
                           "network": network_relief.get(field, "")})
    comparison.append({"label": "Adverse events per 100 needling sessions, all time", "text": _adverse_all(clinic),
                       "previous": "", "change": "", "network": _adverse_all(network)})
    cases = clinic.retreatment.get("rows", [])
    return {
        "kind": "clinic", "title": clinic.title, "as_of": as_of, "period": period, "min_cell": min_cell,
        "comparison": comparison,
        "adjusted_available": clinic.adjusted.get("available", False),
        "adjusted": clinic.adjusted.get("rows", []),
        "trend_charts": _charts(clinic.trends.get("charts", [])),
        "cases": cases[:PRINT_CASES],
        "cases_more_html": max(0, len(cases) - PRINT_CASES),
        "cases_more_warehouse": clinic.retreatment.get("more", 0),
        "cases_total": clinic.retreatment.get("total", "0"),
        "cases_days": clinic.retreatment.get("days"),
        "terms": [definitions[key] for key in CLINIC_TERMS if key in definitions],
    }
