"""marts.report_cells (R7): the figures of the report's tables, computed once in the warehouse in the report
stage, before rendering, with the disclosure decision made here and nowhere else.

Each table's figures come from `sql/report/cells_<table_id>.sql` with, per figure, `base` (the additive
figure suppression reasons about: a count, or the denominator behind a share, a mean or a rate) and
`patients` (the distinct patients behind it, R7: for a share, mean or rate those of its denominator; for a
count those counted). One `Cell` per base goes to clinic_outcomes.disclosure.suppression.protect with the
equations that tie them: along each row and column to its 'total' margin, and the network's cell ('all')
to the sum of the clinics' cells. A derived figure (DERIVED: a mean beside its count, a share of all plans
beside the count) is never a cell of its own; it takes the mark of the figure it derives from.

The mart holds no patient count: `value` is null when suppressed, `suppressed` says why ('primary',
'complementary'). Insiders (R7's "between the network's table and the clinics' tables"): every cell of a
clinic's table, and the network's row of a clinic in `retreatments`, is known to that clinic's manager
(`groups`).

Choices where the spec is silent: a null condition, role or completion is the row/column
'not_recorded'; an adverse event type outside the six counts as 'other' (so the types add up to the total
row); the re-treatment counts are one network table with a row per clinic (a clinic's report shows its
row), as interface.md's "rows: clinic" reads.
"""

from __future__ import annotations

import datetime as dt
import importlib
from collections import defaultdict
from collections.abc import Hashable
from typing import Any

import duckdb
import polars as pl

from clinic_outcomes.report.wording import RETREATMENT_LIST_DAYS
from clinic_outcomes.settings import Settings
from clinic_outcomes.warehouse import apply_comments, sql_text

TABLE_IDS = ("relief_by_condition_role", "plan_completion", "adverse_events_by_role", "retreatments")
# (table_id, derived measure) -> the measure whose mark it takes (same table, clinic, period, row and column)
DERIVED = {
    ("relief_by_condition_role", "mean_relief_points"): "sessions",
    ("plan_completion", "share"): "plans",
}
NETWORK = "all"
MARGIN = "total"
KEY_COLUMNS = ("table_id", "clinic_id", "period", "row_key", "col_key", "measure")
SUPPRESSION_MODULE = "clinic_outcomes.disclosure.suppression"

Key = tuple[str, str, str, str, str, str]


def raw_cells(con: duckdb.DuckDBPyConnection, as_of: dt.date) -> pl.DataFrame:
    """Every table's figures before suppression: KEY_COLUMNS, base, patients, figure."""
    params = {"as_of": as_of, "list_days": RETREATMENT_LIST_DAYS}
    frames = []
    for table_id in TABLE_IDS:
        query = sql_text(f"report/cells_{table_id}")
        frames.append(con.sql(query, params={k: v for k, v in params.items() if f"${k}" in query}).pl())
    return pl.concat(frames, how="vertical_relaxed").sort(KEY_COLUMNS)


def equations_of(keys: list[Key]) -> list[tuple[Key, tuple[Key, ...]]]:
    """(total, members) of every sum the tables show: rows and columns to their margins within one table,
    clinic and period and measure, and each network cell to the clinics' cells with the same coordinates."""
    present = set(keys)
    by_table: dict[tuple, list[Key]] = defaultdict(list)
    for key in keys:
        by_table[(key[0], key[1], key[2], key[5])].append(key)
    equations = []
    for (table_id, clinic_id, period, measure), members in by_table.items():
        rows = defaultdict(list)
        columns = defaultdict(list)
        for key in members:
            if key[4] != MARGIN:
                rows[key[3]].append(key)
            if key[3] != MARGIN:
                columns[key[4]].append(key)
        for row_key, inner in rows.items():
            total = (table_id, clinic_id, period, row_key, MARGIN, measure)
            if total in present:
                equations.append((total, tuple(inner)))
        for col_key, inner in columns.items():
            total = (table_id, clinic_id, period, MARGIN, col_key, measure)
            if total in present:
                equations.append((total, tuple(inner)))
    clinics_of: dict[tuple, list[Key]] = defaultdict(list)
    for key in keys:
        if key[1] != NETWORK:
            clinics_of[(key[0], key[2], key[3], key[4], key[5])].append(key)
    for (table_id, period, row_key, col_key, measure), inner in clinics_of.items():
        total = (table_id, NETWORK, period, row_key, col_key, measure)
        if total in present:
            equations.append((total, tuple(inner)))
    return equations


def insider_of(key: Key, clinics: set[str]) -> str | None:
    """The clinic whose manager knows this cell: its own clinic's, or its row in a table of clinics."""
    if key[1] != NETWORK:
        return key[1]
    if key[0] == "retreatments" and key[3] in clinics:
        return key[3]
    return None


def suppress(raw: pl.DataFrame, min_cell: int, suppression: Any = None) -> pl.DataFrame:
    """The cells as marts.report_cells holds them: value null where suppressed, and why."""
    suppression = suppression or importlib.import_module(SUPPRESSION_MODULE)
    rows = raw.to_dicts()
    base_rows = [row for row in rows if (row["table_id"], row["measure"]) not in DERIVED]
    keys: list[Key] = [tuple(row[c] for c in KEY_COLUMNS) for row in base_rows]
    cells = [
        suppression.Cell(key=key, value=row["base"], patients=int(row["patients"]))
        for key, row in zip(keys, base_rows)
    ]
    equations = [suppression.Equation(total=total, members=members) for total, members in equations_of(keys)]
    clinics = {key[1] for key in keys if key[1] != NETWORK}
    groups: dict[Hashable, Hashable] = {}
    for key in keys:
        insider = insider_of(key, clinics)
        if insider is not None:
            groups[key] = insider
    marks = suppression.protect(cells, equations, min_cell, groups=groups or None)
    out = []
    for row in rows:
        measure = DERIVED.get((row["table_id"], row["measure"]), row["measure"])
        key = (row["table_id"], row["clinic_id"], row["period"], row["row_key"], row["col_key"], measure)
        mark = marks[key]
        out.append({**{c: row[c] for c in KEY_COLUMNS}, "value": None if mark else row["figure"], "suppressed": mark})
    schema = {**{c: pl.String for c in KEY_COLUMNS}, "value": pl.Float64, "suppressed": pl.String}
    return pl.DataFrame(out, schema=schema, orient="row")


def build_report_cells(con: duckdb.DuckDBPyConnection, *, settings: Settings, as_of: dt.date,
                       suppression: Any = None) -> pl.DataFrame:
    """Compute, protect and write marts.report_cells (replacing last night's); returns what it wrote."""
    from clinic_outcomes.report.queries import ReportInputError, missing_inputs

    missing = [name for name in missing_inputs(con) if not name.startswith("marts.report_cells")]
    if missing:
        raise ReportInputError("the warehouse lacks what the report is built from: " + ", ".join(missing))
    cells = suppress(raw_cells(con, as_of), settings.rules.min_cell_patients, suppression)
    con.register("report_cells_frame", cells)
    try:
        con.execute("create or replace table marts.report_cells as select * from report_cells_frame")
    finally:
        con.unregister("report_cells_frame")
    apply_comments(con, "marts")
    return cells
