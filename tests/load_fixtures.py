"""Export drops written from Python literals, and a one-call load, for the loader's tests.

A test states only the columns its case is about: `session(pain_before="11")`
is a whole valid sessions row with one value changed. `write_drop` lays rows
(or raw CSV text, byte for byte) out as `<exports>/<drop>/<entity>.<ext>` in
any accepted format and dialect; `load_all` runs prepare -> load_exports ->
build_core on one warehouse connection, as the nightly run does.
"""

from __future__ import annotations

import datetime as dt
import gzip
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from clinic_outcomes.loading import load
from clinic_outcomes.core import build as core_build
from clinic_outcomes.settings import Settings

SECRET = b"test-secret-for-patient-keys-0123"
AS_OF = dt.date(2026, 11, 23)

# One valid row per entity, as text exactly as an export would hold it.
VALID: dict[str, dict[str, str]] = {
    "plans": {
        "plan_id": "pl1",
        "patient_id": "P100",
        "clinic_id": "c1",
        "start_date": "2026-10-01",
        "planned_weeks": "6",
        "planned_sessions": "6",
        "pcp_cleared": "true",
        "chronicity": "",  # optional (older exports lack the column): null unless a test sets it
        "status": "active",
        "updated_at": "2026-10-01T08:00:00Z",
    },
    "sessions": {
        "session_id": "s1",
        "patient_id": "P100",
        "plan_id": "pl1",
        "clinic_id": "c1",
        "clinician_id": "d1",
        "clinician_role": "physical_therapist",
        "started_at": "2026-10-02T09:00:00Z",
        "status": "completed",
        "therapies": "dry_needling;manual_therapy",
        "condition": "low_back_pain",
        "pain_before": "6",
        "pain_after": "3",
        "aftercare": "ice",
        "adverse_event": "none",
        "updated_at": "2026-10-02T10:00:00Z",
    },
    "needle_sites": {
        "session_id": "s1",
        "site": "lumbar_multifidus",
        "side": "left",
        "needles": "2",
    },
    "pain_checkins": {
        "checkin_id": "k1",
        "patient_id": "P100",
        "recorded_at": "2026-10-03T12:00:00Z",
        "pain": "4",
        "channel": "sms",
    },
    "patients": {
        "patient_id": "P100",
        "full_name": "",
        "date_of_birth": "1980-05-17",
        "sex": "female",
        "phone": "",
        "postal_code": "",
        "updated_at": "2026-10-01T08:00:00Z",
    },
}


def row(entity: str, **values: str | None) -> dict[str, str | None]:
    """A valid row of `entity` with some values replaced (None: an empty field)."""
    unknown = set(values) - set(VALID[entity])
    if unknown:
        raise KeyError(f"{entity} has no column {sorted(unknown)}; use extra= columns in csv_text")
    return {**VALID[entity], **values}


def plan(**values: str | None) -> dict[str, str | None]:
    return row("plans", **values)


def session(**values: str | None) -> dict[str, str | None]:
    return row("sessions", **values)


def site(**values: str | None) -> dict[str, str | None]:
    return row("needle_sites", **values)


def checkin(**values: str | None) -> dict[str, str | None]:
    return row("pain_checkins", **values)


def patient(**values: str | None) -> dict[str, str | None]:
    return row("patients", **values)


def _csv_field(value: Any) -> str:
    if value is None:
        return ""
    text = str(value)
    if any(ch in text for ch in ',"\r\n'):
        return '"' + text.replace('"', '""') + '"'
    return text


def csv_text(rows: list[dict[str, Any]], columns: list[str] | None = None) -> str:
    """CSV text (LF line ends) of dict rows; the header is `columns` or the first row's keys."""
    columns = columns or list(rows[0])
    lines = [",".join(_csv_field(c) for c in columns)]
    lines += [",".join(_csv_field(r.get(c)) for c in columns) for r in rows]
    return "\n".join(lines) + "\n"


def write_drop(
    exports: Path,
    drop: str,
    entity: str,
    content: list[dict[str, Any]] | str | bytes | pa.Table,
    *,
    ext: str = "csv",
    bom: bool = False,
    crlf: bool = False,
) -> Path:
    """Write one export file `<exports>/<drop>/<entity>.<ext>` and return its path.

    content: dict rows, raw CSV text (written as given, apart from bom/crlf),
    raw bytes (written verbatim, for unreadable files), or an Arrow table
    (parquet: its column types are kept).
    """
    folder = exports / drop
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{entity}.{ext}"
    if isinstance(content, bytes):
        path.write_bytes(content)
        return path
    if ext == "parquet":
        table = content if isinstance(content, pa.Table) else pa.Table.from_pylist(content)
        pq.write_table(table, path)
        return path
    text = content if isinstance(content, str) else csv_text(content)
    if crlf:
        text = text.replace("\r\n", "\n").replace("\n", "\r\n")
    data = (b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8")
    if ext == "csv.gz":
        data = gzip.compress(data, mtime=0)
    path.write_bytes(data)
    return path


def load_all(
    con: duckdb.DuckDBPyConnection,
    exports: Path,
    *,
    settings: Settings | None = None,
    run_id: int = 1,
    secret: bytes = SECRET,
    as_of: dt.date = AS_OF,
) -> load.LoadSummary:
    """One nightly load of every new file under `exports`, then core rebuilt."""
    load.prepare(con, settings or Settings(), as_of, run_id)
    summary = load.load_exports(con, exports, secret=secret, run_id=run_id)
    core_build.build_core(con)
    return summary


def rows(con: duckdb.DuckDBPyConnection, query: str, params: dict | None = None) -> list[tuple]:
    return con.execute(query, params or {}).fetchall()


def rejected(con: duckdb.DuckDBPyConnection) -> list[tuple]:
    """quality.rejected_rows as (source_file, line_number, reason), in file and line order."""
    return rows(
        con,
        "select source_file, line_number, reason from quality.rejected_rows "
        "order by run_id, source_file, line_number nulls first",
    )


def ledger(con: duckdb.DuckDBPyConnection) -> list[tuple]:
    """ops.loaded_files as (path, status, rows_read, rows_loaded, rows_rejected), in load order."""
    return rows(
        con,
        "select path, status, rows_read, rows_loaded, rows_rejected from ops.loaded_files order by file_id",
    )
