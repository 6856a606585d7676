"""The per-patient marts follow the new data (issue 18): recompute only the patients whose inputs changed.

Three marts are a function of one patient's rows at a time: `session_relief` (R3, one row per session),
`relief_duration` (R4, one row per episode: the patient's sessions and check-ins) and `plan_outcomes` (R5, one
row per plan: the plan's R2 row, its sessions and the patient's check-ins). For each patient a digest sums the
hashes of every input row those marts read (sql/temp/metrics_patient_digests.sql). A night compares the digests
with the last build's (ops.metrics_patient_digests): the rows of a patient whose digest is unchanged are carried
over from the marts as they are; the patients whose digest changed, appeared or disappeared (and rows without a
patient) are computed again, by the same functions a full build uses. The result equals a full build's
(tests/metrics/test_incremental_marts.py checks that against a full build after random changes).

A full build instead, and a new baseline: no earlier build, a different fingerprint (the MCID or follow-up
horizon, the metrics code or SQL, the Polars or DuckDB version: a row hash may differ across DuckDB versions),
one of the three marts missing, or more than half of the patients touched (a full build is then as cheap).

What stays whole: every summary (Kaplan-Meier curves and their patient-clustered bands, the Cox comparison,
R8's models fitted on the whole network, R6) is recomputed from all rows every night: each is a statistic of the
whole network, not a sum of per-patient parts.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import duckdb
import polars as pl

from clinic_outcomes.settings import Rules
from clinic_outcomes.warehouse import SQL_DIR, has_table, run_sql, scalar

PER_PATIENT_MARTS = ("session_relief", "relief_duration", "plan_outcomes")
# Above this share of patients touched, a full build (it costs about the same and sets a clean baseline).
FULL_BUILD_SHARE = 0.5
_CODE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Increment:
    """What a metrics build recomputes: every patient (full) or the touched ones."""

    full: bool
    reason: str
    patients: int
    touched: int
    fingerprint: str


def fingerprint(rules: Rules) -> str:
    """What the per-patient marts depend on besides their input rows."""
    digest = hashlib.sha256()
    digest.update(f"mcid={rules.mcid_points!r};followup={rules.relief_followup_days!r}".encode())
    digest.update(f";polars={pl.__version__};duckdb={duckdb.__version__}".encode())
    for path in sorted(_CODE.glob("*.py")):
        digest.update(b"\0" + path.name.encode() + b"\0" + path.read_bytes())
    for name in ("temp/metrics_patient_digests", "temp/metrics_touched_patients", "temp/metrics_patient_numbers"):
        digest.update(b"\0" + (SQL_DIR / f"{name}.sql").read_bytes())
    return digest.hexdigest()


def plan(con: duckdb.DuckDBPyConnection, rules: Rules) -> Increment:
    """Digest every patient's inputs (temp table metrics_patient_digests) and decide: a full build, or which
    patients to recompute (temp table metrics_touched_patients, patient_key)."""
    run_sql(con, "temp/metrics_patient_digests")
    patients = scalar(con, "select count(*) from metrics_patient_digests")
    con.execute("create or replace temp table metrics_touched_patients (patient_key varchar)")
    current = fingerprint(rules)

    def full(reason: str) -> Increment:
        return Increment(full=True, reason=reason, patients=patients, touched=patients, fingerprint=current)

    last = (
        con.execute("select fingerprint from ops.metrics_build").fetchall()
        if has_table(con, "ops.metrics_build") else []
    )
    if len(last) != 1:
        return full("no earlier metrics build")
    if last[0][0] != current:
        return full("the rules, the metrics code or a library changed since the last build")
    missing = [table for table in PER_PATIENT_MARTS if not has_table(con, f"marts.{table}")]
    if missing or not has_table(con, "ops.metrics_patient_digests"):
        return full(f"marts.{missing[0]} is missing" if missing else "no earlier patient digests")
    run_sql(con, "temp/metrics_touched_patients")
    touched = scalar(con, "select count(*) from metrics_touched_patients")
    if touched > FULL_BUILD_SHARE * max(patients, 1):
        return full(f"{touched} of {patients} patients changed")
    return Increment(full=False, reason=f"{touched} of {patients} patients changed", patients=patients,
                     touched=touched, fingerprint=current)


def touched_numbers(con: duckdb.DuckDBPyConnection) -> pl.Series:
    """The run's patient numbers (metrics_patient_numbers) of the touched patients."""
    return con.sql(
        "select numbers.patient_no from metrics_patient_numbers as numbers "
        "semi join metrics_touched_patients as touched on touched.patient_key = numbers.patient_key"
    ).pl()["patient_no"]


def carried_over(con: duckdb.DuckDBPyConnection, table: str, schema: pl.Schema) -> pl.DataFrame:
    """The rows of marts.`table` whose patient was not touched, with the run's patient number as patient_key,
    in `schema` (the columns and types the functions give)."""
    if table == "plan_outcomes":  # a plan's row belongs to the plan's patient (its R2 row)
        owner = "inner join quality.plan_completion as owners on owners.plan_id = mart.plan_id"
    else:  # a session's or an episode's row belongs to the session's patient
        owner = "inner join core.sessions as owners on owners.session_id = mart.session_id"
    frame = con.sql(
        f"""
        select mart.*, numbers.patient_no as patient_key,
        from marts.{table} as mart
        {owner}
        inner join metrics_patient_numbers as numbers on numbers.patient_key = owners.patient_key
        anti join metrics_touched_patients as touched on touched.patient_key = owners.patient_key
        """
    ).pl()
    missing = [name for name in schema if name not in frame.columns]
    if missing:
        raise RuntimeError(f"marts.{table} lacks {missing[0]}: its shape changed without a fingerprint change")
    return frame.select([pl.col(name).cast(dtype) for name, dtype in schema.items()])


def save(con: duckdb.DuckDBPyConnection, increment: Increment, run_id: int | None) -> None:
    """Record this build's digests and fingerprint (in the caller's transaction, beside the marts)."""
    con.execute("create schema if not exists ops")
    run_sql(con, "ddl/ops_metrics_build")
    run_sql(con, "ddl/ops_metrics_patient_digests")
    con.execute("delete from ops.metrics_patient_digests")
    con.execute("insert into ops.metrics_patient_digests select patient_key, digest, input_rows "
                "from metrics_patient_digests")
    con.execute("delete from ops.metrics_build")
    con.execute("insert into ops.metrics_build values ($fingerprint, $run, $patients, $recomputed)",
                {"fingerprint": increment.fingerprint, "run": run_id, "patients": increment.patients,
                 "recomputed": increment.touched})


def drop_temp(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("drop table if exists metrics_patient_digests")
    con.execute("drop table if exists metrics_touched_patients")
