"""Checks on one entity's staged rows that span rows or need Python: the same record twice in one file, and
control characters in the rejected rows' records.

The same record twice in one file (exports.md, "Bad input": same id and
`updated_at`; for pain_checkins, which have no `updated_at`, the same id): the
later line wins, and the earlier line is recorded in quality.rejected_rows with
a reason that names the id column and says `duplicate in file` (the choice
between a rejected row and a GX-validated flag: a rejected row, so the night's
rejected-row counts, the ledger and the report's data-quality figures show it,
and the per-file accounting still adds up: the earlier line is not loaded).
Only valid rows count: a rejected later line never displaces a valid earlier
one. needle_sites keep their own rule (a spot listed twice for a session: the
first listing stands, staging/needle_sites.sql).

A rejected row's record keeps the values as given, and a value may hold a
control or bidirectional-formatting character (in a timestamp, a number, an
enum). Such characters are written as `<U+XXXX>` in the stored record, so none
reaches the warehouse or a report: DuckDB's JSON escapes C0 controls as
`\\u00XX` (which decode back to the raw character) and leaves the others raw.
"""

from __future__ import annotations

import json

import duckdb
import pyarrow as pa

from clinic_outcomes.loading.discovery import escaped

# entity -> (id column, the column its value is shown from or None to withhold it, compare updated_at too)
DUPLICATE_KEYS: dict[str, tuple[str, str | None, bool]] = {
    "plans": ("plan_id", "plan_id", True),
    "sessions": ("session_id", "session_id", True),
    "pain_checkins": ("checkin_id", "checkin_id", False),
    "patients": ("patient_key", None, True),  # the row holds the key; the number is never shown
}

_INTERNAL = ("_drop", "_file_id", "_line", "_reasons", "_record")

# In JSON text: a raw control or bidirectional character, or the escape of a C0 control or DEL.
_JSON_CONTROL = (
    "[\\x00-\\x1f\\x7f-\\x9f\\x{061c}\\x{200e}\\x{200f}\\x{202a}-\\x{202e}\\x{2066}-\\x{2069}]"
    "|\\\\u00[01][0-9a-fA-F]|\\\\u007[fF]|\\\\[bfnrt]"
)


def flag_duplicates_in_file(con: duckdb.DuckDBPyConnection, name: str) -> None:
    """Reject every valid row of staged_<name> that a later valid line of the same file repeats (same id, and
    same updated_at where the entity has one): the later line wins."""
    if name not in DUPLICATE_KEYS:
        return
    key, shown, with_updated = DUPLICATE_KEYS[name]
    keys = f"_file_id, {key}" + (", updated_at" if with_updated else "")
    same = " and ".join(f"repeated.{k.strip()} is not distinct from target.{k.strip()}" for k in keys.split(","))
    what = f"shown_value(target.{shown})" if shown else "'value withheld (never stored)'"
    column = shown or "patient_id"
    columns = [
        c for (c,) in con.execute(
            "select column_name from duckdb_columns() where table_name = $t and database_name = 'temp' order by column_index",
            {"t": f"staged_{name}"},
        ).fetchall()
        if c not in _INTERNAL
    ]
    record = "to_json(struct_pack(" + ", ".join(f"{c} := target.{c}" for c in columns) + "))"
    # Repeats are rare: find them with one grouping, then mark only the rows before each key's last line.
    con.execute(
        f"""
        update staged_{name} as target
        set
            _reasons = '{column}: ' || {what} || ' appears again later in this file'
                || {"' with the same updated_at'" if with_updated else "''"}
                || ' (duplicate in file); the later line wins',
            _record = {record}
        from (
            select {keys}, max(_line) as last_line
            from staged_{name}
            where _reasons is null
            group by all
            having count(*) > 1
        ) as repeated
        where target._reasons is null and {same} and target._line < repeated.last_line
        """
    )


def _escape_values(value):
    if isinstance(value, str):
        return escaped(value)
    if isinstance(value, list):
        return [_escape_values(v) for v in value]
    if isinstance(value, dict):
        return {escaped(k): _escape_values(v) for k, v in value.items()}
    return value


def escape_records(con: duckdb.DuckDBPyConnection, name: str) -> int:
    """Write every control or bidirectional character in staged_<name>'s rejected records as <U+XXXX>; returns
    how many records changed."""
    found = con.execute(
        f"select rowid, _record from staged_{name} where _record is not null and regexp_matches(_record, $p)",
        {"p": _JSON_CONTROL},
    ).fetchall()
    fixed = [(rowid, json.dumps(_escape_values(json.loads(text)), ensure_ascii=False, separators=(",", ":"))) for rowid, text in found]
    fixed = [(rowid, text) for (rowid, text), (_, before) in zip(fixed, found) if text != before]
    if not fixed:
        return 0
    con.register(
        "escaped_records",
        pa.table({"rid": pa.array([r for r, _ in fixed], pa.int64()), "record": pa.array([t for _, t in fixed], pa.string())}),
    )
    try:
        con.execute(
            f"update staged_{name} as target set _record = escaped_records.record "
            "from escaped_records where target.rowid = escaped_records.rid"
        )
    finally:
        con.unregister("escaped_records")
    return len(fixed)
