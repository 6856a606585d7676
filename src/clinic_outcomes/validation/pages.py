"""The data-quality page: every check of this night and its history across nights, from
quality.expectation_results, as one self-contained HTML file.

Why our own page and not GX's Data Docs: Data Docs load Bootstrap, jQuery and Vega from public CDNs (a page
that opens blank or half-styled offline, and tells a third party each time it is opened) and write sampled
unexpected values unescaped (an export's text becomes markup in a manager's browser). Bundling their assets
would still leave a page per validation with no view across nights, while what a reader asks is "what failed
tonight, and since when?": that is one table of this night's checks and one of each check over the last
nights, which the warehouse already holds. So the page is built from the table, with

- no script at all, and a Content-Security-Policy that forbids every fetch and script (`default-src 'none'`),
  so nothing is loaded from the network and an injected script could not run even if escaping failed;
- every value escaped (Jinja2 autoescape): a needle-site code such as `<img src=x onerror=...>` in a sample of
  failing values shows as that text;
- inline CSS only, readable printed.

The history holds the last HISTORY_RUNS runs of the warehouse (published nights, and the night being built).
Each run shows its scope (quality.expectation_results.scope): `night`, when its row-level checks read the
rows that night wrote, or `full`, every row; a check's scope is in its own column too (R2's plan_completion is
rewritten, so validated, whole every night). A run's scope is `night` when any of its checks read the night's
rows; runs from before the column show none.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import duckdb
import jinja2

HISTORY_RUNS = 30

CONTENT_SECURITY_POLICY = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"

_TEMPLATE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{{ csp }}">
<meta name="referrer" content="no-referrer">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Data quality checks, run {{ run.run_id }} (as of {{ run.as_of }})</title>
<style>
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5rem; color: #1b1b1b; }
h1 { font-size: 1.4rem; } h2 { font-size: 1.15rem; margin-top: 2rem; }
table { border-collapse: collapse; margin: .5rem 0; }
th, td { border: 1px solid #ccc; padding: .25rem .5rem; text-align: left; vertical-align: top; }
th { background: #f2f2f2; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.failed { background: #fde2e1; } .passed { background: #e3f4e1; } .none { color: #888; }
.critical { font-weight: 600; }
td.details { max-width: 40rem; overflow-wrap: anywhere; font-family: ui-monospace, monospace; font-size: 12px; }
@media print { body { margin: 0; } }
</style>
</head>
<body>
<h1>Data quality checks: run {{ run.run_id }}, as of {{ run.as_of }}</h1>
<p>Rows checked: <strong>{{ run.scope or 'not recorded' }}</strong>{% if run.scope == 'night' %}: the rows this
night wrote (and the rows whose checks read one of them), each key also counted over the whole table. A failure in
an earlier night's row is not repeated here; the next full validation reports every row again.{% elif run.scope == 'full' %}:
every row of the warehouse.{% endif %}</p>
<p>{{ checks | length }} checks, <strong>{{ failed | length }} failed</strong>
({{ failed_critical }} critical: a critical failure stops a night from publishing; warnings are reported and the night
publishes). Evaluated {{ run.evaluated_at }} (UTC). <a href="../report.html">Back to the report</a>.</p>

<h2>This night</h2>
<table>
<thead><tr><th>suite</th><th>check</th><th>column</th><th>severity</th><th>dimension</th><th>result</th>
<th>scope</th><th>rows checked</th><th>unexpected rows</th><th>unexpected %</th><th>sample or observed value</th><th>what it means</th></tr></thead>
<tbody>
{% for c in checks %}<tr class="{{ 'passed' if c.success else 'failed' }}">
<td>{{ c.suite }}</td><td>{{ c.expectation }}</td><td>{{ c.column_name or '' }}</td>
<td class="{{ c.severity }}">{{ c.severity }}</td><td>{{ c.dimension or '' }}</td>
<td>{{ 'passed' if c.success else 'failed' }}</td><td>{{ c.scope or '' }}</td>
<td class="num">{{ c.element_count if c.element_count is not none else '' }}</td>
<td class="num">{{ c.unexpected_count if c.unexpected_count is not none else '' }}</td>
<td class="num">{{ '%.2f' % c.unexpected_percent if c.unexpected_percent is not none else '' }}</td>
<td class="details">{{ c.details or '' }}</td><td>{{ c.description or '' }}</td>
</tr>
{% endfor %}</tbody>
</table>

<h2>History: the last {{ runs | length }} runs</h2>
<p>Each cell: passed, or failed with its unexpected rows; blank where the check did not run. A night-scope run
counts the rows of that night only; a full run every row.</p>
<table>
<thead><tr><th>suite</th><th>check</th><th>column</th><th>severity</th>
{% for r in runs %}<th>run {{ r.run_id }}<br>{{ r.as_of }}<br>{{ r.scope or '' }}</th>{% endfor %}</tr></thead>
<tbody>
{% for h in history %}<tr>
<td>{{ h.suite }}</td><td>{{ h.expectation }}</td><td>{{ h.column_name or '' }}</td><td class="{{ h.severity }}">{{ h.severity }}</td>
{% for cell in h.cells %}{% if cell is none %}<td class="none"></td>{% elif cell.success %}<td class="passed">passed</td>
{% else %}<td class="failed">failed{% if cell.unexpected_count is not none %} ({{ cell.unexpected_count }}){% endif %}</td>{% endif %}
{% endfor %}</tr>
{% endfor %}</tbody>
</table>
</body>
</html>
"""


@dataclass(frozen=True)
class QualityPage:
    index: Path
    checks: int
    failed: int


def _rows(con: duckdb.DuckDBPyConnection, query: str, params: dict | None = None) -> list[dict]:
    result = con.execute(query, params or {})
    names = [d[0] for d in result.description]
    return [dict(zip(names, row)) for row in result.fetchall()]


def write_quality_page(con: duckdb.DuckDBPyConnection, out_dir: Path, run_id: int) -> QualityPage:
    """Write out_dir/index.html for run_id from quality.expectation_results (every run it holds)."""
    runs = _rows(
        con,
        """
        select
            run_id, any_value(as_of) as as_of, max(evaluated_at) as evaluated_at,
            case when bool_or(scope = 'night') then 'night' when bool_and(scope = 'full') then 'full' end as scope,
        from quality.expectation_results
        where run_id <= $run_id
        group by run_id
        order by run_id desc
        limit $n
        """,
        {"run_id": run_id, "n": HISTORY_RUNS},
    )
    runs.reverse()
    # One check is (suite, expectation, column, description): a suite may check one column twice, differently.
    results = _rows(
        con,
        """
        select
            run_id, suite, expectation, column_name, description,
            any_value(severity) as severity, any_value(dimension) as dimension,
            bool_and(success) as success, sum(element_count) as element_count,
            sum(unexpected_count) as unexpected_count, max(unexpected_percent) as unexpected_percent,
            string_agg(details, '; ') as details, string_agg(distinct scope, ', ') as scope,
        from quality.expectation_results
        where run_id in (select unnest($runs))
        group by all
        """,
        {"runs": [r["run_id"] for r in runs]},
    )
    by_check: dict[tuple, dict[int, dict]] = {}
    meta: dict[tuple, dict] = {}
    for row in results:
        key = (row["suite"], row["expectation"], row["column_name"] or "", row["description"] or "")
        by_check.setdefault(key, {})[row["run_id"]] = row
        meta[key] = row
    order = sorted(by_check, key=lambda k: (meta[k]["severity"] != "critical", k))
    checks = [by_check[k][run_id] for k in order if run_id in by_check[k]]
    history = [
        {**meta[k], "cells": [by_check[k].get(r["run_id"]) for r in runs]}
        for k in order
    ]
    failed = [c for c in checks if not c["success"]]
    current = next((r for r in runs if r["run_id"] == run_id), None) or {
        "run_id": run_id, "as_of": None, "evaluated_at": None, "scope": None
    }
    if isinstance(current.get("evaluated_at"), dt.datetime):
        current = {**current, "evaluated_at": current["evaluated_at"].astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M")}
    environment = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    html = environment.from_string(_TEMPLATE).render(
        csp=CONTENT_SECURITY_POLICY,
        run=current,
        checks=checks,
        failed=failed,
        failed_critical=sum(1 for c in failed if c["severity"] == "critical"),
        runs=runs,
        history=history,
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    index = out_dir / "index.html"
    index.write_text(html, encoding="utf-8")
    return QualityPage(index=index, checks=len(checks), failed=len(failed))
