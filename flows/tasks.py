"""The nightly run's Prefect tasks: one verb at one I/O boundary each, retried where I/O can fail transiently.

Every task works on the run's own copy of the warehouse (a file path, so each task opens its own short
connection and a retry starts clean); the logic lives in `clinic_outcomes`, so tests exercise it without the
engine.
"""

import datetime as dt
import time
from dataclasses import dataclass
from pathlib import Path

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from clinic_outcomes.core import build as core_build
from clinic_outcomes.loading import keys, load
from clinic_outcomes.publishing import publish
from clinic_outcomes.publishing.runs import write_ops_runs
from clinic_outcomes.quality import tables as quality_tables
from clinic_outcomes.runtime import imports_ready
from clinic_outcomes.settings import Settings
from clinic_outcomes.warehouse import connect, create_views, scalar, set_variables

# A generous bound for a hung task, not a budget: the slowest stage of the 10M-session benchmark night takes
# minutes. Prefect stops the task and the night fails (nothing published) when it is reached.
TASK_TIMEOUT_SECONDS = 2 * 3600


def transient_io_error(task, task_run, state) -> bool:
    """Retry only what I/O can make fail for a moment (the drop share, the disk): an OSError or DuckDB's I/O
    error. A wrong key, a bad setting or a bug fails at once instead of three times, seconds apart."""
    import duckdb

    return isinstance(state.data, (OSError, duckdb.IOException))


# The data-quality page's folder inside a run's report folder (the report links it).
DATA_QUALITY_DIR = "data-quality"


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



def _open(ctx: RunContext):
    con = connect(ctx.building)
    con.execute(f"set memory_limit = '{ctx.settings.memory_limit}'")  # checked by the settings parser
    set_variables(con, ctx.settings, ctx.as_of)
    return con



@task(
    name="load_drops",
    timeout_seconds=TASK_TIMEOUT_SECONDS,
    retry_condition_fn=transient_io_error,
    retries=2,
    retry_delay_seconds=10,
    cache_policy=NO_CACHE,
)
def load_drops(ctx: RunContext, exports: Path) -> load.LoadSummary:
    """Copy the published warehouse into the run's own file and read every new export file into it.

    I/O on the drop share can fail transiently: a retry starts again from a fresh copy, so a half-done
    attempt never counts.
    """
    secret = keys.load_key(ctx.warehouse)
    publish.stage_copy(ctx.warehouse, ctx.building, ctx.settings.storage_version)
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


@task(name="build_core", timeout_seconds=TASK_TIMEOUT_SECONDS, cache_policy=NO_CACHE)
def build_core(ctx: RunContext) -> dict[str, int]:
    con = _open(ctx)
    try:
        counts = core_build.build_core(con, run_id=ctx.run_id)
    finally:
        con.close()
    get_run_logger().info("core: %s", ", ".join(f"{k} {v}" for k, v in counts.items()))
    return counts


@task(name="build_quality", timeout_seconds=TASK_TIMEOUT_SECONDS, cache_policy=NO_CACHE)
def build_quality(ctx: RunContext) -> dict[str, int]:
    """R1 re-treatment flags and R2 plan completion (SQL): what both validation and the metrics read.

    SQL only: it runs while the background imports finish. Returns the night's flag counts (for its summary)."""
    con = _open(ctx)
    try:
        quality_tables.build(con, ctx.settings, ctx.as_of)
        flags = {
            "re-treatment flags (R1)": scalar(con, "select count(*) from quality.retreatment_flags"),
            "incomplete plans (R2)": scalar(
                con, "select count(*) from quality.plan_completion where completion = 'incomplete'"
            ),
        }
    finally:
        con.close()
    return flags


@task(name="validation_scope", timeout_seconds=TASK_TIMEOUT_SECONDS, cache_policy=NO_CACHE)
def validation_scope(ctx: RunContext, full: bool = False):
    """Which rows the night validates, why, and how many sessions that is (validation.decide_scope): the flow
    runs validation beside the metrics, or before them when it reads more than `[validation]
    beside_metrics_up_to` sessions."""
    imports_ready()
    from clinic_outcomes.validation import validate as validation

    con = _open(ctx)
    try:
        scope = validation.decide_scope(con, run_id=ctx.run_id, settings=ctx.settings, as_of=ctx.as_of, full=full)
    finally:
        con.close()
    get_run_logger().info("validation scope: %s (%s), %d sessions", scope.scope, scope.reason, scope.sessions)
    return scope


# validate and compute_metrics run in worker threads (submitted), where Prefect cannot interrupt a task (it
# warned so on every night when given a timeout): the flow's own timeout bounds them.
@task(name="validate", cache_policy=NO_CACHE)
def validate(ctx: RunContext, scope):
    """Every Great Expectations suite over the rows of `scope` (validation_scope's: the night's rows, or every
    row); the data-quality page (history of every check) into the run's report folder."""
    imports_ready()
    from clinic_outcomes.validation import validate as validation

    start = time.perf_counter()
    con = _open(ctx)
    logger = get_run_logger()
    try:
        outcome = validation.validate(
            con,
            run_id=ctx.run_id,
            settings=ctx.settings,
            as_of=ctx.as_of,
            docs_dir=ctx.report_dir / DATA_QUALITY_DIR,
            scope=scope.scope,
        )
    finally:
        con.close()
    for failure in outcome.critical_failures:
        logger.error("critical: %s", failure)
    logger.info(
        "validation: %d critical failures, %d warnings failed", len(outcome.critical_failures), outcome.warnings_failed
    )
    return outcome, round(time.perf_counter() - start, 3)


@task(name="compute_metrics", cache_policy=NO_CACHE)
def compute_metrics(ctx: RunContext) -> tuple[dict[str, int], float]:
    imports_ready()
    from clinic_outcomes.metrics import marts as metrics

    start = time.perf_counter()
    con = _open(ctx)
    try:
        counts = metrics.compute_marts(con, ctx.settings, ctx.as_of, run_id=ctx.run_id)
    finally:
        con.close()
    get_run_logger().info("marts: %s", ", ".join(f"{k} {v}" for k, v in counts.items()))
    return counts, round(time.perf_counter() - start, 3)


@task(
    name="render_report",
    timeout_seconds=TASK_TIMEOUT_SECONDS,
    retry_condition_fn=transient_io_error,
    retries=1,
    retry_delay_seconds=5,
    cache_policy=NO_CACHE,
)
def render_report(ctx: RunContext, journal: publish.RunJournal, record: publish.RunRecord):
    """Record this run in ops.runs (as it will stand once published), then render the report from the warehouse."""
    imports_ready()
    from clinic_outcomes.report import render as report

    con = _open(ctx)
    try:
        write_ops_runs(con, journal, record)
        create_views(con)
        paths = report.render_report(
            con,
            settings=ctx.settings,
            as_of=ctx.as_of,
            out_dir=ctx.report_dir,
            data_docs_href=f"{DATA_QUALITY_DIR}/index.html",
            run_id=ctx.run_id,
            previous=_published_report(ctx),
        )
    finally:
        con.close()
    if paths.pdfs_reused:
        get_run_logger().info("%d PDFs unchanged since the last published report, copied from it", len(paths.pdfs_reused))
    return paths


def _published_report(ctx: RunContext) -> Path | None:
    """The last published report's folder (reports/latest), whose unchanged PDFs this run's report reuses."""
    latest = ctx.reports / "latest"
    return latest.resolve() if latest.is_dir() else None


@task(
    name="publish",
    timeout_seconds=TASK_TIMEOUT_SECONDS,
    retry_condition_fn=transient_io_error,
    retries=2,
    retry_delay_seconds=5,
    cache_policy=NO_CACHE,
)
def publish_run(ctx: RunContext) -> Path:
    """The warehouse rename is the night's commit point; the report link follows it (and is reconciled with
    the published warehouse at the start of every run, should a run stop between the two)."""
    if ctx.building.exists():  # absent on a retry after the rename: the warehouse is already published
        publish.publish_warehouse(ctx.building, ctx.warehouse)
    latest = publish.publish_reports(ctx.reports, ctx.report_dir)
    get_run_logger().info("published %s and %s", ctx.warehouse, latest)
    return latest
