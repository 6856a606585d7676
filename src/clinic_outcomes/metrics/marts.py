"""Outcome metrics R3-R6 (docs/rules.md) with lazy Polars, into marts.*.

Each metric is a pure function, LazyFrame in -> LazyFrame out, so tests run it
on hand-made rows without DuckDB. compute_marts() reads core.* and
quality.plan_completion from DuckDB through Arrow, runs the functions and
writes every mart back through Arrow, then documents it (sql/comments/marts.toml).

Internal frames keep patient_key so summaries can count distinct patients (the
report suppresses figures from fewer than min_cell_patients patients); no mart
carries patient_key. compute_marts swaps the keys for run-local integers first:
joins, sorts and distinct counts over patients are then much cheaper.

Where rules.md is silent (documented per column in sql/comments/marts.toml):
- a null condition or aftercare is its own group, 'not recorded';
- R4: "later" means a strictly later instant; episodes without follow-up keep a
  row in marts.relief_duration (followed_up false, duration and relapsed null)
  and are counted per group as no_followup;
- R4 summaries: survival past a group's longest follow-up carries the last
  estimate, as lifelines does; the log-rank test compares the groups with at
  least min_cell_patients patients, never aftercare 'not recorded';
- R5: moderate/substantial are null when the baseline is 0; final-pain ties in
  time go to the session, then to the larger id;
- R6: needling sessions without a recorded adverse_event stay in the
  denominator; "plans started" are plans with start_date <= as_of, any status;
  a null pcp_cleared is its own share (not recorded), never "without clearance".

Inputs, as in core.*: sessions (session_id, patient_key, plan_id, clinic_id,
clinician_role, started_at, status, therapies, condition, pain_before,
pain_after, aftercare, adverse_event), pain check-ins (checkin_id,
patient_key, recorded_at, pain), plans (plan_id, patient_key, clinic_id,
start_date, pcp_cleared) and quality.plan_completion. Instants are
Datetime(us, UTC).
"""

from __future__ import annotations

import datetime as dt
from concurrent.futures import Future, ThreadPoolExecutor

import duckdb
import polars as pl

from clinic_outcomes.metrics.casemix import CASEMIX_TABLES, casemix_marts
from clinic_outcomes.metrics.frames import MART_TABLES
from clinic_outcomes.metrics.plans import plan_completion_summary, plan_outcome_summary, plan_outcomes
from clinic_outcomes.metrics.relief import (
    relief_comparison,
    relief_curves,
    relief_episodes,
    relief_summary,
    session_relief,
    session_relief_summary,
)
from clinic_outcomes.metrics.safety import adverse_events, aftercare_mix, pcp_clearance
from clinic_outcomes.settings import Rules, Settings
from clinic_outcomes.warehouse import apply_comments, run_sql, transaction

# --- warehouse ------------------------------------------------------------------------------------


def _read(con: duckdb.DuckDBPyConnection, query: str) -> pl.LazyFrame:
    # Read once through Arrow; every metric below reuses the same in-memory frame.
    return pl.from_arrow(con.sql(query).to_arrow_table()).lazy()


# Relief episodes (R4) and plan outcomes (R5) are worked out per patient. Their intermediate frames (one
# sorted stream of every check-in, session and episode mark, and a dozen row-number columns over it) take
# several times the memory of their inputs: at 10M sessions ~4 GiB at once. Above this many session and
# check-in rows they are computed for one slice of the patients at a time, which bounds that peak and
# gives the same rows (no episode or plan outcome reads another patient's rows). At 1M sessions (~1.7M
# rows) everything is one slice.
ROWS_PER_PATIENT_SLICE = 4_000_000


def patient_slices(rows: int) -> int:
    """How many slices of patients to compute relief episodes and plan outcomes in, for `rows` input rows."""
    return max(1, -(-rows // ROWS_PER_PATIENT_SLICE))


def in_patient_slice(index: int, slices: int) -> pl.Expr:
    """Rows of the patients of slice `index` of `slices` (by run-local patient number; rows without a patient go to slice 0)."""
    return (pl.col("patient_key") % slices).fill_null(0) == index


def _episodes_and_outcomes(
    sessions: pl.LazyFrame,
    checkins: pl.LazyFrame,
    plan_completion: pl.LazyFrame,
    rules: Rules,
    slices: int,
    *more: pl.LazyFrame,
) -> list[pl.DataFrame]:
    """relief_episodes and plan_outcomes (then `more`, collected alongside), slice by slice of patients."""
    mcid, followup_days = rules.mcid_points, rules.relief_followup_days
    if slices == 1:
        return pl.collect_all([
            relief_episodes(sessions, checkins, mcid, followup_days),
            plan_outcomes(plan_completion, sessions, checkins, mcid),
            *more,
        ])
    zones = plan_completion.select(pl.col("clinic_timezone").unique()).collect()["clinic_timezone"]
    zones = zones.drop_nulls().to_list()
    episode_parts, outcome_parts = [], []
    for index in range(slices):
        mine = in_patient_slice(index, slices)
        episode_parts.append(relief_episodes(sessions.filter(mine), checkins.filter(mine), mcid, followup_days).collect())
        # A session reaches its plan through plan_id (the plan's patient may differ): the join with the
        # slice's plans picks the sessions, so every session is offered; check-ins join by patient.
        outcome_parts.append(
            plan_outcomes(plan_completion.filter(mine), sessions, checkins.filter(mine), mcid, zones=zones).collect()
        )
    return [
        pl.concat(episode_parts).sort("started_at", "session_id"),
        pl.concat(outcome_parts).sort("plan_id"),
        *pl.collect_all(list(more)),
    ]


def _read_numbered(con: duckdb.DuckDBPyConnection, table: str, columns: str, where: str = "true") -> pl.LazyFrame:
    """Read `columns` of the rows of `table` that pass `where`, patient_key replaced by the run's patient number."""
    return _read(
        con,
        f"""
        select source.{columns.replace(", ", ", source.")}, numbers.patient_no as patient_key,
        from {table} as source
        left join metrics_patient_numbers as numbers on numbers.patient_key = source.patient_key
        where {where}
        """,
    )


def _write(con: duckdb.DuckDBPyConnection, table: str, frame: pl.DataFrame) -> int:
    view = f"_arrow_marts_{table}"
    con.register(view, frame.to_arrow())
    try:
        con.execute(f"create or replace table marts.{table} as select * from {view}")
    finally:
        con.unregister(view)
    return frame.height


def _without_patient_key(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.drop("patient_key", strict=False)


def compute_marts(con: duckdb.DuckDBPyConnection, settings: Settings, as_of: dt.date) -> dict[str, int]:
    """Build every marts.* table from core.* and quality.plan_completion; rows written per table.

    All marts are replaced in one transaction. Each is written (by one background thread, on
    this connection, which nothing else uses meanwhile) as soon as it is computed: DuckDB
    stores a table on one core while Polars computes the next marts.
    """
    rules = settings.rules
    run_sql(con, "temp/metrics_patient_numbers")  # patients as small integers within this run
    try:
        # Every session metric counts completed sessions only (completed_sessions); the
        # others need not cross into Polars at all.
        sessions = _read_numbered(
            con,
            "core.sessions",
            "session_id, plan_id, clinic_id, clinician_role, started_at, status, therapies, condition, "
            "pain_before, pain_after, aftercare, adverse_event",
            where="source.status = 'completed'",
        )
        checkins = _read_numbered(con, "core.pain_checkins", "checkin_id, recorded_at, pain")
        plans = _read_numbered(con, "core.plans", "plan_id, clinic_id, start_date, pcp_cleared")
        plan_completion = _read_numbered(
            con,
            "quality.plan_completion",
            "plan_id, clinic_id, clinic_timezone, start_date, window_end, completion",
        )
    finally:
        con.execute("drop table if exists metrics_patient_numbers")

    con.execute("create schema if not exists marts")
    with transaction(con):
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="marts-writer") as writer:
            written: dict[str, Future[int]] = {}

            def write(table: str, frame: pl.DataFrame) -> None:
                written[table] = writer.submit(_write, con, table, _without_patient_key(frame))

            relief = session_relief(sessions, rules.mcid_points).collect()
            write("session_relief", relief)
            # Independent queries are collected together so they share the cores.
            rows = sessions.select(pl.len()).collect().item() + checkins.select(pl.len()).collect().item()
            episodes, outcomes, relief_by_group, completion_by_group, adverse, mix, clearance = _episodes_and_outcomes(
                sessions, checkins, plan_completion, rules, patient_slices(rows),
                session_relief_summary(relief.lazy()),
                plan_completion_summary(plan_completion),
                adverse_events(sessions),
                aftercare_mix(sessions),
                pcp_clearance(plans, as_of),
            )
            write("relief_duration", episodes)
            write("plan_outcomes", outcomes)
            write("session_relief_summary", relief_by_group)
            write("plan_completion_summary", completion_by_group)
            write("adverse_events", adverse)
            write("aftercare_mix", mix)
            write("pcp_clearance", clearance)
            curves, outcomes_by_group = pl.collect_all([
                relief_curves(episodes.lazy()),
                plan_outcome_summary(outcomes.lazy()),
            ])
            write("relief_curves", curves)
            write("plan_outcome_summary", outcomes_by_group)
            summary = relief_summary(episodes.lazy(), curves.lazy(), min_cell_patients=rules.min_cell_patients).collect()
            write("relief_summary", summary)
            comparison = relief_comparison(episodes.lazy(), rules.min_cell_patients, summary.lazy()).collect()
            write("relief_comparison", comparison)
        rows = {table: future.result() for table, future in written.items()}
        # R8 reads marts.plan_outcomes, written above in this transaction (metrics/casemix.py).
        for table, frame in zip(CASEMIX_TABLES, casemix_marts(con, rules.mcid_points, rules.min_cell_patients)):
            rows[table] = _write(con, table, frame)
        apply_comments(con, "marts")
    return {table: rows[table] for table in (*MART_TABLES, *CASEMIX_TABLES)}
