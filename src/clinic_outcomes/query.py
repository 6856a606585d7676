"""Ad-hoc read-only queries against the published warehouse (`clinic-outcomes query`).

The query reads the warehouse and nothing else, and writes nothing anywhere:
- the connection is read-only, with `enable_external_access = false` (no other
  file, no `COPY ... TO`, `EXPORT DATABASE`, `ATTACH` of another file,
  `read_text`/`read_csv`/`glob` of any path, `/proc/self/environ` included, no
  network), no extension install or load (`autoinstall_known_extensions`,
  `autoload_known_extensions`, `allow_community_extensions` false), no spilling
  to disk (`temp_directory = ''`: a query larger than memory fails instead of
  writing temporary files), and `lock_configuration = true` last, so no `SET` or
  `PRAGMA` can undo any of it (set right after `TimeZone = 'UTC'`);
- the patient-key secret is not in the query's reach: DuckDB's Python build has
  no `getenv`, `current_setting` knows only DuckDB's settings, and the command
  drops `CLINIC_OUTCOMES_KEY` from its own environment before connecting.
- A failing query reports DuckDB's whole message (hints and the caret line
  included).
- CSV output is safe to open in a spreadsheet: a text cell starting with `=`,
  `+`, `-`, `@`, a tab or a carriage return is written with a leading `'` (as
  OWASP recommends against CSV injection). Numeric columns are left as numbers
  (a negative number stays a number). Nested values (lists, structs) are written
  as their JSON text.
- Table output (a terminal) shows control and bidirectional-formatting
  characters as `<U+XXXX>`, so a value cannot move the cursor or reorder what
  is printed around it.

The connection is opened and closed per query, so an analyst's query never
blocks the nightly run (which writes a different file and publishes it by
rename) and the nightly run never blocks the analyst.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import duckdb
import polars as pl
import pyarrow as pa

from clinic_outcomes.loading.discovery import CONTROL_CHARACTERS

QUERY_CONFIG: dict[str, str | bool] = {
    "enable_external_access": False,
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
    "allow_community_extensions": False,
    "temp_directory": "",
}

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


class QueryError(RuntimeError):
    pass


def connect_read_only(warehouse: Path) -> duckdb.DuckDBPyConnection:
    """The locked-down connection every analyst query runs on."""
    con = duckdb.connect(str(warehouse), read_only=True, config=dict(QUERY_CONFIG))
    try:
        # Instants shown and cast in UTC, as everywhere in the warehouse (an ICU setting, so not a connect option);
        # then the lock, last: from here on no SET or PRAGMA can change anything.
        con.execute("set TimeZone = 'UTC'")
        con.execute("set lock_configuration = true")
    except BaseException:
        con.close()
        raise
    return con


def run_query(warehouse: Path, sql: str) -> pa.Table:
    if not Path(warehouse).is_file():
        raise QueryError(f"warehouse {warehouse} does not exist (run the nightly pipeline first)")
    con = connect_read_only(warehouse)
    try:
        relation = con.sql(sql)
        return relation.to_arrow_table() if relation is not None else pa.table({})
    finally:
        con.close()


def _as_frame(table: pa.Table) -> pl.DataFrame:
    frame = pl.from_arrow(table)
    return frame.to_frame() if isinstance(frame, pl.Series) else frame


def _nested_as_json(frame: pl.DataFrame) -> pl.DataFrame:
    nested = [name for name, dtype in frame.schema.items() if dtype.is_nested()]
    if not nested:
        return frame
    return frame.with_columns(
        pl.Series(name, [None if v is None else json.dumps(v, default=str) for v in frame[name].to_list()], pl.String)
        for name in nested
    )


def inert_csv(frame: pl.DataFrame) -> pl.DataFrame:
    """Text cells a spreadsheet would run as a formula, prefixed with `'`; other columns unchanged."""
    frame = _nested_as_json(frame)
    text = [name for name, dtype in frame.schema.items() if dtype == pl.String or dtype == pl.Categorical]
    pattern = "^[=+\\-@\t\r]"
    return frame.with_columns(
        pl.when(pl.col(name).cast(pl.String).str.contains(pattern))
        .then(pl.lit("'") + pl.col(name).cast(pl.String))
        .otherwise(pl.col(name).cast(pl.String))
        .alias(name)
        for name in text
    )


def _shown(frame: pl.DataFrame) -> pl.DataFrame:
    text = [name for name, dtype in frame.schema.items() if dtype == pl.String]
    return frame.with_columns(
        pl.Series(name, [None if v is None else CONTROL_CHARACTERS.sub(lambda m: f"<U+{ord(m.group()):04X}>", v)
                         for v in frame[name].to_list()], pl.String)
        for name in text
    )


def format_result(table: pa.Table, fmt: str) -> str:
    frame = _as_frame(table)
    if fmt == "csv":
        return inert_csv(frame).write_csv()
    if fmt == "json":
        return json.dumps(frame.to_dicts(), default=str, indent=1) + "\n"
    buffer = io.StringIO()
    with pl.Config(tbl_rows=-1, tbl_cols=-1, fmt_str_lengths=80, tbl_width_chars=200,
                   tbl_hide_dataframe_shape=True, tbl_hide_column_data_types=True):
        print(_shown(frame), file=buffer)
    return buffer.getvalue()
