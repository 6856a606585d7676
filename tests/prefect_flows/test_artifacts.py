"""The night's artifacts as text (flows/artifacts.py): counts, check names and stage times, never a value.

(The artifacts of real runs, read back through the Prefect client, are checked in test_serve.py.)

Mutants tried (each made a test here fail): the sampled `details` put into the failed-checks rows; the
failure's message written into the summary instead of its type; passed checks kept in the table; a `|` in a
name left as is (breaks the markdown table).
"""

from __future__ import annotations

from pathlib import Path

from clinic_outcomes.publishing.publish import RunRecord
from flows.artifacts import FAILED_CHECK_COLUMNS, failed_checks, summary_markdown

HOSTILE = "P-000123 <img src=x onerror=alert(1)> 555-0100"


def _results():
    base = dict(description="d", dimension="conformance", element_count=50, unexpected_percent=4.0)
    return [
        dict(base, suite="core_sessions", expectation="expect_column_values_to_be_unique", column_name="session_id",
             severity="critical", success=True, unexpected_count=0, details=None),
        dict(base, suite="core_needle_sites", expectation="expect_column_values_to_match_regex", column_name="site",
             severity="warning", success=False, unexpected_count=2, details=f"e.g. {HOSTILE}"),
        dict(base, suite="core_sessions", expectation="expect_column_values_to_not_be_null", column_name="clinic_id",
             severity="critical", success=False, unexpected_count=1, details=HOSTILE),
    ]


def _record():
    record = RunRecord(run_id=7, started_at="2026-11-25T07:00:00+00:00", as_of="2026-11-25", rows_loaded=1200,
                       rows_rejected=3, files_loaded=5, files_rejected=1)
    record.stage_seconds = {"load": 1.234, "core": 0.5, "quality|x": 0.25}
    return record


def test_the_failed_checks_hold_what_failed_and_how_often_but_no_value():
    rows = failed_checks(_results())
    assert [tuple(r[c] for c in FAILED_CHECK_COLUMNS) for r in rows] == [
        ("core_sessions", "expect_column_values_to_not_be_null", "clinic_id", "critical", "conformance", 1, 50),
        ("core_needle_sites", "expect_column_values_to_match_regex", "site", "warning", "conformance", 2, 50),
    ]
    assert HOSTILE not in repr(rows) and "P-000123" not in repr(rows)


def test_the_summary_of_a_published_night():
    text = summary_markdown(run_name="nightly 2026-11-25", record=_record(),
                            flags={"re-treatment flags (R1)": 4, "incomplete plans (R2)": 9},
                            checks=failed_checks(_results()), report=Path("/srv/reports/runs/run-00007/report.html"))
    assert text.startswith("# nightly 2026-11-25: published\n")
    for line in ("| new export files read | 5 (1 rejected whole) |", "| rows loaded | 1200 |",
                 "| rows rejected | 3 (see quality.rejected_rows in the warehouse) |", "| re-treatment flags (R1) | 4 |",
                 "| incomplete plans (R2) | 9 |", "| failed checks | 2 (1 critical) |", "| load | 1.2 |",
                 "| quality\\|x | 0.2 |", "- critical: core_sessions / expect_column_values_to_not_be_null on clinic_id: 1 of 50 rows",
                 "Report: [report.html](file:///srv/reports/runs/run-00007/report.html)"):
        assert line in text.splitlines(), line
    assert HOSTILE not in text and "P-000123" not in text


def test_the_summary_of_a_failed_night_names_the_failure_but_not_its_message():
    failure = RuntimeError(f"Conversion Error: could not convert '{HOSTILE}' to INT32")
    text = summary_markdown(run_name="nightly 2026-11-25", record=_record(), flags=None,
                            checks=failed_checks(_results()), report=None, failure=failure)
    assert text.startswith("# nightly 2026-11-25: failed, nothing published (RuntimeError)\n")
    assert "The last good warehouse and report are unchanged." in text
    assert "Report:" not in text
    assert HOSTILE not in text and "Conversion Error" not in text
