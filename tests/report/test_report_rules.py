"""The report follows the statistics' rules (docs/rules.md, "How R2-R6 are computed"): R2's one definition of
"plans complete", R3's floor (sessions with too little pain to measure are counted apart, never failures).

Mutants run (each failed a test here): plan_periods.sql's is_complete back to `= 'complete'`;
activity.sql's has_relief back to `relief_points is not null`; COMPLETION_ORDER without discharged_improved;
queries.optional_rows reading the R8 tables without checking they are there.
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
    evaluated = re.search(r"where (completion\.completion [^\n]*?\))", query)
    assert complete and _quoted(complete.group(1)) == COMPLETE_COMPLETIONS
    # The period query's filter, applied to every completion value, keeps exactly R2's evaluated plans.
    import duckdb

    from clinic_outcomes.seeds import value_set

    kept = duckdb.connect().execute(
        "select completion from (select unnest($values) as completion) as completion where " + evaluated.group(1),
        {"values": list(value_set("completion_values"))},
    ).fetchall()
    assert evaluated and {value for (value,) in kept} == set(EVALUATED_COMPLETIONS)
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


def _with_adjusted():
    con = rf.build_warehouse()
    con.execute(
        "create table marts.adjusted_outcomes (level varchar, unit_id varchar, measure varchar, n bigint, "
        "patients bigint, observed double, expected double, difference double, ci_low double, ci_high double, "
        "network_value double, limit_95 double, limit_998 double, funnel varchar)"
    )
    con.execute(
        "insert into marts.adjusted_outcomes values "
        "('clinic', 'clinic_a', 'plan_achieved_mcid', 40, 30, 0.60, 0.50, 0.10, 0.02, 0.18, 0.5, 0.08, 0.12, 'above_95'), "
        "('clinic', 'clinic_b', 'plan_achieved_mcid', 12, 1, 0.40, 0.50, -0.10, -0.3, 0.1, 0.5, 0.2, 0.3, 'inside'), "
        "('clinic', 'clinic_a', 'plan_change_points', 40, 30, 2.5, 2.0, 0.5, -0.1, 1.1, 2.2, 0.7, 1.0, 'inside'), "
        "('clinician', 'c_pt1', 'plan_achieved_mcid', 20, 15, 0.7, 0.5, 0.2, 0.05, 0.35, 0.5, 0.1, 0.15, 'above_998')"
    )
    con.execute("create table marts.casemix_coefficients (measure varchar, term varchar, estimate double, "
                "std_error double, rows bigint, note varchar)")
    con.execute("insert into marts.casemix_coefficients values ('plan_achieved_mcid', 'intercept', -1.2, 0.3, 900, null)")
    return con


def test_adjusted_outcomes_per_clinic_as_associations():
    html = rf.every_report(_with_adjusted(), settings=rf.settings(), as_of=rf.AS_OF, primary_only=True)
    assert rf.table_rows(html, "network", "adjusted") == [
        ["Plans reaching the MCID", "clinic_a", "40", "60%", "50%", "+10.0 points", "+2.0 to +18.0", "above (95% limit)"],
        ["Plans reaching the MCID", "clinic_b"] + ["fewer than 2"] * 4 + ["", ""],  # one patient
        ["Change in pain over a plan (points)", "clinic_a", "40", "2.5", "2.0", "+0.50 points", "-0.10 to +1.10",
         "within the expected range"],
    ]
    assert rf.table_rows(html, "clinic_a", "adjusted")[0][1] == "clinic_a"
    assert {row[1] for row in rf.table_rows(html, "clinic_a", "adjusted")} == {"clinic_a"}
    assert "c_pt1" not in rf.section_html(html, "network")  # clinician rows are not a report table
    assert "not proof of better or worse care" in html
    network = rf.section_html(html, "network")
    # the funnel: clinic_a's two measures, not clinic_b (one patient)
    assert re.findall(r'<circle class="funnel-dot"[^>]*><title>([^<]+)</title>', network) == ["clinic_a: +10.0", "clinic_a: +0.5"]
    assert rf.table_rows(html, "network", "casemix") == [["Plans reaching the MCID", "intercept", "-1.200", "0.300", "900", ""]]


def test_without_the_case_mix_tables_the_report_says_so():
    html = rf.every_report(rf.build_warehouse(), settings=rf.settings(), as_of=rf.AS_OF, primary_only=True)
    assert "Not available in this run: the case-mix models have not been computed." in rf.section_html(html, "network")
