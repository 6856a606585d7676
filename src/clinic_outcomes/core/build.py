"""The core layer: the typed, de-identified `core.*` tables analysts query, derived from `raw.*`.

Built incrementally when nothing but new raw versions changed since the last build (ops.core_build), else
rebuilt whole; either way equal to a rebuild (tests/core/test_incremental.py).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import duckdb

from clinic_outcomes.loading.entities import ENTITIES
from clinic_outcomes.warehouse import (
    SQL_DIR,
    apply_comments,
    has_column,
    has_table,
    materialise,
    run_sql,
    scalar,
    transaction,
)


# What a core build depends on besides raw.*: when any of it differs from what the last build used, core is
# rebuilt whole (ops.core_build); otherwise only the rows of the raw versions loaded since are put in place.
CORE_KEYS = {
    "plans": "plan_id",
    "sessions": "session_id",
    "needle_sites": "session_id",  # a session's site rows are replaced together
    "pain_checkins": "checkin_id",
    "patients": "patient_key",
}


@dataclass(frozen=True)
class CoreBuild:
    """ops.core_build: what the last core build used and covered."""

    fingerprint: str
    through_file_id: int  # every raw version from files up to this ledger id is in core
    previous_file_id: int | None  # through_file_id of the build before, when this one was incremental
    run_id: int  # the run of this build: core rows it wrote carry it in changed_in_run


def _core_fingerprint(con: duckdb.DuckDBPyConnection) -> str:
    """Everything besides raw.* that decides core's rows: the zones, the default zone and the SQL itself."""
    digest = hashlib.sha256()
    digest.update(str(scalar(con, "select getvariable('default_timezone')")).encode())
    for clinic_id, zone in con.execute("select clinic_id, timezone from ops.clinic_timezones order by all").fetchall():
        digest.update(f"\0{clinic_id}\0{zone}".encode())
    for path in sorted((SQL_DIR / "models" / "core").iterdir()):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    digest.update((SQL_DIR / "models" / "raw" / "patient_timezones.sql").read_bytes())  # the view check-ins are zoned by
    return digest.hexdigest()


def read_core_build(con: duckdb.DuckDBPyConnection) -> CoreBuild | None:
    if not has_table(con, "ops.core_build"):
        return None
    rows = con.execute("select fingerprint, through_file_id, previous_file_id, run_id from ops.core_build").fetchall()
    return CoreBuild(*rows[0]) if len(rows) == 1 else None


def _current_run_id(con: duckdb.DuckDBPyConnection) -> int:
    """The run building core: set by `prepare` on this connection, else the run that loaded the newest file."""
    run_id = scalar(con, "select getvariable('run_id')")
    if run_id is None:
        run_id = scalar(con, "select max(run_id) from ops.loaded_files")
    return int(run_id or 0)


def build_core(con: duckdb.DuckDBPyConnection, run_id: int | None = None) -> dict[str, int]:
    """Bring core.* up to date with raw.*; the row counts of its tables.

    Incremental when the last build (ops.core_build) used the same zones and SQL: only the rows of the raw
    versions loaded since (raw._file_id above the last build's through_file_id) are replaced, by key, and the
    check-ins of patients whose latest plan may have changed; with nothing new, nothing is written. Otherwise
    every table is rebuilt. Either way core equals a rebuild from raw.*, apart from changed_in_run: the run of
    the build that last wrote each row (run_id, default the run that `prepare` set up or that loaded the
    newest file).
    """
    for name in ENTITIES:
        if not has_table(con, f"raw.{name}"):
            raise RuntimeError(f"raw.{name} does not exist: load at least once before building core")
    run_id = _current_run_id(con) if run_id is None else run_id
    fingerprint = _core_fingerprint(con)
    through = scalar(con, "select coalesce(max(file_id), 0) from ops.loaded_files")
    last = read_core_build(con)
    incremental = (
        last is not None
        and last.fingerprint == fingerprint
        and all(has_column(con, "core", name, "changed_in_run") for name in ENTITIES)
    )
    if incremental and last.through_file_id == through:
        return _core_counts(con)  # nothing loaded since the last build: core is as it was

    since = last.through_file_id if incremental else 0
    con.execute("set variable core_since_file_id = $v", {"v": since})
    con.execute("set variable core_run_id = $v", {"v": run_id})
    con.execute("create or replace temp table core_zone_patients (patient_key varchar)")
    try:
        with transaction(con):
            if incremental:
                _update_core(con, since)
            else:
                for name in ENTITIES:
                    materialise(con, f"core/{name}", how="table")
            run_sql(con, "ddl/ops_core_build")
            con.execute("delete from ops.core_build")
            con.execute(
                "insert into ops.core_build values ($fingerprint, $through, $previous, $run)",
                {"fingerprint": fingerprint, "through": through, "previous": since if incremental else None,
                 "run": run_id},
            )
    finally:
        con.execute("drop table if exists core_zone_patients")
    if not incremental:
        apply_comments(con, "core")
        apply_comments(con, "ops")
    return _core_counts(con)


def _update_core(con: duckdb.DuckDBPyConnection, since: int) -> None:
    """Put the rows of the raw versions loaded after file `since` in place of core's rows with their keys."""
    run_sql(con, "temp/core_zone_patients", {"since": since})  # the patients whose check-ins may change zone
    for name, key in CORE_KEYS.items():
        changed = f"select {key} from raw.{name} where _file_id > $since"
        if name == "pain_checkins":
            con.execute(
                f"delete from core.{name} where {key} in ({changed}) "
                "or patient_key in (select patient_key from core_zone_patients)",
                {"since": since},
            )
        else:
            con.execute(f"delete from core.{name} where {key} in ({changed})", {"since": since})
        materialise(con, f"core/{name}", how="insert")


def _core_counts(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    return {name: scalar(con, f"select count(*) from core.{name}") for name in ENTITIES}
