"""The command line: checks before any work (and before Prefect is imported), one-line messages that fit the
command, a real --help per command, --version, and progress only on a terminal.

Mutants tried (each made a test here fail): `FAILURE_PREFIX["generate"]` set to the run's wording; the
progress listener installed whatever isatty() says; `_check_key`'s mode test as `mode & 0o007` (a
group-readable key file passes: the run then starts, and fails later, not with exit 2).
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
from importlib.metadata import version

import pytest

from clinic_outcomes import cli, runtime

REPO_FILES_ONLY = ("/work", "interface.md", "rules.md", "../", "shared/")


def lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


@pytest.fixture
def site(tmp_path):
    (tmp_path / "exports").mkdir()
    return tmp_path


def run_args(site, *extra):
    return ["run", "--exports", str(site / "exports"), "--warehouse", str(site / "warehouse.duckdb"),
            "--reports", str(site / "reports"), *extra]


REFUSALS = [
    (lambda s: ["run", "--exports", str(s / "missing"), "--warehouse", str(s / "w.duckdb"), "--reports", str(s / "r")],
     "--exports {s}/missing does not exist"),
    (lambda s: ["run", "--exports", str(s / "file.txt"), "--warehouse", str(s / "w.duckdb"), "--reports", str(s / "r")],
     "--exports {s}/file.txt is not a folder"),
    (lambda s: run_args(s)[:4] + [str(s / "nowhere" / "w.duckdb"), "--reports", str(s / "r")],
     "--warehouse {s}/nowhere/w.duckdb: its folder {s}/nowhere does not exist"),
    (lambda s: run_args(s)[:4] + [str(s / "exports"), "--reports", str(s / "r")],
     "--warehouse {s}/exports is not a file"),
    (lambda s: run_args(s)[:6] + [str(s / "file.txt")], "--reports {s}/file.txt is not a folder"),
    (lambda s: run_args(s, "--config", str(s / "nope.toml")), "--config {s}/nope.toml does not exist"),
    (lambda s: run_args(s, "--config", str(s / "bad.toml")), "setting rules.plan_weeks must be a whole number, got 'six'"),
    (lambda s: run_args(s, "--timezone", "Mars/Base"), "setting 'timezone': 'Mars/Base' is not a known IANA time zone"),
    (lambda s: ["serve"] + run_args(s)[1:] + ["--cron", "0 2 * *"],
     "--cron '0 2 * *' is not a five-field cron expression such as \"0 2 * * *\""),
    (lambda s: ["query", "--warehouse", str(s / "none.duckdb"), "select 1"], "--warehouse {s}/none.duckdb does not exist"),
    (lambda s: ["generate", "--out", str(s / "exports" / "..")], "--out {s}/exports/.. is not empty; give a new or empty folder"),
]


@pytest.mark.parametrize("argv, message", REFUSALS, ids=[m.split(" ")[0] + str(i) for i, (_, m) in enumerate(REFUSALS)])
def test_each_wrong_argument_is_refused_with_one_line_naming_it(site, capsys, argv, message):
    (site / "file.txt").write_text("x")
    (site / "bad.toml").write_text('[rules]\nplan_weeks = "six"\n')
    code = cli.main(argv(site))
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert lines(err) == ["clinic-outcomes: " + message.format(s=site)]


def test_a_key_file_others_can_read_is_refused_before_the_run(site, capsys, monkeypatch):
    monkeypatch.delenv("CLINIC_OUTCOMES_KEY", raising=False)
    key = site / "warehouse.duckdb.key"
    key.write_text("k" * 64)
    key.chmod(0o640)
    assert cli.main(run_args(site)) == 2
    assert lines(capsys.readouterr().err) == [f"clinic-outcomes: key file {key} is readable by others (mode 640); chmod 600 it"]
    monkeypatch.setenv("CLINIC_OUTCOMES_KEY", "short")
    assert cli.main(run_args(site)) == 2
    assert "CLINIC_OUTCOMES_KEY is set but shorter than" in capsys.readouterr().err


CHECK_ONLY = """
import sys, time
start = time.monotonic()
from clinic_outcomes import cli
code = cli.main(sys.argv[1:])
print("prefect imported:", any(name == "prefect" or name.startswith("prefect.") for name in sys.modules))
print("great_expectations imported:", "great_expectations" in sys.modules)
print(f"seconds: {time.monotonic() - start:.2f}")
sys.exit(code)
"""


def test_a_missing_exports_folder_is_refused_before_prefect_is_imported(tmp_path):
    done = subprocess.run(
        [sys.executable, "-c", CHECK_ONLY, "run", "--exports", str(tmp_path / "missing"),
         "--warehouse", str(tmp_path / "w.duckdb"), "--reports", str(tmp_path / "r")],
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 2
    assert lines(done.stderr) == [f"clinic-outcomes: --exports {tmp_path}/missing does not exist"]  # no traceback
    assert "prefect imported: False" in done.stdout and "great_expectations imported: False" in done.stdout
    assert list(tmp_path.iterdir()) == []  # nothing created


@pytest.mark.parametrize(
    "command, prefix",
    [("generate", "generate failed"), ("serve", "serve stopped"), ("run", "run failed, nothing published")],
)
def test_a_failure_after_the_checks_is_one_line_worded_for_the_command(site, capsys, monkeypatch, command, prefix):
    def broken(*args, **kwargs):
        raise OSError("No space left on device\nsecond line")

    if command == "generate":
        monkeypatch.setattr("clinic_outcomes.synthetic.generate.generate", broken)
        argv = ["generate", "--out", str(site / "new")]
    elif command == "serve":
        monkeypatch.setattr("flows.deployment.serve", broken)
        argv = ["serve"] + run_args(site)[1:]
    else:
        monkeypatch.setitem(cli.COMMANDS, "run", broken)
        argv = run_args(site)
    monkeypatch.setenv("CLINIC_OUTCOMES_KEY", "k" * 40)

    assert cli.main(argv) == 1
    assert lines(capsys.readouterr().err) == [f"clinic-outcomes: {prefix}: OSError: No space left on device"]


@pytest.mark.parametrize("command", ["demo", "run", "serve", "query", "generate"])
def test_every_command_has_a_help_with_examples_and_no_path_outside_the_repo(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main([command, "--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    assert f"usage: clinic-outcomes {command}" in text
    assert "examples:\n  clinic-outcomes " + command in text
    assert [word for word in REPO_FILES_ONLY if word in text] == []


def test_top_level_help_and_version(capsys):
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    text = capsys.readouterr().out
    assert all(command in text for command in ("demo", "run", "serve", "query", "generate"))
    assert [word for word in REPO_FILES_ONLY if word in text] == []
    with pytest.raises(SystemExit) as exit_:
        cli.main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out == f"clinic-outcomes {version('clinic-outcomes')}\n"


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_is_shown_on_a_terminal_only(monkeypatch):
    try:
        piped = io.StringIO()
        monkeypatch.setattr(sys, "stdout", piped)
        cli._show_progress_on_a_terminal()
        runtime.progress("load")
        runtime.progress("load", "3 new files, 120 rows loaded, 2 rejected (1.5 s)")
        assert piped.getvalue() == ""

        terminal = _Terminal()
        monkeypatch.setattr(sys, "stdout", terminal)
        monkeypatch.setenv("TERM", "dumb")
        cli._show_progress_on_a_terminal()
        runtime.progress("load")
        runtime.progress("load", "3 new files, 120 rows loaded, 2 rejected (1.5 s)")
        assert lines(terminal.getvalue()) == ["load ...", "  done load: 3 new files, 120 rows loaded, 2 rejected (1.5 s)"]
    finally:
        runtime.set_progress_listener(None)


def test_the_installed_script_runs_the_same_checks(tmp_path):
    script = os.path.join(os.path.dirname(sys.executable), "clinic-outcomes")
    done = subprocess.run([script, "query", "--warehouse", str(tmp_path / "none.duckdb"), "select 1"],
                          capture_output=True, text=True, timeout=300)
    assert (done.returncode, lines(done.stderr)) == (2, [f"clinic-outcomes: --warehouse {tmp_path}/none.duckdb does not exist"])
