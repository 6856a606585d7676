"""The report's sections: the network's and each clinic's headline, trends, pain, relief, re-treatment, plans
and safety, as the template shows them, built from the queries' results (clinic_outcomes.report.queries).

Every figure that rests on patients goes through the Formatter (wording.small_cell): computed from fewer
than `settings.rules.min_cell_patients` distinct patients, it is shown as "fewer than 11" and it is left
out of charts.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from clinic_outcomes.report.cell_tables import CellTables
from clinic_outcomes.report.cells import PERIODS
from clinic_outcomes.report.charts import Series, funnel_chart, line_chart, month_ticks, nice_ceiling, relief_chart
from clinic_outcomes.report.queries import ReportData, months_of
from clinic_outcomes.report.wording import (
    EVENT_TYPES, REASON_ORDER, RETREATMENT_LIST_DAYS, RETREATMENT_LIST_MAX,
    Formatter, Shown, change_text, label_of,
)
from clinic_outcomes.settings import Settings

@dataclass
class Section:
    clinic_id: str | None
    title: str
    anchor: str
    headline: list[dict[str, Any]] = field(default_factory=list)
    pain: dict[str, Any] = field(default_factory=dict)
    relief: dict[str, Any] = field(default_factory=dict)
    retreatment: dict[str, Any] = field(default_factory=dict)
    plans: dict[str, Any] = field(default_factory=dict)
    safety: dict[str, Any] = field(default_factory=dict)
    trends: dict[str, Any] = field(default_factory=dict)
    adjusted: dict[str, Any] = field(default_factory=dict)


def month_title(label: str) -> str:
    return dt.date(int(label[:4]), int(label[5:]), 1).strftime("%b %Y")


def safe_div(numerator: float | None, denominator: float | None) -> float | None:
    return None if not denominator else (numerator or 0) / denominator


def _scoped(rows: list[dict[str, Any]], clinic_id: str | None) -> list[dict[str, Any]]:
    if clinic_id is None:
        return [row for row in rows if row["all_clinics"]]
    return [row for row in rows if not row["all_clinics"] and row["clinic_id"] == clinic_id]


class Builder:
    """Every section of the report (the network's, a clinic's) from the queries' results."""

    def __init__(self, data: ReportData, settings: Settings, as_of: dt.date):
        self.data = data
        self.tables = CellTables(data.cells if data.cells is not None else pl.DataFrame(), settings.rules.min_cell_patients)
        self.settings = settings
        self.as_of = as_of
        self.fmt = Formatter(settings.rules.min_cell_patients)
        self.months = months_of(as_of)
        self.max_hours = float(settings.rules.relief_followup_days * 24)

    # -- headline and trends ------------------------------------------------

    METRIC_KINDS = {
        "patients": "count", "plans": "count", "needling_sessions": "count", "plans_complete": "share",
        "meaningful_relief": "share", "median_relief": "hours", "mcid_plans": "share", "adverse_per_100": "rate",
    }

    def _metrics(self, clinic_id: str | None, bucket: str) -> dict[str, Shown]:
        """The headline figures of one clinic (or the network) and bucket, as marts.report_cells holds them."""
        scope = self.tables.scope(clinic_id)
        period = PERIODS.get(bucket, f"month:{bucket}")
        return {
            measure: self.tables.shown(("headline", scope, period, "total", "total", measure), kind)
            for measure, kind in self.METRIC_KINDS.items()
        }

    HEADLINE = (
        ("patients", "count"), ("plans", "count"), ("needling_sessions", "count"), ("plans_complete", "share"),
        ("meaningful_relief", "share"), ("median_relief", "hours"), ("mcid_plans", "share"),
    )

    def headline(self, clinic_id: str | None) -> list[dict[str, Any]]:
        now = self._metrics(clinic_id, "current")
        before = self._metrics(clinic_id, "previous")
        return [
            {"key": key, "text": now[key].text, "suppressed": now[key].suppressed,
             "previous": before[key].text, "change": change_text(kind, now[key], before[key])}
            for key, kind in self.HEADLINE
        ]

    TRENDS = (
        ("patients", "Patients", "count"),
        ("needling_sessions", "Needling sessions", "count"),
        ("meaningful_relief", "Sessions with meaningful relief", "share"),
        ("plans_complete", "Plans complete", "share"),
        ("mcid_plans", "Plans reaching a meaningful improvement", "share"),
        ("median_relief", "Median relief duration", "hours"),
        ("adverse_per_100", "Adverse events per 100 needling sessions", "rate"),
    )

    def trends(self, clinic_id: str | None) -> dict[str, Any]:
        by_month = {month: self._metrics(clinic_id, month) for month in self.months}
        table = [
            {"month": month_title(month) + (" (to date)" if index == len(self.months) - 1 else ""),
             **{key: by_month[month][key].text for key, _, _ in self.TRENDS}}
            for index, month in enumerate(self.months)
        ]
        charts = []
        x_ticks = month_ticks(self.months)  # every month; the last (to date) shaded as partial
        for key, title, kind in self.TRENDS[1:4]:
            values = [by_month[month][key].value for month in self.months]
            hidden = [month_title(month) for month in self.months if by_month[month][key].suppressed]
            if all(v is None for v in values):
                charts.append({"title": title, "chart": None, "hidden": hidden})
                continue
            top = max(v for v in values if v is not None)
            if kind == "share":
                y_max, y_ticks = 1.0, [(v / 100, f"{v}%") for v in (0, 25, 50, 75, 100)]
            else:
                y_max = nice_ceiling(top)
                y_ticks = [(y_max * i / 4, f"{y_max * i / 4:,.0f}") for i in range(5)]
            charts.append({
                "title": title,
                "hidden": hidden,
                "chart": line_chart(
                    [Series(title, list(enumerate(values)))],
                    title=f"{title} by month",
                    x_ticks=x_ticks,
                    y_ticks=y_ticks,
                    x_min=-0.5,
                    x_max=len(self.months) - 0.5,
                    y_max=y_max,
                    partial_from=len(self.months) - 1.5,
                ),
            })
        return {"table": table, "charts": charts, "columns": [(key, title) for key, title, _ in self.TRENDS]}

    # -- detail sections -------------------------------------------------------

    def pain(self, clinic_id: str | None) -> dict[str, Any]:
        """Relief by condition and clinician role: marts.report_cells' relief_by_condition_role."""
        table = self.tables.relief_by_condition_role(clinic_id)
        found = next(iter(_scoped(self.data.too_little_pain, clinic_id)), {"sessions": 0, "patients": 0})
        return {**table, "too_little_pain": self.fmt.count(found["sessions"], found["patients"]).text
                if found["sessions"] else "none"}

    def relief(self, clinic_id: str | None) -> dict[str, Any]:
        """Relief duration (R4): the table from marts.report_cells (figure_cells.py: the network's and each
        clinic's rows alike, with the in-relief shares' intervals and the "still followed" floor); a curve
        is drawn only for a group whose episodes the mart shows."""
        fmt = self.fmt
        table = self.tables.relief_rows(clinic_id)
        charts = []
        for group_column, title in (("condition", "by condition"), ("aftercare", "by aftercare advice")):
            if clinic_id is None:
                curves = self.data.network_curves.filter(pl.col("group_by") == group_column)
                value_column = "group_value"
            else:
                curves = self.data.survival.clinic(clinic_id, group_column)
                value_column = group_column
            values = curves[value_column].unique().to_list() if curves.height else []
            shown = {
                value: fmt.min_cell if self.tables.relief_shown(
                    "relief_duration", clinic_id, f"{group_column}:{'not_recorded' if value is None else value}") else 1
                for value in values
            }
            charts.append(relief_chart(curves, shown, value_column, fmt, f"Still in relief {title}", self.max_hours))
        return {
            "charts": charts,
            "table": table,
            "with_ci": True,
            # The Cox comparison is a network figure: per clinic, most groups fall under the minimum cell.
            "comparison": self._relief_comparison() if clinic_id is None else [],
        }

    def _relief_comparison(self) -> list[dict[str, Any]]:
        """Relief duration by aftercare advice and by clinician role (marts.relief_comparison, its figures as
        marts.report_cells holds them): each group's hazard ratio of relapse against the reference group,
        with its 95% interval, and the factor's p-value, from a Cox model with a cluster-robust variance
        (patients as clusters). Worded as associations: advice and clinician were not assigned at random. A
        group outside the comparison (too few patients, or aftercare not recorded) shows no ratio."""
        factors = []
        for factor, title, noun in (("aftercare", "By aftercare advice", "advice"),
                                    ("clinician_role", "By clinician role", "clinician role")):
            rows = [r for r in self.data.relief_comparison if r["factor"] == factor]
            if not rows:
                continue
            figures = [self.tables.relief_comparison(f"{factor}:{_group_key(r['group_value'])}") for r in rows]
            p_value = next((f["factor_p"] for f in figures if not f["hidden"] and f["factor_p"] is not None), None)
            if p_value is None:
                verdict = "Too few patients in at least two groups to compare them."
            else:
                shown = "below 0.001" if p_value < 0.001 else f"{p_value:.3f}"
                meaning = (
                    f"relief lasted differently long with different {noun}; an association, not proof that the "
                    f"{noun} caused it"
                    if p_value < 0.05
                    else "no clear difference between these groups"
                )
                verdict = f"p-value {shown} (all compared groups alike): {meaning}."
            factors.append({"title": title, "verdict": verdict,
                            "rows": [self._comparison_row(r, f, p_value is not None) for r, f in zip(rows, figures)]})
        return factors

    def _comparison_row(self, r: dict[str, Any], figures: dict[str, Any], compared: bool) -> dict[str, Any]:
        if figures["hidden"]:
            ratio = f"fewer than {self.fmt.min_cell}"
        elif not compared or not r.get("in_comparison"):
            ratio = "not compared"
        elif r.get("is_reference"):
            ratio = "1 (reference)"
        elif figures["hazard_ratio"] is None:
            ratio = "not estimated"
        else:
            ratio = f"{figures['hazard_ratio']:.2f}"
            if figures["hazard_ratio_ci_low"] is not None and figures["hazard_ratio_ci_high"] is not None:
                ratio += f" ({figures['hazard_ratio_ci_low']:.2f} to {figures['hazard_ratio_ci_high']:.2f})"
        return {
            "label": label_of(r["group_value"]),
            "episodes": figures["episodes"],
            "median": figures["median"],
            "in_relief_72h": figures["in_relief_72h"],
            "in_relief_7d": figures["in_relief_7d"],
            "hazard_ratio": ratio,
        }

    def retreatment(self, clinic_id: str | None) -> dict[str, Any]:
        flags = self.data.flags
        counts = self.tables.retreatments(clinic_id)
        if clinic_id is None:
            return {"counts": counts, "days": RETREATMENT_LIST_DAYS}
        # the case list: only in the clinic's own report (R7), sessions not patients
        recent = (
            flags.filter((pl.col("clinic_id") == clinic_id) & pl.col("is_recent"))
            # every shown column in the order, so that rows tied on date, clinician, site and side keep one order
            .sort(["local_date", "clinician_id", "site", "side", "hours_since_previous"],
                  descending=[True, False, False, False, False])
        )
        rows = [
            {"date": row["local_date"].isoformat(), "clinician_id": row["clinician_id"], "site": row["site"].replace("_", " "),
             "side": row["side"], "hours": f"{row['hours_since_previous']:.1f}"}
            for row in recent.head(RETREATMENT_LIST_MAX).to_dicts()
        ]
        return {"rows": rows, "more": max(0, recent.height - RETREATMENT_LIST_MAX), "days": RETREATMENT_LIST_DAYS,
                "counts": counts, "total": counts[0]["total"] if counts else "0"}

    def plans(self, clinic_id: str | None) -> dict[str, Any]:
        fmt = self.fmt
        rows = _scoped(self.data.completion, clinic_id)
        statuses = {r["value"]: r for r in rows if r["kind"] == "completion"}
        reasons = {r["value"]: r for r in rows if r["kind"] == "reason"}
        completion = self.tables.plan_completion(clinic_id)
        incomplete = statuses.get("incomplete", {}).get("plans", 0)
        reason_rows = [
            {"label": label_of(reason), "plans": fmt.count(reasons[reason]["plans"], reasons[reason]["patients"]).text,
             "share": fmt.share(safe_div(reasons[reason]["plans"], incomplete), reasons[reason]["patients"]).text}
            for reason in [*REASON_ORDER, *sorted(set(reasons) - set(REASON_ORDER))] if reason in reasons
        ]
        outcome_row = next(iter(_scoped(self.data.outcomes, clinic_id)), None)
        outcome = None
        if outcome_row is not None:
            n = outcome_row["patients"]
            outcome = {
                "plans": fmt.count(outcome_row["plans"], n).text,
                "baseline": fmt.points(outcome_row["baseline_pain"], n).text,
                "final": fmt.points(outcome_row["final_pain"], n).text,
                "change": fmt.points(outcome_row["change_points"], n).text,
                "mcid": fmt.share(outcome_row["mcid_share"], n).text,
                "moderate": fmt.share(outcome_row["moderate_share"], n).text,
                "substantial": fmt.share(outcome_row["substantial_share"], n).text,
            }
        return {"completion": completion, "reasons": reason_rows, "outcome": outcome}

    def _mart_group(self, rows: list[dict[str, Any]], group_by: str, group_value: Any) -> list[dict[str, Any]]:
        return [r for r in rows if r["group_by"] == group_by and (group_by == "all" or r["group_value"] == group_value)]

    def safety(self, clinic_id: str | None) -> dict[str, Any]:
        fmt = self.fmt
        group_by, group_value = ("all", None) if clinic_id is None else ("clinic", clinic_id)

        adverse = self.tables.adverse_events_by_role(clinic_id)
        by_clinic = self.tables.adverse_events_by_clinic() if clinic_id is None else []
        needling_patients = self.data.group_patients.get(("sessions", group_by, group_value), {}).get("patients")
        mix = [
            {"label": label_of(r["aftercare"]), "share": fmt.share(r["share"], needling_patients).text}
            for r in sorted(self._mart_group(self.data.aftercare, group_by, group_value), key=lambda r: (r["aftercare"] is None, str(r["aftercare"])))
        ]
        plan_patients = self.data.group_patients.get(("plans", group_by, group_value), {}).get("patients")
        pcp_rows = self._mart_group(self.data.pcp, group_by, group_value)
        pcp_row = pcp_rows[0] if pcp_rows else {}
        # R6: not cleared (pcp_cleared false) and not recorded (null) are two shares, never added up
        pcp = fmt.share(pcp_row.get("share"), plan_patients).text
        pcp_not_recorded = fmt.share(pcp_row.get("not_recorded_share"), plan_patients).text
        return {"adverse": adverse, "by_clinic": by_clinic, "event_types": [label_of(e) for e in EVENT_TYPES],
                "aftercare": mix, "pcp": pcp, "pcp_not_recorded": pcp_not_recorded}

    # -- R8: outcomes adjusted for case mix --------------------------------------

    ADJUSTED_MEASURES = {
        "plan_achieved_mcid": ("Plans reaching the MCID", "share"),
        "plan_change_points": ("Change in pain over a plan (points)", "points"),
        "session_meaningful_relief": ("Sessions with meaningful relief", "share"),
    }
    FUNNEL_WORDS = {
        "inside": "within the expected range", "above_95": "above (95% limit)", "below_95": "below (95% limit)",
        "above_998": "above (99.8% limit)", "below_998": "below (99.8% limit)",
    }

    def adjusted(self, clinic_id: str | None) -> dict[str, Any]:
        """marts.adjusted_outcomes (R8): observed against expected for the recorded case mix, per clinic (the
        network's section: every clinic; a clinic's section: its own rows). Clinician rows are left out of
        the reports (a manager's question, not a report table). The mart publishes only units with at least
        min_cell_patients patients; the Formatter hides any smaller figure all the same."""
        fmt = self.fmt
        rows = [r for r in self.data.adjusted if r["level"] == "clinic"
                and (clinic_id is None or r["unit_id"] == clinic_id)]
        order = list(self.ADJUSTED_MEASURES)
        table = []
        for r in sorted(rows, key=lambda r: (order.index(r["measure"]) if r["measure"] in order else 99, r["unit_id"])):
            label, kind = self.ADJUSTED_MEASURES.get(r["measure"], (label_of(r["measure"]), "points"))
            n = r["patients"]
            if kind == "share":
                value = lambda v: fmt.share(v, n).text  # noqa: E731
                diff = lambda v: fmt.figure(v, n, lambda x: f"{x * 100:+.1f} points").text  # noqa: E731
                diff_bare = lambda v: fmt.figure(v, n, lambda x: f"{x * 100:+.1f}").text  # noqa: E731
            else:
                value = lambda v: fmt.points(v, n).text  # noqa: E731
                diff = lambda v: fmt.figure(v, n, lambda x: f"{x:+.2f} points").text  # noqa: E731
                diff_bare = lambda v: fmt.figure(v, n, lambda x: f"{x:+.2f}").text  # noqa: E731
            hidden = fmt.count(n, n).suppressed
            interval = "" if hidden or r["ci_low"] is None else f"{diff_bare(r['ci_low'])} to {diff_bare(r['ci_high'])}"
            table.append({
                "measure": label, "unit": r["unit_id"], "n": fmt.count(r["n"], n).text,
                "observed": value(r["observed"]), "expected": value(r["expected"]), "difference": diff(r["difference"]),
                "interval": interval,
                "funnel": "" if hidden else self.FUNNEL_WORDS.get(r["funnel"], label_of(r["funnel"])),
            })
        coefficients = []
        if clinic_id is None:
            for r in self.data.casemix:
                coefficients.append({
                    "measure": self.ADJUSTED_MEASURES.get(r["measure"], (r["measure"], ""))[0],
                    "term": r["term"], "estimate": "" if r["estimate"] is None else f"{r['estimate']:.3f}",
                    "std_error": "" if r["std_error"] is None else f"{r['std_error']:.3f}",
                    "rows": "" if r["rows"] is None else f"{r['rows']:,}", "note": r["note"] or "",
                })
        charts = []
        if clinic_id is None:
            for measure, (label, kind) in self.ADJUSTED_MEASURES.items():
                units = [{**r, "label": self.settings.clinic_name(r["unit_id"])} for r in rows if r["measure"] == measure
                         and not fmt.count(r["patients"], r["patients"]).suppressed and r["difference"] is not None]
                if units:
                    charts.append({"title": f"{label}: difference from the case mix's prediction", "hidden": [],
                                   "chart": funnel_chart(units, title=label, scale=100 if kind == "share" else 1,
                                                         unit_text="plans" if measure.startswith("plan") else "sessions")})
        return {"available": bool(self.data.adjusted), "rows": table, "coefficients": coefficients, "charts": charts}

    def section(self, clinic_id: str | None) -> Section:
        if clinic_id is None:
            title = "All clinics"
        else:  # the display name of the settings ([clinics.<id>] name), else the id
            name = self.settings.clinic_name(clinic_id)
            title = name if name != clinic_id else f"Clinic {clinic_id}"
        anchor = "network" if clinic_id is None else f"clinic-{anchor_of(clinic_id)}"
        return Section(
            clinic_id=clinic_id, title=title, anchor=anchor,
            headline=self.headline(clinic_id), pain=self.pain(clinic_id), relief=self.relief(clinic_id),
            retreatment=self.retreatment(clinic_id), plans=self.plans(clinic_id), safety=self.safety(clinic_id),
            trends=self.trends(clinic_id), adjusted=self.adjusted(clinic_id),
        )


def _group_key(value: Any) -> str:
    """A group's value as the relief cells' row keys hold it (a null is 'not_recorded')."""
    return "not_recorded" if value is None else str(value)


def anchor_of(text: str) -> str:
    return "".join(ch if ch.isalnum() else "-" for ch in text)

