"""A night with hostile files among good ones, through the real flow (`clinic-outcomes run`, Prefect):
a named pipe and a dead link under export names, and a line of 40 MB inside a good file. The night publishes
the good rows in bounded time; each bad file is rejected whole with its reason, the giant line at its line.

The same night checks that the patient-key secret (CLINIC_OUTCOMES_KEY, as the scheduler sets it) reaches no
file the night wrote: the warehouse's bytes, the reports, the run journal, the command's output, and the
Prefect server's files (its database holds the flow run's parameters, logs and artifacts); neither as text
nor in hex.

The rules themselves are mutated in the unit tests (test_load_files, test_load_long_rows); this test checks
that they hold through the real flow.
"""

from __future__ import annotations

import os
import time

import pytest

import flow_helpers as fh
from flow_helpers import prefect_server  # noqa: F401  (fixture)

pytestmark = pytest.mark.slow

GIANT = 40 * 1024 * 1024


def _files_under(folder):
    for root, _, names in os.walk(folder, followlinks=False):
        for name in names:
            path = os.path.join(root, name)
            if os.path.isfile(path) and not os.path.islink(path):
                yield path


@pytest.fixture(scope="module")
def night(prefect_server, tmp_path_factory):  # noqa: F811
    site = fh.clone_site(fh.published_first_night(prefect_server), tmp_path_factory.mktemp("hostile_night"))
    (drop,) = fh.second_night_drops()
    site.add_drops([drop])
    folder = site.exports / drop
    # a good file with a 40 MB line after its first data row
    checkins = (folder / "pain_checkins.csv").read_bytes().split(b"\n")
    good_rows = sum(1 for line in checkins[1:] if line.strip())
    giant = b"k_giant,P_giant," + b"9" * GIANT
    (folder / "pain_checkins.csv").write_bytes(b"\n".join([checkins[0], checkins[1], giant, *checkins[2:]]))
    os.mkfifo(folder / "PLANS.csv")
    (folder / "NEEDLE_SITES.Csv").symlink_to(folder / "gone.csv")
    start = time.monotonic()
    done = site.run(timeout=600)
    elapsed = time.monotonic() - start
    yield site, done, elapsed, drop, good_rows
    (folder / "PLANS.csv").unlink()


def test_the_night_publishes_in_bounded_time(night):
    site, done, elapsed, drop, _ = night
    assert done.returncode == 0, done.stderr[-3000:]
    assert elapsed < 420
    assert fh.runs(site) == [(1, "published"), (2, "published")]


def test_the_pipe_and_the_dead_link_are_rejected_whole(night):
    site, _, _, drop, _ = night
    assert fh.query(site.warehouse, """
        select path, status, rows_read from ops.loaded_files where run_id = 2 and status = 'rejected' order by path
    """) == [
        (f"{drop}/NEEDLE_SITES.Csv", "rejected", 0),
        (f"{drop}/PLANS.csv", "rejected", 0),
    ]
    assert fh.query(site.warehouse, """
        select source_file, reason from quality.rejected_rows where run_id = 2 and line_number is null order by 1
    """) == [
        (f"{drop}/NEEDLE_SITES.Csv",
         "file rejected: symbolic link that leads nowhere (its target does not exist); it is never followed"),
        (f"{drop}/PLANS.csv", "file rejected: not a regular file: a named pipe; it is never read"),
    ]


def test_the_giant_line_is_rejected_at_its_line_and_the_good_rows_load(night):
    site, _, _, drop, good_rows = night
    path = f"{drop}/pain_checkins.csv"
    assert fh.query(site.warehouse, f"select line_number, reason, record from quality.rejected_rows where source_file = '{path}'") == [
        (3, f"row longer than 1 MiB ({len(b'k_giant,P_giant,') + GIANT + 1} bytes); its text is not kept", None)
    ]
    assert fh.query(site.warehouse, f"select status, rows_read, rows_loaded, rows_rejected from ops.loaded_files where path = '{path}'") == [
        ("loaded", good_rows + 1, good_rows, 1)
    ]


def test_the_key_reaches_no_file_the_night_wrote(night):
    site, done, *_ = night
    key = fh.KEY.encode()
    needles = [key, key.hex().encode(), key.hex().upper().encode()]
    assert key not in (done.stdout + done.stderr).encode()
    searched = 0
    for folder in (site.root, fh.shared_server().home):
        for path in _files_under(folder):
            if "/exports/" in path:
                continue
            data = open(path, "rb").read()
            searched += 1
            assert not any(n in data for n in needles), path
    assert searched > 10
    assert site.warehouse.stat().st_size > 0 and (site.reports / "latest" / "report.html").exists()

