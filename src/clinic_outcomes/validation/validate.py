"""Validation: every check as Great Expectations, over the warehouse's core and quality tables.

The R1 and R2 tables it validates are built by clinic_outcomes.quality.tables (SQL only).

validate() runs every suite of expectations/*.json. A suite `<name>` validates
the rows of sql/frames/<name>.sql: DuckDB computes them, they reach GX as
an Arrow-backed pandas DataFrame (GX 1.x has no DuckDB engine, and its SQL
datasource over duckdb-engine returns no rows: GX closes the connection before fetching). The R1 and R2 suites validate the very columns the
flag tables are built from, so GX and the warehouse cannot disagree. Each
expectation carries `meta.severity`: `critical` failures stop the run from
publishing, `warning` failures are reported and the run publishes. Every result
of every run is appended to quality.expectation_results; the data-quality page
(validation/pages.py: this night's checks and their history, offline and escaped)
goes to docs_dir. GX's own Data Docs are not built (why: see pages.py).

Scope (issue 18, decision 1; quality.expectation_results.scope). A night that adds data validates the rows
it wrote, `night`; every row is validated, `full`, when core was rebuilt whole tonight (the first night, a
changed zone or core SQL), when no core build is recorded, on the as-of weekday of the setting
`[validation] full_on` (default sunday; "daily" makes every night full), and when the run asks for it
(`clinic-outcomes run --full-validation`, the flow's full_validation). decide_scope() says which, and why. The frames say which rows a night's
batch holds, set-based in SQL, from core's changed_in_run (the run whose core build last wrote a row): the
rows the night wrote, and the rows whose cross-table checks read a row the night wrote (a session whose plan
changed tonight, a site row whose session did, ...). Every key check also counts the batch's keys over the
whole table (`rows_with_<key>` in [1]), so a key the night repeats from an earlier night's row is caught
although that earlier row is outside the batch. A suite whose table the night rewrites whole (R2's
plan_completion, which depends on the as-of date) says so in its meta (`scope_on_a_night: full`) and is
validated whole every night; its rows are recorded with scope `full`.

What a night scope leaves to the full day (chosen so; the spec is silent): a failure in an earlier night's
row is not reported again until the next full validation; a check whose verdict can change without its row
or the row it reads changing (only the as-of date moving back, for a re-run of an earlier date) waits for it
too; and a new or edited expectation reads only the night's rows until then (ask for a full validation).
Nothing is written on a night with nothing new: its batch is empty and each row-level check reports 0 rows.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import os
import re
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from clinic_outcomes import warehouse
from clinic_outcomes.hooks import categorical_from_codes, no_batch_fingerprint
from clinic_outcomes.settings import Settings
from clinic_outcomes.validation.pages import write_quality_page

SEVERITIES = ("critical", "warning")
DATASOURCE = "warehouse"
# BASIC has every value quality.expectation_results keeps (counts, percent, a sample of
# unexpected values). SUMMARY adds the index of every unexpected row (for R1 at 1M sessions
# a list of 100k rows, also written into Data Docs) and made validation ~40% slower.
RESULT_FORMAT = {"result_format": "BASIC", "partial_unexpected_count": 20}

# GX must not reach the network; its analytics are also switched off in the context config.
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")


# --- suites -----------------------------------------------------------------


@dataclass(frozen=True)
class SuiteFile:
    """One suite of expectations/ as a reviewer reads it."""

    name: str
    path: Path
    document: dict[str, Any]

    @property
    def expectations(self) -> list[dict[str, Any]]:
        return self.document["expectations"]

    @property
    def scope_on_a_night(self) -> str:
        """`night` (the frame holds the night's rows when asked) or `full` (its table is rewritten every night)."""
        return (self.document.get("meta") or {}).get("scope_on_a_night", "night")

    @property
    def frame_sql(self) -> str:
        return warehouse.sql_text(f"frames/{self.name}")

    @property
    def regex_columns(self) -> set[str]:
        """Columns a regex expectation reads (GX matches them as text, see _frame)."""
        return {e["kwargs"]["column"] for e in self.expectations if "regex" in e["type"] and "column" in e["kwargs"]}

    @property
    def keys(self) -> KeyColumns:
        """The columns only null and uniqueness checks read, and the uniqueness checks over them (see _frame)."""
        if any("row_condition" in e["kwargs"] for e in self.expectations):
            return NO_KEYS  # a condition may compare a column's values: every column keeps them
        reads: dict[str, list[bool]] = {}
        for expectation in self.expectations:
            kwargs = expectation["kwargs"]
            plain = expectation["type"] in KEY_CHECKS and set(kwargs) <= {"column", "column_list"}
            for column in _columns_read(kwargs):
                reads.setdefault(column, []).append(plain)
        columns = frozenset(column for column, plain in reads.items() if all(plain))
        unique_sets = tuple(
            tuple(_columns_read(e["kwargs"])) for e in self.expectations
            if e["type"] in UNIQUENESS_CHECKS and columns.intersection(_columns_read(e["kwargs"]))
        )
        return KeyColumns(columns, unique_sets)


# Checks whose result depends only on which values of a column are null and which are equal.
UNIQUENESS_CHECKS = frozenset({"expect_column_values_to_be_unique", "expect_compound_columns_to_be_unique"})
KEY_CHECKS = UNIQUENESS_CHECKS | {"expect_column_values_to_not_be_null"}


@dataclass(frozen=True)
class KeyColumns:
    """Columns of a frame that only KEY_CHECKS read (identifiers), and the uniqueness checks reading them."""

    columns: frozenset[str] = frozenset()
    unique_sets: tuple[tuple[str, ...], ...] = ()


NO_KEYS = KeyColumns()


def _columns_read(kwargs: dict[str, Any]) -> list[str]:
    if "column" in kwargs:
        return [kwargs["column"]]
    if "column_list" in kwargs:
        return list(kwargs["column_list"])
    return [kwargs[name] for name in ("column_A", "column_B") if name in kwargs]


def load_suites(directory: Path | None = None) -> list[SuiteFile]:
    """Every suite of expectations/, checked for what validate() relies on."""
    directory = directory or warehouse.EXPECTATIONS_DIR
    suites = []
    for path in sorted(directory.glob("*.json")):
        document = json.loads(path.read_text(encoding="utf-8"))
        name = document.get("name")
        if name != path.stem:
            raise ValueError(f"{path.name}: suite name {name!r} must match the file name")
        if not (warehouse.SQL_DIR / "frames" / f"{name}.sql").exists():
            raise ValueError(f"{path.name}: no rows to validate: sql/frames/{name}.sql is missing")
        for index, expectation in enumerate(document.get("expectations") or []):
            severity = (expectation.get("meta") or {}).get("severity")
            if severity not in SEVERITIES:
                raise ValueError(
                    f"{path.name}: expectation {index} ({expectation.get('type')}) needs meta.severity "
                    f"in {SEVERITIES}, got {severity!r}"
                )
        scope = (document.get("meta") or {}).get("scope_on_a_night", "night")
        if scope not in SCOPES:
            raise ValueError(f"{path.name}: meta.scope_on_a_night must be one of {SCOPES}, got {scope!r}")
        if not document.get("expectations"):
            raise ValueError(f"{path.name}: a suite without expectations checks nothing")
        suites.append(SuiteFile(name=name, path=path, document=document))
    if not suites:
        raise FileNotFoundError(f"no suites in {directory}")
    return suites


# --- results ----------------------------------------------------------------


@dataclass
class ValidationOutcome:
    results: list[dict[str, Any]]  # the rows appended to quality.expectation_results
    # One line each, without GX's sample of values (quality.expectation_results.details and Data Docs keep it):
    # these lines reach the logs, the run journal, the CLI's error and the failure notification, none of which
    # may quote an export's value. Any of them stops publishing.
    critical_failures: list[str]
    warnings_failed: int
    docs_index: Path | None

    @property
    def publishable(self) -> bool:
        return not self.critical_failures


RESULT_SCHEMA = pa.schema(
    [
        ("run_id", pa.int64()),
        ("suite", pa.string()),
        ("expectation", pa.string()),
        ("column_name", pa.string()),
        ("description", pa.string()),
        ("severity", pa.string()),
        ("dimension", pa.string()),
        ("success", pa.bool_()),
        ("element_count", pa.int64()),
        ("unexpected_count", pa.int64()),
        ("unexpected_percent", pa.float64()),
        ("details", pa.string()),
        ("as_of", pa.date32()),
        ("evaluated_at", pa.timestamp("us", tz="UTC")),
        ("scope", pa.string()),
    ]
)

# Which rows a result describes (quality.expectation_results.scope): `night`, the rows the run wrote (and the
# rows whose cross-table checks read them); `full`, every row.
SCOPES = ("night", "full")


@dataclass(frozen=True)
class Scope:
    """What a night validates, and why (the data-quality page and the run's log say it)."""

    scope: str  # one of SCOPES
    reason: str
    sessions: int = 0  # the core.sessions rows the scope reads: every one (full), the run's (night)

    def beside_metrics(self, settings: Settings) -> bool:
        """Whether this validation may run beside the metrics: it reads at most `[validation] beside_metrics_up_to`
        sessions. A larger one runs first, the metrics after, so the night's peak memory is the larger of the two
        rather than their sum (settings.DEFAULT_BESIDE_METRICS_UP_TO has the figures)."""
        return self.sessions <= settings.validate_beside_metrics_up_to


def decide_scope(
    con: duckdb.DuckDBPyConnection, *, run_id: int, settings: Settings, as_of: dt.date, full: bool = False
) -> Scope:
    """`full` when asked, on the full-validation day, or when core was rebuilt whole by this run (or no core
    build is recorded); else `night`. Reads ops.core_build, so it is decided after build_core."""
    from clinic_outcomes.core.build import read_core_build

    def full_scope(reason: str) -> Scope:
        return Scope("full", reason, sessions=warehouse.scalar(con, "select count(*) from core.sessions"))

    if full:
        return full_scope("a full validation was asked for")
    if settings.is_full_validation_day(as_of):
        every = "every night" if settings.full_validation_on == "daily" else f"on {settings.full_validation_on}s"
        return full_scope(f"the as-of date {as_of.isoformat()} is a full-validation day ([validation] "
                          f"full_on = {settings.full_validation_on!r}: {every})")
    build = read_core_build(con)
    if build is None:
        return full_scope("no core build is recorded")
    if build.run_id == run_id and build.previous_file_id is None:
        return full_scope("core was rebuilt whole by this run")
    if build.run_id != run_id:
        return Scope("night", "this run wrote no core rows: nothing new to validate row by row")
    written = warehouse.scalar(con, "select count(*) from core.sessions where changed_in_run = $run", {"run": run_id})
    return Scope("night", "the rows this run wrote (core's changed_in_run)", sessions=written)


def _column_of(kwargs: dict[str, Any]) -> str | None:
    """The column(s) an expectation checks, as one text: `site` or `session_id, site, side`."""
    return ", ".join(_columns_read(kwargs)) or None


def _details(result: dict[str, Any], exception: dict[str, Any] | None) -> str | None:
    if exception and exception.get("raised_exception"):
        return f"error: {exception.get('exception_message')}"
    if "observed_value" in result and result["observed_value"] is not None:
        return f"observed: {result['observed_value']}"
    sample = result.get("partial_unexpected_list") or []
    if sample:
        distinct = list(dict.fromkeys("null" if value is None else str(value) for value in sample))[:5]
        return "e.g. " + ", ".join(distinct)
    return None


def _categorical(column: pa.ChunkedArray) -> pd.Categorical:
    """Text as a pandas categorical, built from Arrow's dictionary encoding.

    pyarrow's own to_pandas() of a dictionary with a million values takes
    ~0.6 s; the codes and the categories assembled here take a few milliseconds.
    """
    encoded = column.dictionary_encode()  # one dictionary, shared by every chunk
    dictionary = encoded.chunks[0].dictionary if encoded.num_chunks else pa.array([], pa.string())
    codes = [chunk.indices.fill_null(-1).to_numpy(zero_copy_only=False) for chunk in encoded.chunks]
    # Arrow's dictionary holds each value once.
    return categorical_from_codes(np.concatenate(codes) if codes else np.empty(0, np.int8), pd.Index(dictionary.to_pandas()))


def _frame(
    con: duckdb.DuckDBPyConnection, sql: str, text_columns: Collection[str] = (), keys: KeyColumns = NO_KEYS
) -> pd.DataFrame:
    """The suite's rows as pandas, via Arrow, in the dtypes GX's pandas engine is fast on.

    Measured at a million rows: GX fingerprints every batch with
    hash_pandas_object (~70 s per million Arrow-backed timestamps, 0.05 s as
    numpy datetime64); its between-check is vectorised only for numpy
    int64/float64 (Arrow-backed ints cost a Python call per value); and most
    expectations filter the whole frame (rows where their column is not null,
    all columns), which is cheap for numpy and categorical columns and costly
    for Arrow-backed text. So numbers and instants become numpy columns, every
    text column becomes categorical (uniqueness then runs on integer codes), and
    booleans with nulls become pandas' nullable boolean rather than Python objects.

    Identifiers (`keys`: columns only null and uniqueness checks read) are
    the costly text: a million distinct values each to encode, move and hash
    again for GX's fingerprint (~0.7 s per million). They reach GX as row
    numbers instead (see _with_row_numbers) when DuckDB's hashes prove that no
    uniqueness check over them can fail; otherwise, when GX must show the
    repeated values, as their text.
    """
    if keys.columns:
        frame = _with_row_numbers(con, sql, text_columns, keys)
        if frame is not None:
            return frame
    table = con.sql(sql).to_arrow_table()
    return _pandas(table, text_columns)


def _pandas(table: pa.Table, text_columns: Collection[str], row_numbered: dict[str, bool] | None = None) -> pd.DataFrame:
    row_numbered = row_numbered or {}
    columns: dict[str, Any] = {}
    for name, column in zip(table.column_names, table.columns):
        if name in row_numbered:
            columns[name] = _row_numbers(column, distinct=row_numbered[name])
        elif pa.types.is_integer(column.type):
            columns[name] = column.cast(pa.int64() if column.null_count == 0 else pa.float64()).to_numpy()
        elif pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            columns[name] = column.combine_chunks().to_pandas() if name in text_columns else _categorical(column)
        elif pa.types.is_boolean(column.type) and column.null_count:
            columns[name] = column.to_pandas(types_mapper={pa.bool_(): pd.BooleanDtype()}.get)
        else:
            columns[name] = column.to_pandas(date_as_object=False)
    return pd.DataFrame(columns, index=pd.RangeIndex(table.num_rows))


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _with_row_numbers(
    con: duckdb.DuckDBPyConnection, sql: str, text_columns: Collection[str], keys: KeyColumns
) -> pd.DataFrame | None:
    """The frame with its key columns as row numbers, or None when a uniqueness check might fail.

    A not-null check reads only which values are null; a uniqueness check (one
    column, or compound) which non-null values are equal and, when some are,
    shows them. So DuckDB sends each key column as `is not null` and, per
    uniqueness check, a hash of the columns it reads (of non-null values for
    one column; of whole rows, nulls equal as pandas counts them, for a
    compound). Rows with equal values have equal hashes: no repeated hash
    means GX would find no repeated value. Then a categorical, null where the
    key is null, gives every check the same result as the text, whose values no
    check would show: each row's number among the non-null rows for a column a
    uniqueness check reads, else 0 (one category is cheaper for GX to hash and
    filter). A repeated hash (a real repeat, or a collision) returns None and
    the text is read.
    """
    relation = con.sql(sql)
    # Only text: a null number or instant shows in GX's sample as nan or NaT, not as a categorical's nan.
    stand_ins = [
        name for name, kind in zip(relation.columns, relation.types) if name in keys.columns and str(kind) == "VARCHAR"
    ]
    unique_sets = [columns for columns in keys.unique_sets if set(columns) & set(stand_ins)]
    if not stand_ins or not all(set(relation.columns).issuperset(columns) for columns in unique_sets):
        return None  # a column a check reads is missing: GX reports it on the frame as it is
    replaced = ", ".join(f"{_quoted(name)} is not null as {_quoted(name)}" for name in stand_ins)
    hashes = [
        f"case when {_quoted(columns[0])} is not null then hash({_quoted(columns[0])}) end" if len(columns) == 1
        else f"hash({', '.join(map(_quoted, columns))})"
        for columns in unique_sets
    ]
    extra = "".join(f", {expression} as __unique_{index}" for index, expression in enumerate(hashes))
    table = con.sql(f"select * replace ({replaced}){extra} from (\n{sql.strip().rstrip(';')}\n)").to_arrow_table()
    for index in range(len(hashes)):
        values = np.sort(table.column(f"__unique_{index}").drop_null().to_numpy())
        if values.size > 1 and bool((values[1:] == values[:-1]).any()):
            return None
    table = table.select(relation.columns)
    unique = {name for columns in unique_sets for name in columns}
    return _pandas(table, text_columns, row_numbered={name: name in unique for name in stand_ins})


def _row_numbers(present: pa.ChunkedArray, distinct: bool) -> pd.Categorical:
    """A categorical null where `present` is false: 0, 1, 2, ... over the other rows when `distinct`, else 0."""
    mask = present.to_numpy()
    if distinct:
        codes = np.cumsum(mask, dtype=np.int32)
        categories = int(codes[-1]) if codes.size else 0
        codes -= 1
    else:
        codes = mask.astype(np.int8)
        categories = 1
        codes -= 1
    codes[~mask] = -1
    return categorical_from_codes(codes, pd.RangeIndex(categories))


def _context():
    """An in-memory GX context: no analytics, no progress bars, no Data Docs site (pages.py writes our page)."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
        data_docs_sites={},
        analytics_enabled=False,
        progress_bars=ProgressBarsConfig(globally=False, metric_calculations=False),
    )
    return gx.get_context(mode="ephemeral", project_config=config)


def _gx_suite(suite: SuiteFile):
    import great_expectations as gx

    expectations = []
    for expectation in suite.expectations:
        # GX's own severity field follows meta.severity, the one place it is written.
        expectations.append({**expectation, "severity": expectation["meta"]["severity"]})
    built = gx.ExpectationSuite(name=suite.name, expectations=expectations, meta=suite.document.get("meta"),
                                notes=suite.document.get("notes"))
    # GX logs and drops an expectation it cannot build; a dropped check must not pass silently.
    if len(built.expectations) != len(suite.expectations):
        raise ValueError(f"{suite.path.name}: GX could not build every expectation (see the log above)")
    return built


def validate(
    con: duckdb.DuckDBPyConnection,
    *,
    run_id: int,
    settings: Settings,
    as_of: dt.date,
    docs_dir: Path | None,
    scope: str = "full",
) -> ValidationOutcome:
    """Run every suite over the rows of `scope` (night: the rows run `run_id` wrote; full: every row), append the
    results with their scope, write the data-quality page."""
    if scope not in SCOPES:
        raise ValueError(f"validation scope must be one of {SCOPES}, got {scope!r}")
    import great_expectations as gx
    from great_expectations.core.run_identifier import RunIdentifier

    warehouse.set_variables(con, settings, as_of)
    con.execute("set variable validation_run = $run", {"run": run_id})
    warehouse.run_sql(con, "ddl/quality_expectation_results")
    warehouse.run_sql(con, "ddl/quality_expectation_results_scope")
    evaluated_at = dt.datetime.now(dt.timezone.utc)
    gx_run = RunIdentifier(run_name=f"run {run_id} as of {as_of.isoformat()}", run_time=evaluated_at)

    context = _context()
    rows: list[dict[str, Any]] = []

    def row(suite: str, expectation: str, **values: Any) -> dict[str, Any]:
        base = {name: None for name in RESULT_SCHEMA.names}
        base.update(run_id=run_id, suite=suite, expectation=expectation, as_of=as_of, evaluated_at=evaluated_at)
        base.update(values)
        return base

    for suite in load_suites():
        suite_scope = "full" if suite.scope_on_a_night == "full" else scope
        con.execute("set variable validation_full = $full", {"full": suite_scope == "full"})
        suite_row = functools.partial(row, scope=suite_scope)
        try:
            frame = _frame(con, suite.frame_sql, text_columns=suite.regex_columns, keys=suite.keys)
        except duckdb.Error as error:
            # Rows that cannot even be read (a core table missing or malformed) stop the run.
            rows.append(
                suite_row(suite.name, "rows_can_be_read", severity="critical", dimension="conformance",
                    success=False, details=f"error: {str(error).splitlines()[0]}",
                    description=f"The rows of sql/frames/{suite.name}.sql can be read.")
            )
            continue
        gx_suite = context.suites.add(_gx_suite(suite))
        datasource = context.data_sources.add_pandas(DATASOURCE)
        batch = datasource.add_dataframe_asset(suite.name).add_batch_definition_whole_dataframe("whole")
        definition = context.validation_definitions.add(
            gx.ValidationDefinition(name=suite.name, data=batch, suite=gx_suite)
        )
        with no_batch_fingerprint():
            validation = definition.run(
                batch_parameters={"dataframe": frame}, result_format=RESULT_FORMAT, run_id=gx_run
            )
        for outcome in validation.results:
            config = outcome.expectation_config
            result = outcome.result or {}
            rows.append(
                suite_row(
                    suite.name,
                    config.type,
                    column_name=_column_of(config.kwargs),
                    description=config.description,
                    severity=config.meta["severity"],
                    dimension=config.meta.get("dimension"),
                    success=bool(outcome.success),
                    element_count=result.get("element_count"),
                    unexpected_count=result.get("unexpected_count"),
                    unexpected_percent=result.get("unexpected_percent"),
                    details=_details(result, outcome.exception_info),
                )
            )
        # GX keeps every batch it loads in its datasource's execution engine, and the validation
        # definition holds the datasource: both go once the results are read, so that one frame at
        # a time is alive (at 10M sessions the frames of all suites together are ~GiBs). Data Docs
        # are built from the stored validation results, which hold no data.
        del frame, validation, definition, batch, datasource
        context.validation_definitions.delete(suite.name)
        context.data_sources.delete(DATASOURCE)

    # Unset, a frame read later on this connection holds every row again.
    con.execute("reset variable validation_full")
    con.execute("reset variable validation_run")

    if rows:
        results_arrow = pa.Table.from_pylist(rows, schema=RESULT_SCHEMA)  # noqa: F841 (read by DuckDB)
        columns = ", ".join(RESULT_SCHEMA.names)
        con.execute(f"insert into quality.expectation_results ({columns}) select {columns} from results_arrow")
    warehouse.apply_comments(con, "quality")

    docs_index = None
    if docs_dir is not None:
        docs_index = write_quality_page(con, docs_dir, run_id).index

    failed = [r for r in rows if not r["success"]]
    return ValidationOutcome(
        results=rows,
        critical_failures=[_one_line(r) for r in failed if r["severity"] == "critical"],
        warnings_failed=sum(1 for r in failed if r["severity"] == "warning"),
        docs_index=docs_index,
    )


def _one_line(result: dict[str, Any]) -> str:
    """What failed, in counts only: never the values GX sampled (`details` may quote session ids or free text)."""
    what = result["expectation"] + (f" on {result['column_name']}" if result["column_name"] else "")
    line = f"{result['suite']}: {what} failed"
    if result["unexpected_count"] is not None and result["element_count"] is not None:
        line += f" for {result['unexpected_count']} of {result['element_count']} rows"
    elif result["details"] and result["details"].startswith("error: "):
        line += f" ({_QUOTED.sub('<value>', result['details'])})"
    return line


# A quoted literal in an error's text (DuckDB quotes the value it could not convert): left out of one-line reasons.
_QUOTED = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"")
