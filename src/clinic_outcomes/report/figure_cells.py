"""marts.report_cells for relief duration (R4, R7): the relief table of the network's and of every clinic's
report (episodes, median and its interval, shares still in relief with their intervals, no follow-up) and
the network's hazard-ratio comparison (by aftercare advice and by clinician role).

How they are protected. Every figure rests on relief episodes, and the episodes of one group are the sum of
those of its clinics, conditions, advice and roles. The counts are therefore cells of one four-way table,
clinic x condition x aftercare x clinician role with every margin (sql/report/cells_relief_episodes.sql),
of which a report publishes only some margins: per clinic and for the network, all episodes ('total'),
each condition ('condition:<value>') and each advice ('aftercare:<value>'); for the network also each role
('clinician_role:<value>', the comparison's rows). The cells it never publishes (a clinic's condition x
advice, for instance) are unknown to every reader: hypercube.protect_grid takes them as hidden from the start
(`unpublished`), never reports them, and may use them as corners of a proof. That is what makes a condition
row and an advice row of the same clinic, which add up to the same total, safe together.

A figure derived from the episodes of a group (median, its interval, the in-relief shares and their
intervals, the hazard ratio and its interval) takes the mark of that group's `episodes` cell (DERIVED).
`no_followup` (episodes left out for lack of follow-up) is a count of its own: the same four-way table of
no-follow-up episodes, its patients those counted. The comparison's aftercare rows are the network's
aftercare rows of the relief table (the same episodes): they take those cells' marks.

Estimates: the network's rows are marts.relief_summary's and marts.relief_comparison's; a clinic's rows are
computed here with the same function over the same episodes (metrics.relief.relief_summary, grouping by
clinic, clinic x condition and clinic x aftercare), so a clinic's report has the same intervals (patients
as clusters) and the same "still followed" floor (R4: a share is null when fewer than the minimum cell of
patients are still followed then) as the network's. Its curves are the ones the clinic's charts draw
(report.estimates.ClinicSurvival, estimated once while the report's queries run), not estimated again.
"""

from __future__ import annotations

from typing import Any

import duckdb
import polars as pl

from clinic_outcomes.metrics.relief import relief_summary
from clinic_outcomes.report.estimates import ClinicSurvival
from clinic_outcomes.warehouse import sql_text

RELIEF = "relief_duration"
COMPARISON = "relief_comparison"
PROTECTION_GROUP = "relief"  # both tables are protected together (one four-way table)
NETWORK = "all"
MARGIN = "total"
GROUPINGS = ("condition", "aftercare")
SHARES = ("in_relief_24h", "in_relief_72h", "in_relief_7d", "in_relief_14d")
RELIEF_DERIVED = (
    "median_hours", "median_ci_low", "median_ci_high",
    *(f"{share}{end}" for share in SHARES for end in ("", "_ci_low", "_ci_high")),
)
COMPARISON_DERIVED = (
    "median_hours", "in_relief_72h", "in_relief_7d", "hazard_ratio", "hazard_ratio_ci_low", "hazard_ratio_ci_high",
    "factor_p",
)
# derived measure -> the measure whose mark it takes (cells.DERIVED's shape)
DERIVED = {
    **{(RELIEF, measure): "episodes" for measure in RELIEF_DERIVED},
    **{(COMPARISON, measure): "episodes" for measure in COMPARISON_DERIVED},
}
SEP = "\x1f"  # joins a clinic key and a group value in the clinics' Kaplan-Meier groups (no id holds it)


def _clinic_key(clinic_id: str) -> str:
    from clinic_outcomes.report.cells import clinic_key

    return clinic_key(clinic_id)


def counts(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """The four-way counts with real clinics as clinic_key and null margins."""
    frame = con.sql(sql_text("report/cells_relief_episodes")).pl()
    return frame.with_columns(
        pl.col("clinic_id").map_elements(lambda v: _clinic_key(v[1:]), return_dtype=pl.String)
    )


def _levels_of(row_key: str) -> tuple:
    """(condition, aftercare, role) of a published row; None: the margin."""
    if row_key == MARGIN:
        return (None, None, None)
    grouping, _, value = row_key.partition(":")
    position = {"condition": 0, "aftercare": 1, "clinician_role": 2}[grouping]
    levels: list = [None, None, None]
    levels[position] = value
    return tuple(levels)


def coordinates(key: tuple) -> tuple[tuple, tuple]:
    """protect_grid's table and levels of a published base cell (episodes or no_followup)."""
    table_id, clinic_id, period, row_key, _, measure = key
    clinic = None if clinic_id == NETWORK else clinic_id
    return (PROTECTION_GROUP, period, measure), (clinic, *_levels_of(row_key))


def mark_source(key: tuple) -> tuple:
    """The base cell whose mark a relief cell takes: the comparison's aftercare rows are the relief
    table's network aftercare rows; a derived figure takes its row's episodes."""
    table_id, clinic_id, period, row_key, col_key, measure = key
    measure = DERIVED.get((table_id, measure), measure)
    if table_id == COMPARISON and row_key.startswith("aftercare:"):
        return (RELIEF, clinic_id, period, row_key, col_key, measure)
    return (table_id, clinic_id, period, row_key, col_key, measure)


def unpublished(frame: pl.DataFrame, published: set[tuple]) -> list[tuple[tuple, tuple, float]]:
    """(key, (table, levels), value) of every cell of the four-way tables that no report shows."""
    out = []
    for row in frame.to_dicts():
        levels = (None if row["clinic_id"] is None else row["clinic_id"], row["condition"], row["aftercare"],
                  row["clinician_role"])
        for measure in ("episodes", "no_followup"):
            key = ("unpublished", measure, levels)
            out.append((key, ((PROTECTION_GROUP, "all_time", measure), levels), float(row[measure])))
    known = {coordinates(key) for key in published}
    return [item for item in out if item[1] not in known]


def _row(table_id: str, clinic: str, row_key: str, measure: str, base: float | None, patients: int,
         figure: Any) -> dict[str, Any]:
    return {"table_id": table_id, "clinic_id": clinic, "period": "all_time", "row_key": row_key, "col_key": MARGIN,
            "measure": measure, "base": None if base is None else float(base), "patients": int(patients),
            "figure": None if figure is None else float(figure)}


def _summary_rows(table_id: str, clinic: str, row_key: str, summary: dict[str, Any], cube: dict[str, Any],
                  derived: tuple[str, ...]) -> list[dict[str, Any]]:
    rows = [_row(table_id, clinic, row_key, "episodes", cube["episodes"], cube["patients"], cube["episodes"])]
    if table_id == RELIEF:
        rows.append(_row(table_id, clinic, row_key, "no_followup", cube["no_followup"], cube["no_followup_patients"],
                         cube["no_followup"]))
    for measure in derived:
        rows.append(_row(table_id, clinic, row_key, measure, None, cube["patients"], summary.get(measure)))
    return rows


# The clinic groupings of clinic_summaries: grouping -> its ClinicSurvival group column (None: all episodes)
CLINIC_GROUPINGS = {"clinic": None, **{g: g for g in GROUPINGS}}
CURVE_COLUMNS = ("hours", "at_risk", "events", "censored", "survival", "ci_low", "ci_high")


def clinic_curves(survival: ClinicSurvival, clinic_keys: dict[str, str]) -> pl.LazyFrame | None:
    """The clinics' curves of `survival` (the report's own, patient-clustered), stacked as
    metrics.relief.relief_curves stacks groupings: group_by (clinic, condition, aftercare), group_value (the
    clinic key, then SEP and the group's value, 'not_recorded' for none), then CURVE_COLUMNS; None without curves."""
    parts = []
    for grouping, column in CLINIC_GROUPINGS.items():
        curves = survival.every_clinic(column)
        if curves.is_empty():
            continue
        key = pl.col("clinic_id").replace_strict(clinic_keys, return_dtype=pl.String)
        value = key if column is None else key + SEP + pl.col(column).fill_null("not_recorded")
        parts.append(curves.select(pl.lit(grouping).alias("group_by"), value.alias("group_value"), *CURVE_COLUMNS))
    return pl.concat(parts, how="vertical").lazy() if parts else None


def clinic_summaries(episodes: pl.DataFrame, min_cell: int,
                     survival: ClinicSurvival | None = None) -> dict[tuple[str, str], dict[str, Any]]:
    """(clinic key, row key) -> the clinic's R4 summary (metrics.relief.relief_summary over its episodes).
    With `survival` (the report's clinic curves, estimated from the same followed-up episodes), the summaries
    are taken from its curves instead of estimating them again."""
    if episodes.is_empty():
        return {}
    frame = episodes.with_columns(
        _clinic=pl.col("clinic_key"),
        **{f"_by_{g}": pl.col("clinic_key") + SEP + pl.col(g).fill_null("not_recorded") for g in GROUPINGS},
    )
    groups = {"clinic": "_clinic", **{g: f"_by_{g}" for g in GROUPINGS}}
    curves = None
    if survival is not None:
        keys = dict(episodes.select("clinic_id", "clinic_key").unique().drop_nulls().iter_rows())
        curves = clinic_curves(survival, keys)
    summary = relief_summary(frame.lazy(), curves=curves, groups=groups, min_cell_patients=min_cell).collect()
    out = {}
    for row in summary.to_dicts():
        if row["group_by"] == "clinic":
            out[(row["group_value"], MARGIN)] = row
        else:
            clinic, _, value = row["group_value"].partition(SEP)
            out[(clinic, f"{row['group_by']}:{value}")] = row
    return out


def relief_episodes(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """Every relief episode with what relief_summary needs, and the clinic's key."""
    frame = con.sql(
        "select episodes.clinic_id, episodes.condition, episodes.aftercare, sessions.clinician_role, "
        "sessions.patient_key, episodes.duration_hours is not null as followed_up, episodes.relapsed, "
        "episodes.duration_hours "
        "from marts.relief_duration as episodes "
        "inner join core.sessions as sessions on sessions.session_id = episodes.session_id"
    ).pl()
    keys = {clinic: _clinic_key(clinic) for clinic in frame["clinic_id"].unique().to_list() if clinic is not None}
    return frame.with_columns(clinic_key=pl.col("clinic_id").replace_strict(keys, default=None))


def raw_relief_cells(con: duckdb.DuckDBPyConnection, data: Any, min_cell: int) -> tuple[pl.DataFrame, list]:
    """The relief tables' published figures (cells.KEY_COLUMNS, base, patients, figure; base null for a
    derived figure) and the unpublished cells that tie them (see `unpublished`)."""
    cube = counts(con)
    by_levels = {
        (row["clinic_id"], row["condition"], row["aftercare"], row["clinician_role"]): row for row in cube.to_dicts()
    }
    rows: list[dict[str, Any]] = []
    network = {(r["group_by"], "all" if r["group_by"] == "all" else r["group_value"]): r for r in data.relief_summary}
    scopes = [(NETWORK, None)] + sorted((k, k) for k in {c for c, *_ in by_levels if c is not None})
    clinic_rows = clinic_summaries(relief_episodes(con), min_cell, data.survival)
    for clinic_label, clinic in scopes:
        conditions = sorted(c for (k, c, a, r) in by_levels if k == clinic and c is not None and a is None and r is None)
        advice = sorted(a for (k, c, a, r) in by_levels if k == clinic and c is None and a is not None and r is None)
        row_keys = [MARGIN] + [f"condition:{c}" for c in conditions] + [f"aftercare:{a}" for a in advice]
        for row_key in row_keys:
            condition, aftercare, _ = _levels_of(row_key)
            counted = by_levels[(clinic, condition, aftercare, None)]
            if clinic is None:
                grouping, _, value = row_key.partition(":")
                summary = network.get(("all", "all") if row_key == MARGIN else (grouping, value), {})
            else:
                summary = clinic_rows.get((clinic, row_key), {})
            rows += _summary_rows(RELIEF, clinic_label, row_key, summary, counted, RELIEF_DERIVED)
    for r in data.relief_comparison:
        row_key = f"{r['factor']}:{r['group_value'] if r['group_value'] is not None else 'not_recorded'}"
        levels = (None, *_levels_of(row_key))
        counted = by_levels.get(levels)
        if counted is None:
            continue
        summary = {**r, "factor_p": r.get("factor_p")}
        rows += _summary_rows(COMPARISON, NETWORK, row_key, summary, counted, COMPARISON_DERIVED)
    schema = {c: pl.String for c in ("table_id", "clinic_id", "period", "row_key", "col_key", "measure")}
    frame = pl.DataFrame(rows, schema={**schema, "base": pl.Float64, "patients": pl.Int64, "figure": pl.Float64},
                         orient="row")
    published = {tuple(r[c] for c in schema) for r in rows if r["base"] is not None and r["table_id"] == RELIEF}
    published |= {
        tuple(r[c] for c in schema) for r in rows
        if r["base"] is not None and r["table_id"] == COMPARISON and r["row_key"].startswith("clinician_role:")
    }
    return frame, unpublished(cube, published)
