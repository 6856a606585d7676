"""The manager's report: given the hand-made warehouse of report_fixtures, expect these figures.

Most tests use a minimum cell of 2 patients so that a handful of rows can show figures, and primary
suppression only (report_fixtures.report_html: complementary suppression is tested on whole networks);
test_default_minimum_cell_hides_every_small_figure uses the real default (11).
"""

from __future__ import annotations

import re

import pytest

import report_fixtures as rf
from clinic_outcomes.report.render import ReportInputError, render_report
from clinic_outcomes.report.wording import small_cell


@pytest.fixture(scope="module")
def html() -> str:
    con = rf.build_warehouse()
    return rf.every_report(con, settings=rf.settings(min_cell_patients=2), as_of=rf.AS_OF, primary_only=True)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    con = rf.build_warehouse()
    out_dir = tmp_path_factory.mktemp("report")
    return render_report(con, settings=rf.settings(min_cell_patients=2), as_of=rf.AS_OF, out_dir=out_dir)


@pytest.mark.parametrize(
    ("patients", "min_cell", "shown"),
    [
        (None, 11, "fewer than 11"),
        (0, 11, "no data"),
        (1, 11, "fewer than 11"),
        (10, 11, "fewer than 11"),
        (11, 11, None),
        (500, 11, None),
        (4, 5, "fewer than 5"),
        (5, 5, None),
    ],
)
def test_small_cell(patients, min_cell, shown):
    assert small_cell(patients, min_cell) == shown


def test_headline_figures_of_the_network(html):
    # current period 25 Oct - 23 Nov: s1 s2 s3 s6 needling, s7 manual only; s8 is 24 Oct in New York
    assert rf.figures(html, "network") == {
        "patients": "4",
        "plans": "3",
        "needling_sessions": "4",
        "plans_complete": "50%",  # P1 incomplete, P3 complete (windows ended 22 and 28 Oct/Nov)
        "meaningful_relief": "75%",  # s1 s3 s6 of s1 s2 s3 s6
        "median_relief": "48 hours",  # s6 20 h relapse, s1 48 h relapse, s3 censored at 100 h
        "mcid_plans": "50%",  # P1 yes, P3 no
        "pcp": "40%",  # marts.pcp_clearance, all: P2 and P5 not cleared (P4's clearance not recorded)
        "pcp-not-recorded": "20%",  # P4: its own share, never counted as not cleared (R6)
        "too-little-pain": "none",  # every needling session started at 2 points or more
    }


def test_headline_changes_compare_with_the_30_days_before(html):
    # previous period: s4 (A3) and s8 (A1, 03:00 UTC on 25 Oct = 23:00 on 24 Oct in New York)
    assert rf.changes(html, "network") == {
        "patients": "▲ 2",
        "plans": "no comparison",  # before: only P1, one patient
        "needling_sessions": "▲ 2",
        "plans_complete": "no comparison",  # no plan window ended before
        "meaningful_relief": "no comparison",  # before: s4 only
        "median_relief": "no comparison",
        "mcid_plans": "no comparison",
    }


def test_headline_figures_per_clinic(html):
    assert rf.figures(html, "clinic_a") == {
        "patients": "3",
        "plans": "2",
        "needling_sessions": "3",
        "plans_complete": "fewer than 2",  # only P1, one patient
        "meaningful_relief": "67%",
        "median_relief": "48 hours",  # s1 relapse at 48 h, s3 censored at 100 h: S(48) = 0.5
        "mcid_plans": "fewer than 2",
        "pcp": "50%",
        "pcp-not-recorded": "25%",
        "too-little-pain": "none",
    }
    assert set(rf.figures(html, "clinic_b").values()) - {"none"} == {"fewer than 2"}  # one patient, B1


def test_pain_reduction_by_condition_and_role(html):
    assert rf.table_rows(html, "network", "pain") == [
        # condition       acupuncturist   chiropractor    physical_therapist                       all roles
        ["Low back pain", "", "", "2.3 points 67% meaningful, 3 sessions", "2.3 points 67% meaningful, 3 sessions"],
        ["Neck pain", "fewer than 2", "fewer than 2", "", "3.5 points 100% meaningful, 2 sessions"],
        ["All conditions", "fewer than 2", "fewer than 2", "2.3 points 67% meaningful, 3 sessions",
         "2.8 points 80% meaningful, 5 sessions"],
    ]


def test_network_relief_comes_from_the_marts(html):
    assert rf.table_rows(html, "network", "relief") == [
        # the shares' patient-clustered 95% intervals; 14 days: too few patients still followed (null in the mart)
        ["All needling sessions", "4", "30 hours", "20 hours to not reached", "75% (55% to 90%)", "25% (10% to 50%)",
         "25%", "not enough patients followed", "0"],
        ["Low back pain", "2", "30 hours", "30 hours to not reached", "100%", "0%", "0%", "0%", "0"],
        ["Neck pain", "2", "20 hours", "20 hours to not reached", "50%", "50%", "50%", "50%", "0"],
        ["Ice", "3", "48 hours", "20 hours to not reached", "67%", "33%", "33%", "33%", "0"],
        # "no follow-up" is a count of its own (marts.report_cells): 0 episodes, 0 patients, shown (R7)
        ["No aftercare advice"] + ["fewer than 2"] * 2 + [""] + ["fewer than 2"] * 4 + ["0"],
    ]


def test_clinic_relief_is_estimated_from_its_episodes(html):
    # clinic_a episodes: s1 48 h relapse (low back, ice), s3 100 h censored (neck, ice), s4 30 h relapse (low back, none)
    rows = rf.table_rows(html, "clinic_a", "relief")
    assert [row[:3] for row in rows] == [
        ["All needling sessions", "3", "48 hours"],
        ["Low back pain", "2", "30 hours"],
        ["Neck pain", "fewer than 2", "fewer than 2"],
        ["Ice", "2", "48 hours"],
        ["No aftercare advice", "fewer than 2", "fewer than 2"],
    ]
    # as the network's (issue 14): the shares' intervals, and R4's floor: at 72 h only s3 (one patient) is
    # still followed, under the minimum cell of 2, so the share is not shown
    assert rows[0][4:8] == ["100% (100% to 100%)"] + ["not enough patients followed"] * 3


def test_relief_charts_leave_out_small_groups(html):
    network = rf.section_html(html, "network")
    curves = re.findall(r'<path class="series" d="[^"]+"[^>]*><title>([^<]+)</title>', network)
    assert curves[:3] == ["Low back pain", "Neck pain", "Ice"]  # "No aftercare advice" has one patient
    assert "Not drawn (fewer than 2 patients): No aftercare advice." in rf._text(network)


def test_plan_completion_with_reasons(html):
    assert rf.table_rows(html, "network", "completion") == [
        ["Complete", "2", "40%"],  # P3 (B1), P4 (A3)
        ["Incomplete", "fewer than 2", "fewer than 2"],
        ["In progress", "fewer than 2", "fewer than 2"],
        ["Cancelled", "fewer than 2", "fewer than 2"],
    ]
    assert rf.table_rows(html, "network", "reasons") == [
        ["No session in the plan's last week", "fewer than 2", "fewer than 2"],
        ["Fewer sessions than planned", "fewer than 2", "fewer than 2"],
    ]
    outcome = rf._text(rf.section_html(html, "network").split('data-table="outcome">')[1].split("</p>")[0])
    assert "3 finished plans with a pain rating; average pain 6.0 at the start and 3.3 at the end" in outcome
    assert "Meaningful improvement: 67%; at least 30% better: 67%; at least 50% better: 33%." in outcome


def test_adverse_events_per_100_needling_sessions(html):
    assert rf.table_rows(html, "network", "adverse") == [
        # type        all     acupuncturist   chiropractor    physical_therapist
        ["Soreness", "16.7", "fewer than 2", "fewer than 2", "25.0"],
        ["Bruising", "16.7", "fewer than 2", "fewer than 2", "25.0"],
        ["Swelling", "0.0", "fewer than 2", "fewer than 2", "0.0"],
        ["Bleeding", "0.0", "fewer than 2", "fewer than 2", "0.0"],
        ["Fainting", "0.0", "fewer than 2", "fewer than 2", "0.0"],
        ["Other", "0.0", "fewer than 2", "fewer than 2", "0.0"],
        ["All adverse events", "33.3", "fewer than 2", "fewer than 2", "50.0"],
        ["Needling sessions", "6", "fewer than 2", "fewer than 2", "4"],
    ]


def test_retreatment_list_for_follow_up(html):
    # one flag of one patient: under the minimum cell (2 here), also in the total; clinic_b's zero is shown
    assert rf.table_rows(html, "network", "retreatment-counts") == [
        ["clinic_a", "fewer than 2", "fewer than 2"], ["clinic_b", "0", "0"], ["All clinics", "fewer than 2", "fewer than 2"],
    ]
    # date is the local date of the flagged session; no patient or session identifier
    assert rf.table_rows(html, "clinic_a", "retreatment") == [
        ["2026-11-04", "c_pt1", "lumbar multifidus", "left", "48.0"],
    ]


def test_data_quality_of_the_latest_run(html):
    # the reason text quotes the rejected value: never shown, only the file type (R7)
    assert rf.table_rows(html, None, "rejected") == [["sessions", "2"], ["patients", "1"]]
    assert rf.table_rows(html, None, "expectations") == [
        ["retreatment", "expect_column_values_to_be_null(retreatment_flag)", "warning", "1"],
    ]
    assert rf.table_rows(html, None, "runs") == [
        ["2", "2026-11-23", "2026-11-23 07:00", "2026-11-23 07:03", "published", "12", "3", "1"],
        ["1", "2026-11-22", "2026-11-22 07:00", "2026-11-22 07:02", "published", "40", "1", "1"],
    ]
    assert '<a href="data-quality/index.html">data-quality page</a>' in html


def test_data_quality_of_a_chosen_run_without_data_docs():
    con = rf.build_warehouse()
    html = rf.every_report(con, settings=rf.settings(), as_of=rf.AS_OF, primary_only=True, run_id=1, data_docs_href=None)
    assert rf.table_rows(html, None, "rejected") == [["sessions", "1"]]
    assert "data-quality page" not in html


def test_monthly_trends(html):
    rows = rf.table_rows(html, "network", "trends")
    assert [row[0] for row in rows][0] == "Dec 2025"
    assert rows[-2:] == [
        # month           patients needling relief share plans complete mcid  median     adverse/100
        ["Oct 2026", "2", "2", "fewer than 2", "fewer than 2", "fewer than 2", "fewer than 2", "50.0"],
        ["Nov 2026 (to date)", "4", "4", "75%", "fewer than 2", "fewer than 2", "48 hours", "25.0"],
    ]
    assert rows[0][1:] == ["no data"] * 7


def test_default_minimum_cell_hides_every_small_figure():
    con = rf.build_warehouse()
    html = rf.every_report(con, settings=rf.settings(min_cell_patients=11), as_of=rf.AS_OF, primary_only=True)
    for scope in ("network", "clinic_a", "clinic_b"):
        figures = rf.figures(html, scope)
        assert figures.pop("too-little-pain") == "none"  # no such session at all
        assert set(figures.values()) == {"fewer than 11"}
    assert '<path class="series"' not in html  # no curve or trend rests on 11 patients
    for table in ("pain", "relief", "completion", "adverse"):
        cells = {cell for row in rf.table_rows(html, "network", table) for cell in row[1:-1 if table == "relief" else None]}
        assert cells <= {"fewer than 11", ""}, table
    # the relief table's "no follow-up": 0 episodes from 0 patients, which R7 lets show
    assert {row[-1] for row in rf.table_rows(html, "network", "relief")} <= {"fewer than 11", "0"}


def test_no_identifier_or_never_stored_value_in_html_or_pdf(rendered):
    html = rendered.html.read_text(encoding="utf-8")
    rf.assert_absent(html, "HTML")
    pdf_text = rf.pdf_text(rendered.pdf.read_bytes())
    rf.assert_absent(pdf_text, "PDF")
    assert "session_id" not in html and "s2" not in re.sub(r"<[^>]+>", " ", html).split()


def test_pdf_is_the_same_report(rendered):
    pdf = rendered.pdf.read_bytes()
    assert pdf.startswith(b"%PDF")
    text = rf.pdf_text(pdf)
    for words in ("Clinic outcomes", "All clinics", "fewer than 2", "What the figures mean"):
        assert words in text, words
    # the case list is the clinic's own: in its report, never in the network's (R7)
    assert "lumbar multifidus" not in text and "Clinic clinic_a" not in text
    clinic_text = rf.pdf_text((rendered.html.parent / "clinics" / "clinic_a.pdf").read_bytes())
    for words in ("Clinic clinic_a", "lumbar multifidus", "All clinics"):
        assert words in clinic_text, words


def test_html_is_self_contained(rendered):
    html = rendered.html.read_text(encoding="utf-8")
    assert "<script" not in html
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)
    assert not re.search(r"@import|url\(", html)
    assert "default-src 'none'" in html  # the browser refuses any fetch the page might attempt
    assert rendered.html.name == "report.html" and rendered.pdf.name == "report.pdf"


def test_every_figure_has_its_definition(html):
    refs = set(re.findall(r'href="#def-([a-z_]+)"', html))
    defined = set(re.findall(r'<dt id="def-([a-z_]+)">', html))
    assert refs and refs <= defined
    # the measures' wording is clinic_outcomes.metrics.definitions', not the report's own
    assert 'title="Share of needling sessions with pain down by at least 2 points (the MCID)' in html
    assert "cluster-robust sandwich variance" in html and "treating each patient&#39;s episodes as one cluster" in html


def test_long_relief_curves_are_downsampled():
    con = rf.build_warehouse(rows={"marts.relief_curves": []})
    # 20k steps over 83 days
    con.execute(
        "insert into marts.relief_curves "
        "select 'condition', 'neck_pain', i * 0.1, 1 - i / 40000, null, null, 20000 - i from range(20000) as steps(i)"
    )
    html = rf.every_report(con, settings=rf.settings(), as_of=rf.AS_OF, primary_only=True)
    network = rf.section_html(html, "network")
    path = re.search(r'<path class="series" d="([^"]+)"[^>]*><title>Neck pain', network).group(1)
    assert 100 < path.count("L") <= 2 * 242


@pytest.mark.parametrize("table", ["marts.relief_curves", "quality.plan_completion", "ops.runs", "core.sessions"])
def test_a_missing_table_is_an_error(table):
    con = rf.build_warehouse(without=[table])
    with pytest.raises(ReportInputError, match=re.escape(table)):
        rf.every_report(con, settings=rf.settings(), as_of=rf.AS_OF, primary_only=True)


def test_a_missing_column_is_an_error():
    con = rf.build_warehouse()
    con.execute("alter table marts.adverse_events drop column per_100_sessions")
    with pytest.raises(ReportInputError, match=r"marts\.adverse_events\.per_100_sessions"):
        rf.every_report(con, settings=rf.settings(), as_of=rf.AS_OF, primary_only=True)


def test_relief_comparison_by_aftercare_with_hazard_ratios_and_the_factor_p_value(html):
    # mutants run: factor_p read from hazard_ratio_p fails this test (and the two below); the reference row
    # shown with its ratio instead of "1 (reference)" fails test_a_clear_difference_is_worded_as_an_association;
    # "not enough patients followed" replaced by "none" fails test_network_relief_comes_from_the_marts
    assert rf.table_rows(html, "network", "relief-comparison") == [
        ["Ice", "3", "48 hours", "60%", "20%", "1.80 (0.62 to 5.20)"],
        ["No aftercare advice"] + ["fewer than 2"] * 5,
    ]
    assert ("By aftercare advice. p-value 0.400 (all compared groups alike): no clear difference between these "
            "groups.") in html
    assert "associations, not effects" in html and "Log-rank" not in html


def test_a_clear_difference_is_worded_as_an_association():
    con = rf.build_warehouse()
    con.execute("update marts.relief_comparison set factor_p = 0.0004")
    # the comparison's groups are shown by marts.report_cells' episodes (marts.relief_duration's): with a
    # minimum cell of 1, every group shows
    html = rf.every_report(con, settings=rf.settings(min_cell_patients=1), as_of=rf.AS_OF, primary_only=True)
    assert ("p-value below 0.001 (all compared groups alike): relief lasted differently long with different "
            "advice; an association, not proof that the advice caused it.") in html
    rows = rf.table_rows(html, "network", "relief-comparison")
    assert rows[1][-1] == "1 (reference)"


def test_groups_outside_the_comparison_show_no_ratio():
    con = rf.build_warehouse()
    con.execute("update marts.relief_comparison set patients = 20, in_comparison = (group_value = 'ice'), "
                "hazard_ratio = null, factor_p = null, is_reference = null")
    html = rf.every_report(con, settings=rf.settings(min_cell_patients=1), as_of=rf.AS_OF, primary_only=True)
    assert "Too few patients in at least two groups to compare them." in html
    assert [row[-1] for row in rf.table_rows(html, "network", "relief-comparison")] == ["not compared"] * 2


def test_relief_comparison_hides_groups_under_the_default_minimum_cell():
    con = rf.build_warehouse()
    html = rf.every_report(con, settings=rf.settings(min_cell_patients=11), as_of=rf.AS_OF, primary_only=True)
    cells = {cell for row in rf.table_rows(html, "network", "relief-comparison") for cell in row[1:]}
    assert cells == {"fewer than 11"}


def test_build_html_leaves_the_connection_as_it_found_it(html):
    # the per-report tables (patients as numbers, completed sessions) are dropped after use, also on a rerun
    con = rf.build_warehouse()
    temp_tables = "select table_name from duckdb_tables() where temporary"
    before = con.sql(temp_tables).fetchall()
    assert rf.every_report(con, settings=rf.settings(min_cell_patients=2), as_of=rf.AS_OF, primary_only=True) == html
    assert rf.every_report(con, settings=rf.settings(min_cell_patients=2), as_of=rf.AS_OF, primary_only=True) == html
    assert con.sql(temp_tables).fetchall() == before


def test_rejected_rows_show_column_and_problem_from_their_fields():
    # Mutant tried: rejected_by_problem.sql grouping by reason instead of problem -> the quoted value shows.
    con = rf.build_warehouse()
    con.execute("alter table quality.rejected_rows add column column_name varchar")
    con.execute("alter table quality.rejected_rows add column problem varchar")
    con.execute("update quality.rejected_rows set column_name = split_part(reason, ':', 1), "
                "problem = if(reason like '%missing%', 'missing', 'out_of_range')")
    html = rf.report_html(con, settings=rf.settings(), as_of=rf.AS_OF, primary_only=True)
    assert rf.table_rows(html, None, "rejected") == [
        ["sessions", "pain_before", "out of range", "2"], ["patients", "date_of_birth", "out of range", "1"],
    ]
    for value in ("'12'", "'11'", "1961-02-03", "&#39;12&#39;"):
        assert value not in html


def test_a_clinic_is_shown_by_its_display_name_from_the_settings(tmp_path):
    # interface.md: `[clinics.<id>] name = "..."`; reports show the name, the id where none is set.
    import dataclasses

    named = dataclasses.replace(rf.settings(min_cell_patients=2), clinic_names={"clinic_a": "Harbour <Clinic> & Co"})
    paths = render_report(rf.build_warehouse(), settings=named, as_of=rf.AS_OF, out_dir=tmp_path)
    clinic_html = (paths.html.parent / "clinics" / "clinic_a.html").read_text(encoding="utf-8")
    assert "Harbour &lt;Clinic&gt; &amp; Co" in clinic_html  # escaped like every other value
    assert "Clinic clinic_a" not in clinic_html
