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
import logging
from collections import defaultdict
from typing import Any

import duckdb
import polars as pl

from clinic_outcomes.report import figure_cells
from clinic_outcomes.report.wording import RETREATMENT_LIST_DAYS
from clinic_outcomes.settings import Settings
from clinic_outcomes.warehouse import apply_comments, sql_text

TABLE_IDS = ("relief_by_condition_role", "plan_completion", "adverse_events_by_role", "retreatments")
# (table_id, derived measure) -> the measure whose mark it takes (same table, clinic, period, row and column)
DERIVED = {
    ("relief_by_condition_role", "mean_relief_points"): "sessions",
    ("plan_completion", "share"): "plans",
    ("headline", "adverse_per_100"): "needling_sessions",
    **figure_cells.DERIVED,
}
RELIEF_TABLES = (figure_cells.RELIEF, figure_cells.COMPARISON)  # protected together (figure_cells.py)
# Figures that do not add up from the clinics' to the network's (a patient seen in two clinics; a median).
NOT_ADDITIVE = {("headline", "patients"), ("headline", "median_relief")}
# ReportData buckets -> report_cells periods
PERIODS = {"current": "last_30_days", "previous": "previous_30_days"}
NETWORK = "all"
MARGIN = "total"
# A real clinic whose id is a reserved key (or starts with the escape) is keyed 'clinic:<id>' (clinic_key).
ESCAPE = "clinic:"
RESERVED = frozenset({NETWORK, MARGIN})
KEY_COLUMNS = ("table_id", "clinic_id", "period", "row_key", "col_key", "measure")
SUPPRESSION_MODULE = "clinic_outcomes.disclosure.suppression"

log = logging.getLogger(__name__)

Key = tuple[str, str, str, str, str, str]


def clinic_key(clinic_id: str) -> str:
    """The key of a real clinic in marts.report_cells' clinic_id (and in the rows of a table of clinics):
    its id, unless the id is 'all' or 'total' (the network's and the margins' keys) or starts with
    'clinic:', which get 'clinic:' in front. One-to-one (an id starting with 'clinic:' is escaped too), so
    clinic_id = 'all' is always the network and no clinic's cells mix with the network's or a margin."""
    return ESCAPE + clinic_id if clinic_id in RESERVED or clinic_id.startswith(ESCAPE) else clinic_id


def clinic_of_key(key: str) -> str | None:
    """The clinic id behind a clinic_key; None for the network ('all')."""
    if key == NETWORK:
        return None
    return key[len(ESCAPE):] if key.startswith(ESCAPE) else key


def _decode(column: str, reserved: str) -> pl.Expr:
    """The SQL marks a real clinic with '=' in front (grouping() tells the network and the margin apart):
    '=' + id -> clinic_key(id); anything else is the reserved key."""
    value = pl.col(column)
    real = value.str.strip_prefix("=")
    escaped = pl.when(real.is_in(list(RESERVED)) | real.str.starts_with(ESCAPE)).then(ESCAPE + real).otherwise(real)
    return pl.when(value.str.starts_with("=")).then(escaped).otherwise(pl.lit(reserved)).alias(column)


def raw_cells(con: duckdb.DuckDBPyConnection, as_of: dt.date) -> pl.DataFrame:
    """Every table's figures before suppression: KEY_COLUMNS, base, patients, figure."""
    params = {"as_of": as_of, "list_days": RETREATMENT_LIST_DAYS}
    frames = []
    for table_id in TABLE_IDS:
        query = sql_text(f"report/cells_{table_id}")
        frame = con.sql(query, params={k: v for k, v in params.items() if f"${k}" in query}).pl()
        if table_id == "retreatments":
            frame = frame.with_columns(_decode("row_key", MARGIN))
        else:
            frame = frame.with_columns(_decode("clinic_id", NETWORK))
        frames.append(frame)
    return pl.concat(frames, how="vertical_relaxed").sort(KEY_COLUMNS)


def headline_cells(data: Any, months: list[str]) -> pl.DataFrame:
    """Table 'headline' (the headline tiles and the monthly trends): one cell per figure, clinic (and 'all'),
    and period (last and previous 30 days, each trend month), from the report's period queries
    (sql/report/activity.sql, plan_periods.sql) and the period medians (estimates.period_medians), all
    computed in the warehouse's report stage. A figure with no patient at all has no cell (the report
    shows "no data"); base and patients as in raw_cells."""

    def share(numerator: Any, denominator: Any) -> float | None:
        return None if not denominator else (numerator or 0) / denominator

    out = []
    scopes = [None, *data.clinics]
    for clinic in scopes:
        for bucket in ["current", "previous", *months]:
            period = PERIODS.get(bucket, f"month:{bucket}")
            activity = defaultdict(int, data.activity.get((clinic, bucket), {}))
            plans = defaultdict(int, data.plan_periods.get((clinic, bucket), {}))
            median = defaultdict(int, data.medians.get((clinic, bucket), {}))
            figures = {
                "patients": (activity["patients"], activity["patients"], activity["patients"]),
                "plans": (activity["plans"], activity["plan_patients"], activity["plans"]),
                "needling_sessions": (activity["needling_sessions"], activity["needling_patients"],
                                      activity["needling_sessions"]),
                "adverse_per_100": (activity["needling_sessions"], activity["needling_patients"],
                                    None if not activity["needling_sessions"]
                                    else 100 * activity["adverse_events"] / activity["needling_sessions"]),
                "plans_complete": (plans["evaluated_plans"], plans["evaluated_patients"],
                                   share(plans["complete_plans"], plans["evaluated_plans"])),
                "meaningful_relief": (activity["relief_sessions"], activity["relief_patients"],
                                      share(activity["meaningful_relief_sessions"], activity["relief_sessions"])),
                "median_relief": (median["patients"], median["patients"], median.get("median_hours")),
                "mcid_plans": (plans["outcome_plans"], plans["outcome_patients"],
                               share(plans["mcid_plans"], plans["outcome_plans"])),
            }
            for measure, (base, patients, figure) in figures.items():
                if not patients:
                    continue
                out.append({"table_id": "headline", "clinic_id": NETWORK if clinic is None else clinic_key(clinic),
                            "period": period, "row_key": MARGIN, "col_key": MARGIN, "measure": measure,
                            "base": float(base), "patients": int(patients),
                            "figure": None if figure is None else float(figure)})
    schema = {**{c: pl.String for c in KEY_COLUMNS}, "base": pl.Float64, "patients": pl.Int64, "figure": pl.Float64}
    return pl.DataFrame(out, schema=schema, orient="row")


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
        if (table_id, measure) in NOT_ADDITIVE:
            continue
        total = (table_id, NETWORK, period, row_key, col_key, measure)
        if total in present:
            equations.append((total, tuple(inner)))
    return equations


def insiders(keys: list[Key], equations: list[tuple[Key, tuple[Key, ...]]]) -> dict[Key, str]:
    """The clinic whose manager knows each cell: every cell of her clinic's tables, her row in a table of
    clinics, and a network cell that only her clinic's cell adds up to (the same figure as her own)."""
    known: dict[Key, str] = {}
    for key in keys:
        if key[1] != NETWORK:
            known[key] = key[1]
        elif key[0] == "retreatments" and key[3] != MARGIN:  # its rows are clinics (clinic_key)
            known[key] = key[3]
    for total, members in equations:
        owners = {known.get(member) for member in members}
        if total[1] == NETWORK and total not in known and len(owners) == 1 and None not in owners:
            known[total] = owners.pop()
    return known


def coordinates_of(keys: list[Key]) -> dict[Key, tuple[tuple, tuple]]:
    """Each cell's table and its levels (clinic, row, column; None for 'all' and 'total') for
    hypercube.protect_grid: one table per table_id, period and measure (a figure that does not add up from
    the clinics' to the network's is a table per clinic). The equations protect_grid implies are exactly
    equations_of's."""
    out = {}
    for key in keys:
        table_id, clinic_id, period, row_key, col_key, measure = key
        alone = (table_id, measure) in NOT_ADDITIVE  # a table per clinic: no clinic dimension
        table = (table_id, period, measure) + ((clinic_id,) if alone else ())
        levels = (None if clinic_id == NETWORK or alone else clinic_id, None if row_key == MARGIN else row_key,
                  None if col_key == MARGIN else col_key)
        out[key] = (table, levels)
    return out


def _protect_table(suppression: Any, rows: list[dict[str, Any]], min_cell: int) -> dict[Key, str | None]:
    """The marks of one table_id's cells (equations never cross tables): hypercube.protect_grid; where it
    finds no cube for some cell, suppression.protect (LP, slower, no structure needed); should that find no
    safe pattern either (DisclosureError), every cell of the table is hidden: a blank table, never an unsafe
    one. A `suppression` passed in (tests: a primary-only stand-in) replaces both."""
    from clinic_outcomes.disclosure import hypercube

    keys: list[Key] = [tuple(row[c] for c in KEY_COLUMNS) for row in rows]
    module = suppression or importlib.import_module(SUPPRESSION_MODULE)
    cells = [module.Cell(key=key, value=row["base"], patients=int(row["patients"])) for key, row in zip(keys, rows)]
    pairs = equations_of(keys)
    groups = insiders(keys, pairs)
    errors = (getattr(module, "DisclosureError", RuntimeError),)
    if suppression is None:
        try:
            return hypercube.protect_grid(cells, coordinates_of(keys), min_cell, groups=groups)
        except errors as error:
            log.info("report_cells: %s; %s falls back to the LP search", error, keys[0][0])
    equations = [module.Equation(total=total, members=members) for total, members in pairs]
    try:
        return module.protect(cells, equations, min_cell, groups=groups or None)
    except errors as error:
        log.warning("report_cells: %s; every cell of %s is suppressed", error, keys[0][0] if keys else "?")
        return {
            cell.key: "primary" if 0 < cell.patients < min_cell else "complementary" for cell in cells
        }


def _protect_relief(rows: list[dict[str, Any]], hidden: list, min_cell: int, suppression: Any) -> dict[Key, str | None]:
    """The relief tables (figure_cells): one four-way table with unpublished cells, by protect_grid; should it
    find no cube, every cell is hidden (the LP search has no notion of unpublished cells). A `suppression`
    passed in (tests: the primary-only stand-in) replaces it."""
    from clinic_outcomes.disclosure import hypercube
    from clinic_outcomes.disclosure.suppression import Cell, DisclosureError

    keys: list[Key] = [tuple(row[c] for c in KEY_COLUMNS) for row in rows]
    if suppression is not None:
        cells = [suppression.Cell(key=k, value=r["base"], patients=int(r["patients"])) for k, r in zip(keys, rows)]
        return suppression.protect(cells, [], min_cell)
    cells = [Cell(key=k, value=r["base"], patients=int(r["patients"])) for k, r in zip(keys, rows)]
    coordinates = {key: figure_cells.coordinates(key) for key in keys}
    for key, where, value in hidden:
        cells.append(Cell(key=key, value=value, patients=0 if value == 0 else min_cell))
        coordinates[key] = where
    groups = {key: key[1] for key in keys if key[1] != NETWORK}
    # a manager knows her own clinic's unpublished cells too (her own data)
    groups.update({key: where[1][0] for key, where, _ in hidden if where[1][0] is not None})
    # and a network cell all of whose episodes are her clinic's (a clinician role only her clinic has): its
    # value is her own cell's, so it needs no proof against her. GROUP BY CUBE writes no cell for a
    # combination without episodes: such a cell is a zero every reader may know (zero may be shown), never a
    # corner of a proof, so a cell is "all hers" when hers is the only clinic with a cell on its line.
    by_levels: dict[tuple, list] = defaultdict(list)
    for key, (table, levels) in coordinates.items():
        if levels[0] is not None:
            by_levels[(table, levels[1:])].append(levels[0])
    for key, (table, levels) in coordinates.items():
        owners = by_levels.get((table, levels[1:]), [])
        if levels[0] is None and len(owners) == 1 and key not in groups:
            groups[key] = owners[0]
    try:
        marks = hypercube.protect_grid(cells, coordinates, min_cell, groups=groups,
                                       unpublished={key for key, _, _ in hidden})
    except DisclosureError as error:
        log.warning("report_cells: %s; every relief cell is suppressed", error)
        return {key: "primary" if 0 < row["patients"] < min_cell else "complementary" for key, row in zip(keys, rows)}
    return {key: marks[key] for key in keys}


def suppress(raw: pl.DataFrame, min_cell: int, suppression: Any = None, relief_hidden: list | None = None
             ) -> pl.DataFrame:
    """The cells as marts.report_cells holds them: value null where suppressed, and why. `relief_hidden`:
    the relief tables' unpublished cells (figure_cells.raw_relief_cells)."""
    rows = raw.to_dicts()
    by_table: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        key = tuple(row[c] for c in KEY_COLUMNS)
        if (row["table_id"], row["measure"]) in DERIVED:
            continue
        if row["table_id"] in RELIEF_TABLES:
            if figure_cells.mark_source(key) == key:
                by_table[figure_cells.PROTECTION_GROUP].append(row)
            continue
        by_table[row["table_id"]].append(row)
    marks: dict[Key, str | None] = {}
    for table_id, table_rows in by_table.items():
        if table_id == figure_cells.PROTECTION_GROUP:
            marks.update(_protect_relief(table_rows, relief_hidden or [], min_cell, suppression))
        else:
            marks.update(_protect_table(suppression, table_rows, min_cell))
    out = []
    for row in rows:
        key = tuple(row[c] for c in KEY_COLUMNS)
        if row["table_id"] in RELIEF_TABLES:
            source = figure_cells.mark_source(key)
        else:
            source = (*key[:5], DERIVED.get((row["table_id"], row["measure"]), row["measure"]))
        mark = marks[source]
        out.append({**{c: row[c] for c in KEY_COLUMNS}, "value": None if mark else row["figure"], "suppressed": mark})
    schema = {**{c: pl.String for c in KEY_COLUMNS}, "value": pl.Float64, "suppressed": pl.String}
    return pl.DataFrame(out, schema=schema, orient="row")


def build_report_cells(con: duckdb.DuckDBPyConnection, *, settings: Settings, as_of: dt.date,
                       data: Any = None, suppression: Any = None) -> pl.DataFrame:
    """Compute, protect and write marts.report_cells (replacing last night's); returns what it wrote.
    `data`: the report's queries (queries.load), when the caller has already run them."""
    from clinic_outcomes.report import queries

    missing = [name for name in queries.missing_inputs(con) if not name.startswith("marts.report_cells")]
    if missing:
        raise queries.ReportInputError("the warehouse lacks what the report is built from: " + ", ".join(missing))
    if data is None:
        with queries.prepared(con, as_of):
            data = queries.load(con, as_of, None, with_cells=False)
    min_cell = settings.rules.min_cell_patients
    relief, relief_hidden = figure_cells.raw_relief_cells(con, data, min_cell)
    raw = pl.concat([raw_cells(con, as_of), headline_cells(data, queries.months_of(as_of)), relief],
                    how="vertical_relaxed")
    cells = suppress(raw, min_cell, suppression, relief_hidden)
    con.register("report_cells_frame", cells)
    try:
        con.execute("create or replace table marts.report_cells as select * from report_cells_frame")
    finally:
        con.unregister("report_cells_frame")
    apply_comments(con, "marts")
    return cells
