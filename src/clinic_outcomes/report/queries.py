"""What the report reads from the warehouse: the inputs it requires, and one `ReportData` with every query's
result (small: groups x periods; the big scans stay in DuckDB).

The SQL is in `sql/report/<name>.sql`, one statement per file. Two temporary tables are built first
(`report_patients.sql`, `report_sessions.sql`: every patient as a small integer, and the completed sessions
with the day they count in) and dropped once the queries have run; the files that read them say so.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from contextlib import contextmanager
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import duckdb
import polars as pl

from clinic_outcomes.report.estimates import ClinicSurvival, period_medians
from clinic_outcomes.report.wording import PERIOD_DAYS, RETREATMENT_LIST_DAYS, TREND_MONTHS
from clinic_outcomes.warehouse import scalar, sql_text

# The agreed tables and the columns this report reads (a missing one is an error, not a blank section).
REQUIRED_COLUMNS: dict[str, tuple[str, ...]] = {
    "core.sessions": (
        "session_id", "patient_key", "plan_id", "clinic_id", "clinician_id", "clinician_role", "started_at",
        "status", "therapies", "condition", "aftercare", "adverse_event", "clinic_timezone",
    ),
    "core.plans": ("plan_id", "patient_key", "clinic_id", "pcp_cleared"),
    "quality.retreatment_flags": (
        "session_id", "previous_session_id", "site", "side", "hours_since_previous", "clinic_id", "clinician_id",
    ),
    "quality.plan_completion": ("plan_id", "patient_key", "clinic_id", "window_end", "completion", "reasons"),
    "quality.rejected_rows": ("run_id", "source_file", "entity", "reason"),
    "quality.expectation_results": ("run_id", "suite", "expectation", "severity", "success", "unexpected_count"),
    "ops.runs": ("run_id", "started_at", "finished_at", "as_of", "status", "rows_loaded", "rows_rejected"),
    "marts.session_relief": (
        "session_id", "relief_points", "could_show_relief", "meaningful_relief", "clinic_id", "clinician_role", "condition",
    ),
    "marts.relief_duration": ("session_id", "clinic_id", "condition", "aftercare", "duration_hours", "relapsed"),
    "marts.relief_summary": (
        "group_by", "group_value", "episodes", "relapses", "patients", "no_followup", "median_hours",
        "median_ci_low", "median_ci_high", "in_relief_24h", "in_relief_72h", "in_relief_7d", "in_relief_14d",
        *(f"{share}_ci_{end}" for share in ("in_relief_24h", "in_relief_72h", "in_relief_7d", "in_relief_14d")
          for end in ("low", "high")),
    ),
    "marts.relief_curves": ("group_by", "group_value", "hours", "survival", "ci_low", "ci_high", "at_risk"),
    "marts.relief_comparison": (
        "factor", "group_value", "episodes", "patients", "median_hours", "in_relief_72h", "in_relief_7d",
        "in_comparison", "is_reference", "hazard_ratio", "hazard_ratio_ci_low", "hazard_ratio_ci_high",
        "hazard_ratio_p", "factor_p",
    ),
    "marts.plan_outcomes": ("plan_id", "baseline_pain", "final_pain", "change_points", "achieved_mcid", "moderate", "substantial"),
    "marts.adverse_events": ("group_by", "group_value", "needling_sessions", "patients", "event_type", "events", "per_100_sessions"),
    "marts.aftercare_mix": ("group_by", "group_value", "aftercare", "needling_sessions", "share"),
    "marts.pcp_clearance": (
        "group_by", "group_value", "plans", "plans_without_pcp_clearance", "share", "plans_pcp_not_recorded",
        "not_recorded_share",
    ),
    "marts.report_cells": ("table_id", "clinic_id", "period", "row_key", "col_key", "measure", "value", "suppressed"),
}

# R8's tables: shown when present with these columns, else the report says the comparison is not available.
OPTIONAL_TABLES: dict[str, tuple[str, ...]] = {
    "marts.adjusted_outcomes": (
        "level", "unit_id", "measure", "n", "patients", "observed", "expected", "difference", "ci_low", "ci_high",
        "network_value", "limit_95", "limit_998", "funnel",
    ),
    "marts.casemix_coefficients": ("measure", "term", "estimate", "std_error", "rows", "note"),
}


def optional_rows(con: duckdb.DuckDBPyConnection, table: str) -> list[dict[str, Any]]:
    """An OPTIONAL_TABLES table's rows (its listed columns), or [] when it or a column is absent."""
    schema, name = table.split(".")
    have = {column for (column,) in con.execute(
        "select column_name from duckdb_columns() where schema_name = ? and table_name = ?", [schema, name]
    ).fetchall()}
    columns = OPTIONAL_TABLES[table]
    if not set(columns) <= have:
        return []
    return con.sql(f"select {', '.join(columns)} from {table} order by all").pl().to_dicts()


# Built by prepare(), in this order, and dropped after the queries.
REPORT_TABLES = ("report_patients", "report_sessions")


class ReportInputError(RuntimeError):
    """The warehouse lacks a table or column the report is built from."""


def missing_inputs(con: duckdb.DuckDBPyConnection) -> list[str]:
    present = con.sql(
        "select schema_name || '.' || table_name as table_name, column_name from duckdb_columns()"
    ).pl()
    have: dict[str, set[str]] = {}
    for table, column in present.iter_rows():
        have.setdefault(table, set()).add(column)
    missing = []
    for table, columns in REQUIRED_COLUMNS.items():
        if table not in have:
            missing.append(table)
            continue
        missing.extend(f"{table}.{column}" for column in columns if column not in have[table])
    return missing


def report_sql(name: str) -> str:
    return sql_text(f"report/{name}")


def _bound(query: str, params: dict[str, Any]) -> dict[str, Any]:
    """The parameters a statement names (DuckDB refuses named parameters a statement does not use)."""
    named = set(re.findall(r"\$([A-Za-z_]\w*)", re.sub(r"--[^\n]*", "", query)))
    return {name: value for name, value in params.items() if name in named}


def frame(con: duckdb.DuckDBPyConnection, name: str, params: dict[str, Any] | None = None) -> pl.DataFrame:
    query = report_sql(name)
    return con.sql(query, params=_bound(query, params or {})).pl()


def rows(con: duckdb.DuckDBPyConnection, name: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Small aggregate results only (groups x periods), as dicts for the template."""
    return frame(con, name, params).to_dicts()


def keyed(rows: list[dict[str, Any]], *keys: str) -> dict[tuple, dict[str, Any]]:
    return {tuple(row[key] for key in keys): row for row in rows}


def months_of(as_of: dt.date) -> list[str]:
    """The trend months (YYYY-MM), oldest first, the as-of date's month last."""
    year, month = as_of.year, as_of.month
    labels = []
    for _ in range(TREND_MONTHS):
        labels.append(f"{year:04d}-{month:02d}")
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
    return labels[::-1]


def period_params(as_of: dt.date) -> dict[str, Any]:
    """The queries' $as_of, $first_day (the first day of the first trend month, or of the previous period)
    and $period_days."""
    first = months_of(as_of)[0]
    first_month = dt.date(int(first[:4]), int(first[5:]), 1)
    return {
        "as_of": as_of,
        "first_day": min(first_month, as_of - dt.timedelta(days=2 * PERIOD_DAYS - 1)),
        "period_days": PERIOD_DAYS,
    }


def create_report_tables(con: duckdb.DuckDBPyConnection, as_of: dt.date) -> None:
    """The report's temporary tables (REPORT_TABLES, in order)."""
    params = period_params(as_of)
    for table in REPORT_TABLES:
        query = report_sql(table)
        con.execute(query, _bound(query, params))


@contextmanager
def prepared(con: duckdb.DuckDBPyConnection, as_of: dt.date) -> Iterator[None]:
    """The report's temporary tables (REPORT_TABLES) while the block runs; dropped after it."""
    try:
        create_report_tables(con, as_of)
        yield
    finally:
        for table in REPORT_TABLES:
            con.execute(f"drop table if exists temp.{table}")


@dataclass
class ReportData:
    """Every query's result the report's sections are built from."""

    episodes: pl.DataFrame
    survival: ClinicSurvival
    medians: dict[tuple, dict[str, Any]]
    activity: dict[tuple, dict[str, Any]]
    plan_periods: dict[tuple, dict[str, Any]]
    pain_rows: list[dict[str, Any]]
    completion: list[dict[str, Any]]
    outcomes: list[dict[str, Any]]
    group_patients: dict[tuple, dict[str, Any]]
    adverse: list[dict[str, Any]]
    aftercare: list[dict[str, Any]]
    pcp: list[dict[str, Any]]
    too_little_pain: list[dict[str, Any]]  # R3: sessions below the MCID floor, counted apart
    relief_summary: list[dict[str, Any]]
    relief_comparison: list[dict[str, Any]]
    network_curves: pl.DataFrame
    flags: pl.DataFrame
    clinics: list[str]
    runs: list[dict[str, Any]]
    run_id: int | None
    cells: pl.DataFrame | None  # marts.report_cells (R7)
    # R8, optional: empty when the warehouse has not (yet) the tables (OPTIONAL_TABLES)
    adjusted: list[dict[str, Any]] = field(default_factory=list)
    casemix: list[dict[str, Any]] = field(default_factory=list)


def load(con: duckdb.DuckDBPyConnection, as_of: dt.date, run_id: int | None, with_cells: bool = True) -> ReportData:
    """Run every query (inside `prepared`). The Kaplan-Meier estimates (Polars) need only the episodes: they
    run in a thread while the other queries run in DuckDB (both release the interpreter while they compute)."""
    params = period_params(as_of)
    episodes = frame(con, "episodes", params)
    survival = ClinicSurvival(episodes)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="report-km") as estimating:
        medians = estimating.submit(period_medians, episodes)
        clinic_km = estimating.submit(lambda: [survival.every_clinic(by) for by in (None, "condition", "aftercare")])
        found = _query(con, as_of, run_id, {**params, "list_days": RETREATMENT_LIST_DAYS}, with_cells)
        data = ReportData(episodes=episodes, survival=survival, medians=medians.result(), **found)
        clinic_km.result()
    return data


def _query(con: duckdb.DuckDBPyConnection, as_of: dt.date, run_id: int | None, params: dict[str, Any],
           with_cells: bool) -> dict[str, Any]:
    params = {**params, "patients": max(1, scalar(con, "select count(*) from report_patients"))}
    clinic_rows = con.sql(
        "select distinct clinic_id from core.sessions union select distinct clinic_id from core.plans order by 1"
    ).fetchall()
    runs = rows(con, "runs")
    return {
        "activity": keyed(rows(con, "activity", params), "clinic_id", "bucket"),
        "plan_periods": keyed(rows(con, "plan_periods", params), "clinic_id", "bucket"),
        "pain_rows": rows(con, "pain", params),
        "completion": rows(con, "completion", params),
        "outcomes": rows(con, "outcomes"),
        "group_patients": keyed(rows(con, "group_patients", params), "source", "group_by", "group_value"),
        "adverse": con.sql("select * from marts.adverse_events").pl().to_dicts(),
        "aftercare": con.sql("select * from marts.aftercare_mix").pl().to_dicts(),
        "pcp": con.sql("select * from marts.pcp_clearance").pl().to_dicts(),
        "too_little_pain": rows(con, "too_little_pain"),
        "relief_summary": con.sql("select * from marts.relief_summary").pl().to_dicts(),
        "relief_comparison": con.sql("select * from marts.relief_comparison order by factor, group_value").pl().to_dicts(),
        "network_curves": con.sql(
            "select group_by, group_value, hours, survival, ci_low, ci_high, at_risk from marts.relief_curves "
            "where group_by in ('condition', 'aftercare') order by group_by, group_value, hours"
        ).pl(),
        "flags": frame(con, "retreatment_flags", params),
        "clinics": [row[0] for row in clinic_rows if row[0] is not None],
        # with_cells False: the report stage is about to compute marts.report_cells from this very data
        "cells": con.sql("select * from marts.report_cells").pl() if with_cells else None,
        "adjusted": optional_rows(con, "marts.adjusted_outcomes"),
        "casemix": optional_rows(con, "marts.casemix_coefficients"),
        "runs": runs,
        "run_id": run_id if run_id is not None else (runs[0]["run_id"] if runs else None),
    }


def data_quality(con: duckdb.DuckDBPyConnection, run_id: int | None, runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run's rejected rows (by entity and kind of problem) and failed expectations, and the last runs."""
    if run_id is None:
        return {"run_id": None, "rejected": [], "rejected_by_problem": False, "expectations": [], "runs": []}
    params = {"run_id": run_id}
    structured = {name for (name,) in con.sql(
        "select column_name from duckdb_columns() where schema_name = 'quality' and table_name = 'rejected_rows'"
    ).fetchall()} >= {"column_name", "problem"}
    return {
        "run_id": run_id,
        "rejected_by_problem": structured,
        "rejected": rows(con, "rejected_by_problem" if structured else "rejected", params),
        "expectations": rows(con, "expectations", params),
        "runs": runs,
    }
