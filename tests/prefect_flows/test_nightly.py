"""The nightly run end to end (issue 6): `clinic-outcomes run` as the scheduler starts it.

- a rerun with no new drops publishes the very same tables;
- a second run while one holds the warehouse is refused with a clear message;
- a critical expectation failure publishes nothing and exits non-zero with one line.

Each test starts from a copy of an installation published once per session
(flow_helpers), and runs against the session's local Prefect server.
"""

from __future__ import annotations

import datetime as dt
import io
import os
import re
import sys

import pytest

import flow_helpers as fh
from flow_helpers import prefect_server  # noqa: F401  (fixture)
from clinic_outcomes.publishing.publish import RunLock
from clinic_outcomes.core import build as core_build
from clinic_outcomes.settings import WEEKDAYS

pytestmark = pytest.mark.slow

# Tables whose rows are keyed by the run that wrote them: run 1's rows must stay as they were,
# and a rerun over the same data must write the same content under its own run_id.
PER_RUN = {
    "quality.expectation_results": ("run_id", "evaluated_at"),
    "quality.rejected_rows": ("run_id",),
    "ops.ignored_files": ("run_id",),
}


def clinic_outcomes_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("clinic-outcomes:")]


def test_rerun_without_new_drops_publishes_identical_tables(prefect_server, tmp_path):  # noqa: F811
    site = fh.clone_site(fh.published_all_drops(prefect_server), tmp_path)
    published_tables = fh.tables(site.warehouse, ("raw", "core", "quality", "marts", "ops"))
    compared = [t for t in published_tables if t not in PER_RUN and t not in ("ops.runs", "ops.metrics_build")]
    before = {t: fh.read_table(site.warehouse, t) for t in compared}
    before_per_run = {t: fh.read_table(site.warehouse, t, exclude=cols) for t, cols in PER_RUN.items()}
    assert {t: before_per_run[t].num_rows > 0 for t in PER_RUN} == {t: True for t in PER_RUN}, "nothing to compare"

    # run 2's as-of date is run 1's: a full-validation day other than its weekday keeps run 2 a night-scope run
    as_of = dt.date.fromisoformat(fh.as_of())
    other_day = WEEKDAYS[(as_of.weekday() + 1) % 7]
    site.config.write_text(site.config.read_text() + f'\n[validation]\nfull_on = "{other_day}"\n')

    done = site.run_ok()

    assert "run 2 published: 0 rows loaded, 0 rejected" in done.stdout
    assert fh.runs(site) == [(1, "published"), (2, "published")]
    assert fh.tables(site.warehouse, ("raw", "core", "quality", "marts", "ops")) == published_tables
    after = {t: fh.read_table(site.warehouse, t) for t in before}
    changed = [t for t in before if not after[t].equals(before[t])]
    assert changed == []
    # run 2 recomputed no patient's marts: no input row changed (the digests are the same as run 1's)
    assert fh.query(site.warehouse, "select run_id, patients_recomputed from ops.metrics_build") == [(2, 0)]
    # No row was written: run 2's night-scope checks read none (R2's plan_completion, rewritten whole every night,
    # is validated whole: the same as run 1's). Run 1, a full rebuild, validated every row.
    assert fh.query(site.warehouse, "select distinct scope from quality.expectation_results where run_id = 1") == [
        ("full",)
    ]
    assert fh.query(
        site.warehouse, "select distinct scope, success, element_count from quality.expectation_results "
        "where run_id = 2 and suite <> 'plan_completion'"
    ) == [("night", True, 0)]
    for table, exclude in PER_RUN.items():
        assert fh.read_table(site.warehouse, table, exclude=exclude, where="run_id = 1").equals(
            before_per_run[table]
        ), f"{table}: run 1's rows changed"
        where = "suite = 'plan_completion'" if table == "quality.expectation_results" else "true"
        run_1 = fh.read_table(site.warehouse, table, exclude=exclude, where=f"run_id = 1 and {where}")
        run_2 = fh.read_table(site.warehouse, table, exclude=exclude, where=f"run_id = 2 and {where}")
        # No file is read again, so nothing is rejected again; everything else is evaluated again, the same.
        expected_run_2 = run_1.slice(0, 0) if table == "quality.rejected_rows" else run_1
        assert run_2.equals(expected_run_2), f"{table}: run 2 differs from run 1"
    assert os.readlink(site.reports / "latest") == "runs/run-00002"
    # validation ran beside the metrics (the default, a few sessions), in both runs
    journal = {line["run_id"]: line for line in site.journal_lines()}
    assert [(journal[run]["validate_beside_metrics"], sorted(journal[run]["concurrent_seconds"])) for run in (1, 2)] == [
        (True, ["metrics", "validate"]), (True, ["metrics", "validate"])
    ]
    # each stage's peak and the memory the process holds once the stage has released what it freed
    for run in (1, 2):
        assert sorted(journal[run]["stage_end_mb"]) == sorted(journal[run]["stage_peak_mb"]) == sorted(
            journal[run]["stage_seconds"])
        assert all(0 < end for end in journal[run]["stage_end_mb"].values())
    # Every clinic's print document is the same as run 1's, so its PDF was copied, not typeset again (the
    # network's names the run, so it was typeset again).
    clinics = sorted((site.reports / "runs/run-00001/clinics").glob("*.pdf"))
    assert clinics
    assert f"{len(clinics)} PDFs unchanged since the last published report, copied from it" in done.stdout + done.stderr
    for pdf in clinics:
        assert (site.reports / "runs/run-00002/clinics" / pdf.name).read_bytes() == pdf.read_bytes()


def test_second_run_is_refused_while_one_holds_the_warehouse(prefect_server, tmp_path):  # noqa: F811
    site = fh.clone_site(fh.published_first_night(prefect_server), tmp_path)
    site.add_drops(fh.second_night_drops())
    shown = fh.published(site)
    journal = site.journal.read_bytes()

    with RunLock(site.warehouse):
        done = site.run()

    assert done.returncode != 0
    (reason,) = clinic_outcomes_lines(done.stderr)
    assert reason.startswith(f"clinic-outcomes: another run is already working on {site.warehouse} (pid {os.getpid()} since ")
    assert reason.endswith("; refusing to start a second one")
    assert fh.published(site) == shown
    assert site.journal.read_bytes() == journal  # a refused run never started: no run id spent
    assert list(site.root.glob(".warehouse.duckdb.run*")) == []


@pytest.mark.parametrize("beside_metrics", [True, False], ids=["beside-the-metrics", "before-the-metrics"])
def test_critical_failure_publishes_nothing_and_exits_with_one_line(prefect_server, tmp_path, monkeypatch,  # noqa: F811
                                                                    beside_metrics):
    """No input reaches a critical expectation (the loader rejects every such row), so a loader bug is simulated:
    after the real build_core, one session is in core.sessions twice, its copy written (changed_in_run) by this
    night as the merge writes; the real validate, on the night's rows, must stop the run. Validation beside the
    metrics (the default) or before them (`beside_metrics_up_to = 0`), when the metrics are then skipped."""
    from prefect import task
    from prefect.settings import PREFECT_API_URL, PREFECT_LOGGING_TO_API_ENABLED, temporary_settings

    from clinic_outcomes import cli
    from flows import nightly, tasks

    @task(name="build_core")
    def build_core_with_a_duplicate_session(ctx):
        con = tasks._open(ctx)
        try:
            counts = core_build.build_core(con, run_id=ctx.run_id)
            con.execute(
                "insert into core.sessions select * replace ($run as changed_in_run) from core.sessions "
                "order by session_id limit 1",
                {"run": ctx.run_id},
            )
        finally:
            con.close()
        return counts

    site = fh.clone_site(fh.published_first_night(prefect_server), tmp_path)
    site.add_drops(fh.second_night_drops())
    if not beside_metrics:
        site.config.write_text(site.config.read_text() + "\n[validation]\nbeside_metrics_up_to = 0\n")
    shown = fh.published(site)
    monkeypatch.setattr(nightly, "build_core", build_core_with_a_duplicate_session)
    monkeypatch.setenv("CLINIC_OUTCOMES_KEY", fh.KEY)
    # Not capsys: Prefect's console log handler, set up by the first night run in this process, keeps the
    # stream it found; capsys closes its stream after the test, and the next run's log lines then fail without end.
    stderr = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stderr)

    # (logs stay local: this process outlives the session's server, and would retry sending them at exit)
    with temporary_settings({PREFECT_API_URL: prefect_server.api_url, PREFECT_LOGGING_TO_API_ENABLED: False}):
        exit_code = cli.main(site.run_args()[3:])

    assert exit_code == 1
    (reason,) = clinic_outcomes_lines(stderr.getvalue())
    # the key counted over the whole table fails; the batch's own uniqueness too when both copies are in it
    assert re.match(
        "clinic-outcomes: run failed, nothing published: CriticalChecksFailed: [12] critical expectation[(]s[)] "
        "failed, nothing published: core_sessions", reason
    ), reason
    assert "session_id" in reason
    assert "(e.g." not in reason  # no sampled value; where to see them instead:
    assert reason.endswith(f"(the failing values: {site.reports / 'runs' / 'run-00002' / 'data-quality' / 'index.html'})")
    assert (site.reports / "runs" / "run-00002" / "data-quality" / "index.html").exists()
    assert fh.published(site) == shown
    assert fh.runs(site) == [(1, "published")]  # readable, and still the first night's
    assert list(site.root.glob(".warehouse.duckdb.run*")) == []
    last = site.journal_lines()[-1]
    assert (last["run_id"], last["status"], last["critical_failed"]) == (2, "failed", 1)
    assert "core_sessions" in last["message"]
    assert last["validate_beside_metrics"] is beside_metrics
    assert sorted(last["concurrent_seconds"]) == (["metrics", "validate"] if beside_metrics else ["validate"])
    assert not (site.reports / "runs" / "run-00002" / "report.html").exists()


def test_every_task_connection_holds_duckdb_to_the_memory_limit_of_the_settings(tmp_path):
    import datetime as dt

    from flows import tasks
    from clinic_outcomes.settings import Settings

    ctx = tasks.RunContext(
        run_id=1, building=tmp_path / "w.duckdb", warehouse=tmp_path / "w.duckdb", reports=tmp_path / "r",
        report_dir=tmp_path / "r" / "1", settings=Settings(memory_limit="1GB"), as_of=dt.date(2026, 11, 24),
    )
    con = tasks._open(ctx)
    try:
        assert con.sql("select current_setting('memory_limit')").fetchall() == [("953.6 MiB",)]
        # DuckDB's freed memory goes back to the OS from its allocator's background thread (runtime.release_memory)
        assert con.sql("select current_setting('allocator_background_threads')").fetchall() == [(True,)]
    finally:
        con.close()
