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
import logging
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

import duckdb
import polars as pl

from clinic_outcomes.metrics import incremental
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

log = logging.getLogger(__name__)

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
    only: pl.Expr | None = None,
) -> list[pl.DataFrame]:
    """relief_episodes and plan_outcomes (then `more`, collected alongside), slice by slice of patients; of the
    patients `only` selects (incremental build), else of every patient."""
    mcid, followup_days = rules.mcid_points, rules.relief_followup_days
    # A session reaches its plan through plan_id (the plan's patient may differ): plan_outcomes joins the plans
    # it is given with every session, so every session is offered; episodes and check-ins go by patient.
    own_sessions = sessions if only is None else sessions.filter(only)
    if only is not None:
        checkins, plan_completion = checkins.filter(only), plan_completion.filter(only)
    if slices == 1:
        # (compute_marts puts the rows in order, with those carried over)
        return pl.collect_all([
            relief_episodes(own_sessions, checkins, mcid, followup_days),
            plan_outcomes(plan_completion, sessions, checkins, mcid),
            *more,
        ])
    zones = plan_completion.select(pl.col("clinic_timezone").unique()).collect()["clinic_timezone"]
    zones = zones.drop_nulls().to_list()
    episode_parts, outcome_parts = [], []
    for index in range(slices):
        mine = in_patient_slice(index, slices)
        episode_parts.append(
            relief_episodes(own_sessions.filter(mine), checkins.filter(mine), mcid, followup_days).collect()
        )
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


def _with_carried(new: pl.DataFrame, carried: pl.DataFrame | None, *order: str) -> pl.DataFrame:
    """The rows computed now and those carried over from the last build, in the order a full build gives."""
    if carried is None:
        return new.sort(*order)
    return pl.concat([carried, new.select(carried.columns)], how="vertical").sort(*order)


def compute_marts(con: duckdb.DuckDBPyConnection, settings: Settings, as_of: dt.date,
                  run_id: int | None = None) -> dict[str, int]:
    """Build every marts.* table from core.* and quality.plan_completion; rows written per table.

    The per-patient marts (session_relief, relief_duration, plan_outcomes) are computed for the patients whose
    inputs changed since the last build and carried over for the others (metrics/incremental.py); every other
    mart is computed from all rows. All marts are replaced in one transaction, with the build's patient digests
    (ops.metrics_patient_digests, ops.metrics_build). Each mart is written (by one background thread, on this
    connection, which nothing else uses meanwhile) as soon as it is computed: DuckDB stores a table on one core
    while Polars computes the next marts.
    """
    run_sql(con, "temp/metrics_patient_numbers")  # patients as small integers within this run
    try:
        rows = _build(con, settings, as_of, run_id)
    finally:
        con.execute("drop table if exists metrics_patient_numbers")
        incremental.drop_temp(con)
    return rows


def _build(con: duckdb.DuckDBPyConnection, settings: Settings, as_of: dt.date, run_id: int | None) -> dict[str, int]:
    rules = settings.rules
    increment = incremental.plan(con, rules)
    log.info("metrics: %s build (%s)", "full" if increment.full else "incremental", increment.reason)
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
    only: pl.Expr | None = None
    read_carried: Callable[[], dict[str, pl.DataFrame]] | None = None
    if not increment.full:
        touched = incremental.touched_numbers(con)
        only = pl.col("patient_key").is_in(touched.implode()) | pl.col("patient_key").is_null()
        schemas = {
            "session_relief": session_relief(sessions, rules.mcid_points).collect_schema(),
            "relief_duration": relief_episodes(
                sessions, checkins, rules.mcid_points, rules.relief_followup_days).collect_schema(),
            "plan_outcomes": plan_outcomes(plan_completion, sessions, checkins, rules.mcid_points).collect_schema(),
        }

        def read_carried() -> dict[str, pl.DataFrame]:
            return {table: incremental.carried_over(con, table, schema) for table, schema in schemas.items()}

    con.execute("create schema if not exists marts")
    # _compute_and_write lets go of each input as soon as it has read it (see there): no reference is kept here.
    inputs = {"sessions": sessions, "checkins": checkins, "plans": plans, "plan_completion": plan_completion}
    del sessions, checkins, plans, plan_completion
    with transaction(con):
        rows = _compute_and_write(con, settings, as_of, inputs, only, read_carried)
        incremental.save(con, increment, run_id)
    return rows


def _compute_and_write(con: duckdb.DuckDBPyConnection, settings: Settings, as_of: dt.date,
                       inputs: dict[str, pl.LazyFrame], only: pl.Expr | None,
                       read_carried: Callable[[], dict[str, pl.DataFrame]] | None) -> dict[str, int]:
    """Compute every mart (the per-patient ones for `only`'s patients, with the rows `read_carried` gives on an
    incremental build) and write it.

    `inputs` (sessions, checkins, plans, plan_completion) is emptied as soon as the last mart that reads it is
    computed, and each big frame is let go of once written: the summaries that follow (the Kaplan-Meier curves
    with clustered bands, the Cox comparison, R8) then run without the inputs in memory. On an incremental build
    the carried-over rows (nearly the whole of the three per-patient marts) are read only after the inputs are
    let go of, and before anything is written on the connection. At 10M sessions (measured 2026-12-07) the
    inputs held ~2.8 GiB; with the carried rows beside them an incremental build peaked at 8.4 GiB.
    """
    rules = settings.rules
    sessions, checkins, plans, plan_completion = (
        inputs.pop(name) for name in ("sessions", "checkins", "plans", "plan_completion")
    )
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="marts-writer") as writer:
        written: dict[str, Future[int]] = {}

        def write(table: str, frame: pl.DataFrame) -> None:
            written[table] = writer.submit(_write, con, table, _without_patient_key(frame))

        def settle_session_relief(carried: pl.DataFrame | None) -> pl.DataFrame:
            """Write marts.session_relief (the new rows with the carried ones); its summary by group."""
            relief = _with_carried(new_relief, carried, "started_at", "session_id")
            write("session_relief", relief)
            return session_relief_summary(relief.lazy()).collect()  # (the writer holds `relief` until stored)

        own_sessions = sessions if only is None else sessions.filter(only)
        new_relief = session_relief(own_sessions, rules.mcid_points).collect()
        if read_carried is None:  # a full build: the whole mart is here; stored and summarised before the episodes
            relief_by_group = settle_session_relief(None)
            del new_relief
        # Independent queries are collected together so they share the cores.
        counted = [own_sessions, checkins if only is None else checkins.filter(only)]
        rows = sum(frame.select(pl.len()).collect().item() for frame in counted)
        episodes, outcomes, completion_by_group, adverse, mix, clearance = _episodes_and_outcomes(
            sessions, checkins, plan_completion, rules, patient_slices(rows),
            plan_completion_summary(plan_completion),
            adverse_events(sessions),
            aftercare_mix(sessions),
            pcp_clearance(plans, as_of),
            only=only,
        )
        del sessions, checkins, plans, plan_completion, own_sessions, counted
        carried: dict[str, pl.DataFrame | None] = dict.fromkeys(incremental.PER_PATIENT_MARTS)
        if read_carried is not None:  # nothing has been written yet
            carried = read_carried()
            relief_by_group = settle_session_relief(carried.pop("session_relief"))
            del new_relief
        episodes = _with_carried(episodes, carried.pop("relief_duration"), "started_at", "session_id")
        outcomes = _with_carried(outcomes, carried.pop("plan_outcomes"), "plan_id")
        carried.clear()
        write("relief_duration", episodes)
        write("plan_outcomes", outcomes)
        write("session_relief_summary", relief_by_group)
        write("plan_completion_summary", completion_by_group)
        write("adverse_events", adverse)
        write("aftercare_mix", mix)
        write("pcp_clearance", clearance)
        curves = relief_curves(episodes.lazy()).collect()
        outcomes_by_group = plan_outcome_summary(outcomes.lazy()).collect()
        del outcomes
        write("relief_curves", curves)
        write("plan_outcome_summary", outcomes_by_group)
        summary = relief_summary(episodes.lazy(), curves.lazy(), min_cell_patients=rules.min_cell_patients).collect()
        write("relief_summary", summary)
        comparison = relief_comparison(episodes.lazy(), rules.min_cell_patients, summary.lazy()).collect()
        del episodes
        write("relief_comparison", comparison)
    rows = {table: future.result() for table, future in written.items()}
    # R8 reads marts.plan_outcomes, written above in this transaction (metrics/casemix.py).
    for table, frame in zip(CASEMIX_TABLES, casemix_marts(con, rules.mcid_points, rules.min_cell_patients)):
        rows[table] = _write(con, table, frame)
    apply_comments(con, "marts")
    return {table: rows[table] for table in (*MART_TABLES, *CASEMIX_TABLES)}
