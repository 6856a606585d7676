"""Hand-made rows for the metric tests (R3-R6): small builders with readable defaults.

Times are given in hours after T0 so a test reads like a timeline.
"""

from __future__ import annotations

import datetime as dt

import duckdb
import polars as pl

T0 = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.timezone.utc)
INSTANT = pl.Datetime("us", "UTC")

SESSION_SCHEMA = {
    "session_id": pl.String,
    "patient_key": pl.String,
    "plan_id": pl.String,
    "clinic_id": pl.String,
    "clinician_id": pl.String,
    "clinician_role": pl.String,
    "started_at": INSTANT,
    "status": pl.String,
    "therapies": pl.List(pl.String),
    "condition": pl.String,
    "pain_before": pl.Int32,
    "pain_after": pl.Int32,
    "aftercare": pl.String,
    "adverse_event": pl.String,
    "updated_at": INSTANT,
    "clinic_timezone": pl.String,
}
CHECKIN_SCHEMA = {
    "checkin_id": pl.String,
    "patient_key": pl.String,
    "recorded_at": INSTANT,
    "pain": pl.Int32,
    "channel": pl.String,
}
PLAN_SCHEMA = {
    "plan_id": pl.String,
    "patient_key": pl.String,
    "clinic_id": pl.String,
    "start_date": pl.Date,
    "planned_weeks": pl.Int32,
    "planned_sessions": pl.Int32,
    "pcp_cleared": pl.Boolean,
    "status": pl.String,
    "updated_at": INSTANT,
    "clinic_timezone": pl.String,
}
PLAN_COMPLETION_SCHEMA = {
    "plan_id": pl.String,
    "patient_key": pl.String,
    "clinic_id": pl.String,
    "clinic_timezone": pl.String,
    "start_date": pl.Date,
    "planned_weeks": pl.Int32,
    "window_end": pl.Date,
    "completion": pl.String,
    "reasons": pl.List(pl.String),
    "sessions_in_window": pl.Int32,
}


def at(hours: float) -> dt.datetime:
    """The instant `hours` after T0."""
    return T0 + dt.timedelta(hours=hours)


def session(
    session_id: str,
    hours: float,
    *,
    patient: str = "p1",
    pain_before: int | None = None,
    pain_after: int | None = None,
    therapies: tuple[str, ...] = ("dry_needling",),
    status: str = "completed",
    aftercare: str | None = None,
    condition: str | None = "low_back_pain",
    clinic: str = "clinic_a",
    role: str = "physical_therapist",
    plan_id: str | None = None,
    adverse_event: str | None = None,
    started_at: dt.datetime | None = None,
    clinic_timezone: str = "UTC",
) -> dict:
    return {
        "session_id": session_id,
        "patient_key": patient,
        "plan_id": plan_id,
        "clinic_id": clinic,
        "clinician_id": f"{clinic}_clinician",
        "clinician_role": role,
        "started_at": started_at or at(hours),
        "status": status,
        "therapies": list(therapies),
        "condition": condition,
        "pain_before": pain_before,
        "pain_after": pain_after,
        "aftercare": aftercare,
        "adverse_event": adverse_event,
        "updated_at": T0,
        "clinic_timezone": clinic_timezone,
    }


def checkin(checkin_id: str, hours: float, pain: int, *, patient: str = "p1", recorded_at: dt.datetime | None = None) -> dict:
    return {
        "checkin_id": checkin_id,
        "patient_key": patient,
        "recorded_at": recorded_at or at(hours),
        "pain": pain,
        "channel": "sms",
    }


def plan(
    plan_id: str,
    start_date: dt.date,
    *,
    patient: str = "p1",
    clinic: str = "clinic_a",
    pcp_cleared: bool | None = True,
    status: str = "active",
) -> dict:
    return {
        "plan_id": plan_id,
        "patient_key": patient,
        "clinic_id": clinic,
        "start_date": start_date,
        "planned_weeks": None,
        "planned_sessions": None,
        "pcp_cleared": pcp_cleared,
        "status": status,
        "updated_at": T0,
        "clinic_timezone": "UTC",
    }


def completion(
    plan_id: str,
    start_date: dt.date,
    *,
    completion: str = "complete",
    weeks: int = 6,
    patient: str = "p1",
    clinic: str = "clinic_a",
    zone: str = "UTC",
) -> dict:
    return {
        "plan_id": plan_id,
        "patient_key": patient,
        "clinic_id": clinic,
        "clinic_timezone": zone,
        "start_date": start_date,
        "planned_weeks": weeks,
        "window_end": start_date + dt.timedelta(days=7 * weeks),
        "completion": completion,
        "reasons": [],
        "sessions_in_window": 0,
    }


def sessions_frame(*rows: dict) -> pl.LazyFrame:
    return pl.DataFrame(list(rows), schema=SESSION_SCHEMA).lazy()


def checkins_frame(*rows: dict) -> pl.LazyFrame:
    return pl.DataFrame(list(rows), schema=CHECKIN_SCHEMA).lazy()


def plans_frame(*rows: dict) -> pl.LazyFrame:
    return pl.DataFrame(list(rows), schema=PLAN_SCHEMA).lazy()


def completion_frame(*rows: dict) -> pl.LazyFrame:
    return pl.DataFrame(list(rows), schema=PLAN_COMPLETION_SCHEMA).lazy()


_DDL = {
    "core.sessions": """
        session_id varchar, patient_key varchar, plan_id varchar, clinic_id varchar,
        clinician_id varchar, clinician_role varchar, started_at timestamptz, status varchar,
        therapies varchar[], condition varchar, pain_before integer, pain_after integer,
        aftercare varchar, adverse_event varchar, updated_at timestamptz, clinic_timezone varchar
    """,
    "core.pain_checkins": "checkin_id varchar, patient_key varchar, recorded_at timestamptz, pain integer, channel varchar",
    "core.plans": """
        plan_id varchar, patient_key varchar, clinic_id varchar, start_date date, planned_weeks integer,
        planned_sessions integer, pcp_cleared boolean, chronicity varchar, status varchar, updated_at timestamptz,
        clinic_timezone varchar
    """,
    "core.patients": "patient_key varchar, sex varchar, age_band varchar, updated_at timestamptz",
    "quality.plan_completion": """
        plan_id varchar, patient_key varchar, clinic_id varchar, clinic_timezone varchar, start_date date,
        planned_weeks integer, window_end date, completion varchar, reasons varchar[], sessions_in_window integer
    """,
}


def load_tables(con: duckdb.DuckDBPyConnection, tables: dict[str, pl.LazyFrame]) -> None:
    """Create core.* / quality.* tables with the warehouse's types and fill them through Arrow."""
    for schema in ("core", "quality", "marts"):
        con.execute(f"create schema if not exists {schema}")
    for table, ddl in _DDL.items():
        con.execute(f"create or replace table {table} ({ddl})")
        if table in tables:
            rows = tables[table].collect().to_arrow()
            con.register("_rows", rows)
            con.execute(f"insert into {table} by name select * from _rows")
            con.unregister("_rows")
