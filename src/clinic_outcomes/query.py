"""Ad-hoc read-only queries against the published warehouse.

The connection is opened read-only and closed at once, so an analyst's query
never blocks the nightly run (which writes a different file and publishes it by
rename) and the nightly run never blocks the analyst.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import polars as pl
import pyarrow as pa

from clinic_outcomes.warehouse import connect


class QueryError(RuntimeError):
    pass


def run_query(warehouse: Path, sql: str) -> pa.Table:
    if not Path(warehouse).exists():
        raise QueryError(f"warehouse {warehouse} does not exist (run the nightly pipeline first)")
    con = connect(warehouse, read_only=True)
    try:
        relation = con.sql(sql)
        return relation.to_arrow_table() if relation is not None else pa.table({})
    finally:
        con.close()


def format_result(table: pa.Table, fmt: str) -> str:
    frame = pl.from_arrow(table)
    if isinstance(frame, pl.Series):
        frame = frame.to_frame()
    if fmt == "csv":
        return frame.write_csv()
    if fmt == "json":
        return json.dumps(frame.to_dicts(), default=str, indent=1) + "\n"
    buffer = io.StringIO()
    with pl.Config(tbl_rows=-1, tbl_cols=-1, fmt_str_lengths=80, tbl_width_chars=200,
                   tbl_hide_dataframe_shape=True, tbl_hide_column_data_types=True):
        print(frame, file=buffer)
    return buffer.getvalue()
