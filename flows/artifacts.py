"""What each night leaves in Prefect's UI: a markdown summary, a link to the report, a table of failed checks.

Artifacts are kept by Prefect's server, outside the warehouse's access control, so they carry counts, names of
checks and stage times only: never a patient identifier, a rejected row's value (the checks' sampled unexpected
values and the exceptions' texts are left out for that reason) or the patient-key secret. A failed night leaves
the summary and the table too (that is when they matter); only a published night links a report.

Keys (lowercase, dashes) make each a versioned series across nights on the Artifacts page.
"""

from pathlib import Path

SUMMARY_KEY = "nightly-summary"
REPORT_KEY = "nightly-report"
FAILED_CHECKS_KEY = "nightly-failed-checks"

# Columns of the failed-checks table: what a check is and how many rows broke it, never which values.
FAILED_CHECK_COLUMNS = ("suite", "expectation", "column", "severity", "dimension", "unexpected_rows", "rows_checked")


def failed_checks(results: list[dict] | None) -> list[dict]:
    """The failed expectations of a night (rows of quality.expectation_results), without their sampled values."""
    rows = []
    for result in results or []:
        if result.get("success"):
            continue
        rows.append(
            {
                "suite": result.get("suite"),
                "expectation": result.get("expectation"),
                "column": result.get("column_name"),
                "severity": result.get("severity"),
                "dimension": result.get("dimension"),
                "unexpected_rows": result.get("unexpected_count"),
                "rows_checked": result.get("element_count"),
            }
        )
    return sorted(rows, key=lambda r: (r["severity"] != "critical", r["suite"] or "", r["expectation"] or ""))


def _cell(value) -> str:
    """Markdown table cell text: our own names and numbers only, with the table's delimiters made harmless."""
    text = "" if value is None else str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def summary_markdown(
    *,
    run_name: str,
    record,
    flags: dict[str, int] | None,
    checks: list[dict],
    report: Path | None,
    failure: BaseException | None = None,
) -> str:
    """The night in a few lines (record: publishing.publish.RunRecord)."""
    status = "published" if failure is None else f"failed, nothing published ({type(failure).__name__})"
    lines = [
        f"# {run_name}: {status}",
        "",
        f"Run {record.run_id}, as of {record.as_of}, started {record.started_at}.",
        "",
        "| | |",
        "|---|---|",
        f"| new export files read | {record.files_loaded} ({record.files_rejected} rejected whole) |",
        f"| rows loaded | {record.rows_loaded} |",
        f"| rows rejected | {record.rows_rejected} (see quality.rejected_rows in the warehouse) |",
    ]
    for name, count in (flags or {}).items():
        lines.append(f"| {_cell(name)} | {count} |")
    critical = sum(1 for c in checks if c["severity"] == "critical")
    lines.append(f"| failed checks | {len(checks)} ({critical} critical) |")
    lines += ["", "## Stage times", "", "| stage | seconds |", "|---|---|"]
    lines += [f"| {_cell(stage)} | {seconds:.1f} |" for stage, seconds in record.stage_seconds.items()]
    if checks:
        lines += ["", "## Failed checks", ""]
        lines += [
            f"- {_cell(c['severity'])}: {_cell(c['suite'])} / {_cell(c['expectation'])}"
            + (f" on {_cell(c['column'])}" if c["column"] else "")
            + (f": {c['unexpected_rows']} of {c['rows_checked']} rows" if c["unexpected_rows"] is not None else "")
            for c in checks
        ]
    if failure is not None:
        lines += [
            "",
            "The last good warehouse and report are unchanged. The reason is in this run's logs and in "
            "ops.runs.message (the warehouse's run journal); it is not repeated here, as it may quote a value.",
        ]
    if report is not None:
        lines += ["", f"Report: [{report.name}]({report.as_uri()})"]
    return "\n".join(lines) + "\n"


def create_night_artifacts(
    *,
    run_name: str,
    record,
    flags: dict[str, int] | None,
    results: list[dict] | None,
    report: Path | None,
    failure: BaseException | None = None,
) -> None:
    """Create the night's artifacts in the current flow run."""
    from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact

    checks = failed_checks(results)
    create_markdown_artifact(
        summary_markdown(run_name=run_name, record=record, flags=flags, checks=checks, report=report, failure=failure),
        key=SUMMARY_KEY,
        description=f"{run_name}: files, rows loaded and rejected, flags, failed checks, stage times",
    )
    create_table_artifact(
        [{column: check[column] for column in FAILED_CHECK_COLUMNS} for check in checks],
        key=FAILED_CHECKS_KEY,
        description=f"{run_name}: {len(checks)} failed checks (no values; the warehouse's quality tables have them)",
    )
    if report is not None:
        create_link_artifact(
            report.as_uri(), link_text=f"report as of {record.as_of}", key=REPORT_KEY,
            description=f"{run_name}: the night's report (HTML; the PDF and the data-quality page sit beside it)",
        )
