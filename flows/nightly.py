"""The nightly run, as a Prefect 3 flow.

    load drops -> build core -> quality flags -> (validate | metrics) -> report -> publish

Every task works on the run's own copy of the warehouse (a file path, so each
task opens its own short connection and a retry starts clean); nothing is
visible to readers until `publish` renames the finished file over the
published one. Validation and metrics run side by side (GX is single-threaded
Python, Polars releases the GIL), or one after the other when validation reads
more than `[validation] beside_metrics_up_to` sessions (a full validation of a
large warehouse: the night's peak memory is then the larger of the two, not
their sum). A critical expectation failure stops the run
before the report: the published warehouse and report stay as they were and the
run fails with the reason.

Each flow run is named by its as-of date ("nightly 2026-11-24"), also when a schedule leaves `as_of` unset:
the name resolves the default date (today in the settings' zone) the same way the body does. Every night,
published or failed, leaves its artifacts (flows/artifacts.py) and records Prefect's flow-run id in ops.runs.
Timeouts are generous bounds for a hung night, not budgets: the 10M-session benchmark night takes ~6 min; a
task in the flow's thread is stopped after 2 hours (validate and metrics, in worker threads that Prefect cannot
interrupt, only by the flow's timeout) and the flow after 6.
"""

import datetime as dt
import os
import time
from dataclasses import dataclass
from pathlib import Path

# Offline by default: no telemetry. (Set before Prefect is imported.)
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
# The temporary local API server (when no PREFECT_API_URL is set) can take long to start on a busy machine.
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")

from prefect import flow, get_run_logger  # noqa: E402

from clinic_outcomes.publishing import publish  # noqa: E402
from clinic_outcomes.runtime import (  # noqa: E402
    peak_memory_mb,
    progress,
    quiet_weasyprint_font_notices,
    release_memory,
    reset_peak_memory,
    resident_memory_mb,
    today_in,
    warm_imports,
)
from clinic_outcomes.settings import Settings, SettingsError, load_settings  # noqa: E402
from flows.artifacts import create_night_artifacts  # noqa: E402
from flows.tasks import (  # noqa: E402
    DATA_QUALITY_DIR,
    RunContext,
    build_core,
    build_quality,
    compute_metrics,
    load_drops,
    publish_run,
    render_report,
    validate,
    validation_scope,
)


FLOW_TIMEOUT_SECONDS = 6 * 3600

quiet_weasyprint_font_notices()


class CriticalChecksFailed(RuntimeError):
    """A critical expectation failed: the run must not publish."""


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


def _validate_and_compute(ctx: RunContext, record: publish.RunRecord, full_validation: bool = False):
    """Validation and the metrics: side by side, or (a validation reading more than `[validation]
    beside_metrics_up_to` sessions) validation first, so that the peak memory is the larger of the two, not their
    sum, and the memory validation freed is released before the metrics start; then a critical failure skips the
    metrics, which would not be published."""
    scope = validation_scope(ctx, full_validation)
    record.validate_beside_metrics = scope.beside_metrics(ctx.settings)
    logger = get_run_logger()
    checks = validate.submit(ctx, scope)
    if record.validate_beside_metrics:
        marts = compute_metrics.submit(ctx)
        outcome, validate_seconds = checks.result()
    else:
        outcome, validate_seconds = checks.result()
        if outcome.critical_failures:
            record.concurrent_seconds = {"validate": validate_seconds}
            logger.info("validate %.2f s; the metrics were not computed (a critical check failed)", validate_seconds)
            return outcome, None
        release_memory()  # what validation freed goes back before the metrics start
        marts = compute_metrics.submit(ctx)
    counts, metrics_seconds = marts.result()
    record.concurrent_seconds = {"validate": validate_seconds, "metrics": metrics_seconds}
    how = "side by side" if record.validate_beside_metrics else (
        f"one after the other ({scope.sessions} sessions to validate, more than [validation] beside_metrics_up_to = "
        f"{ctx.settings.validate_beside_metrics_up_to})")
    logger.info("validate %.2f s and metrics %.2f s, %s", validate_seconds, metrics_seconds, how)
    return outcome, counts


def _iso_now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat()


def resolve_as_of(as_of, settings: Settings) -> dt.date:
    """The night's as-of date: the one given, else today in the settings' default zone."""
    if as_of is None:
        return today_in(settings.timezone)
    return as_of if isinstance(as_of, dt.date) else dt.date.fromisoformat(str(as_of))


def run_name() -> str:
    """`nightly <as-of>` for every flow run, a scheduled one with `as_of` unset included.

    (A `flow_run_name` template prints an unset parameter as "None" in Prefect 3.8.) When the settings cannot
    be read, the default zone is UTC here; the flow itself then fails with the settings' message.
    """
    from prefect.runtime import flow_run

    parameters = flow_run.parameters or {}
    try:
        settings = load_settings(parameters.get("config")).with_timezone(parameters.get("timezone"))
    except SettingsError:
        settings = Settings()
    try:
        return f"nightly {resolve_as_of(parameters.get('as_of'), settings).isoformat()}"
    except ValueError:
        return f"nightly {parameters.get('as_of')}"


def _flow_run_id() -> str | None:
    from prefect.runtime import flow_run

    return str(flow_run.id) if flow_run.id else None


def _artifacts(ctx_run_name: str, **kwargs) -> None:
    """The night's artifacts; a failure to create them is logged, never the night's failure."""
    try:
        create_night_artifacts(run_name=ctx_run_name, **kwargs)
    except Exception as exc:  # noqa: BLE001 - the API may be away; the night's outcome stands
        get_run_logger().warning("could not create the night's artifacts: %s", type(exc).__name__)


# Real (not string) annotations in this module: a served deployment pickles the flow by value, and Prefect
# builds its parameter model from the annotations, which must resolve without this module's globals.
@flow(
    name="clinic-outcomes-nightly",
    flow_run_name=run_name,
    log_prints=True,
    timeout_seconds=FLOW_TIMEOUT_SECONDS,
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
    full_validation: bool = False,
) -> NightlyResult:
    """One nightly run: load new drops, validate, compute, publish warehouse and report.

    Validation reads the rows the night wrote, or every row on a full rebuild, on the settings'
    `[validation] full_on` day, or when `full_validation` is set."""
    settings = load_settings(config).with_timezone(timezone)
    as_of = resolve_as_of(as_of, settings)
    name = f"nightly {as_of.isoformat()}"
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
        record = publish.RunRecord(
            run_id=run_id, started_at=_iso_now(), as_of=as_of.isoformat(), flow_run_id=_flow_run_id()
        )
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

        def timed(stage, fn, *args):
            progress(stage)
            reset_peak_memory()
            start = time.perf_counter()
            value = fn(*args)
            peak = peak_memory_mb()
            if peak is not None:
                record.stage_peak_mb[stage] = peak
            release_memory()  # the next stage starts on what this one still holds, not on what it freed
            timings[stage] = round(time.perf_counter() - start, 3)  # the release counts in the stage's time
            end = resident_memory_mb()
            if end is not None:
                record.stage_end_mb[stage] = end
            return value

        flags: dict[str, int] | None = None
        outcome = None
        try:
            summary = timed("load", load_drops, ctx, exports_path)
            record.rows_loaded, record.rows_rejected = summary.rows_loaded, summary.rows_rejected
            record.files_loaded, record.files_rejected = len(summary.files), summary.files_rejected
            progress("load", f"{record.files_loaded} new files, {record.rows_loaded} rows loaded, "
                             f"{record.rows_rejected} rejected ({timings['load']:.1f} s)")
            core_counts = timed("core", build_core, ctx)
            progress("core", ", ".join(f"{k} {v}" for k, v in core_counts.items()) + f" ({timings['core']:.1f} s)")
            flags = timed("quality", build_quality, ctx)
            progress("quality", ", ".join(f"{k} {v}" for k, v in flags.items()) + f" ({timings['quality']:.1f} s)")
            # Great Expectations is single-threaded Python; the Polars metrics release the GIL: run them side by
            # side (or one after the other when validation reads many rows: _validate_and_compute). Metrics of a
            # night that fails a critical check are never published.
            outcome, _ = timed("validate_and_metrics", _validate_and_compute, ctx, record, full_validation)
            record.expectations_failed = len(outcome.critical_failures) + outcome.warnings_failed
            record.critical_failed = len(outcome.critical_failures)
            progress("validate_and_metrics", f"{len(outcome.results)} checks, {record.expectations_failed} failed "
                                             f"({record.critical_failed} critical) ({timings['validate_and_metrics']:.1f} s)")
            if outcome.critical_failures:
                raise CriticalChecksFailed(
                    f"{len(outcome.critical_failures)} critical expectation(s) failed, nothing published: "
                    + "; ".join(outcome.critical_failures[:3])
                    + f" (the failing values: {ctx.report_dir / DATA_QUALITY_DIR / 'index.html'})"
                )
            record.status, record.finished_at = "published", _iso_now()
            paths = timed("report", render_report, ctx, journal, record)
            progress("report", f"({timings['report']:.1f} s)")
            timed("publish", publish_run, ctx)
            progress("publish", f"({timings['publish']:.1f} s)")
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
            _artifacts(name, record=record, flags=flags, results=outcome.results if outcome else None,
                       report=None, failure=exc)
            raise

    logger.info("stage seconds: %s", timings)
    _artifacts(name, record=record, flags=flags, results=outcome.results, report=ctx.report_dir / Path(paths.html).name)
    latest = reports_path / "latest"
    return NightlyResult(
        run_id=run_id,
        status=record.status,
        warehouse=warehouse_path,
        report_html=latest / Path(paths.html).name,
        report_pdf=latest / Path(paths.pdf).name if getattr(paths, "pdf", None) else None,
        data_docs=latest / "data-quality" / "index.html",
        rows_loaded=record.rows_loaded,
        rows_rejected=record.rows_rejected,
        expectations_failed=record.expectations_failed,
    )
