"""ops.runs: the run journal as a warehouse table, written into the run's own file before the report."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa

from clinic_outcomes.publishing import publish
from clinic_outcomes.warehouse import apply_comments


def write_ops_runs(con, journal: publish.RunJournal, current: publish.RunRecord) -> None:
    records = [r for r in journal.records() if r.run_id != current.run_id] + [current]
    table = pa.table(
        {
            "run_id": pa.array([r.run_id for r in records], pa.int32()),
            "started_at": pa.array([dt.datetime.fromisoformat(r.started_at) for r in records], pa.timestamp("us", tz="UTC")),
            "finished_at": pa.array(
                [dt.datetime.fromisoformat(r.finished_at) if r.finished_at else None for r in records],
                pa.timestamp("us", tz="UTC"),
            ),
            "as_of": pa.array([dt.date.fromisoformat(r.as_of) for r in records], pa.date32()),
            "status": pa.array([r.status for r in records], pa.string()),
            "rows_loaded": pa.array([r.rows_loaded for r in records], pa.int64()),
            "rows_rejected": pa.array([r.rows_rejected for r in records], pa.int64()),
            "files_loaded": pa.array([r.files_loaded for r in records], pa.int64()),
            "files_rejected": pa.array([r.files_rejected for r in records], pa.int64()),
            "expectations_failed": pa.array([r.expectations_failed for r in records], pa.int64()),
            "message": pa.array([r.message for r in records], pa.string()),
            "flow_run_id": pa.array([r.flow_run_id for r in records], pa.string()),
        }
    )
    con.register("journal_runs", table)
    con.execute("create or replace table ops.runs as select * from journal_runs order by run_id")
    con.unregister("journal_runs")
    apply_comments(con, "ops")
