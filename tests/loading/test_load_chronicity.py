"""plans.chronicity (exports.md): optional enum acute / subacute / chronic; older exports lack the column.

Mutants tried (each made a test below fail):
- staging: reason_enum list without 'subacute' -> test_chronicity_is_typed_... fails (row rejected);
- staging: `trimmed(checked.chronicity)` without lower() -> 'Chronic' stays capitalised, typed test fails;
- entities.py without chronicity -> the column is never read, typed test fails (all null);
- core/plans.sql without chronicity -> core.plans has no such column, every test fails;
- load._add_new_columns returning at once -> the old-warehouse test fails (MERGE column count mismatch);
- load._add_new_columns appending the column at the end -> the old-warehouse test reads the wrong values.
"""

from __future__ import annotations

import duckdb
import pyarrow as pa

from load_fixtures import VALID, csv_text, load_all, plan, rejected, rows, write_drop

COLUMNS_WITH = [*VALID["plans"]]  # chronicity among them


def _plan(plan_id: str, chronicity: str | None, **values: str | None) -> dict:
    return {**plan(plan_id=plan_id, **values), "chronicity": chronicity}


def test_chronicity_is_typed_case_insensitively_and_blank_is_not_recorded(tmp_path):
    exports = tmp_path / "exports"
    write_drop(exports, "2026-11-01", "plans", csv_text([
        _plan("pl_a", "acute"),
        _plan("pl_s", " SubAcute "),
        _plan("pl_c", "Chronic"),
        _plan("pl_n", None),
    ], COLUMNS_WITH))
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    load_all(con, exports)
    assert rows(con, "select plan_id, chronicity from core.plans order by plan_id") == [
        ("pl_a", "acute"), ("pl_c", "chronic"), ("pl_n", None), ("pl_s", "subacute"),
    ]
    assert rejected(con) == []


def test_an_unknown_chronicity_rejects_the_row_with_a_reason_naming_column_and_value(tmp_path):
    exports = tmp_path / "exports"
    write_drop(exports, "2026-11-01", "plans", csv_text([
        _plan("pl_ok", "acute"),
        _plan("pl_bad", "long"),
    ], COLUMNS_WITH))
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    load_all(con, exports)
    assert rows(con, "select plan_id from core.plans") == [("pl_ok",)]
    assert rejected(con) == [
        ("2026-11-01/plans.csv", 3, "chronicity: 'long' is not one of acute, subacute, chronic"),
    ]


def test_a_file_without_the_column_loads_with_chronicity_not_recorded(tmp_path):
    exports = tmp_path / "exports"
    old = [c for c in VALID["plans"] if c != "chronicity"]  # an older export: no chronicity column
    write_drop(exports, "2026-11-01", "plans", csv_text([plan(plan_id="pl_old")], old))
    write_drop(exports, "2026-11-01", "plans",
               pa.Table.from_pylist([{c: plan(plan_id="pl_pq")[c] for c in old}]), ext="parquet")
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    summary = load_all(con, exports)
    assert rows(con, "select plan_id, chronicity from core.plans order by plan_id") == [
        ("pl_old", None), ("pl_pq", None),
    ]
    assert all(not r.ignored_columns for r in summary.files)
    assert rejected(con) == []


def test_a_later_drop_with_the_column_updates_a_plan_first_sent_without_it(tmp_path):
    exports = tmp_path / "exports"
    write_drop(exports, "2026-11-01", "plans", [plan(plan_id="pl1")])
    write_drop(exports, "2026-11-02", "plans", csv_text(
        [_plan("pl1", "chronic", updated_at="2026-11-02T08:00:00Z")], COLUMNS_WITH))
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    load_all(con, exports)
    assert rows(con, "select plan_id, chronicity from core.plans") == [("pl1", "chronic")]


def test_a_warehouse_built_before_the_column_existed_gains_it_on_the_next_load(tmp_path):
    """raw.plans of an older warehouse has no chronicity: the next night adds it (null in older rows) in place."""
    exports = tmp_path / "exports"
    write_drop(exports, "2026-11-01", "plans", [plan(plan_id="pl_old"), plan(plan_id="pl_kept")])
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    load_all(con, exports)
    con.execute("alter table raw.plans drop column chronicity")  # as a warehouse of the previous release
    write_drop(exports, "2026-11-02", "plans", csv_text([
        _plan("pl_old", "acute", updated_at="2026-11-02T08:00:00Z", planned_weeks="8"),
        _plan("pl_new", "chronic", clinic_id="c2"),
    ], COLUMNS_WITH))
    load_all(con, exports, run_id=2)
    assert rows(con, "select plan_id, clinic_id, planned_weeks, chronicity from core.plans order by plan_id") == [
        ("pl_kept", "c1", 6, None), ("pl_new", "c2", 6, "chronic"), ("pl_old", "c1", 8, "acute"),
    ]
