"""Which files a night reads (exports.md, "Layout"): regular files only, links only inside the exports folder,
names matched case-insensitively, dot-names ignored and reported.

Everything that is not a regular file (or a link to one inside the exports folder) under an export file's
name is rejected whole, at once, without being opened: a named pipe called sessions.csv must not hold the
night (and its run lock) forever. Each rejection is recorded like any rejected file: a ledger row
(ops.loaded_files, status `rejected`) and a quality.rejected_rows row with the reason.

Mutants tried (each made a test here fail):
- `stat.S_ISREG(mode)` -> `not stat.S_ISDIR(mode)` in discovery._problem: the pipe and socket reach hashing, which
  refuses them with another reason (the O_NONBLOCK open is the second guard);
- `target.is_relative_to(root)` check removed: the link leading outside loads its rows;
- `base = lower[...]` -> `base = filename[...]` in entities.entity_of: Sessions.csv and PLANS.Csv.GZ ignored;
- the dot-name branch of discover removed: `.2026-11-23` loads as a drop, `.sessions.csv` is not reported
  as hidden;
- `at_drop and entity_of(...)` -> `entity_of(...)` in discovery._walk: a folder named sessions.csv inside a
  subfolder is rejected instead of walked.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket

import pytest

from clinic_outcomes import warehouse
from clinic_outcomes.loading import discovery
from load_fixtures import csv_text, ledger, load_all, plan, rejected, rows, session, write_drop

DROP = "2026-11-01"
OTHER = "2026-11-02"

# relpath -> the reason recorded (after "file rejected: ")
REJECTED = {
    f"{DROP}/sessions.csv": "not a regular file: a named pipe; it is never read",
    f"{DROP}/plans.csv": "not a regular file: a socket; it is never read",
    f"{DROP}/needle_sites.csv": "symbolic link that leads nowhere (its target does not exist); it is never followed",
    f"{DROP}/pain_checkins.csv": "symbolic link that loops; it is never followed",
    f"{DROP}/patients.csv": "symbolic link that leads outside the exports folder; it is never followed",
    f"{OTHER}/needle_sites.csv": "symbolic link to a named pipe, not a regular file; it is never followed",
    f"{OTHER}/pain_checkins.csv": "not a regular file: a folder; it is never read",
    f"{OTHER}/patients.csv.gz": "symbolic link that leads outside the exports folder; it is never followed",  # /dev/null
}
IGNORED = {
    ".DS_Store": "hidden (name begins with '.')",
    ".2026-11-23": "hidden (name begins with '.')",
    ".store": "hidden (name begins with '.')",
    ".store-pipe": "hidden (name begins with '.')",
    f"{OTHER}/.sessions.csv": "hidden (name begins with '.')",
    f"{OTHER}/notes.TXT": discovery.NOT_AN_EXPORT,
}


@contextlib.contextmanager
def alarm(seconds: int):
    """Fail (instead of hanging forever) if the block blocks on a pipe."""

    def timeout(signum, frame):
        raise TimeoutError(f"the load blocked for more than {seconds} s")

    previous = signal.signal(signal.SIGALRM, timeout)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.fixture(scope="module")
def night(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("files")
    exports = tmp / "exports"
    outside = tmp / "outside.csv"
    outside.write_text(csv_text([{**plan(), "patient_id": "P_outside"}]))
    drop, other = exports / DROP, exports / OTHER
    drop.mkdir(parents=True)
    other.mkdir()
    os.mkfifo(drop / "sessions.csv")
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(drop / "plans.csv"))
    (drop / "needle_sites.csv").symlink_to(drop / "gone.csv")
    (drop / "pain_checkins.csv").symlink_to(drop / "pain_checkins.csv")
    (drop / "patients.csv").symlink_to(outside)
    os.mkfifo(exports / ".store-pipe")
    (other / "needle_sites.csv").symlink_to(exports / ".store-pipe")
    (other / "pain_checkins.csv").mkdir()
    (other / "patients.csv.gz").symlink_to("/dev/null")
    # good files: case-insensitive names, and a link to a regular file inside the exports folder
    write_drop(exports, OTHER, "Sessions", [session(session_id="s_upper")], ext="csv")
    write_drop(exports, OTHER, "plans", [plan(plan_id="pl_gz")], ext="csv.gz").rename(other / "PLANS.Csv.GZ")
    (exports / ".store").mkdir()
    (exports / ".store" / "sites.csv").write_text(csv_text([{"session_id": "s_upper", "site": "a", "side": "left", "needles": "1"}]))
    write_drop(exports, "2026-11-03", "needle_sites", b"")
    (exports / "2026-11-03" / "needle_sites.csv").unlink()
    (exports / "2026-11-03" / "NEEDLE_SITES.csv").symlink_to(exports / ".store" / "sites.csv")
    write_drop(exports, "2026-11-03", "sessions", [session(session_id="s_lower_ext")], ext="CSV")
    # ignored: dot-names (folders and files) and files that are not exports
    write_drop(exports, ".2026-11-23", "sessions", [session(session_id="s_hidden_drop")])
    (other / ".sessions.csv").write_text(csv_text([session(session_id="s_hidden_file")]))
    (exports / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    (other / "notes.TXT").write_text("hello")
    # a folder named like an export below a drop's subfolder is walked, not rejected
    (other / "old" / "sessions.csv").mkdir(parents=True)
    IGNORED[f"{OTHER}/old/sessions.csv/x.csv"] = discovery.NOT_AN_EXPORT
    (other / "old" / "sessions.csv" / "x.csv").write_text("x")

    con = warehouse.connect(None)
    try:
        with alarm(60):
            summary = load_all(con, exports)
        yield con, summary
    finally:
        con.close()
        server.close()


def test_every_file_that_is_not_regular_is_rejected_whole_with_its_reason(night):
    con, _ = night
    got = {path: reason for path, line, reason in rejected(con) if line is None}
    assert got == {path: f"file rejected: {reason}" for path, reason in REJECTED.items()}


def test_each_rejected_file_has_a_ledger_row_with_no_rows_and_no_hash(night):
    con, _ = night
    got = {r[0]: r[1:] for r in rows(con, "select path, status, sha256, rows_read, rows_loaded, rows_rejected from ops.loaded_files")}
    for path in REJECTED:
        assert got[path] == ("rejected", "", 0, 0, 0), path


def test_the_summary_counts_them(night):
    _, summary = night
    assert summary.files_rejected == len(REJECTED)


def test_names_match_case_insensitively_and_a_link_inside_the_folder_is_followed(night):
    con, _ = night
    assert rows(con, "select session_id from core.sessions order by 1") == [("s_lower_ext",), ("s_upper",)]
    assert rows(con, "select plan_id from core.plans") == [("pl_gz",)]
    assert rows(con, "select session_id, site from core.needle_sites") == [("s_upper", "a")]
    loaded = [r for r in ledger(con) if r[1] == "loaded"]
    assert loaded == [
        (f"{OTHER}/PLANS.Csv.GZ", "loaded", 1, 1, 0),
        (f"{OTHER}/Sessions.csv", "loaded", 1, 1, 0),
        ("2026-11-03/sessions.CSV", "loaded", 1, 1, 0),
        ("2026-11-03/NEEDLE_SITES.csv", "loaded", 1, 1, 0),
    ]


def test_nothing_outside_the_folder_was_read(night):
    con, _ = night
    assert rows(con, "select count(*) from raw.plans where plan_id <> 'pl_gz'") == [(0,)]


def test_dot_names_and_other_files_are_ignored_and_reported(night):
    con, summary = night
    got = dict(rows(con, "select path, reason from ops.ignored_files"))
    assert {p: r for p, r in got.items() if p in IGNORED or p.startswith(".")} == IGNORED
    assert dict(summary.ignored) == got
    assert rows(con, "select count(*) from core.sessions where session_id like 's_hidden%'") == [(0,)]


def test_a_drop_folder_named_with_a_control_character_is_recorded_escaped_and_rejected(tmp_path):
    exports = tmp_path / "exports"
    write_drop(exports, "2026-11-01\u202e", "sessions", [session()])
    con = warehouse.connect(None)
    load_all(con, exports)
    assert rejected(con) == [
        (
            "2026-11-01<U+202E>/sessions.csv",
            None,
            "file rejected: the drop folder's name holds a control or bidirectional-formatting character",
        )
    ]
    assert rows(con, "select count(*) from core.sessions") == [(0,)]


def test_hashing_refuses_a_file_swapped_for_a_pipe(tmp_path):
    os.mkfifo(tmp_path / "sessions.csv")
    with alarm(10), pytest.raises(OSError):
        discovery.file_sha256(tmp_path / "sessions.csv")


def test_a_pipe_rejected_one_night_is_rejected_again_the_next(tmp_path):
    exports = tmp_path / "exports"
    (exports / DROP).mkdir(parents=True)
    os.mkfifo(exports / DROP / "sessions.csv")
    con = warehouse.connect(None)
    with alarm(60):
        load_all(con, exports, run_id=1)
        load_all(con, exports, run_id=2)
    assert rows(con, "select run_id, path, status from ops.loaded_files order by run_id") == [
        (1, f"{DROP}/sessions.csv", "rejected"),
        (2, f"{DROP}/sessions.csv", "rejected"),
    ]
