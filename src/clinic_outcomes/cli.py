"""`clinic-outcomes`: the command line of interface.md."""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
from pathlib import Path

from clinic_outcomes.synthetic.network import DEMO_DAYS, DEMO_PATIENTS

# Offline by default: no telemetry, before anything imports Prefect.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
# The temporary local API server (when no PREFECT_API_URL is set) can take long to start on a busy machine.
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a YYYY-MM-DD date") from None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="clinic-outcomes", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    def with_config(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--config", type=Path, help="settings TOML file (thresholds, clinic time zones, schedule)")
        return p

    demo = with_config(sub.add_parser("demo", help="generate a synthetic clinic network and run the nightly pipeline on it"))
    demo.add_argument("--dir", type=Path, default=Path("demo"), help="where to put exports, warehouse and reports (default ./demo)")
    demo.add_argument("--patients", type=int, default=DEMO_PATIENTS)
    demo.add_argument("--days", type=int, default=DEMO_DAYS)
    demo.add_argument("--seed", type=int, default=7)

    run = with_config(sub.add_parser("run", help="one nightly run: load new drops, validate, compute, publish"))
    run.add_argument("--exports", type=Path, required=True)
    run.add_argument("--warehouse", type=Path, required=True)
    run.add_argument("--reports", type=Path, required=True)
    run.add_argument("--as-of", type=_date, help="evaluation date (default: today in --timezone)")
    run.add_argument("--timezone", help="IANA zone for clinics the settings do not name (default UTC)")

    serve = with_config(sub.add_parser("serve", help="serve the nightly run as a Prefect deployment on a cron schedule"))
    serve.add_argument("--exports", type=Path, required=True)
    serve.add_argument("--warehouse", type=Path, required=True)
    serve.add_argument("--reports", type=Path, required=True)
    serve.add_argument("--cron", help='cron expression (default from settings, "0 2 * * *")')
    serve.add_argument("--timezone", help="zone of the schedule and of clinics the settings do not name")
    serve.add_argument("--name", default="nightly", help="deployment name (default nightly)")

    query = with_config(sub.add_parser(
        "query",
        help="ad-hoc read-only SQL against the warehouse",
        description="Run one SQL query on the warehouse. It reads the warehouse and nothing else (no other file, no "
        "environment, no network, no extension install) and writes nothing anywhere. In CSV output, a text cell "
        "starting with =, +, -, @, a tab or a carriage return is written with a leading ' so that a spreadsheet "
        "shows it instead of running it as a formula.",
    ))
    query.add_argument("--warehouse", type=Path, required=True)
    query.add_argument("sql")
    query.add_argument("--format", choices=("table", "csv", "json"), default="table")

    generate = sub.add_parser("generate", help="write a synthetic export (one drop per day)")
    generate.add_argument("--out", type=Path, required=True)
    generate.add_argument("--patients", type=int, default=DEMO_PATIENTS)
    generate.add_argument("--days", type=int, default=DEMO_DAYS)
    generate.add_argument("--seed", type=int, default=7)
    generate.add_argument("--dirty", action="store_true", help="plant a known share of malformed rows and files")
    return parser


def _fail(message: str, code: int = 1) -> int:
    print(f"clinic-outcomes: {message}", file=sys.stderr)
    return code


def _print_published(result, *extra: str) -> None:
    """Where the night's outputs are; the report's path comes last (the README promises it ends the demo)."""
    print(f"warehouse: {result.warehouse}")
    print(f"data docs: {result.data_docs}")
    if result.report_pdf:
        print(f"report pdf: {result.report_pdf}")
    for line in extra:
        print(line)
    print(f"report: {result.report_html}")


def cmd_run(args) -> int:
    from flows.nightly import nightly

    result = nightly(
        exports=str(args.exports),
        warehouse=str(args.warehouse),
        reports=str(args.reports),
        as_of=args.as_of,
        timezone=args.timezone,
        config=str(args.config) if args.config else None,
    )
    print(f"run {result.run_id} published: {result.rows_loaded} rows loaded, {result.rows_rejected} rejected, "
          f"{result.expectations_failed} expectations failed")
    _print_published(result)
    return 0


def cmd_demo(args) -> int:
    from clinic_outcomes.synthetic.generate import generate
    from flows.nightly import nightly

    base = args.dir.resolve()
    exports = base / "exports"
    summary = generate(exports, patients=args.patients, days=args.days, seed=args.seed)
    config = args.config or summary.settings_path
    end_date = summary.end_date
    print(f"generated {summary.sessions} sessions of {summary.patients} patients in {summary.drops} drops under {exports}")
    result = nightly(
        exports=str(exports),
        warehouse=str(base / "warehouse.duckdb"),
        reports=str(base / "reports"),
        as_of=end_date + dt.timedelta(days=1),
        config=str(config),
    )
    _print_published(
        result,
        "try: uv run clinic-outcomes query --warehouse "
        f"{result.warehouse} \"select completion, count(*) from quality.plan_completion group by all\"",
    )
    return 0


def cmd_query(args) -> int:
    import duckdb

    from clinic_outcomes.loading.keys import KEY_ENV
    from clinic_outcomes.query import QueryError, format_result, run_query

    os.environ.pop(KEY_ENV, None)  # the patient-key secret is never in a query's reach
    try:
        table = run_query(args.warehouse, args.sql)
    except QueryError as exc:
        return _fail(str(exc))
    except duckdb.Error as exc:
        return _fail(str(exc).strip())  # DuckDB's whole message: hints and the caret line included
    sys.stdout.write(format_result(table, args.format))
    return 0


def cmd_generate(args) -> int:
    from clinic_outcomes.synthetic.generate import generate, main_summary_lines

    summary = generate(args.out, patients=args.patients, days=args.days, seed=args.seed, dirty=args.dirty)
    for line in main_summary_lines(summary):
        print(line)
    return 0


def cmd_serve(args) -> int:
    from flows.deployment import serve

    serve(
        exports=args.exports,
        warehouse=args.warehouse,
        reports=args.reports,
        config=args.config,
        cron=args.cron,
        timezone=args.timezone,
        name=args.name,
    )
    return 0


COMMANDS = {"run": cmd_run, "demo": cmd_demo, "query": cmd_query, "generate": cmd_generate, "serve": cmd_serve}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from clinic_outcomes.loading.keys import PatientKeyError
    from clinic_outcomes.publishing.publish import RunInProgress
    from clinic_outcomes.settings import SettingsError

    try:
        return COMMANDS[args.command](args)
    except (SettingsError, RunInProgress, PatientKeyError, FileNotFoundError) as exc:
        return _fail(str(exc))
    except KeyboardInterrupt:
        return _fail("interrupted", 130)
    except Exception as exc:  # the flow's own failure: one line, the reason
        return _fail(f"run failed, nothing published: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")


if __name__ == "__main__":
    sys.exit(main())
