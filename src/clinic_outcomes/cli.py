"""`clinic-outcomes`: the nightly pipeline's command line (demo, run, serve, query, generate).

Before any work starts, and before Prefect is imported (a few seconds), each command checks its arguments,
the settings file and the folders it needs, and refuses with one line naming what is wrong
(`clinic-outcomes: --exports /data/exports does not exist`). A failure once work has started is one line too,
worded for the command: only `run` and `demo` say "run failed, nothing published".

On a terminal (stdout a TTY) `run` and `demo` show the stage the night is in, with counts; piped or
scheduled, they print only their result lines.

Choices where the interface leaves room: the folder that holds the warehouse, and the one that holds the
reports folder, must exist (a typo must not create a new installation somewhere); the reports folder itself
and the warehouse file are created on the first night.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import sys
from pathlib import Path

from clinic_outcomes.synthetic.network import CLINICS, DEMO_DAYS, DEMO_PATIENTS

# Offline by default: no telemetry, before anything imports Prefect.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
# The temporary local API server (when no PREFECT_API_URL is set) can take long to start on a busy machine.
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")


class UsageError(ValueError):
    """An argument, setting or folder that cannot work; the message names it."""


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("clinic-outcomes")
    except PackageNotFoundError:  # a checkout that was never installed
        return "unknown"


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a YYYY-MM-DD date") from None


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return value


def _days(text: str) -> int:
    value = _positive(text)
    if value < 7:
        raise argparse.ArgumentTypeError(f"{text!r}: a synthetic export needs at least 7 days")
    return value


class _Parser(argparse.ArgumentParser):
    """argparse, with its usage errors as one line like every other refusal."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


EXAMPLES = {
    "demo": """examples:
  clinic-outcomes demo                        # ./demo: exports, warehouse.duckdb, reports/latest/report.html
  clinic-outcomes demo --dir /tmp/demo --patients 2000 --days 120""",
    "run": """examples:
  clinic-outcomes run --exports /data/exports --warehouse /data/warehouse.duckdb --reports /data/reports
  clinic-outcomes run --exports /data/exports --warehouse /data/warehouse.duckdb --reports /data/reports \\
      --as-of 2026-11-24 --timezone America/New_York --config /data/settings.toml

Exit status 0 when the night published (flags and rejected rows included); 1 with one line when it could not
(the last good warehouse and report stay); 2 for a wrong argument. The patient-key secret comes from
CLINIC_OUTCOMES_KEY, else from <warehouse>.key (created owner-only on the first night).""",
    "serve": """examples:
  clinic-outcomes serve --exports /data/exports --warehouse /data/warehouse.duckdb --reports /data/reports
  clinic-outcomes serve --exports /data/exports --warehouse /data/warehouse.duckdb --reports /data/reports \\
      --cron "30 1 * * *" --timezone America/Chicago

Registers the deployment `clinic-outcomes-nightly/<name>` with the Prefect API in PREFECT_API_URL and runs its
scheduled runs in this process, one at a time (a run due while one runs is cancelled). Stop with Ctrl-C.
prefect.yaml declares the same deployment for a process work pool.""",
    "query": """examples:
  clinic-outcomes query --warehouse /data/warehouse.duckdb "select * from views.plan_completion_by_clinic"
  clinic-outcomes query --warehouse /data/warehouse.duckdb --format csv \\
      "select clinic_id, count(*) as flags from quality.retreatment_flags group by all" > flags.csv

Read-only: the query reads the warehouse and nothing else, and writes nothing.""",
    "generate": """examples:
  clinic-outcomes generate --out /tmp/exports
  clinic-outcomes generate --out /tmp/exports --patients 5000 --days 180 --seed 11 --dirty
  clinic-outcomes generate --out /tmp/exports --patients 20000 --days 90 --clinics 40""",
}


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="clinic-outcomes",
        description="Nightly analytics for dry-needling clinics: EMR export drops -> DuckDB warehouse, data-quality "
        "checks, outcome metrics, manager report.",
        epilog="Run `clinic-outcomes COMMAND --help` for a command's options and examples.",
    )
    parser.add_argument("--version", action="version", version=f"clinic-outcomes {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        return sub.add_parser(
            name, help=help_text, description=help_text[0].upper() + help_text[1:] + ".",
            epilog=EXAMPLES[name], formatter_class=argparse.RawDescriptionHelpFormatter,
        )

    def with_config(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--config", type=Path, metavar="FILE",
                       help="settings TOML file: rule thresholds, clinic time zones and names, schedule, warehouse "
                            "(default: every default of the rules)")
        return p

    def installation(p: argparse.ArgumentParser) -> None:
        p.add_argument("--exports", type=Path, required=True, metavar="DIR",
                       help="the EMR export drops, one folder per drop (must exist)")
        p.add_argument("--warehouse", type=Path, required=True, metavar="FILE",
                       help="the published DuckDB warehouse (its folder must exist; the file is made on the first night)")
        p.add_argument("--reports", type=Path, required=True, metavar="DIR",
                       help="reports folder: reports/latest/ is the newest published report")

    demo = with_config(command("demo", "generate a synthetic clinic network and run the nightly pipeline on it"))
    demo.add_argument("--dir", type=Path, default=Path("demo"), metavar="DIR",
                      help="where to put exports, warehouse and reports (default ./demo)")
    demo.add_argument("--patients", type=_positive, default=DEMO_PATIENTS, metavar="N", help=f"patients (default {DEMO_PATIENTS})")
    demo.add_argument("--days", type=_days, default=DEMO_DAYS, metavar="N", help=f"days of history, at least 7 (default {DEMO_DAYS}: 18 months)")
    demo.add_argument("--seed", type=int, default=7, metavar="N", help="random seed (default 7)")

    run = with_config(command("run", "one nightly run: load new drops, validate, compute, publish warehouse and report"))
    installation(run)
    run.add_argument("--as-of", type=_date, metavar="DATE", help="evaluation date YYYY-MM-DD (default: today in --timezone)")
    run.add_argument("--timezone", metavar="TZ", help="IANA zone for clinics the settings do not name (default UTC)")
    run.add_argument("--full-validation", action="store_true",
                     help="validate every row tonight (default: the night's rows; every row on [validation] full_on)")

    serve = with_config(command("serve", "serve the nightly run as a Prefect deployment on a cron schedule"))
    installation(serve)
    serve.add_argument("--cron", metavar="EXPR", help='five-field cron expression (default from settings, "0 2 * * *")')
    serve.add_argument("--timezone", metavar="TZ", help="zone of the schedule and of clinics the settings do not name")
    serve.add_argument("--name", default="nightly", help="deployment name (default nightly)")

    query = with_config(command("query", "ad-hoc read-only SQL against the warehouse"))
    query.description = (
        "Run one SQL query on the warehouse. It reads the warehouse and nothing else (no other file, no "
        "environment, no network, no extension install) and writes nothing anywhere. In CSV output, a text cell "
        "starting with =, +, -, @, a tab or a carriage return is written with a leading ' so that a spreadsheet "
        "shows it instead of running it as a formula."
    )
    query.add_argument("--warehouse", type=Path, required=True, metavar="FILE", help="the DuckDB warehouse to read")
    query.add_argument("sql", help="one SQL query")
    query.add_argument("--format", choices=("table", "csv", "json"), default="table", help="output format (default table)")

    generate = command("generate", "write a synthetic export (one drop per day) and its settings.toml")
    generate.add_argument("--out", type=Path, required=True, metavar="DIR", help="folder to write the drops into")
    generate.add_argument("--patients", type=_positive, default=DEMO_PATIENTS, metavar="N", help=f"patients (default {DEMO_PATIENTS})")
    generate.add_argument("--days", type=_days, default=DEMO_DAYS, metavar="N", help=f"days of history, at least 7 (default {DEMO_DAYS}: 18 months)")
    generate.add_argument("--seed", type=int, default=7, metavar="N", help="random seed (default 7)")
    generate.add_argument("--dirty", action="store_true", help="plant a known share of malformed rows and files")
    generate.add_argument("--clinics", type=_positive, metavar="N",
                          help=f"clinics in the network (default {len(CLINICS)}: the demo network's clinics, in US zones; "
                               "another N: clinic_001 .. clinic_NNN in US, European and Asia-Pacific zones)")
    return parser


# --------------------------------------------------------------------------- checks before any work

_CRON_FIELD = re.compile(r"^[0-9A-Za-z*/,?#LW-]+$")


def _check_settings(args) -> None:
    from clinic_outcomes.settings import load_settings

    if args.config is not None and not args.config.is_file():
        raise UsageError(f"--config {args.config} does not exist" if not args.config.exists()
                         else f"--config {args.config} is not a file")
    settings = load_settings(args.config)  # SettingsError names the setting
    settings.with_timezone(getattr(args, "timezone", None))  # --timezone must be a known zone


def _check_installation(args) -> None:
    exports, warehouse, reports = args.exports, args.warehouse, args.reports
    if not exports.exists():
        raise UsageError(f"--exports {exports} does not exist")
    if not exports.is_dir():
        raise UsageError(f"--exports {exports} is not a folder")
    if not os.access(exports, os.R_OK | os.X_OK):
        raise UsageError(f"--exports {exports} cannot be read")
    if warehouse.exists() and not warehouse.is_file():
        raise UsageError(f"--warehouse {warehouse} is not a file")
    if not warehouse.resolve().parent.is_dir():
        raise UsageError(f"--warehouse {warehouse}: its folder {warehouse.resolve().parent} does not exist")
    if reports.exists() and not reports.is_dir():
        raise UsageError(f"--reports {reports} is not a folder")
    if not reports.resolve().parent.is_dir():
        raise UsageError(f"--reports {reports}: its folder {reports.resolve().parent} does not exist")
    _check_key(warehouse)


def _check_key(warehouse: Path) -> None:
    """The patient-key secret as the night will read it, checked without creating anything."""
    from clinic_outcomes.loading.keys import KEY_ENV, MIN_KEY_CHARS, key_file_for

    from_env = os.environ.get(KEY_ENV)
    if from_env is not None:
        if len(from_env) < MIN_KEY_CHARS:
            raise UsageError(f"{KEY_ENV} is set but shorter than {MIN_KEY_CHARS} characters")
        return
    path = key_file_for(warehouse.resolve())
    if path.exists():
        mode = path.stat().st_mode & 0o777
        if mode & 0o077:
            raise UsageError(f"key file {path} is readable by others (mode {mode:o}); chmod 600 it")


def _check_cron(cron: str | None) -> None:
    if cron is None:
        return
    fields = cron.split()
    if len(fields) != 5 or not all(_CRON_FIELD.match(f) for f in fields):
        raise UsageError(f'--cron {cron!r} is not a five-field cron expression such as "0 2 * * *"')


def check(args) -> None:
    """Everything a command needs, checked before it starts (and before Prefect is imported)."""
    if args.command in ("run", "serve"):
        _check_installation(args)
        _check_settings(args)
    if args.command == "serve":
        _check_cron(args.cron)
    if args.command == "demo":
        if args.config is not None:
            _check_settings(args)
        if args.dir.exists() and not args.dir.is_dir():
            raise UsageError(f"--dir {args.dir} is not a folder")
    if args.command == "query":
        if args.config is not None:
            _check_settings(args)
        if not args.warehouse.is_file():
            raise UsageError(f"--warehouse {args.warehouse} does not exist" if not args.warehouse.exists()
                             else f"--warehouse {args.warehouse} is not a file")
    if args.command == "generate":
        if args.out.exists() and not args.out.is_dir():
            raise UsageError(f"--out {args.out} is not a folder")
        if args.out.is_dir() and any(args.out.iterdir()):
            raise UsageError(f"--out {args.out} is not empty; give a new or empty folder")


# --------------------------------------------------------------------------- progress on a terminal


def _show_progress_on_a_terminal() -> None:
    """Stage and counts on stdout, only when it is a terminal (never in logs, pipes or scheduled runs)."""
    if not sys.stdout.isatty():
        return
    from rich.console import Console

    from clinic_outcomes.runtime import set_progress_listener

    console = Console(highlight=False)

    def show(stage: str, detail: str) -> None:
        if detail:
            console.print(f"  [green]done[/] {stage}: {detail}", markup=True)
        else:
            console.print(f"[bold]{stage}[/] ...", markup=True)

    set_progress_listener(show)


# --------------------------------------------------------------------------- commands


def _fail(message: str, code: int = 1) -> int:
    print(f"clinic-outcomes: {message}", file=sys.stderr)
    return code


def _print_published(result, *extra: str) -> None:
    """Where the night's outputs are; the report's path comes last (the README promises it ends the demo)."""
    print(f"warehouse: {result.warehouse}")
    print(f"data quality: {result.data_docs}")
    if result.report_pdf:
        print(f"report pdf: {result.report_pdf}")
    for line in extra:
        print(line)
    print(f"report: {result.report_html}")


def cmd_run(args) -> int:
    _show_progress_on_a_terminal()
    from flows.nightly import nightly

    result = nightly(
        exports=str(args.exports),
        warehouse=str(args.warehouse),
        reports=str(args.reports),
        as_of=args.as_of,
        timezone=args.timezone,
        config=str(args.config) if args.config else None,
        full_validation=args.full_validation,
    )
    print(f"run {result.run_id} published: {result.rows_loaded} rows loaded, {result.rows_rejected} rejected, "
          f"{result.expectations_failed} expectations failed")
    _print_published(result)
    return 0


def cmd_demo(args) -> int:
    from clinic_outcomes.synthetic.generate import generate

    base = args.dir.resolve()
    exports = base / "exports"
    summary = generate(exports, patients=args.patients, days=args.days, seed=args.seed)
    config = args.config or summary.settings_path
    end_date = summary.end_date
    print(f"generated {summary.sessions} sessions of {summary.patients} patients in {summary.drops} drops under {exports}")
    _show_progress_on_a_terminal()
    from flows.nightly import nightly

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
        f"{result.warehouse} \"select * from views.plan_completion_by_clinic\"",
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

    summary = generate(args.out, patients=args.patients, days=args.days, seed=args.seed, dirty=args.dirty,
                       clinics=args.clinics)
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

# How a failure after the checks reads, per command: only a night can have "published nothing".
FAILURE_PREFIX = {
    "run": "run failed, nothing published",
    "demo": "run failed, nothing published",
    "serve": "serve stopped",
    "generate": "generate failed",
    "query": "query failed",
}


def _one_line(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from clinic_outcomes.settings import SettingsError

    try:
        check(args)
    except (UsageError, SettingsError) as exc:
        return _fail(str(exc), 2)

    from clinic_outcomes.loading.keys import PatientKeyError
    from clinic_outcomes.publishing.publish import RunInProgress

    try:
        return COMMANDS[args.command](args)
    except (SettingsError, RunInProgress, PatientKeyError) as exc:
        return _fail(str(exc))
    except KeyboardInterrupt:
        return _fail("interrupted", 130)
    except Exception as exc:  # the command's own failure: one line, the reason
        return _fail(f"{FAILURE_PREFIX[args.command]}: {_one_line(exc)}")
    finally:
        from clinic_outcomes.runtime import set_progress_listener

        set_progress_listener(None)


if __name__ == "__main__":
    sys.exit(main())
