"""Every input a SQL file reads is declared: a warehouse table (schema-qualified), a macro, or a temp table or view
that Python fills, listed with its columns in the file's `-- inputs:` header.

The check runs where the statements run: every file under sql/ executes through warehouse._execute_file, which
this test wraps during a real load, core build and R1/R2 build (first night: full builds; second night:
incremental ones). Before each statement it asks DuckDB which tables the statement reads (get_table_names, on the
live connection, so DML binds) and compares:
- every unqualified table it reads is declared in the header;
- every declared input is read by the statement and exists with exactly the declared columns, in that order.
A file run with no unqualified input must declare none.

Mutants tried (each made a test here fail): a column dropped from the header of sql/loading/staging/plans.sql;
patient_keys removed from the header of sql/loading/staging/sessions.sql; an extra undeclared input
(`r1_patients`) left declared in retreatment_flags.sql; a column renamed in load._create_incoming_tables.
"""

from __future__ import annotations

import datetime as dt
import re

import duckdb

from clinic_outcomes import warehouse
from clinic_outcomes.metrics import marts as metrics
from clinic_outcomes.quality import tables as quality_tables
from clinic_outcomes.settings import Settings
from clinic_outcomes.warehouse import SQL_DIR, connect
from load_fixtures import AS_OF, checkin, load_all, patient, plan, session, site, write_drop

_HEADER = re.compile(r"^-- inputs\b[^\n]*:\s*$")
_ENTRY = re.compile(r"^--   (\w+): (.+)$")
_MORE = re.compile(r"^--     (.+)$")


def declared_inputs(text: str) -> dict[str, tuple[str, ...]]:
    """The `-- inputs:` header of a SQL file: input name -> its columns, in order."""
    lines = text.splitlines()
    starts = [i for i, line in enumerate(lines) if _HEADER.match(line)]
    if not starts:
        return {}
    assert len(starts) == 1, "one '-- inputs:' header per file"
    entries: dict[str, list[str]] = {}
    current = None
    for line in lines[starts[0] + 1:]:
        if entry := _ENTRY.match(line):
            current = entry.group(1)
            assert current not in entries, f"{current} declared twice"
            entries[current] = []
            columns = entry.group(2)
        elif (more := _MORE.match(line)) and current is not None:
            columns = more.group(1)
        else:
            break
        entries[current] += [c.strip() for c in columns.split(",") if c.strip()]
    return {name: tuple(columns) for name, columns in entries.items()}


_COMMENT_OR_STRING = re.compile(r"--[^\n]*|'(?:[^']|'')*'")
_READ_AFTER = re.compile(r"\b(?:from|join|using|into|update)\s+([a-z_][\w.]*)\b(?!\s*\()", re.IGNORECASE)
_CREATED = re.compile(
    r"^\s*(?:create\s+(?:or\s+replace\s+)?(?:temp\w*\s+)?(?:table|view)|insert\s+into)\s+([\w.]+)", re.IGNORECASE
)
_CTE = re.compile(r"\b([a-z_]\w*)\s+as\s*\(", re.IGNORECASE)


def tables_read(con: duckdb.DuckDBPyConnection, statement: str) -> set[str]:
    """The tables and views a statement reads: DuckDB's get_table_names (it binds, and refuses MERGE and DELETE
    in 2.0: "Can only merge into base tables"; of a CREATE VIEW it reports the view alone), with the names after
    from/join/using/into/update that are neither functions, keywords nor CTEs (comments and strings removed)."""
    bare = _COMMENT_OR_STRING.sub(" ", statement)
    created = set(_CREATED.findall(bare))  # what a statement creates or inserts into, it does not read
    ctes = {name.lower() for name in _CTE.findall(bare)}
    keywords = {"set", "select", "values", "by"}  # merge's `update set *`, `insert by name`
    named = {name for name in _READ_AFTER.findall(bare) if name.lower() not in ctes | keywords}
    bound: set[str] = set()
    if "$" not in bare:  # a statement with parameters does not bind without them, and a failed bind aborts the
        try:  # transaction the statement runs in
            # "incoming_plans AS incoming": DuckDB 2.0 reports a table with its alias
            bound = {name.split()[0] for name in con.get_table_names(statement, qualified=True)}
        except duckdb.Error:
            pass
    return (bound | named) - created


def test_tables_read_by_a_merge():
    con = connect()
    con.execute("create schema raw; create table raw.t (k int); create temp table staged (k int)")
    merge = "-- from nowhere\nmerge into raw.t using (with x as (select * from staged) select * from x) as s on s.k = raw.t.k when not matched then insert *"
    assert tables_read(con, merge) == {"raw.t", "staged"}
    assert tables_read(con, "select * from read_csv('from x') join staged using (k)") == {"staged"}


def test_declared_inputs_parses_a_header():
    text = "-- says why\n-- inputs (filled by Python):\n--   t_one: a, b,\n--     c\n--   t_two: x\n\nselect 1\n"
    assert declared_inputs(text) == {"t_one": ("a", "b", "c"), "t_two": ("x",)}
    assert declared_inputs("select 1") == {}


def _night(exports, drop: str, pain_after: str) -> None:
    write_drop(exports, drop, "plans", [plan(updated_at=f"{drop}T08:00:00Z")])
    write_drop(exports, drop, "sessions", [
        session(pain_after=pain_after, updated_at=f"{drop}T09:00:00Z"),
        session(session_id="s2", started_at="2026-10-03T09:00:00Z", updated_at=f"{drop}T09:00:00Z"),
        session(session_id="bad", status="maybe"),
    ])
    write_drop(exports, drop, "needle_sites", [site(), site(session_id="s2")])
    write_drop(exports, drop, "pain_checkins", [checkin(pain="5" if pain_after == "3" else "4")])
    write_drop(exports, drop, "patients", [patient(updated_at=f"{drop}T08:00:00Z")])


def test_every_sql_file_declares_what_it_reads(tmp_path, monkeypatch):
    checked: dict[str, dict[str, tuple[str, ...]]] = {}
    problems: list[str] = []
    execute = warehouse._execute_file

    def checking(con: duckdb.DuckDBPyConnection, name: str, statement: str, params):
        declared = declared_inputs((SQL_DIR / f"{name}.sql").read_text(encoding="utf-8"))
        read = {n for n in tables_read(con, statement) if "." not in n}
        for missing in sorted(read - set(declared)):
            problems.append(f"{name}: reads {missing}, not declared")
        for stale in sorted(set(declared) - read):
            problems.append(f"{name}: declares {stale}, does not read it")
        for input_name in sorted(read & set(declared)):
            columns = tuple(con.sql(f"select * from {input_name} limit 0").columns)
            if columns != declared[input_name]:
                problems.append(f"{name}: {input_name} has columns {columns}, declared {declared[input_name]}")
        checked[name] = declared
        execute(con, name, statement, params)

    monkeypatch.setattr(warehouse, "_execute_file", checking)
    exports = tmp_path / "exports"
    con = connect()
    _night(exports, "2026-11-01", "3")
    load_all(con, exports)
    quality_tables.build(con, Settings(), AS_OF)
    metrics.compute_marts(con, Settings(), AS_OF)
    _night(exports, "2026-11-02", "2")
    load_all(con, exports, run_id=2, as_of=AS_OF + dt.timedelta(days=1))
    mode = quality_tables.build(con, Settings(), AS_OF + dt.timedelta(days=1))
    metrics.compute_marts(con, Settings(), AS_OF + dt.timedelta(days=1))
    recomputed = con.execute("select patients_recomputed from ops.metrics_build").fetchall()
    con.close()

    assert mode == "incremental"  # the second night took the incremental paths (core, R1 and the metrics)
    assert recomputed == [(1,)]
    assert problems == []
    # every file with a header ran at least once here, so no header goes unchecked
    with_header = {
        path.relative_to(SQL_DIR).with_suffix("").as_posix()
        for path in SQL_DIR.rglob("*.sql")
        if declared_inputs(path.read_text(encoding="utf-8"))
    }
    assert with_header <= set(checked)
    assert {name for name, declared in checked.items() if declared} == with_header
