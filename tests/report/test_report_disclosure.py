"""Disclosure control in the report (R7, issue 14) on whole synthetic networks: the demo's (400 patients) and
a 1,500-patient one, built stage by stage without Prefect.

The checks do not reuse the report's SQL: distinct patients and figures are recomputed here with Polars from
core, quality and marts tables, for every cell of marts.report_cells, and the HTML is read back.

Mutants tried (each made a test here fail):
- cells.suppress: `int(row["patients"])` passed as patients + 11 (nothing primary-suppressed) ->
  test_no_shown_cell_rests_on_fewer_patients_than_the_minimum;
- cells_relief_by_condition_role.sql: `count(distinct patient_key)` -> `count(*)` (sessions as patients) ->
  test_no_shown_cell_rests_on_fewer_patients_than_the_minimum;
- cells_adverse_events_by_role.sql: `100.0 * events / sessions` -> `10.0 * ...` ->
  test_shown_figures_equal_a_recomputation;
- sections.retreatment building the case list for the network too: survived, and rightly (the template shows
  a case list only in a clinic's section), so the next mutant aims at where the network report is made;
- render.safe_file_stem returning the id unchanged -> test_clinic_file_names_are_safe;
- cells_retreatments.sql: `local_date > $as_of - $list_days` -> `>=` -> test_shown_figures_equal_a_recomputation
  (survived until the last-30-days counts were recomputed here too);
- render._document: the network report with every clinic's section again (as before issue 14) ->
  test_case_lists_only_in_the_clinic_s_own_report.
"""

from __future__ import annotations

import re

import numpy as np
import polars as pl
import pytest

import report_fixtures as rf
from clinic_outcomes.report.render import safe_file_stem

MIN_CELL = 11


@pytest.fixture(scope="module", params=[400, 1500], ids=["demo", "1500-patients"])
def network(request, tmp_path_factory):
    con, settings, as_of, _ = rf.generated_network(tmp_path_factory.mktemp(f"network-{request.param}"), request.param)
    assert settings.rules.min_cell_patients == MIN_CELL
    documents = rf.reports(con, settings=settings, as_of=as_of, data_docs_href=None)
    cells = con.sql("select * from marts.report_cells").pl()
    yield {"con": con, "as_of": as_of, "reports": documents, "cells": cells}
    con.close()


def _scopes(frame: pl.DataFrame, row: str | None, col: str | None) -> pl.DataFrame:
    """Every grouping of the agreed tables: each clinic and the network ('all'), each row and column value
    and their margins ('total'), as one frame with the key columns and the unit columns kept."""
    out = []
    for clinic in (True, False):
        for by_row in ((True, False) if row else (False,)):
            for by_col in ((True, False) if col else (False,)):
                out.append(frame.with_columns(
                    clinic_id=pl.col("clinic_id") if clinic else pl.lit("all"),
                    row_key=(pl.col(row).fill_null("not_recorded") if by_row else pl.lit("total")),
                    col_key=(pl.col(col).fill_null("not_recorded") if by_col else pl.lit("total")),
                ).select("clinic_id", "row_key", "col_key", *[c for c in frame.columns if c not in ("clinic_id",)]))
    return pl.concat(out, how="vertical_relaxed")


def _expected(con) -> pl.DataFrame:
    """table_id, clinic_id, period, row_key, col_key, measure, patients, figure: recomputed from core tables."""
    sessions = con.sql(
        "select session_id, patient_key, clinic_id, clinician_role, condition, status, therapies, adverse_event, "
        "clinic_timezone, started_at from core.sessions"
    ).pl()
    relief = con.sql("select session_id, relief_points, meaningful_relief from marts.session_relief").pl()
    rated = relief.filter(pl.col("relief_points").is_not_null()).join(sessions, on="session_id")
    parts = []
    scoped = _scopes(rated, "condition", "clinician_role")
    groups = scoped.group_by("clinic_id", "row_key", "col_key")
    parts.append(groups.agg(patients=pl.col("patient_key").n_unique(), figure=pl.len().cast(pl.Float64))
                 .with_columns(table_id=pl.lit("relief_by_condition_role"), measure=pl.lit("sessions")))
    parts.append(groups.agg(patients=pl.col("patient_key").n_unique(), figure=pl.col("relief_points").mean())
                 .with_columns(table_id=pl.lit("relief_by_condition_role"), measure=pl.lit("mean_relief_points")))
    parts.append(scoped.filter(pl.col("meaningful_relief").is_not_null()).group_by("clinic_id", "row_key", "col_key")
                 .agg(patients=pl.col("patient_key").n_unique(), figure=pl.col("meaningful_relief").mean())
                 .with_columns(table_id=pl.lit("relief_by_condition_role"), measure=pl.lit("share_meaningful")))

    plans = con.sql("select plan_id, patient_key, clinic_id, completion from quality.plan_completion").pl()
    scoped = _scopes(plans, "completion", None)
    counted = scoped.group_by("clinic_id", "row_key", "col_key").agg(
        patients=pl.col("patient_key").n_unique(), figure=pl.len().cast(pl.Float64))
    parts.append(counted.with_columns(table_id=pl.lit("plan_completion"), measure=pl.lit("plans")))

    needling = sessions.filter((pl.col("status") == "completed") & pl.col("therapies").list.contains("dry_needling"))
    scoped = _scopes(needling, None, "clinician_role")
    by_column = scoped.group_by("clinic_id", "col_key").agg(
        patients=pl.col("patient_key").n_unique(), sessions=pl.len(),
        **{event: (pl.col("adverse_event") == event).sum() for event in ("soreness", "bruising", "fainting")},
    )
    parts.append(by_column.select("clinic_id", "col_key", "patients", figure=pl.col("sessions").cast(pl.Float64))
                 .with_columns(row_key=pl.lit("total"), table_id=pl.lit("adverse_events_by_role"),
                               measure=pl.lit("sessions")))
    for event in ("soreness", "bruising", "fainting"):
        parts.append(by_column.select("clinic_id", "col_key", "patients",
                                      figure=100.0 * pl.col(event) / pl.col("sessions"))
                     .with_columns(row_key=pl.lit(event), table_id=pl.lit("adverse_events_by_role"),
                                   measure=pl.lit("per_100_sessions")))

    flags = con.sql("select session_id, clinic_id from quality.retreatment_flags").pl().join(
        sessions.select("session_id", "patient_key"), on="session_id")
    per_clinic = flags.group_by("clinic_id").agg(patients=pl.col("patient_key").n_unique(),
                                                 figure=pl.len().cast(pl.Float64))
    parts.append(per_clinic.rename({"clinic_id": "row_key"}).with_columns(
        clinic_id=pl.lit("all"), col_key=pl.lit("total"), table_id=pl.lit("retreatments"), measure=pl.lit("flags")))
    parts = [part.with_columns(period=pl.lit("all_time")) for part in parts]
    recent = con.sql(
        """
        select flags.clinic_id as row_key, count(*)::double as figure, count(distinct sessions.patient_key) as patients
        from quality.retreatment_flags as flags join core.sessions as sessions using (session_id)
        where cast(timezone(sessions.clinic_timezone, sessions.started_at) as date)
              between getvariable('as_of') - 29 and getvariable('as_of')
        group by all
        """
    ).pl()
    parts.append(recent.with_columns(clinic_id=pl.lit("all"), col_key=pl.lit("total"), table_id=pl.lit("retreatments"),
                                     measure=pl.lit("flags"), period=pl.lit("last_30_days")))
    columns = ["table_id", "clinic_id", "period", "row_key", "col_key", "measure", "patients", "figure"]
    return pl.concat([part.select(columns) for part in parts], how="vertical_relaxed")


def _joined(network) -> pl.DataFrame:
    expected = _expected(network["con"])
    network["con"].execute("set variable as_of = ?", [network["as_of"]])
    shown = network["cells"]
    keys = ["table_id", "clinic_id", "period", "row_key", "col_key", "measure"]
    joined = shown.join(expected, on=keys, how="inner")
    return joined


def test_no_shown_cell_rests_on_fewer_patients_than_the_minimum(network):
    joined = _joined(network)
    assert joined.height > 100  # the recomputation reaches most cells of the four tables
    shown = joined.filter(pl.col("suppressed").is_null())
    too_few = shown.filter((pl.col("patients") < MIN_CELL) & ~((pl.col("patients") == 0) & (pl.col("value") == 0)))
    assert too_few.is_empty(), too_few
    # and every cell under the minimum is suppressed, its value null in the mart
    hidden = joined.filter((pl.col("patients") < MIN_CELL) & (pl.col("patients") > 0))
    assert hidden.height > 0 and hidden["value"].null_count() == hidden.height
    assert (hidden["suppressed"].is_not_null()).all()


def test_shown_figures_equal_a_recomputation(network):
    shown = _joined(network).filter(pl.col("suppressed").is_null() & pl.col("figure").is_not_null())
    assert shown.height > 20
    differ = shown.filter((pl.col("value") - pl.col("figure")).abs() > 1e-9)
    assert differ.is_empty(), differ


def test_the_four_agreed_tables_are_there(network):
    cells = network["cells"]
    assert set(cells.columns) == {"table_id", "clinic_id", "period", "row_key", "col_key", "measure", "value", "suppressed"}
    measures = {(t, m) for t, m in cells.select("table_id", "measure").unique().iter_rows()}
    assert {("relief_by_condition_role", "sessions"), ("relief_by_condition_role", "mean_relief_points"),
            ("relief_by_condition_role", "share_meaningful"), ("plan_completion", "plans"),
            ("adverse_events_by_role", "per_100_sessions"), ("adverse_events_by_role", "sessions"),
            ("retreatments", "flags")} <= measures
    assert set(cells.filter(pl.col("table_id") == "retreatments")["period"]) == {"last_30_days", "all_time"}
    assert set(cells["suppressed"].drop_nulls()) <= {"primary", "complementary"}
    comments = network["con"].sql(
        "select comment from duckdb_tables() where schema_name = 'marts' and table_name = 'report_cells'").fetchall()
    assert comments and comments[0][0]


def test_html_shows_no_figure_the_mart_suppressed(network):
    documents = network["reports"]
    suppressed = network["cells"].filter(pl.col("suppressed").is_not_null()).height
    shown_words = sum(html.count(f"fewer than {MIN_CELL}") for html in documents.values())
    assert suppressed > 0 and shown_words > 0
    # the network report's pain table: each cell either a suppressed mark or a figure of a shown cell
    network_cells = network["cells"].filter((pl.col("clinic_id") == "all") & (pl.col("table_id") == "relief_by_condition_role")
                                            & (pl.col("measure") == "sessions") & pl.col("suppressed").is_null())
    shown_counts = {f"{int(v):,}" for v in network_cells["value"]}
    for row in rf.table_rows(documents[None], "network", "pain"):
        for cell in row[1:]:
            match = re.search(r"([\d,]+) sessions", cell)
            assert cell in ("", f"fewer than {MIN_CELL}") or (match and match.group(1) in shown_counts), cell


def test_case_lists_only_in_the_clinic_s_own_report(network):
    documents = network["reports"]
    con, as_of = network["con"], network["as_of"]
    assert 'data-table="retreatment"' not in documents[None]
    recent = con.sql(
        """
        select flags.clinic_id, count(*) as flags
        from quality.retreatment_flags as flags join core.sessions as sessions using (session_id)
        where cast(timezone(sessions.clinic_timezone, sessions.started_at) as date) between $as_of - 29 and $as_of
        group by all
        """,
        params={"as_of": as_of},
    ).fetchall()
    assert recent, "the network has re-treatment flags to list"
    clinicians = dict(con.sql(
        "select clinic_id, list(distinct clinician_id) from core.sessions group by all").fetchall())
    for clinic, flags in recent:
        html = documents[clinic]
        rows = rf.table_rows(html, clinic, "retreatment")
        assert len(rows) == min(flags, 50)
        assert {row[1] for row in rows} <= set(clinicians[clinic])  # its own clinicians' sessions
        for other in documents:
            if other not in (None, clinic):
                assert f'data-scope="{clinic}"' not in documents[other]  # no other clinic's report holds its section


def test_clinic_file_names_are_safe():
    for hostile in ("../../etc/passwd", "a/b", "a?b", ".hidden", "", "x" * 300, "clinic é", "-rf"):
        stem = safe_file_stem(hostile)
        assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]{0,80}", stem), stem
    assert safe_file_stem("a/b") != safe_file_stem("a?b")
    assert safe_file_stem("clinic_nyc") == "clinic_nyc"


def test_no_hidden_cell_can_be_narrowed_by_an_outsider(network):
    """The disclosure module's own auditor over what the mart publishes (the outsider: every shown cell)."""
    from clinic_outcomes.disclosure import suppression
    from clinic_outcomes.report import cells as report_cells
    from clinic_outcomes.report import queries

    con, as_of = network["con"], network["as_of"]
    with queries.prepared(con, as_of):
        data = queries.load(con, as_of, None, with_cells=False)
    raw = pl.concat([report_cells.raw_cells(con, as_of), report_cells.headline_cells(data, queries.months_of(as_of))],
                    how="vertical_relaxed")
    marks = {tuple(r[c] for c in report_cells.KEY_COLUMNS): r["suppressed"] for r in network["cells"].to_dicts()}
    base = raw.filter(~pl.struct("table_id", "measure").map_elements(
        lambda s: (s["table_id"], s["measure"]) in report_cells.DERIVED, return_dtype=pl.Boolean))
    for table_id in base["table_id"].unique():
        rows = base.filter(pl.col("table_id") == table_id).to_dicts()
        keys = [tuple(r[c] for c in report_cells.KEY_COLUMNS) for r in rows]
        cells = [suppression.Cell(key=k, value=r["base"], patients=int(r["patients"])) for k, r in zip(keys, rows)]
        equations = [suppression.Equation(total=t, members=m) for t, m in report_cells.equations_of(keys)]
        assert suppression.audit(cells, equations, {k: marks[k] for k in keys}, MIN_CELL) == [], table_id


def _line_equations(coordinates):
    """Written here, apart from the code under test: every line of every grid, total = sum of the inner
    cells present on it. coordinates: key -> (table, levels with None for a margin)."""
    from clinic_outcomes.disclosure import suppression

    at = {(table, levels): key for key, (table, levels) in coordinates.items()}
    equations = []
    for (table, levels), key in at.items():
        for d, level in enumerate(levels):
            if level is not None:
                continue
            members = tuple(other for (t, lv), other in at.items()
                            if t == table and lv[d] is not None and lv[:d] + lv[d + 1:] == levels[:d] + levels[d + 1:])
            if members:
                equations.append(suppression.Equation(total=key, members=members))
    return equations


def _attack_relief(network, known_clinic):
    """The relief tables' published hidden cells an attacker narrows too far (LP, attack.intervals), with the
    unpublished four-way cells hidden from everyone but their clinic's manager."""
    from clinic_outcomes.disclosure import suppression
    from clinic_outcomes.disclosure.attack import Rule, intervals
    from clinic_outcomes.report import figure_cells

    con = network["con"]
    cube = figure_cells.counts(con)
    shown = network["cells"].filter(pl.col("table_id") == "relief_duration")
    failures = []
    for measure in ("episodes", "no_followup"):
        cells, coordinates, marks, known = [], {}, {}, set()
        for row in cube.to_dicts():
            levels = (row["clinic_id"], row["condition"], row["aftercare"], row["clinician_role"])
            key = ("cube", levels)
            cells.append(suppression.Cell(key=key, value=float(row[measure]), patients=int(row[measure] > 0) * 99))
            coordinates[key] = ("t", levels)
            marks[key] = "complementary"
            if known_clinic is not None and levels[0] == known_clinic:
                known.add(key)
        published = {}
        for row in shown.filter(pl.col("measure") == measure).to_dicts():
            table, levels = figure_cells.coordinates(tuple(row[c] for c in KEY))
            published[("cube", levels)] = row["suppressed"]
        for key, mark in published.items():
            marks[key] = mark
        if measure == "episodes":
            for row in network["cells"].filter((pl.col("table_id") == "relief_comparison")
                                               & (pl.col("measure") == "episodes")).to_dicts():
                key = ("cube", figure_cells.coordinates(tuple(row[c] for c in KEY))[1])
                published[key] = marks[key] = row["suppressed"]
        tables = suppression._Tables(cells, _line_equations(coordinates))
        hidden = np.asarray([bool(marks[k]) and k not in known for k in tables.keys])
        # a network cell whose every episode is the known clinic's is her own data (cells.insiders): not checked
        value = {k: c.value for k, c in zip([c.key for c in cells], cells)}
        own = {k for k in published if known_clinic is not None and k[1][0] is None
               and value.get(("cube", (known_clinic, *k[1][1:])), -1) == value[k]}
        check = [i for i, k in enumerate(tables.keys) if hidden[i] and k in published and k not in own]
        primary = np.asarray([marks[k] == "primary" for k in tables.keys])
        found, _, _ = intervals(tables.network, hidden, check, primary, Rule(reach=float(MIN_CELL)))
        failures += [(tables.keys[i], low, high) for i, low, high in found]
    return failures


KEY = ("table_id", "clinic_id", "period", "row_key", "col_key", "measure")


def test_relief_cells_rest_on_enough_patients_recomputed(network):
    """The relief tables' episodes and no-follow-up counts, recomputed with Polars from marts.relief_duration
    and core.sessions: no shown cell under the minimum, every small one hidden, shown figures equal."""
    con = network["con"]
    episodes = con.sql("select session_id, clinic_id, condition, aftercare, duration_hours from marts.relief_duration"
                       ).pl().join(con.sql("select session_id, patient_key from core.sessions").pl(), on="session_id")
    episodes = episodes.with_columns(followed=pl.col("duration_hours").is_not_null())
    expected = []
    for clinic in [None, *episodes["clinic_id"].unique().to_list()]:
        mine = episodes if clinic is None else episodes.filter(pl.col("clinic_id") == clinic)
        groups = [("total", mine)]
        for column in ("condition", "aftercare"):
            for value in mine[column].unique().to_list():
                groups.append((f"{column}:{value or 'not_recorded'}",
                               mine.filter(pl.col(column).is_null() if value is None else pl.col(column) == value)))
        for row_key, frame in groups:
            for measure, rows in (("episodes", frame.filter("followed")), ("no_followup", frame.filter(~pl.col("followed")))):
                expected.append({"clinic_id": "all" if clinic is None else clinic, "row_key": row_key, "measure": measure,
                                 "patients": rows["patient_key"].n_unique(), "figure": float(rows.height)})
    joined = network["cells"].filter(pl.col("table_id") == "relief_duration").join(
        pl.DataFrame(expected), on=["clinic_id", "row_key", "measure"], how="inner")
    assert joined.height >= len({(e["clinic_id"], e["row_key"]) for e in expected})  # every group was found
    shown = joined.filter(pl.col("suppressed").is_null())
    assert shown.filter((pl.col("patients") < MIN_CELL) & (pl.col("figure") > 0)).is_empty()
    assert shown.filter(pl.col("value") != pl.col("figure")).is_empty()
    small = joined.filter((pl.col("patients") > 0) & (pl.col("patients") < MIN_CELL))
    assert small.height > 0 and small["suppressed"].null_count() == 0
    # protected, not blanked (a failed protection hides every relief cell): some of the network's cells show
    # (on the 400-patient demo the hypercubes through one-episode clinic rows hide most of them: see
    # docs/disclosure.md, "Over-suppression")
    assert shown.filter(pl.col("clinic_id") == "all").height > 0


def test_no_hidden_relief_cell_can_be_narrowed_by_anyone(network):
    clinics = [c for c in network["cells"]["clinic_id"].unique().to_list() if c != "all"]
    for known in [None, *clinics]:
        assert _attack_relief(network, known) == [], known


def test_no_hidden_cell_of_the_agreed_tables_can_be_narrowed_by_a_manager(network):
    """The LP audit for each clinic's manager (she knows every cell of her clinic, and her row of the
    re-treatment table), with equations written in this test."""
    from clinic_outcomes.disclosure import suppression
    from clinic_outcomes.report import cells as report_cells

    marks_frame = network["cells"]
    con, as_of = network["con"], network["as_of"]
    raw = report_cells.raw_cells(con, as_of)
    marks = {tuple(r[c] for c in KEY): r["suppressed"] for r in marks_frame.to_dicts()}
    base = raw.filter(~pl.col("measure").is_in(["mean_relief_points", "share"]))
    clinics = sorted(set(base["clinic_id"]) - {"all"})
    for table_id in ["relief_by_condition_role", "plan_completion", "adverse_events_by_role", "retreatments"]:
        rows = base.filter(pl.col("table_id") == table_id).to_dicts()
        keys = [tuple(r[c] for c in KEY) for r in rows]
        cells = [suppression.Cell(key=k, value=r["base"], patients=int(r["patients"])) for k, r in zip(keys, rows)]
        coordinates = {}
        for k in keys:
            clinic, row, col = (k[3], None, None) if table_id == "retreatments" else (k[1], k[3], k[4])
            coordinates[k] = ((k[2], k[5]), tuple(None if v in ("all", "total") else v for v in (clinic, row, col)))
        equations = _line_equations(coordinates)
        for clinic in clinics:
            known = [k for k in keys if clinic in (k[1], k[3] if table_id == "retreatments" else None)]
            found = suppression.audit(cells, equations, {k: marks[k] for k in keys}, MIN_CELL, known=known)
            # a network cell whose whole value is her clinic's cell is her own data (cells.insiders)
            value = {c.key: c.value for c in cells}
            found = [f for f in found if not (f[0][1] == "all" and value.get((f[0][0], clinic, *f[0][2:])) == value[f[0]])]
            assert found == [], (table_id, clinic)
