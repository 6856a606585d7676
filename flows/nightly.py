"""The nightly run, as a Prefect 3 flow.

    load drops -> build core -> quality flags -> (validate | metrics) -> report -> publish

Every task works on the run's own copy of the warehouse (a file path, so each
task opens its own short connection and a retry starts clean); nothing is
visible to readers until `publish` renames the finished file over the
published one. Validation and metrics run side by side (GX is single-threaded
Python, Polars releases the GIL). A critical expectation failure stops the run
before the report: the published warehouse and report stay as they were and the
run fails with the reason.
"""

import datetime as dt
import importlib
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

# Offline by default: no telemetry. (Set before Prefect is imported.)
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
# The temporary local API server (when no PREFECT_API_URL is set) can take long to start on a busy machine.
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")

import pyarrow as pa  # noqa: E402
from prefect import flow, get_run_logger, task  # noqa: E402
from prefect.cache_policies import NO_CACHE  # noqa: E402

from flows import keys, load, publish, quality_tables  # noqa: E402
from flows.settings import Settings, load_settings  # noqa: E402
from flows.warehouse import apply_comments, connect, set_variables  # noqa: E402


class CriticalChecksFailed(RuntimeError):
    """A critical expectation failed: the run must not publish."""


@dataclass(frozen=True)
class RunContext:
    """What every task needs to find the run's files; plain values, so tasks can be retried."""

    run_id: int
    building: Path
    warehouse: Path
    reports: Path
    report_dir: Path
    settings: Settings
    as_of: dt.date


@dataclass
class NightlyResult:
    run_id: int
    status: str
    warehouse: Path
    report_html: Path | None
    report_pdf: Path | None
    data_docs: Path | None
    rows_loaded: int
    rows_rejected: int
    expectations_failed: int
    message: str | None = None


def today_in(timezone: str) -> dt.date:
    return dt.datetime.now(ZoneInfo(timezone)).date()


# Modules the later stages need and that take seconds to import (GX alone ~5 s): imported in a background
# thread while the load runs (DuckDB releases the GIL), so the night does not wait for them. Every task that
# needs them first waits for the thread, so no module is ever imported by two threads at once.
WARM_MODULES = (
    "pandas",
    "great_expectations",
    "great_expectations.data_context.types.base",
    "great_expectations.core.run_identifier",
    "great_expectations.render.renderer.site_builder",  # data docs
    "jinja2.ext",
    "multiprocessing.synchronize",
    "pandas.core.methods.to_dict",
    "tzdata.zoneinfo",
    "flows.validate",
    "flows.metrics",
    "weasyprint",
    "flows.report",
)
_warm_lock = threading.Lock()
_warm_thread: threading.Thread | None = None


def _import_all(names: tuple[str, ...]) -> None:
    for name in names:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 - the task that needs it imports it again and reports the error itself
            pass


def warm_imports() -> None:
    """Start importing WARM_MODULES in the background (once per process)."""
    global _warm_thread
    with _warm_lock:
        if _warm_thread is None:
            _warm_thread = threading.Thread(target=_import_all, args=(WARM_MODULES,), name="warm-imports", daemon=True)
            _warm_thread.start()


def imports_ready() -> None:
    """Wait until the background imports are done (at once if they never started)."""
    thread = _warm_thread
    if thread is not None:
        thread.join()


def _open(ctx: RunContext):
    con = connect(ctx.building)
    con.execute(f"set memory_limit = '{ctx.settings.memory_limit}'")  # checked by the settings parser
    set_variables(con, ctx.settings, ctx.as_of)
    return con


@task(name="load_drops", retries=2, retry_delay_seconds=10, cache_policy=NO_CACHE)
def load_drops(ctx: RunContext, exports: Path) -> load.LoadSummary:
    """Copy the published warehouse into the run's own file and read every new export file into it.

    I/O on the drop share can fail transiently: a retry starts again from a fresh copy, so a half-done
    attempt never counts.
    """
    secret = keys.load_key(ctx.warehouse)
    publish.stage_copy(ctx.warehouse, ctx.building)
    con = _open(ctx)
    try:
        load.prepare(con, ctx.settings, ctx.as_of, ctx.run_id)
        summary = load.load_exports(con, exports, secret=secret, run_id=ctx.run_id)
    finally:
        con.close()
    get_run_logger().info(
        "loaded %d new files (%d rejected whole), %d rows loaded, %d rows rejected; %d files already loaded, %d ignored",
        len(summary.files),
        summary.files_rejected,
        summary.rows_loaded,
        summary.rows_rejected,
        len(summary.already_loaded),
        len(summary.ignored),
    )
    return summary


@task(name="build_core", cache_policy=NO_CACHE)
def build_core(ctx: RunContext) -> dict[str, int]:
    con = _open(ctx)
    try:
        counts = load.build_core(con, run_id=ctx.run_id)
    finally:
        con.close()
    get_run_logger().info("core: %s", ", ".join(f"{k} {v}" for k, v in counts.items()))
    return counts


@task(name="build_quality", cache_policy=NO_CACHE)
def build_quality(ctx: RunContext) -> None:
    """R1 re-treatment flags and R2 plan completion (SQL): what both validation and the metrics read.

    SQL only: it runs while the background imports finish."""
    con = _open(ctx)
    try:
        quality_tables.build(con, ctx.settings, ctx.as_of)
    finally:
        con.close()


@task(name="validate", cache_policy=NO_CACHE)
def validate(ctx: RunContext):
    """Every Great Expectations suite; data docs into the run's report folder."""
    imports_ready()
    from flows import validate as validation

    start = time.perf_counter()
    con = _open(ctx)
    try:
        outcome = validation.validate(
            con,
            run_id=ctx.run_id,
            settings=ctx.settings,
            as_of=ctx.as_of,
            docs_dir=ctx.report_dir / "data-docs",
        )
    finally:
        con.close()
    logger = get_run_logger()
    for failure in outcome.critical_failures:
        logger.error("critical: %s", failure)
    logger.info(
        "validation: %d critical failures, %d warnings failed", len(outcome.critical_failures), outcome.warnings_failed
    )
    return outcome, round(time.perf_counter() - start, 3)


@task(name="compute_metrics", cache_policy=NO_CACHE)
def compute_metrics(ctx: RunContext) -> tuple[dict[str, int], float]:
    imports_ready()
    from flows import metrics

    start = time.perf_counter()
    con = _open(ctx)
    try:
        counts = metrics.compute_marts(con, ctx.settings, ctx.as_of)
    finally:
        con.close()
    get_run_logger().info("marts: %s", ", ".join(f"{k} {v}" for k, v in counts.items()))
    return counts, round(time.perf_counter() - start, 3)


def _write_ops_runs(con, journal: publish.RunJournal, current: publish.RunRecord) -> None:
    records = [r for r in journal.records() if r.run_id != current.run_id] + [current]
    table = pa.table(
        {
            "run_id": pa.array([r.run_id for r in records], pa.int32()),
            "started_at": pa.array([dt.datetime.fromisoformat(r.started_at) for r in records], pa.timestamp("us", tz="UTC")),
            "finished_at": pa.array(
                [dt.datetime.fromisoformat(r.finished_at) if r.finished_at else None for r in records],
                pa.timestamp("us", tz="UTC"),
            ),
            "as_of": pa.array([dt.date.fromisoformat(r.as_of) for r in records], pa.date32()),
            "status": pa.array([r.status for r in records], pa.string()),
            "rows_loaded": pa.array([r.rows_loaded for r in records], pa.int64()),
            "rows_rejected": pa.array([r.rows_rejected for r in records], pa.int64()),
            "files_loaded": pa.array([r.files_loaded for r in records], pa.int64()),
            "files_rejected": pa.array([r.files_rejected for r in records], pa.int64()),
            "expectations_failed": pa.array([r.expectations_failed for r in records], pa.int64()),
            "message": pa.array([r.message for r in records], pa.string()),
        }
    )
    con.register("journal_runs", table)
    con.execute("create or replace table ops.runs as select * from journal_runs order by run_id")
    con.unregister("journal_runs")
    apply_comments(con, "ops")


@task(name="render_report", retries=1, retry_delay_seconds=5, cache_policy=NO_CACHE)
def render_report(ctx: RunContext, journal: publish.RunJournal, record: publish.RunRecord):
    """Record this run in ops.runs (as it will stand once published), then render the report from the warehouse."""
    imports_ready()
    from flows import report

    con = _open(ctx)
    try:
        _write_ops_runs(con, journal, record)
        paths = report.render_report(
            con,
            settings=ctx.settings,
            as_of=ctx.as_of,
            out_dir=ctx.report_dir,
            data_docs_href="data-docs/index.html",
            run_id=ctx.run_id,
        )
    finally:
        con.close()
    return paths


@task(name="publish", retries=2, retry_delay_seconds=5, cache_policy=NO_CACHE)
def publish_run(ctx: RunContext) -> Path:
    """The warehouse rename is the night's commit point; the report link follows it (and is reconciled with
    the published warehouse at the start of every run, should a run stop between the two)."""
    if ctx.building.exists():  # absent on a retry after the rename: the warehouse is already published
        publish.publish_warehouse(ctx.building, ctx.warehouse)
    latest = publish.publish_reports(ctx.reports, ctx.report_dir)
    get_run_logger().info("published %s and %s", ctx.warehouse, latest)
    return latest


def _reset_peak_memory() -> None:
    """Reset the kernel's peak-RSS mark for this process (Linux), so each stage's peak is its own."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def _peak_memory_mb() -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return None


def _validate_and_compute(ctx: RunContext, record: publish.RunRecord):
    checks = validate.submit(ctx)
    marts = compute_metrics.submit(ctx)
    outcome, validate_seconds = checks.result()
    counts, metrics_seconds = marts.result()
    record.concurrent_seconds = {"validate": validate_seconds, "metrics": metrics_seconds}
    get_run_logger().info("validate %.2f s and metrics %.2f s, side by side", validate_seconds, metrics_seconds)
    return outcome, counts


def _iso_now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat()


def failed_run_hook(flow, flow_run, state) -> None:
    """Notify through a Prefect notification block when one is named in CLINIC_OUTCOMES_NOTIFY_BLOCK."""
    block_name = os.environ.get("CLINIC_OUTCOMES_NOTIFY_BLOCK")
    if not block_name:
        return
    from prefect.blocks.core import Block

    block = Block.load(block_name)
    block.notify(
        subject=f"clinic-outcomes: {flow_run.name} failed",
        body=f"The nightly run {flow_run.name} ended {state.name}: {state.message}. Nothing was published; "
        "the last good warehouse and report are unchanged.",
    )


# Real (not string) annotations in this module: a served deployment pickles the flow by value, and Prefect
# builds its parameter model from the annotations, which must resolve without this module's globals.
@flow(
    name="clinic-outcomes-nightly",
    flow_run_name="nightly {as_of}",
    log_prints=True,
    on_failure=[failed_run_hook],
    on_crashed=[failed_run_hook],
)
def nightly(
    exports: str,
    warehouse: str,
    reports: str,
    as_of: dt.date | None = None,
    timezone: str | None = None,
    config: str | None = None,
) -> NightlyResult:
    """One nightly run: load new drops, validate, compute, publish warehouse and report."""
    settings = load_settings(config).with_timezone(timezone)
    as_of = as_of or today_in(settings.timezone)
    warehouse_path, reports_path = Path(warehouse).resolve(), Path(reports).resolve()
    exports_path = Path(exports).resolve()
    if not exports_path.is_dir():
        raise FileNotFoundError(f"exports folder {exports_path} does not exist")
    logger = get_run_logger()
    warm_imports()

    with publish.RunLock(warehouse_path):
        journal = publish.RunJournal(warehouse_path)
        journal.close_abandoned(publish.published_run_id(warehouse_path))
        publish.remove_leftovers(warehouse_path)
        publish.reconcile_reports(reports_path, warehouse_path)
        run_id = journal.next_run_id()
        record = publish.RunRecord(run_id=run_id, started_at=_iso_now(), as_of=as_of.isoformat())
        journal.write(record)
        ctx = RunContext(
            run_id=run_id,
            building=publish.building_path(warehouse_path, run_id),
            warehouse=warehouse_path,
            reports=reports_path,
            report_dir=publish.report_run_dir(reports_path, run_id),
            settings=settings,
            as_of=as_of,
        )
        timings = record.stage_seconds  # the record carries each stage's seconds as they are measured

        def timed(name, fn, *args):
            _reset_peak_memory()
            start = time.perf_counter()
            value = fn(*args)
            timings[name] = round(time.perf_counter() - start, 3)
            peak = _peak_memory_mb()
            if peak is not None:
                record.stage_peak_mb[name] = peak
            return value

        try:
            summary = timed("load", load_drops, ctx, exports_path)
            record.rows_loaded, record.rows_rejected = summary.rows_loaded, summary.rows_rejected
            record.files_loaded, record.files_rejected = len(summary.files), summary.files_rejected
            timed("core", build_core, ctx)
            timed("quality", build_quality, ctx)
            # Great Expectations is single-threaded Python; the Polars metrics release the GIL: run them side by
            # side. Metrics of a night that fails a critical check are computed but never published.
            outcome, _ = timed("validate_and_metrics", _validate_and_compute, ctx, record)
            record.expectations_failed = len(outcome.critical_failures) + outcome.warnings_failed
            record.critical_failed = len(outcome.critical_failures)
            if outcome.critical_failures:
                raise CriticalChecksFailed(
                    f"{len(outcome.critical_failures)} critical expectation(s) failed, nothing published: "
                    + "; ".join(outcome.critical_failures[:3])
                )
            record.status, record.finished_at = "published", _iso_now()
            paths = timed("report", render_report, ctx, journal, record)
            timed("publish", publish_run, ctx)
            journal.write(record)
        except BaseException as exc:
            if publish.published_run_id(warehouse_path) == run_id:
                # Failed after the commit point (the report link): the night is published; the link is put right.
                publish.reconcile_reports(reports_path, warehouse_path)
                record.status, record.finished_at = "published", _iso_now()
                record.message = f"published, but the report link could not be moved at once: {exc}"[:500]
                journal.write(record)
                raise
            record.status, record.finished_at = "failed", _iso_now()
            record.message = f"{type(exc).__name__}: {exc}".splitlines()[0][:500]
            journal.write(record)
            ctx.building.unlink(missing_ok=True)
            Path(str(ctx.building) + ".wal").unlink(missing_ok=True)
            publish.reconcile_reports(reports_path, warehouse_path)
            logger.error("run %d failed, nothing published: %s", run_id, record.message)
            raise

    logger.info("stage seconds: %s", timings)
    latest = reports_path / "latest"
    return NightlyResult(
        run_id=run_id,
        status=record.status,
        warehouse=warehouse_path,
        report_html=latest / Path(paths.html).name,
        report_pdf=latest / Path(paths.pdf).name if getattr(paths, "pdf", None) else None,
        data_docs=latest / "data-docs" / "index.html",
        rows_loaded=record.rows_loaded,
        rows_rejected=record.rows_rejected,
        expectations_failed=record.expectations_failed,
    )
