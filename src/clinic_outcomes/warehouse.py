"""The warehouse's conventions: connections, SQL files, settings as variables, comments.

Layers (schemas): raw (latest loaded version of each record, typed and
de-identified) -> core (what analysts query) -> quality (flags, checks) ->
marts (outcomes), plus ops (runs, files) and views (ready-made aggregate answers for managers' common
questions, `sql/views/*.sql`, created in every published warehouse).

SQL lives in `sql/`, one statement per file, by kind (docs/warehouse-sql.md):
`models/<schema>/<table>.sql` are SELECTs named for the table they build, materialised by `materialise` (a
table, or a view when the file says `-- materialised: view`); `loading/` holds the loading DML (staging,
merges and deletes into raw, rejected rows), `ddl/` the append-only tables, `macros/` the macros, `frames/`
the rows each GX suite validates, `seeds/` the value sets (clinic_outcomes.seeds). Thresholds reach SQL as
DuckDB variables set once per connection from Settings (`getvariable('retreatment_window_hours')`), so each
threshold lives in one place. Table and column documentation lives in `sql/comments/<schema>.toml` and is
applied as DuckDB COMMENTs.
"""

from __future__ import annotations

import datetime as dt
import re
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from clinic_outcomes.settings import Settings

SCHEMAS = ("raw", "core", "quality", "marts", "ops", "views")


def _resource_dir(name: str) -> Path:
    """`sql/` and `expectations/` beside the package in a checkout, or inside it in a wheel."""
    here = Path(__file__).resolve().parent
    for candidate in (here.parent.parent / name, here / f"_{name}"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"cannot find the {name}/ folder next to {here}")


SQL_DIR = _resource_dir("sql")
EXPECTATIONS_DIR = _resource_dir("expectations")


def connect(path: str | Path | None = None, *, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """A connection with the session settings every statement here assumes."""
    con = duckdb.connect(str(path) if path else ":memory:", read_only=read_only)
    # Instants are shown and cast in UTC; local time is always explicit via timezone(zone, ts).
    con.execute("set TimeZone = 'UTC'")
    # DuckDB's jemalloc hands freed pages back to the OS from a background thread instead of keeping them until
    # DuckDB next allocates (a process-wide setting): a night's later stages, in Polars and pandas, start lower.
    con.execute("set allocator_background_threads = true")
    return con


def create_schemas(con: duckdb.DuckDBPyConnection) -> None:
    for schema in SCHEMAS:
        con.execute(f"create schema if not exists {schema}")


def set_variables(con: duckdb.DuckDBPyConnection, settings: Settings, as_of: dt.date) -> None:
    """Expose the settings to SQL as variables (getvariable('name'))."""
    rules = settings.rules
    values = {
        "retreatment_window_hours": float(rules.retreatment_window_hours),
        "plan_weeks": int(rules.plan_weeks),
        "mcid_points": float(rules.mcid_points),
        "min_cell_patients": int(rules.min_cell_patients),
        "relief_followup_days": int(rules.relief_followup_days),
        "default_timezone": settings.timezone,
        "as_of": as_of,
    }
    for name, value in values.items():
        con.execute(f"set variable {name} = $value", {"value": value})


def sql_text(name: str) -> str:
    """The text of `sql/<name>.sql`, e.g. sql_text('core/sessions')."""
    path = SQL_DIR / f"{name}.sql"
    return path.read_text(encoding="utf-8")


def run_sql(con: duckdb.DuckDBPyConnection, name: str, params: dict | None = None) -> None:
    """Execute the one statement in `sql/<name>.sql`."""
    _execute_file(con, name, sql_text(name), params)


def _execute_file(con: duckdb.DuckDBPyConnection, name: str, statement: str, params: dict | None) -> None:
    """Every statement of a file under sql/ runs here (tests/test_sql_inputs.py checks its declared inputs)."""
    con.execute(statement, params or {})


MATERIALISATIONS = ("table", "view", "insert")
_MATERIALISED = re.compile(r"^-- materialised: (\w+)\s*$", re.MULTILINE)


def model_text(model: str) -> str:
    """The SELECT of `sql/models/<schema>/<table>.sql`, e.g. model_text('core/sessions')."""
    return sql_text(f"models/{model}")


def materialisation(model: str) -> str:
    """How a model is built unless told otherwise: `table`, or what its `-- materialised:` line says."""
    found = _MATERIALISED.findall(model_text(model))
    if len(found) > 1 or (found and found[0] not in ("table", "view")):
        raise ValueError(f"sql/models/{model}.sql: one '-- materialised: table|view' line at most")
    return found[0] if found else "table"


def materialise(
    con: duckdb.DuckDBPyConnection, model: str, *, how: str | None = None, params: dict | None = None
) -> None:
    """Build `<schema>.<table>` from its model `sql/models/<schema>/<table>.sql` (model = '<schema>/<table>').

    how: `table` (create or replace table), `view` (create or replace view), `insert` (append the model's rows
    to the existing table: incremental builds delete the rows they replace first); default materialisation().
    """
    schema, _, table = model.partition("/")
    if not schema or not table or "/" in table:
        raise ValueError(f"a model is '<schema>/<table>', not {model!r}")
    how = how or materialisation(model)
    if how not in MATERIALISATIONS:
        raise ValueError(f"cannot materialise as {how!r} (one of {', '.join(MATERIALISATIONS)})")
    head = {
        "table": f"create or replace table {schema}.{table} as",
        "view": f"create or replace view {schema}.{table} as",
        "insert": f"insert into {schema}.{table}",
    }[how]
    _execute_file(con, f"models/{model}", f"{head}\n{model_text(model)}", params)


def _quote_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def apply_comments(con: duckdb.DuckDBPyConnection, schema: str) -> None:
    """Apply `sql/comments/<schema>.toml` to the tables of that schema that exist.

    The file maps `"<table>"` to a table of `_table = "..."` and one entry per column.
    """
    path = SQL_DIR / "comments" / f"{schema}.toml"
    if not path.exists():
        return
    docs = tomllib.loads(path.read_text(encoding="utf-8"))
    existing = {
        row[0]
        for row in con.execute(
            "select table_name from duckdb_tables() where schema_name = $s "
            "union all select view_name from duckdb_views() where schema_name = $s",
            {"s": schema},
        ).fetchall()
    }
    for table, columns in docs.items():
        if table not in existing:
            continue
        qualified = f"{schema}.{table}"
        table_comment = columns.get("_table")
        if table_comment:
            con.execute(f"comment on table {qualified} is {_quote_literal(table_comment)}")
        present = {
            row[0]
            for row in con.execute(
                "select column_name from duckdb_columns() where schema_name = $s and table_name = $t",
                {"s": schema, "t": table},
            ).fetchall()
        }
        for column, text in columns.items():
            if column != "_table" and column in present:
                con.execute(f"comment on column {qualified}.{column} is {_quote_literal(text)}")


def create_views(con: duckdb.DuckDBPyConnection) -> list[str]:
    """(Re)create every view of `sql/views/` in schema `views`, commented from sql/views/comments.toml."""
    con.execute("create schema if not exists views")
    names = sorted(path.stem for path in (SQL_DIR / "views").glob("*.sql"))
    for name in names:
        run_sql(con, f"views/{name}")
    apply_comments(con, "views")
    return names


def undocumented(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Tables, views and columns of our schemas that carry no COMMENT (should be none)."""
    rows = con.execute(
        """
        select schema_name || '.' || table_name
        from duckdb_tables()
        where schema_name in (select unnest($schemas)) and coalesce(comment, '') = ''
        union all
        select schema_name || '.' || view_name
        from duckdb_views()
        where schema_name in (select unnest($schemas)) and coalesce(comment, '') = ''
        union all
        select schema_name || '.' || table_name || '.' || column_name
        from duckdb_columns()
        where schema_name in (select unnest($schemas)) and coalesce(comment, '') = ''
        order by 1
        """,
        {"schemas": list(SCHEMAS)},
    ).fetchall()
    return [row[0] for row in rows]


def scalar(con: duckdb.DuckDBPyConnection, query: str, params: dict | list | None = None):
    """The single value of a query. (DuckDB 2.0: fetchone() leaves the result open and blocks the connection.)"""
    rows = con.execute(query, params or {}).fetchall()
    return rows[0][0] if rows else None


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """Commit what the block wrote, or roll all of it back if the block raises."""
    con.execute("begin transaction")
    try:
        yield
    except BaseException:
        con.execute("rollback")
        raise
    con.execute("commit")


def has_table(con: duckdb.DuckDBPyConnection, qualified: str) -> bool:
    """Whether `schema.table` (or `table` in any schema) exists."""
    schema, _, table = qualified.rpartition(".")
    query = "select count(*) from duckdb_tables() where table_name = $t"
    params: dict[str, str] = {"t": table}
    if schema:
        query += " and schema_name = $s"
        params["s"] = schema
    return scalar(con, query, params) > 0


def has_column(con: duckdb.DuckDBPyConnection, schema: str, table: str, column: str) -> bool:
    return scalar(
        con,
        "select count(*) from duckdb_columns() where schema_name = $s and table_name = $t and column_name = $c",
        {"s": schema, "t": table, "c": column},
    ) > 0
