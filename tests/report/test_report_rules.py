"""The report follows the statistics' rules (docs/rules.md, "How R2-R6 are computed"): R2's one definition of
"plans complete", R3's floor (sessions with too little pain to measure are counted apart, never failures).

Mutants tried (each failed a test here): plan_periods.sql's is_complete back to `= 'complete'`;
activity.sql's has_relief back to `relief_points is not null`; COMPLETION_ORDER without discharged_improved.
"""

from __future__ import annotations

import re

import report_fixtures as rf

from clinic_outcomes.metrics.plans import COMPLETE_COMPLETIONS, EVALUATED_COMPLETIONS
from clinic_outcomes.report.wording import COMPLETION_ORDER
from clinic_outcomes.warehouse import sql_text


def _quoted(text: str) -> tuple[str, ...]:
    return tuple(re.findall(r"'([a-z_]+)'", text))


def test_the_period_query_uses_the_one_definition_of_plans_complete():
    query = sql_text("report/plan_periods")
    complete = re.search(r"completion\.completion in \(([^)]*)\) as is_complete", query)
    evaluated = re.search(r"where completion\.completion in \(([^)]*)\)", query)
    assert complete and _quoted(complete.group(1)) == COMPLETE_COMPLETIONS
    assert evaluated and _quoted(evaluated.group(1)) == EVALUATED_COMPLETIONS
    assert set(EVALUATED_COMPLETIONS) <= set(COMPLETION_ORDER)


def _with_p1(completion: str) -> list[tuple]:
    return [(*row[:7], completion, row[8] if completion == "incomplete" else [], *row[9:]) if row[0] == "P1" else row
            for row in rf.ROWS["quality.plan_completion"]]


def test_a_plan_discharged_improved_counts_as_complete():
    con = rf.build_warehouse(rows={"quality.plan_completion": _with_p1("discharged_improved")})
    html = rf.every_report(con, settings=rf.settings(min_cell_patients=1), as_of=rf.AS_OF, primary_only=True)
    # current period: P1 (discharged improved) and P3 (complete) ended their windows: both complete
    assert rf.figures(html, "network")["plans_complete"] == "100%"
    assert rf.table_rows(html, "network", "completion") == [
        ["Complete", "2", "40%"],
        ["Discharged improved", "1", "20%"],
        ["In progress", "1", "20%"],
        ["Cancelled", "1", "20%"],
    ]


def test_sessions_with_too_little_pain_are_counted_apart_never_as_failures():
    s9 = rf.at("2026-11-05 14:00")
    sessions = [*rf.ROWS["core.sessions"],
                ("s9", rf.A1, "P1", "clinic_a", "c_pt1", "physical_therapist", s9, "completed", ["dry_needling"],
                 "low_back_pain", 1, 1, "ice", "none", s9, rf.NEW_YORK)]
    relief = [*rf.ROWS["marts.session_relief"],
              ("s9", 0, 0.0, None, "clinic_a", "physical_therapist", "low_back_pain", "ice", s9, False)]
    con = rf.build_warehouse(rows={"core.sessions": sessions, "marts.session_relief": relief})
    html = rf.every_report(con, settings=rf.settings(min_cell_patients=1), as_of=rf.AS_OF, primary_only=True)
    network = rf.figures(html, "network")
    assert network["too-little-pain"] == "1"
    assert network["meaningful_relief"] == "75%"  # s1 s3 s6 of s1 s2 s3 s6; s9 is not a failure
    assert rf.figures(html, "clinic_b")["too-little-pain"] == "none"
