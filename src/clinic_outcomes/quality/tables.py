"""The R1 and R2 tables of schema quality, built from core.* with the thresholds of Settings (as DuckDB variables).

R1 (quality.retreatment_checks, retreatment_flags) does not depend on the as-of date, and a spot is one
patient's: after an incremental core build (ops.core_build) only the rows of the patients that build touched
are replaced. A patient is touched when one of their sessions or its needle sites was written by that build
(changed_in_run), or when a session written by it was the previous needling session of one of their spots
(the session moved to another patient, or stopped being a needling session). Otherwise, or when the
re-treatment window or the R1 SQL changed (ops.quality_build), R1 is rebuilt whole.

R2 (quality.plan_completion) depends on the as-of date: it is rebuilt every time.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass

import duckdb

from clinic_outcomes.core import build as core_build
from clinic_outcomes import warehouse
from clinic_outcomes.settings import Settings

R1_TABLES = ("retreatment_checks", "retreatment_flags")  # built in this order: flags read the checks


@dataclass(frozen=True)
class QualityBuild:
    fingerprint: str
    core_fingerprint: str
    core_through_file_id: int
    core_run_id: int


def _fingerprint(con: duckdb.DuckDBPyConnection) -> str:
    digest = hashlib.sha256(str(warehouse.scalar(con, "select getvariable('retreatment_window_hours')")).encode())
    for table in R1_TABLES:
        digest.update(b"\0" + warehouse.model_text(f"quality/{table}").encode())
    return digest.hexdigest()


def _last_build(con: duckdb.DuckDBPyConnection) -> QualityBuild | None:
    if not warehouse.has_table(con, "ops.quality_build"):
        return None
    rows = con.execute(
        "select fingerprint, core_fingerprint, core_through_file_id, core_run_id from ops.quality_build"
    ).fetchall()
    return QualityBuild(*rows[0]) if len(rows) == 1 else None


def r1_mode(con: duckdb.DuckDBPyConnection) -> str:
    """full, incremental (the patients the last core build touched) or current (R1 is up to date)."""
    core = core_build.read_core_build(con)
    last = _last_build(con)
    if (
        core is None
        or last is None
        or not all(warehouse.has_table(con, f"quality.{table}") for table in R1_TABLES)
        or last.fingerprint != _fingerprint(con)
        or last.core_fingerprint != core.fingerprint
    ):
        return "full"
    if (last.core_through_file_id, last.core_run_id) == (core.through_file_id, core.run_id):
        return "current"
    if core.previous_file_id is not None and last.core_through_file_id == core.previous_file_id:
        return "incremental"
    return "full"


def build(con: duckdb.DuckDBPyConnection, settings: Settings, as_of: dt.date) -> str:
    """(Re)build the R1 and R2 tables with their comments; how R1 was built (see r1_mode)."""
    con.execute("create schema if not exists quality")
    warehouse.set_variables(con, settings, as_of)
    mode = r1_mode(con)
    if mode != "current":
        _build_r1(con, incremental=mode == "incremental")
    warehouse.materialise(con, "quality/plan_completion")
    warehouse.apply_comments(con, "quality")
    return mode


def _build_r1(con: duckdb.DuckDBPyConnection, *, incremental: bool) -> None:
    core = core_build.read_core_build(con)
    con.execute("set variable r1_all = $all", {"all": not incremental})
    con.execute("create or replace temp table r1_patients (patient_key varchar)")
    con.execute("create or replace temp table r1_sessions (session_id varchar)")
    try:
        with warehouse.transaction(con):
            if incremental:
                _touched(con, core.run_id)
                for table in R1_TABLES:
                    con.execute(f"delete from quality.{table} where session_id in (select session_id from r1_sessions)")
                    warehouse.materialise(con, f"quality/{table}", how="insert")
            else:
                for table in R1_TABLES:
                    warehouse.materialise(con, f"quality/{table}", how="table")
            warehouse.run_sql(con, "ddl/ops_quality_build")
            con.execute("delete from ops.quality_build")
            if core is not None:
                con.execute(
                    "insert into ops.quality_build values ($fingerprint, $core_fingerprint, $through, $run)",
                    {
                        "fingerprint": _fingerprint(con),
                        "core_fingerprint": core.fingerprint,
                        "through": core.through_file_id,
                        "run": core.run_id,
                    },
                )
    finally:
        con.execute("drop table if exists r1_patients")
        con.execute("drop table if exists r1_sessions")
    if not incremental:
        warehouse.apply_comments(con, "ops")


def _touched(con: duckdb.DuckDBPyConnection, core_run_id: int) -> None:
    """r1_patients: the patients whose spots may have changed; r1_sessions: the sessions whose R1 rows are
    replaced (every session of those patients, and every session without a patient, which has none)."""
    warehouse.run_sql(con, "temp/r1_patients", {"run": core_run_id})
    warehouse.run_sql(con, "temp/r1_sessions")
