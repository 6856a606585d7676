"""Atomic publish (issue 6): a run that dies at any point leaves readers exactly what they had.

Fast tests cover the pieces of flows/publish.py (run lock, journal, warehouse
rename, report link). The slow ones SIGKILL `clinic-outcomes run` at observable
milestones and check the published warehouse (byte-identical, readable read-only)
and report, then rerun and check that every drop was loaded exactly once.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import duckdb
import pytest

import flow_helpers as fh
from flow_helpers import prefect_server  # noqa: F401  (fixture)
from clinic_outcomes.publishing.publish import RunInProgress, RunJournal, RunLock, RunRecord, publish_reports, publish_warehouse

# --------------------------------------------------------------------------- run lock


def test_second_lock_is_refused_naming_the_holder(tmp_path):
    warehouse = tmp_path / "warehouse.duckdb"
    with RunLock(warehouse):
        with pytest.raises(RunInProgress, match=rf"already working on {warehouse} \(pid {os.getpid()} since .*\); refusing"):
            with RunLock(warehouse):
                pass
    with RunLock(warehouse):  # released on exit
        pass


def test_lock_of_a_killed_holder_is_free_at_once(tmp_path):
    warehouse = tmp_path / "warehouse.duckdb"
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from pathlib import Path; from clinic_outcomes.publishing.publish import RunLock\n"
         "lock = RunLock(Path(sys.argv[1])).__enter__(); print('locked', flush=True); time.sleep(600)",
         str(warehouse)],
        cwd=fh.REPO, stdout=subprocess.PIPE, text=True, start_new_session=True,
    )
    try:
        assert holder.stdout.readline() == "locked\n"
        with pytest.raises(RunInProgress, match=f"pid {holder.pid}"):
            with RunLock(warehouse):
                pass
        fh.kill_now(holder)
        with RunLock(warehouse):
            pass
    finally:
        fh.stop_process(holder)


# --------------------------------------------------------------------------- journal


def record(run_id: int, status: str, **fields) -> RunRecord:
    return RunRecord(run_id=run_id, started_at=f"2026-11-2{run_id}T07:00:00+00:00", as_of="2026-11-24", status=status, **fields)


def test_journal_keeps_each_runs_last_line_and_skips_a_line_cut_by_a_kill(tmp_path):
    journal = RunJournal(tmp_path / "warehouse.duckdb")
    journal.write(record(1, "running"))
    journal.write(record(1, "published", rows_loaded=10))
    journal.write(record(2, "running"))
    with journal.path.open("a") as fh_:
        fh_.write('{"run_id": 2, "status": "publi')  # the process died mid-write
    assert [(r.run_id, r.status, r.rows_loaded) for r in journal.records()] == [(1, "published", 10), (2, "running", 0)]
    assert journal.next_run_id() == 3


def test_runs_still_running_when_the_next_run_starts_are_closed_as_abandoned(tmp_path):
    journal = RunJournal(tmp_path / "warehouse.duckdb")
    for r in (record(1, "published"), record(2, "running"), record(3, "failed", message="boom"), record(4, "running")):
        journal.write(r)

    journal.close_abandoned()

    assert [(r.run_id, r.status, r.message) for r in journal.records()] == [
        (1, "published", None),
        (2, "abandoned", "the run stopped without finishing (killed or crashed); nothing was published"),
        (3, "failed", "boom"),
        (4, "abandoned", "the run stopped without finishing (killed or crashed); nothing was published"),
    ]
    assert [r.run_id for r in journal.records() if r.finished_at] == [2, 4]
    lines = journal.path.read_text().splitlines()
    assert [json.loads(line)["status"] for line in lines] == ["published", "running", "failed", "running", "abandoned", "abandoned"]


# --------------------------------------------------------------------------- warehouse and report


def make_db(path, value: int) -> None:
    con = duckdb.connect(str(path))
    con.execute("create table t as select $v as v", {"v": value})
    con.close()


def test_publish_replaces_the_warehouse_while_a_reader_keeps_the_old_one(tmp_path):
    warehouse, building = tmp_path / "warehouse.duckdb", tmp_path / ".warehouse.duckdb.run2.building"
    make_db(warehouse, 1)
    make_db(building, 2)
    reader = duckdb.connect(str(warehouse), read_only=True)
    try:
        publish_warehouse(building, warehouse)
        assert reader.execute("select v from t").fetchall() == [(1,)]  # its open file is the old one
    finally:
        reader.close()
    assert fh.query(warehouse, "select v from t") == [(2,)]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["warehouse.duckdb"]  # no building file, no .wal


def test_report_link_moves_to_the_new_run_and_old_runs_are_pruned(tmp_path):
    reports = tmp_path / "reports"
    for n in (1, 2, 3):
        run_dir = reports / "runs" / f"run-{n:05d}"
        run_dir.mkdir(parents=True)
        (run_dir / "report.html").write_text(f"run {n}")
        publish_reports(reports, run_dir, keep=2)
        assert (os.readlink(reports / "latest"), (reports / "latest" / "report.html").read_text()) == (
            f"runs/run-{n:05d}",
            f"run {n}",
        )
    assert sorted(p.name for p in (reports / "runs").iterdir()) == ["run-00002", "run-00003"]
    assert sorted(p.name for p in reports.iterdir()) == ["latest", "runs"]  # no temporary link left


# --------------------------------------------------------------------------- killed runs


def building_file(site: fh.Site, run_id: int):
    return site.root / f".warehouse.duckdb.run{run_id}.building"


def report_folder(site: fh.Site, run_id: int):
    return site.reports / "runs" / f"run-{run_id:05d}"


# Milestones of a run, in the order they happen. The run is started through PAUSE_AT, which makes the process
# stop itself right after the milestone's step (it writes a marker and sleeps); the test then SIGKILLs it.
# So the kill lands exactly at the milestone on any machine, however busy, instead of wherever a poll of the
# file system happened to notice it. Each milestone's state is checked before the kill.
MILESTONES = {
    "started (journal says running)": lambda site, run_id: any(
        line["run_id"] == run_id and line["status"] == "running" for line in site.journal_lines()
    ),
    "loading (building file exists)": lambda site, run_id: building_file(site, run_id).exists(),
    "validating (report folder exists)": lambda site, run_id: report_folder(site, run_id).exists(),
    "rendering (report html written)": lambda site, run_id: (report_folder(site, run_id) / "report.html").exists(),
}

PAUSE_AT = """
import os, sys, time
from pathlib import Path

milestone, marker = sys.argv[1], Path(sys.argv[2])


def pause():
    marker.write_text(str(os.getpid()))
    time.sleep(3600)  # the test SIGKILLs the process group now


from clinic_outcomes.publishing import publish

if milestone.startswith("started"):
    write = publish.RunJournal.write

    def write_then_pause(self, record):
        write(self, record)
        if record.status == "running":
            pause()

    publish.RunJournal.write = write_then_pause
elif milestone.startswith("loading"):
    stage_copy = publish.stage_copy

    def stage_copy_then_pause(*args, **kwargs):
        stage_copy(*args, **kwargs)
        pause()

    publish.stage_copy = stage_copy_then_pause
elif milestone.startswith("validating"):
    from clinic_outcomes.validation import validate

    run_validation = validate.validate

    def validate_then_pause(*args, **kwargs):
        run_validation(*args, **kwargs)
        pause()

    validate.validate = validate_then_pause
elif milestone.startswith("rendering"):
    from clinic_outcomes.report import render

    render_report = render.render_report

    def render_then_pause(*args, **kwargs):
        render_report(*args, **kwargs)
        pause()

    render.render_report = render_then_pause
else:
    raise SystemExit(f"unknown milestone {milestone}")

from clinic_outcomes.cli import main

sys.exit(main(sys.argv[3:]))
"""


def kill_at(site: fh.Site, milestone: str, run_id: int) -> None:
    marker = site.root / f"paused-run-{run_id}"
    proc = site.start_run([sys.executable, "-c", PAUSE_AT, milestone, str(marker)] + site.run_args()[3:])
    try:

        def paused():
            if marker.exists():
                return True
            if proc.poll() is not None:
                output = sorted(site.root.glob("run-output-*.txt"))[-1].read_text()
                pytest.fail(f"the run ended ({proc.returncode}) before '{milestone}':\n{output[-3000:]}")
            return False

        fh.wait_for(paused, 900, interval=0.2, what=f"the run to pause at '{milestone}'")
        assert MILESTONES[milestone](site, run_id), f"paused at '{milestone}', but its state is not there"
        fh.kill_now(proc)
    finally:
        fh.stop_process(proc)


def core_tables(warehouse) -> dict:
    """Every core table's rows, without changed_in_run (which run wrote a row depends on the history of runs)."""
    return {t: fh.read_table(warehouse, t, exclude=("changed_in_run",)) for t in fh.tables(warehouse, ("core",))}


@pytest.mark.slow
def test_runs_killed_at_each_milestone_leave_the_published_state_and_a_rerun_loads_every_drop_once(
    prefect_server, tmp_path  # noqa: F811
):
    clean = fh.published_all_drops(prefect_server)
    site = fh.clone_site(fh.published_first_night(prefect_server), tmp_path)
    site.add_drops(fh.second_night_drops() + fh.third_night_drops())
    # validation before the metrics, not beside them (as on a night that validates more than the setting's sessions)
    site.config.write_text(site.config.read_text() + "\n[validation]\nbeside_metrics_up_to = 0\n")
    shown = fh.published(site)

    for run_id, milestone in enumerate(MILESTONES, start=2):
        kill_at(site, milestone, run_id)
        assert fh.published(site) == shown, f"killed when {milestone}: what readers see changed"
        assert fh.runs(site) == [(1, "published")], f"killed when {milestone}"

    done = site.run_ok()

    killed = list(range(2, 2 + len(MILESTONES)))
    rerun = killed[-1] + 1
    assert f"run {rerun} published" in done.stdout
    assert fh.runs(site) == [(1, "published")] + [(r, "abandoned") for r in killed] + [(rerun, "published")]
    ledger = fh.query(site.warehouse, "select path, count(*) from ops.loaded_files group by path order by path")
    exported = sorted(
        p.relative_to(site.exports).as_posix()
        for p in site.exports.glob("*/*")
        if p.name.split(".")[0] in ("sessions", "needle_sites", "plans", "pain_checkins", "patients")
    )
    assert ledger == [(path, 1) for path in exported]
    assert fh.query(site.warehouse, "select distinct run_id from ops.loaded_files order by 1") == [(1,), (rerun,)]
    assert core_tables(site.warehouse) == core_tables(clean.warehouse)
    # the rerun validated before computing the metrics, which are those of the run over every drop at once
    assert site.journal_lines()[-1]["validate_beside_metrics"] is False
    marts = fh.tables(clean.warehouse, ("marts",))
    assert marts and fh.tables(site.warehouse, ("marts",)) == marts
    assert [t for t in marts if not fh.read_table(site.warehouse, t).equals(fh.read_table(clean.warehouse, t))] == []
    assert os.readlink(site.reports / "latest") == f"runs/run-{rerun:05d}"
    assert list(site.root.glob(".warehouse.duckdb.run*")) == []  # the killed runs' files were cleared


# A run that dies after the report link moved but before the warehouse rename (the commit point).
KILL_BEFORE_WAREHOUSE_RENAME = """
import os, signal, sys
from clinic_outcomes.publishing import publish
publish.publish_warehouse = lambda building, warehouse: os.kill(os.getpid(), signal.SIGKILL)
from clinic_outcomes.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.slow
def test_run_killed_just_before_the_warehouse_rename_leaves_the_report_unchanged(prefect_server, tmp_path):  # noqa: F811
    site = fh.clone_site(fh.published_first_night(prefect_server), tmp_path)
    site.add_drops(fh.second_night_drops())
    shown = fh.published(site)

    done = site.run([sys.executable, "-c", KILL_BEFORE_WAREHOUSE_RENAME] + site.run_args()[3:])

    assert done.returncode == -9
    assert fh.published(site).warehouse_sha256 == shown.warehouse_sha256
    assert fh.published(site) == shown


def test_a_run_stopped_after_its_warehouse_rename_is_reconciled_as_published(tmp_path):
    """Killed between the commit point (warehouse rename) and the report link: the next start puts both right."""
    import duckdb

    from clinic_outcomes.publishing import publish

    warehouse, reports = tmp_path / "warehouse.duckdb", tmp_path / "reports"
    for run_id in (1, 2):
        publish.report_run_dir(reports, run_id).mkdir(parents=True)
    publish.publish_reports(reports, publish.report_run_dir(reports, 1))
    con = duckdb.connect(str(warehouse))
    con.execute("create schema ops")
    con.execute("create table ops.runs as select * from (values (1, 'published'), (2, 'published')) v(run_id, status)")
    con.close()
    journal = publish.RunJournal(warehouse)
    journal.write(publish.RunRecord(run_id=1, started_at="2026-11-23T02:00:00+00:00", as_of="2026-11-23",
                                    status="published"))
    journal.write(publish.RunRecord(run_id=2, started_at="2026-11-24T02:00:00+00:00", as_of="2026-11-24"))

    journal.close_abandoned(publish.published_run_id(warehouse))
    publish.reconcile_reports(reports, warehouse)

    assert (reports / "latest").resolve() == publish.report_run_dir(reports, 2).resolve()
    assert [(r.run_id, r.status) for r in journal.records()] == [(1, "published"), (2, "published")]
