"""Load the EMR's nightly export drops into the warehouse's raw layer, losing nothing.

One night: find the drop folders (applied in folder-name order), skip every file
whose content was loaded before (sha256 ledger), read each new file as text into
one `incoming_<entity>` table per entity, type and check all of them at once in
SQL (`sql/loading/staging/`), record every rejected row with its file, line and reasons
(`sql/loading/rejected_rows.sql`), and merge the valid rows into `raw.*`, where
the latest version of each record wins (`sql/loading/raw/`). `build_core` then derives
the `core.*` tables analysts query.

EMR patient numbers exist only in memory, in temporary tables of the loading
connection; the warehouse holds their keyed hash (patient_key).
"""

from __future__ import annotations

import datetime as dt
import logging
import shutil
import sys
import tempfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from clinic_outcomes import seeds
from clinic_outcomes.loading import checks, keys, physical
from clinic_outcomes.loading.discovery import (  # noqa: F401 (ExportFile, file_sha256: part of this module's API)
    Discovery,
    ExportFile,
    discover,
    file_sha256,
    files_sha256,
)
from clinic_outcomes.loading.entities import ENTITIES, Entity
from clinic_outcomes.loading.headers import FileRejected, Header, _normalised_columns, check_header, read_header
from clinic_outcomes.settings import Settings
from clinic_outcomes.warehouse import (
    SQL_DIR,
    apply_comments,
    create_schemas,
    materialise,
    run_sql,
    scalar,
    set_variables,
)

log = logging.getLogger(__name__)


@dataclass
class FileResult:
    file: ExportFile
    file_id: int
    sha256: str
    status: str = "loaded"  # loaded | rejected
    reason: str | None = None
    rows_read: int = 0
    rows_loaded: int = 0
    rows_rejected: int = 0
    ignored_columns: list[str] = field(default_factory=list)
    read_path: Path | None = None  # a normalised copy (physical.normalised_copy) read instead of the file
    prescan: physical.Prescan | None = None
    lines: tuple[list[int], list[int]] | None = None  # physical.physical_lines of what was read, once computed

    @property
    def path_read(self) -> Path:
        return self.read_path or self.file.path

    @property
    def format_read(self) -> str:
        return "csv" if self.read_path else self.file.file_format

    def physical(self) -> tuple[list[int], list[int]] | None:
        if self.lines is None:
            self.lines = physical.physical_lines(self.path_read, self.format_read)
        return self.lines


@dataclass
class LoadSummary:
    files: list[FileResult] = field(default_factory=list)
    already_loaded: list[str] = field(default_factory=list)
    ignored: list[tuple[str, str]] = field(default_factory=list)

    @property
    def rows_loaded(self) -> int:
        return sum(f.rows_loaded for f in self.files)

    @property
    def rows_rejected(self) -> int:
        return sum(f.rows_rejected for f in self.files)

    @property
    def files_rejected(self) -> int:
        return sum(1 for f in self.files if f.status == "rejected")


def _digests(paths: list[Path]) -> list[str | OSError]:
    """The sha256 of each file, or the error that kept it from being read (one bad file never fails the night)."""
    try:
        return list(files_sha256(paths))
    except OSError:
        out: list[str | OSError] = []
        for path in paths:
            try:
                out.append(file_sha256(path))
            except OSError as exc:
                out.append(exc)
        return out


def _sql_files(folder: str) -> list[str]:
    return sorted(p.stem for p in (SQL_DIR / folder).glob("*.sql"))


def prepare(con: duckdb.DuckDBPyConnection, settings: Settings, as_of: dt.date, run_id: int) -> None:
    """Schemas, macros, settings variables and the append-only tables; safe to repeat."""
    create_schemas(con)
    set_variables(con, settings, as_of)
    con.execute("set variable run_id = $run_id", {"run_id": run_id})
    seeds.create_macros(con)  # before sql/macros: those may read the value sets
    _create_macros(con)
    for name in _sql_files("ddl"):
        run_sql(con, f"ddl/{name}")
    zones = pa.table(
        {
            "clinic_id": pa.array(list(settings.clinic_timezones), type=pa.string()),
            "timezone": pa.array(list(settings.clinic_timezones.values()), type=pa.string()),
        }
    )
    con.register("settings_clinic_timezones", zones)
    materialise(con, "ops/clinic_timezones")
    con.unregister("settings_clinic_timezones")
    for schema in ("ops", "quality"):
        apply_comments(con, schema)


def _create_macros(con: duckdb.DuckDBPyConnection) -> None:
    """Create sql/macros/*: a macro is bound when created, so each waits for the macros it uses."""
    pending = _sql_files("macros")
    while pending:
        failed: list[str] = []
        for name in pending:
            try:
                run_sql(con, f"macros/{name}")
            except duckdb.CatalogException:
                failed.append(name)
        if len(failed) == len(pending):
            run_sql(con, f"macros/{failed[0]}")  # raises the real error
        pending = failed


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _quote_str(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _scan(results: list["FileResult"], header: Header) -> str:
    """One scan over files of one format that share a header (DuckDB reads several files in parallel)."""
    paths = "[" + ", ".join(_quote_str(str(r.path_read)) for r in results) + "]"
    if results[0].file.file_format == "parquet":
        return f"read_parquet({paths}, file_row_number = true)"
    columns = "{" + ", ".join(f"{_quote_str(c)}: 'VARCHAR'" for c in header.columns) + "}"
    # Header given, so no sniffing; strict: a line with the wrong number of fields is rejected, not padded.
    return (
        f"read_csv({paths}, header = true, auto_detect = false, columns = {columns}, delim = ',', "
        f"quote = '\"', escape = '\"', strict_mode = true, store_rejects = true, max_line_size = {physical.LIMIT})"
    )


def _files_select(entity: Entity, results: list["FileResult"], header: Header) -> str:
    """The rows of files sharing one header, with the entity's columns as text (mapped by name), drop, file id, line."""
    by_name = _normalised_columns(header.columns)
    types = dict(zip(header.columns, header.types))
    selected = []
    for column in entity.columns:
        if column not in by_name:
            selected.append(f"null::varchar as {column}")
            continue
        source = _quote_ident(by_name[column])
        if types.get(by_name[column], "").startswith(("list", "large_list")):
            selected.append(f"array_to_string({source}, ';') as {column}")  # a parquet list of therapies
        else:
            selected.append(f"{source}::varchar as {column}")
    # file_index (a virtual column of multi-file scans) numbers the files of the scan from 0.
    drops = "[" + ", ".join(_quote_str(r.file.drop) for r in results) + "]"
    file_ids = "[" + ", ".join(str(r.file_id) for r in results) + "]"
    # CSV: left null; rows are appended in file order, so staging numbers them from their rowid (a
    # row_number() here would force a single-threaded, order-preserving window over every scan).
    line = "file_row_number + 1" if results[0].file.file_format == "parquet" else "null::bigint"
    return (
        f"select {', '.join(selected)}, {drops}[file_index::bigint + 1] as _drop, "
        f"{file_ids}[file_index::bigint + 1]::integer as _file_id, "
        f"{line} as _line from {_scan(results, header)}"
    )


def _read_group(
    con: duckdb.DuckDBPyConnection, entity: Entity, members: list[tuple["FileResult", Header]]
) -> None:
    """Append the rows of several files of one entity in one statement: one scan per distinct header and format
    (files that share both are read by one multi-file scan), in file order."""
    scans: dict[tuple, tuple[Header, list[FileResult]]] = {}
    for result, header in members:
        scans.setdefault((result.file.file_format, header), (header, []))[1].append(result)
    union = "\nunion all\n".join(_files_select(entity, results, header) for header, results in scans.values())
    con.execute(f"insert into incoming_{entity.name} by name\n{union}")


def _first_line(exc: Exception) -> str:
    # DuckDB's messages can quote the offending CSV line; keep only the first line, which states the problem.
    return str(exc).strip().splitlines()[0][:300]


def _prepare_csv(con: duckdb.DuckDBPyConnection, result: "FileResult", scratch: Path) -> None:
    """Scan a CSV file's lines; read a file with mixed line ends or an over-long line from a normalised copy, and
    record each record over 1 MiB as rejected at its line (its text is not kept)."""
    result.prescan = physical.prescan(result.file.path, result.file.file_format)
    if result.prescan is None:
        raise FileRejected("file cannot be read: its bytes cannot be scanned (a corrupt compressed stream?)")
    if not result.prescan.needs_copy:
        return
    result.read_path = scratch / f"{result.file_id}.csv"
    try:
        long = physical.normalised_copy(result.file.path, result.file.file_format, result.read_path)
    except (OSError, EOFError, zlib.error) as exc:
        raise FileRejected(f"file cannot be read: {type(exc).__name__}: {_first_line(exc)}") from None
    if long:
        con.executemany(
            "insert into incoming_unparsed values (?, ?, ?, true)",
            [(result.file_id, line, f"row longer than 1 MiB ({size} bytes); its text is not kept") for line, size in long],
        )


def _read_files(con: duckdb.DuckDBPyConnection, results: list["FileResult"], scratch: Path) -> None:
    """Read every new file: one statement per entity and format; a statement that fails is retried file by file."""
    groups: dict[tuple[str, str], list[tuple[FileResult, Header]]] = {}
    for result in results:
        if result.status == "rejected":  # at discovery or while hashing: never opened here
            continue
        entity = ENTITIES[result.file.entity]
        try:
            header = read_header(result.file)
            result.ignored_columns = check_header(header, entity)
            if result.file.file_format != "parquet":
                _prepare_csv(con, result, scratch)
        except FileRejected as rejected:
            _reject_file(con, result, str(rejected))
            continue
        kind = "parquet" if result.file.file_format == "parquet" else "csv"
        groups.setdefault((entity.name, kind), []).append((result, header))

    for (entity_name, _), members in groups.items():
        entity = ENTITIES[entity_name]
        try:
            _read_group(con, entity, members)
        except duckdb.Error:
            if len(members) == 1:
                _reject_file(con, members[0][0], f"file cannot be read: {_first_line(sys.exc_info()[1])}")
                continue
            for member in members:  # find the file that broke the statement; the others still load
                try:
                    _read_group(con, entity, [member])
                except duckdb.Error as exc:
                    _reject_file(con, member[0], f"file cannot be read: {_first_line(exc)}")
    _collect_unparsed_lines(con, results)


def _reject_file(con: duckdb.DuckDBPyConnection, result: "FileResult", reason: str) -> None:
    result.status, result.reason = "rejected", reason
    con.execute("delete from incoming_unparsed where file_id = $f", {"f": result.file_id})
    result.rows_read = _count_rows_if_readable(con, result.file)
    result.rows_rejected = result.rows_read
    log.warning("rejected file %s: %s", result.file.relpath, reason)


def _collect_unparsed_lines(con: duckdb.DuckDBPyConnection, results: list["FileResult"]) -> None:
    """Record the lines the CSV reader could not split into the header's columns.

    Their text is not kept: it may hold never-stored values. Their line numbers
    (and those of every row of a file with a rejection) are made physical by
    `_fix_line_numbers`.
    """
    if not scalar(con, "select count(*) from duckdb_tables() where table_name = 'reject_errors'"):
        return
    by_path = {str(r.path_read): r for r in results}
    unparsed = con.execute(
        """
        select scans.file_path, errors.line, min(errors.error_type)::varchar, min(errors.error_message)
        from reject_errors as errors
        inner join reject_scans as scans on scans.scan_id = errors.scan_id and scans.file_id = errors.file_id
        group by all
        order by all
        """
    ).fetchall()
    rows = [
        (by_path[path].file_id, int(line), _unparsed_reason(kind, message))
        for path, line, kind, message in unparsed
        if path in by_path and by_path[path].status == "loaded"
    ]
    con.execute("drop table if exists reject_errors")
    con.execute("drop table if exists reject_scans")
    if not rows:
        return
    con.register(
        "unparsed_arrow",
        pa.table(
            {
                "file_id": pa.array([r[0] for r in rows], pa.int32()),
                "line": pa.array([r[1] for r in rows], pa.int64()),
                "reason": pa.array([r[2] for r in rows], pa.string()),
            }
        ),
    )
    con.execute("insert into incoming_unparsed select *, false from unparsed_arrow")
    con.unregister("unparsed_arrow")


def _fix_line_numbers(con: duckdb.DuckDBPyConnection, results: list["FileResult"]) -> None:
    """Give the rows of files with a rejection their physical line numbers (header = line 1)."""
    with_rejects = {
        row[0]
        for row in con.execute(
            " union ".join(f"select distinct _file_id from staged_{name} where _reasons is not null" for name in ENTITIES)
            + " union select distinct file_id from incoming_unparsed"
        ).fetchall()
    }
    good_map: dict[str, list] = {"file_id": [], "ordinal": [], "line": []}
    for result in results:
        if result.file_id not in with_rejects or result.file.file_format == "parquet":
            continue
        lines = result.physical()
        if lines is None:
            continue
        good, bad = lines
        reported = con.execute(
            "select line, reason from incoming_unparsed where file_id = $f and not physical order by line",
            {"f": result.file_id},
        ).fetchall()
        if bad and len(reported) == len(bad):  # the same records, in the same order: take the physical lines
            con.execute("delete from incoming_unparsed where file_id = $f and not physical", {"f": result.file_id})
            con.executemany(
                "insert into incoming_unparsed values (?, ?, ?, true)",
                [(result.file_id, line, reason) for line, (_, reason) in zip(bad, reported)],
            )
        good_map["file_id"] += [result.file_id] * len(good)
        good_map["ordinal"] += list(range(1, len(good) + 1))
        good_map["line"] += good
    if not good_map["file_id"]:
        return
    con.register(
        "physical_lines",
        pa.table({"file_id": pa.array(good_map["file_id"], pa.int32()),
                  "ordinal": pa.array(good_map["ordinal"], pa.int64()),
                  "line": pa.array(good_map["line"], pa.int64())}),
    )
    for name in ENTITIES:
        # Before this fix, a CSV row's _line is its place among the file's well-formed records + 1.
        con.execute(
            f"""
            update staged_{name} as target
            set _line = physical_lines.line
            from physical_lines
            where physical_lines.file_id = target._file_id and physical_lines.ordinal = target._line - 1
            """
        )
    con.unregister("physical_lines")


def _unparsed_reason(error_type: str, message: str | None) -> str:
    kind = (error_type or "").lower().replace("_", " ")
    if error_type == "LINE SIZE OVER MAXIMUM":
        return "row longer than 1 MiB; its text is not kept"
    if error_type in ("TOO MANY COLUMNS", "MISSING COLUMNS") and message:
        return f"line cannot be split into the header's columns ({kind}: {message})"
    return f"line cannot be parsed as CSV ({kind})"


def _create_incoming_tables(con: duckdb.DuckDBPyConnection) -> None:
    for entity in ENTITIES.values():
        columns = ", ".join(f"{c} varchar" for c in entity.columns)
        con.execute(
            f"create or replace temp table incoming_{entity.name} "
            f"({columns}, _drop varchar, _file_id integer, _line bigint)"
        )
    # physical: the line is already the file's physical line (else the reader's record number, fixed later)
    con.execute(
        "create or replace temp table incoming_unparsed (file_id integer, line bigint, reason varchar, physical boolean)"
    )


def _register_patient_keys(con: duckdb.DuckDBPyConnection, secret: bytes) -> None:
    """Key every distinct patient number of the night once (HMAC-SHA256 in SQL, keys.patient_key_sql), for the
    staging joins. In SQL rather than Python: 98,530 numbers cost 0.3-0.5 s of single-threaded Python and a round
    trip through Arrow at 1M sessions, ten times that at 10M."""
    union = " union ".join(
        f"select trimmed(patient_id) as patient_id from incoming_{name} where patient_id is not null"
        for name, entity in ENTITIES.items()
        if "patient_id" in entity.columns
    )
    con.execute(
        "create or replace temp table patient_keys as "
        f"select patient_id, {keys.patient_key_sql('patient_id')} as patient_key from ({union})",
        keys.hmac_params(secret),
    )


def _next_file_id(con: duckdb.DuckDBPyConnection) -> int:
    return scalar(con, "select coalesce(max(file_id), 0) + 1 from ops.loaded_files")


def load_exports(
    con: duckdb.DuckDBPyConnection,
    exports_dir: Path,
    *,
    secret: bytes,
    run_id: int,
) -> LoadSummary:
    """Load every export file not loaded before into raw.*; `prepare` must have run on `con`."""
    exports_dir = Path(exports_dir)
    found = discover(exports_dir)
    summary = LoadSummary(ignored=found.ignored)
    for relpath, reason in found.ignored:
        log.warning("ignored %s: %s", relpath, reason)
        con.execute("insert into ops.ignored_files values (?, ?, ?)", [run_id, relpath, reason])

    known = {row[0] for row in con.execute("select sha256 from ops.loaded_files").fetchall()}
    _create_incoming_tables(con)
    next_id = _next_file_id(con)
    readable = [f for f in found.files if f.problem is None]
    digests = dict(zip((f.relpath for f in readable), _digests([f.path for f in readable])))
    for file in found.files:
        digest = digests.get(file.relpath)
        if file.problem is not None or isinstance(digest, OSError):
            # Never read (not a regular file), or it could not be read for its hash: rejected whole, every night
            # it is still there. sha256 stays empty: no content was read.
            problem = file.problem or f"file cannot be read: {type(digest).__name__}: {digest.strerror or digest}"
            result = FileResult(file=file, file_id=next_id, sha256="", status="rejected", reason=problem)
            log.warning("rejected file %s: %s", file.relpath, problem)
            summary.files.append(result)
            next_id += 1
            continue
        if digest in known:
            summary.already_loaded.append(file.relpath)
            continue
        known.add(digest)  # the same content twice in one night is loaded once
        summary.files.append(FileResult(file=file, file_id=next_id, sha256=digest))
        next_id += 1
    scratch = Path(tempfile.mkdtemp(prefix="clinic-outcomes-load-"))  # normalised copies; removed below
    try:
        _load_files(con, summary, scratch, secret, run_id)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    for result in summary.files:
        log.info(
            "%s: %d rows read, %d loaded, %d rejected%s",
            result.file.relpath,
            result.rows_read,
            result.rows_loaded,
            result.rows_rejected,
            f" (file rejected: {result.reason})" if result.status == "rejected" else "",
        )
    return summary


def _load_files(
    con: duckdb.DuckDBPyConnection, summary: LoadSummary, scratch: Path, secret: bytes, run_id: int
) -> None:
    _read_files(con, summary.files, scratch)
    for result in summary.files:
        if result.ignored_columns:
            log.info("%s: ignored unknown columns %s", result.file.relpath, ", ".join(result.ignored_columns))

    files = pa.table(
        {
            "file_id": pa.array([r.file_id for r in summary.files], type=pa.int32()),
            "path": pa.array([r.file.relpath for r in summary.files], type=pa.string()),
        }
    )
    con.register("incoming_files_arrow", files)
    con.execute("create or replace temp table incoming_files as select * from incoming_files_arrow")
    con.unregister("incoming_files_arrow")

    _register_patient_keys(con, secret)
    counts: dict[int, tuple[int, int]] = {}
    for name in ENTITIES:
        run_sql(con, f"loading/staging/{name}")
        checks.flag_duplicates_in_file(con, name)
        checks.escape_records(con, name)
        # Nothing reads the night's text rows after their staging: free them before the next entity's work (at 10M
        # sessions the incoming tables alone outgrow the memory limit and every later statement spills).
        con.execute(f"drop table incoming_{name}")
        con.execute(
            f"create table if not exists raw.{name} as "
            f"select * exclude (_reasons, _record, _line) from staged_{name} limit 0"
        )
        _add_new_columns(con, name)
        if name == "needle_sites":
            run_sql(con, "loading/raw/needle_sites_replaced")
            run_sql(con, "loading/raw/needle_sites")
        else:
            _merge_latest(con, name)
        if name == "plans":
            materialise(con, "raw/patient_timezones")
        counts.update(_keep_rejected_rows_only(con, name))
    _record_lost_rows(con, summary.files, counts)
    _fix_line_numbers(con, summary.files)
    run_sql(con, "loading/rejected_rows")
    _record_unparsed_and_rejected_files(con, summary, run_id)
    _count_per_file(con, summary, counts)
    _record_ledger(con, summary, run_id)
    apply_comments(con, "raw")

    # EMR patient numbers never outlive the load.
    for name in ENTITIES:
        con.execute(f"drop table if exists incoming_{name}")
        con.execute(f"drop table if exists staged_{name}")
    con.execute("drop table if exists patient_keys")


def _record_lost_rows(
    con: duckdb.DuckDBPyConnection, results: list[FileResult], counts: dict[int, tuple[int, int]]
) -> None:
    """Cross-check each CSV file's reader counts with its physical records; record every row the reader lost.

    Cheap when the file has one record per line (the reader's rows + the header = the lines); otherwise the
    file's records are counted in Python (physical.physical_lines) and any the reader did not return are recorded
    as rejected rows without a line number (which one was lost cannot be told)."""
    unparsed = dict(con.execute("select file_id, count(*) from incoming_unparsed where not physical group by file_id").fetchall())
    blanked = dict(con.execute("select file_id, count(*) from incoming_unparsed where physical group by file_id").fetchall())
    lost_rows = []
    for result in results:
        if result.status == "rejected" or result.prescan is None:
            continue
        returned = sum(counts.get(result.file_id, (0, 0))) + unparsed.get(result.file_id, 0)
        if result.prescan.lines == returned + 1 and not blanked.get(result.file_id):
            continue
        lines = result.physical()
        records = len(lines[0]) + len(lines[1]) if lines else physical.count_records(result.path_read, result.format_read)
        if records is not None and records > returned:
            reason = (f"row lost by the CSV reader: the file holds {records} records, the reader returned {returned}; "
                      "which line it was cannot be told")
            lost_rows += [(result.file_id, None, reason, True)] * (records - returned)
            log.warning("%s: the CSV reader lost %d of %d records", result.file.relpath, records - returned, records)
    if lost_rows:
        con.executemany("insert into incoming_unparsed values (?, ?, ?, ?)", lost_rows)


def _add_new_columns(con: duckdb.DuckDBPyConnection, name: str) -> None:
    """Give raw.<name> of a warehouse built before a column joined the entity (plans.chronicity) that column,
    null in its older rows, in the staged rows' column order: MERGE's `update set *` matches by position."""
    staged = con.execute(f"describe (select * exclude (_reasons, _record, _line) from staged_{name})").fetchall()
    kept = {r[0] for r in con.execute(f"describe raw.{name}").fetchall()}
    if {column for column, *_ in staged} <= kept:
        return
    columns = ", ".join(
        f'"{column}"' if column in kept else f'null::{data_type} as "{column}"' for column, data_type, *_ in staged
    )
    con.execute(f"create or replace table raw.{name} as select {columns} from raw.{name}")


def _merge_latest(con: duckdb.DuckDBPyConnection, name: str) -> None:
    """Merge the night's winning versions into raw.<name>; into an empty table (the first night), insert them:
    a MERGE costs three times an insert when nothing can match."""
    run_sql(con, f"loading/raw/latest_incoming_{name}")
    if scalar(con, f"select count(*) from (select 1 from raw.{name} limit 1)"):
        run_sql(con, f"loading/raw/{name}")
    else:
        con.execute(f"insert into raw.{name} by name select * from latest_incoming_{name}")
    con.execute(f"drop view latest_incoming_{name}")


def _count_rows_if_readable(con: duckdb.DuckDBPyConnection, file: ExportFile) -> int:
    """Data rows of a file rejected whole (0 when it cannot be read at all)."""
    try:
        if file.file_format == "parquet":
            return pq.read_metadata(file.path).num_rows
        return scalar(
            con,
            f"select count(*) from read_csv({_quote_str(str(file.path))}, header = true, all_varchar = true, "
            "delim = ',', quote = '\"', escape = '\"', strict_mode = false, ignore_errors = true)",
        )
    except (duckdb.Error, OSError, pa.ArrowException):
        return 0


def _record_unparsed_and_rejected_files(con: duckdb.DuckDBPyConnection, summary: LoadSummary, run_id: int) -> None:
    by_id = {r.file_id: r.file for r in summary.files}
    unparsed = con.execute("select file_id, line, reason from incoming_unparsed order by file_id, line").fetchall()
    if unparsed:
        con.executemany(
            "insert into quality.rejected_rows values (?, ?, ?, ?, ?, null)",
            [(run_id, by_id[f].relpath, line, by_id[f].entity, reason) for f, line, reason in unparsed],
        )
    for result in summary.files:
        if result.status == "rejected":
            rows = f"; all {result.rows_read} rows rejected" if result.rows_read else ""
            con.execute(
                "insert into quality.rejected_rows values (?, ?, null, ?, ?, null)",
                [run_id, result.file.relpath, result.file.entity, f"file rejected: {result.reason}{rows}"],
            )


def _keep_rejected_rows_only(con: duckdb.DuckDBPyConnection, name: str) -> dict[int, tuple[int, int]]:
    """Once an entity's valid rows are merged into raw, count (valid, rejected) rows per file of staged_<name> and
    keep only its rejected rows: all that the line-number fix and quality/rejected_rows read from it. At 10M
    sessions the staged tables of the entities already merged would otherwise outgrow the memory limit."""
    counts = {
        file_id: (loaded, rejected)
        for file_id, loaded, rejected in con.execute(
            f"select _file_id, count(*) filter (where _reasons is null), count(*) filter (where _reasons is not null) "
            f"from staged_{name} group by _file_id"
        ).fetchall()
    }
    con.execute(f"create or replace temp table rejected_{name} as select * from staged_{name} where _reasons is not null")
    con.execute(f"drop table staged_{name}")
    con.execute(f"alter table rejected_{name} rename to staged_{name}")
    return counts


def _count_per_file(con: duckdb.DuckDBPyConnection, summary: LoadSummary, counts: dict[int, tuple[int, int]]) -> None:
    """rows_loaded/rows_rejected per file from the (valid, rejected) staged rows per file (they must add up to
    rows_read with the unparsed lines)."""
    unparsed = dict(
        con.execute("select file_id, count(*) from incoming_unparsed group by file_id").fetchall()
    )
    for result in summary.files:
        if result.status == "rejected":
            continue
        loaded, rejected = counts.get(result.file_id, (0, 0))
        result.rows_loaded = loaded
        result.rows_rejected = rejected + unparsed.get(result.file_id, 0)
        result.rows_read = loaded + rejected + unparsed.get(result.file_id, 0)


def _record_ledger(con: duckdb.DuckDBPyConnection, summary: LoadSummary, run_id: int) -> None:
    if not summary.files:
        return
    files = summary.files
    ledger = pa.table(
        {
            "run_id": pa.array([run_id] * len(files), pa.int32()),
            "file_id": pa.array([r.file_id for r in files], pa.int32()),
            "path": pa.array([r.file.relpath for r in files], pa.string()),
            "drop_name": pa.array([r.file.drop for r in files], pa.string()),
            "entity": pa.array([r.file.entity for r in files], pa.string()),
            "file_format": pa.array([r.file.file_format for r in files], pa.string()),
            "sha256": pa.array([r.sha256 for r in files], pa.string()),
            "status": pa.array([r.status for r in files], pa.string()),
            "rows_read": pa.array([r.rows_read for r in files], pa.int64()),
            "rows_loaded": pa.array([r.rows_loaded for r in files], pa.int64()),
            "rows_rejected": pa.array([r.rows_rejected for r in files], pa.int64()),
            "ignored_columns": pa.array([r.ignored_columns for r in files], pa.list_(pa.string())),
            "loaded_at": pa.array([dt.datetime.now(dt.timezone.utc)] * len(files), pa.timestamp("us", tz="UTC")),
        }
    )
    con.register("ledger_arrow", ledger)
    con.execute("insert into ops.loaded_files by name select * from ledger_arrow")
    con.unregister("ledger_arrow")
