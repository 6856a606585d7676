"""Small hand-made core tables for the quality tests (R1, R2, GX suites).

Tests state only the columns a case is about; every other column gets a
plausible default. Rows reach DuckDB through Arrow, with the core types of
sql/comments/core.toml.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import duckdb
import pyarrow as pa

from clinic_outcomes import warehouse
from clinic_outcomes.settings import Settings

UTC = dt.timezone.utc

CORE_COLUMNS: dict[str, dict[str, str]] = {
    "sessions": {
        "session_id": "varchar",
        "patient_key": "varchar",
        "plan_id": "varchar",
        "clinic_id": "varchar",
        "clinician_id": "varchar",
        "clinician_role": "varchar",
        "started_at": "timestamptz",
        "status": "varchar",
        "therapies": "varchar[]",
        "condition": "varchar",
        "pain_before": "integer",
        "pain_after": "integer",
        "aftercare": "varchar",
        "adverse_event": "varchar",
        "updated_at": "timestamptz",
        "clinic_timezone": "varchar",
        "changed_in_run": "integer",
    },
    "needle_sites": {
        "session_id": "varchar",
        "site": "varchar",
        "side": "varchar",
        "needles": "integer",
        "changed_in_run": "integer",
    },
    "plans": {
        "plan_id": "varchar",
        "patient_key": "varchar",
        "clinic_id": "varchar",
        "start_date": "date",
        "planned_weeks": "integer",
        "planned_sessions": "integer",
        "pcp_cleared": "boolean",
        "chronicity": "varchar",
        "status": "varchar",
        "updated_at": "timestamptz",
        "clinic_timezone": "varchar",
        "changed_in_run": "integer",
    },
    "pain_checkins": {
        "checkin_id": "varchar",
        "patient_key": "varchar",
        "recorded_at": "timestamptz",
        "pain": "integer",
        "channel": "varchar",
        "changed_in_run": "integer",
    },
    "patients": {
        "patient_key": "varchar",
        "sex": "varchar",
        "age_band": "varchar",
        "updated_at": "timestamptz",
        "changed_in_run": "integer",
    },
}

_ARROW_TYPES = {
    "varchar": pa.string(),
    "varchar[]": pa.list_(pa.string()),
    "timestamptz": pa.timestamp("us", tz="UTC"),
    "integer": pa.int32(),
    "date": pa.date32(),
    "boolean": pa.bool_(),
}

UPDATED = dt.datetime(2026, 11, 20, 12, 0, tzinfo=UTC)

DEFAULTS: dict[str, dict[str, Any]] = {
    "sessions": {
        "patient_key": "pk_a",
        "plan_id": None,
        "clinic_id": "clinic_utc",
        "clinician_id": "clin_1",
        "clinician_role": "physical_therapist",
        "status": "completed",
        "therapies": ["dry_needling"],
        "condition": "low_back_pain",
        "pain_before": 6,
        "pain_after": 4,
        "aftercare": "ice",
        "adverse_event": "none",
        "updated_at": UPDATED,
        "clinic_timezone": "UTC",
    },
    "needle_sites": {"side": "left", "needles": 2},
    "plans": {
        "patient_key": "pk_a",
        "clinic_id": "clinic_utc",
        "planned_weeks": None,
        "planned_sessions": None,
        "pcp_cleared": True,
        "chronicity": "chronic",
        "status": "discharged",
        "updated_at": UPDATED,
        "clinic_timezone": "UTC",
    },
    "pain_checkins": {"patient_key": "pk_a", "pain": 3, "channel": "sms"},
    "patients": {"patient_key": "pk_a", "sex": "female", "age_band": "30-39", "updated_at": UPDATED},
}


def at(text: str, zone: str = "UTC") -> dt.datetime:
    """An instant from local wall-clock text in an IANA zone, e.g. at('2026-03-07 09:00', 'America/New_York')."""
    from zoneinfo import ZoneInfo

    local = dt.datetime.fromisoformat(text)
    return local.replace(tzinfo=ZoneInfo(zone)).astimezone(UTC)


# The run whose core build wrote a row (core's changed_in_run) unless a test says otherwise.
CHANGED_IN_RUN = 1


def core_table(entity: str, rows: list[dict[str, Any]]) -> pa.Table:
    columns = CORE_COLUMNS[entity]
    unknown = {name for row in rows for name in row} - set(columns)
    if unknown:
        raise KeyError(f"{entity} has no column(s) {sorted(unknown)}")
    full = [{**DEFAULTS[entity], "changed_in_run": CHANGED_IN_RUN, **row} for row in rows]
    schema = pa.schema([(name, _ARROW_TYPES[kind]) for name, kind in columns.items()])
    return pa.Table.from_pylist(full, schema=schema)


def core_connection(
    *,
    settings: Settings | None = None,
    as_of: dt.date = dt.date(2026, 11, 23),
    **entities: list[dict[str, Any]],
) -> duckdb.DuckDBPyConnection:
    """An in-memory warehouse holding exactly these core rows (other core tables empty)."""
    con = warehouse.connect()
    warehouse.create_schemas(con)
    warehouse.set_variables(con, settings or Settings(), as_of)
    for entity, columns in CORE_COLUMNS.items():
        arrow_rows = core_table(entity, entities.pop(entity, []))  # noqa: F841 (read by DuckDB below)
        ddl = ", ".join(f"{name} {kind}" for name, kind in columns.items())
        con.execute(f"create table core.{entity} ({ddl})")
        con.execute(f"insert into core.{entity} select * from arrow_rows")
    if entities:
        raise KeyError(f"unknown core tables {sorted(entities)}")
    return con


def rows(con: duckdb.DuckDBPyConnection, query: str) -> list[tuple]:
    """The rows of a query, for comparing with an expected table in a test."""
    return con.sql(query).fetchall()


def replace_core(con: duckdb.DuckDBPyConnection, entity: str, new_rows: list[dict[str, Any]]) -> None:
    """Replace every row of core.<entity>, as the loader does when a later drop changes records."""
    arrow_rows = core_table(entity, new_rows)  # noqa: F841 (read by DuckDB below)
    con.execute(f"delete from core.{entity}")
    con.execute(f"insert into core.{entity} select * from arrow_rows")


def build_quality(con: duckdb.DuckDBPyConnection, settings: Settings | None = None,
                  as_of: dt.date = dt.date(2026, 11, 23)) -> None:
    from clinic_outcomes.quality import tables as quality_tables

    quality_tables.build(con, settings or Settings(), as_of)
