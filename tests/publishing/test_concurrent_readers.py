"""Analysts read the warehouse while the nightly run works (issue 6): no reader ever fails.

A reader process opens the published warehouse read-only, queries, closes, over
and over, recording every exception, while `clinic-outcomes run` loads new drops
and publishes. The run never locks the published file (it builds a copy and
renames it in), so every read succeeds, and the reader sees the new night appear.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import flow_helpers as fh
from flow_helpers import prefect_server  # noqa: F401  (fixture)

pytestmark = pytest.mark.slow

READER = """
import json, os, sys, time
from pathlib import Path
import duckdb

warehouse, stop, out = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
reads, errors, seen = 0, [], {}

def report():
    # written aside and renamed, so the test never reads half a file
    out.with_suffix(".tmp").write_text(json.dumps({"reads": reads, "errors": errors, "seen": seen}))
    os.replace(out.with_suffix(".tmp"), out)

while not stop.exists():
    try:
        con = duckdb.connect(str(warehouse), read_only=True)
        try:
            last_run = con.execute("select max(run_id) from ops.runs").fetchone()[0]
            sessions = con.execute("select count(*) from core.sessions").fetchone()[0]
        finally:
            con.close()
        reads += 1
        seen[str(last_run)] = sessions
    except Exception as exc:
        errors.append(f"{type(exc).__name__}: {exc}")
    if reads % 20 == 0:
        report()
    time.sleep(0.005)
report()
"""


def test_reads_during_a_run_all_succeed_and_see_the_new_night(prefect_server, tmp_path):  # noqa: F811
    site = fh.clone_site(fh.published_first_night(prefect_server), tmp_path)
    first_night_sessions = fh.query(site.warehouse, "select count(*) from core.sessions")[0][0]
    site.add_drops(fh.second_night_drops())
    stop, results = tmp_path / "stop-reading", tmp_path / "reads.json"
    reader = subprocess.Popen(
        [sys.executable, "-c", READER, str(site.warehouse), str(stop), str(results)],
        cwd=fh.REPO, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )
    try:
        fh.wait_for(lambda: results.exists() or reader.poll() is not None, 120, what="the reader's first reads")
        done = site.run()
        progress = json.loads(results.read_text())["reads"]
        # A few more reads after the publish, so the reader surely opens the new file.
        fh.wait_for(
            lambda: reader.poll() is not None or json.loads(results.read_text())["reads"] >= progress + 20,
            120, what="reads after the publish",
        )
        stop.touch()
        reader.wait(60)
    finally:
        fh.stop_process(reader)

    assert done.returncode == 0, done.stderr[-3000:]
    assert reader.returncode == 0, reader.stderr.read()
    outcome = json.loads(results.read_text())
    assert outcome["errors"] == []
    assert outcome["reads"] >= 100
    new_night_sessions = fh.query(site.warehouse, "select count(*) from core.sessions")[0][0]
    assert new_night_sessions > first_night_sessions
    assert outcome["seen"] == {"1": first_night_sessions, "2": new_night_sessions}
