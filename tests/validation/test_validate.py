"""Great Expectations validation: suites, severities, results in the warehouse, Data Docs.

GX is slow to import and to start, so the runs are module fixtures: a clean
drop (publishes; R1/R2 warnings only) validated twice, and a flawed drop
(a broken key and every kind of warning) validated once.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from clinic_outcomes.validation import validate
from clinic_outcomes import warehouse
from clinic_outcomes.settings import Rules, Settings
from gx_fixtures import at, build_quality, core_connection, rows

AS_OF = dt.date(2026, 11, 23)
# A narrower window than the default: both the flags table and GX must follow it.
NARROW = Settings(rules=Rules(retreatment_window_hours=48))

CLEAN = dict(
    sessions=[
        {"session_id": "s1", "plan_id": "p1", "started_at": at("2026-09-01 10:00"), "therapies": ["dry_needling", "manual_therapy"]},
        {"session_id": "s2", "plan_id": "p1", "started_at": at("2026-09-03 09:00")},  # 47 h: flagged at 48 h
        {"session_id": "s3", "plan_id": "p1", "started_at": at("2026-09-05 10:00")},  # 49 h: allowed at 48 h
        {"session_id": "s4", "plan_id": "p2", "started_at": at("2026-09-02 10:00"), "patient_key": "pk_b"},
    ],
    needle_sites=[
        {"session_id": "s1", "site": "upper_trapezius"},
        {"session_id": "s2", "site": "upper_trapezius"},
        {"session_id": "s3", "site": "upper_trapezius"},
        {"session_id": "s4", "site": "gluteus_medius", "side": "right"},
    ],
    plans=[
        {"plan_id": "p1", "start_date": dt.date(2026, 9, 1)},  # discharged, nothing in its final week
        {"plan_id": "p2", "start_date": dt.date(2026, 9, 1), "patient_key": "pk_b", "status": "cancelled"},
    ],
    pain_checkins=[{"checkin_id": "c1", "recorded_at": at("2026-09-02 08:00")}],
    patients=[{"patient_key": "pk_a"}, {"patient_key": "pk_b", "sex": "male"}],
)

FLAWED = dict(
    sessions=[
        {"session_id": "s1", "plan_id": "p1", "started_at": at("2026-09-01 10:00")},
        {"session_id": "s1", "plan_id": "p1", "started_at": at("2026-09-01 10:00")},  # broken key
        {"session_id": "s2", "plan_id": "p_unknown", "started_at": at("2026-09-02 10:00")},  # unknown plan
        {"session_id": "s3", "plan_id": "p1", "started_at": at("2026-08-30 10:00")},  # before its plan's start
        {"session_id": "s4", "started_at": at("2026-11-24 01:00"),  # the as-of date's next day in UTC ...
         "clinic_timezone": "America/New_York"},  # ... but still 2026-11-23 in New York: not in the future
        {"session_id": "s5", "started_at": at("2026-11-24 10:00"), "pain_before": 11},  # future; pain off scale
        {"session_id": "s6", "started_at": at("2026-09-10 10:00"), "status": "cancelled"},
    ],
    needle_sites=[
        {"session_id": "s1", "site": "upper_trapezius"},
        {"session_id": "s_unknown", "site": "upper_trapezius"},  # site of an unknown session
        {"session_id": "s2", "site": "Upper Trapezius"},  # not a site code
        {"session_id": "s6", "site": "upper_trapezius"},  # sites of a cancelled session
    ],
    plans=[{"plan_id": "p1", "start_date": dt.date(2026, 9, 1), "patient_key": "pk_unknown"}],
    pain_checkins=[{"checkin_id": "c1", "recorded_at": at("2026-09-02 08:00"), "channel": "fax", "patient_key": "pk_x"}],
    patients=[{"patient_key": "pk_a"}],
)


def suite_sizes() -> dict[str, int]:
    return {suite.name: len(suite.expectations) for suite in validate.load_suites()}


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    docs = tmp_path_factory.mktemp("reports") / "data_docs"
    con = core_connection(settings=NARROW, as_of=AS_OF, **CLEAN)
    build_quality(con, NARROW, AS_OF)
    first = validate.validate(con, run_id=1, settings=NARROW, as_of=AS_OF, docs_dir=docs)
    second = validate.validate(con, run_id=2, settings=NARROW, as_of=AS_OF, docs_dir=None)
    return con, first, second, docs


@pytest.fixture(scope="module")
def flawed():
    con = core_connection(as_of=AS_OF, **FLAWED)
    build_quality(con, Settings(), AS_OF)
    return con, validate.validate(con, run_id=7, settings=Settings(), as_of=AS_OF, docs_dir=None)


def failing(outcome) -> list[tuple]:
    return sorted(
        (r["suite"], r["expectation"], r["column_name"], r["severity"], r["unexpected_count"])
        for r in outcome.results
        if not r["success"]
    )


def test_clean_drop_publishes_with_r1_and_r2_flagged_as_warnings(clean):
    con, first, _, _ = clean
    assert first.critical_failures == []
    assert first.publishable
    assert failing(first) == [
        ("plan_completion", "expect_column_values_to_not_be_in_set", "completion", "warning", 1),
        ("retreatment", "expect_column_values_to_be_in_set", "retreated_too_soon", "warning", 1),
    ]
    assert first.warnings_failed == 2


def test_gx_and_the_flag_tables_agree_under_the_settings_window(clean):
    con, first, _, _ = clean
    by_suite = {r["suite"]: r for r in first.results if r["dimension"] == "clinical_rule"}
    assert rows(con, "select session_id, previous_session_id from quality.retreatment_flags") == [("s2", "s1")]
    assert by_suite["retreatment"]["unexpected_count"] == rows(con, "select count(*) from quality.retreatment_flags")[0][0]
    assert by_suite["retreatment"]["element_count"] == rows(con, "select count(*) from quality.retreatment_checks")[0][0]
    assert by_suite["plan_completion"]["unexpected_count"] == rows(
        con, "select count(*) from quality.plan_completion where completion = 'incomplete'"
    )[0][0]


def test_flawed_drop_stops_on_the_broken_key_and_reports_every_warning(flawed):
    con, outcome = flawed
    assert not outcome.publishable
    assert outcome.critical_failures == [
        "core_sessions: expect_column_values_to_be_unique on session_id failed for 2 of 7 rows",
        # the same key counted over the whole table (what catches it on a night: tests/validation/test_night_scope.py)
        "core_sessions: expect_column_values_to_be_in_set on rows_with_session_id failed for 2 of 7 rows",
    ]
    # GX's sample of the failing values stays in the results (and the data-quality page), out of the one-line
    # reasons that reach the logs, the journal and the failure notification
    details = {r["column_name"]: r["details"] for r in outcome.results if r["severity"] == "critical" and not r["success"]}
    assert details == {"session_id": "e.g. s1", "rows_with_session_id": "e.g. 2"}
    assert failing(outcome) == sorted([
        ("core_needle_sites", "expect_column_values_to_be_in_set", "session_is_known", "warning", 1),
        ("core_needle_sites", "expect_column_values_to_be_in_set", "session_is_needling", "warning", 1),
        ("core_needle_sites", "expect_column_values_to_match_regex", "site", "warning", 1),
        ("core_pain_checkins", "expect_column_values_to_be_in_set", "channel", "warning", 1),
        ("core_pain_checkins", "expect_column_values_to_be_in_set", "patient_is_known", "warning", 1),
        ("core_plans", "expect_column_values_to_be_in_set", "patient_is_known", "warning", 1),
        ("core_sessions", "expect_column_values_to_be_between", "pain_before", "warning", 1),
        ("core_sessions", "expect_column_values_to_be_in_set", "plan_is_known", "warning", 1),
        ("core_sessions", "expect_column_values_to_be_in_set", "started_by_as_of", "warning", 1),
        ("core_sessions", "expect_column_values_to_be_in_set", "started_on_or_after_plan_start", "warning", 1),
        ("core_sessions", "expect_column_values_to_be_unique", "session_id", "critical", 2),
        ("core_sessions", "expect_column_values_to_be_in_set", "rows_with_session_id", "critical", 2),
        ("plan_completion", "expect_column_values_to_not_be_in_set", "completion", "warning", 1),
    ])
    assert outcome.warnings_failed == 11


def test_every_expectation_of_every_run_is_appended(clean, flawed):
    con, first, second, _ = clean
    sizes = suite_sizes()
    assert len(first.results) == len(second.results) == sum(sizes.values())
    assert rows(con, "select run_id, suite, count(*) from quality.expectation_results group by all order by all") == [
        (run_id, suite, size) for run_id in (1, 2) for suite, size in sorted(sizes.items())
    ]
    assert rows(con, "select distinct severity from quality.expectation_results order by 1") == [("critical",), ("warning",)]
    assert rows(con, f"select count(*) from quality.expectation_results where as_of <> date '{AS_OF}'") == [(0,)]


def test_quality_tables_are_documented(clean):
    con, *_ = clean
    assert [name for name in warehouse.undocumented(con) if name.startswith("quality.")] == []


def test_the_data_quality_page_is_written_to_the_given_folder(clean):
    _, first, _, docs = clean
    assert first.docs_index == docs / "index.html"
    index = first.docs_index.read_text(encoding="utf-8")
    for suite in suite_sizes():
        assert f"<td>{suite}</td>" in index
    assert sorted(p.name for p in docs.iterdir()) == ["index.html"]  # one self-contained file, no GX site


def test_a_core_table_that_cannot_be_read_is_a_critical_failure():
    con = core_connection(**CLEAN)
    build_quality(con)
    con.execute("drop table core.pain_checkins")
    outcome = validate.validate(con, run_id=1, settings=Settings(), as_of=AS_OF, docs_dir=None)
    assert [line.split(":")[0] for line in outcome.critical_failures] == ["core_pain_checkins"]
    assert "rows_can_be_read" in outcome.critical_failures[0]
    assert "pain_checkins" in outcome.critical_failures[0]  # DuckDB's reason, which names the table


def test_a_reason_quotes_no_value_from_an_error():
    """DuckDB quotes the value it could not convert; the one-line reason leaves it out (the results keep it)."""
    result = {"suite": "core_sessions", "expectation": "rows_can_be_read", "column_name": None, "unexpected_count": None,
              "element_count": None, "details": "error: Conversion Error: Could not convert string 'Jane O''Hara' to INT32"}
    assert validate._one_line(result) == (
        "core_sessions: rows_can_be_read failed (error: Conversion Error: Could not convert string <value> to INT32)"
    )


# --- the suites as files -----------------------------------------------------------------


def test_every_expectation_has_a_severity_and_a_dimension():
    for suite in validate.load_suites():
        for expectation in suite.expectations:
            assert expectation["meta"]["severity"] in ("critical", "warning"), (suite.name, expectation)
            assert expectation["meta"]["dimension"] in (
                "completeness", "uniqueness", "conformance", "plausibility", "referential_integrity", "clinical_rule",
            ), (suite.name, expectation)


def test_rule_suites_carry_no_threshold_of_their_own():
    # R1 and R2 thresholds live in Settings only; their suites test derived columns, never a number.
    def numbers(value) -> list:
        if isinstance(value, bool):
            return []
        if isinstance(value, (int, float)):
            return [value]
        if isinstance(value, dict):
            return [n for v in value.values() for n in numbers(v)]
        if isinstance(value, list):
            return [n for v in value for n in numbers(v)]
        return []

    for name in ("retreatment", "plan_completion"):
        document = json.loads((warehouse.EXPECTATIONS_DIR / f"{name}.json").read_text())
        assert numbers([e["kwargs"] for e in document["expectations"]]) == [], name


def test_a_suite_without_severities_is_refused(tmp_path: Path):
    (tmp_path / "core_patients.json").write_text(json.dumps({
        "name": "core_patients",
        "expectations": [{"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "patient_key"}}],
    }))
    with pytest.raises(ValueError, match="meta.severity"):
        validate.load_suites(tmp_path)


def test_gx_context_sends_no_analytics_and_builds_no_data_docs():
    context = validate._context()
    assert context.config.analytics_enabled is False
    assert dict(context.list_data_docs_sites()) == {}


# --- the frames GX validates -------------------------------------------------------------

# Zones far from UTC on both sides, with half- and quarter-hour offsets and DST.
ZONES = ("Pacific/Kiritimati", "Pacific/Pago_Pago", "America/St_Johns", "Asia/Kathmandu", "America/New_York", "UTC")


def test_local_date_checks_agree_with_a_zone_conversion_of_every_row():
    # The frames convert only instants within a day of the date they compare with; every
    # 15 minutes over a week around the as-of date and the plans' start dates must give the
    # same answer as converting every row.
    start = dt.datetime.combine(AS_OF - dt.timedelta(days=3), dt.time(), dt.timezone.utc)
    instants = [start + dt.timedelta(minutes=15 * i) for i in range(4 * 24 * 7)]
    plans = [
        {"plan_id": f"p{z}", "patient_key": f"pk{z}", "clinic_timezone": zone, "start_date": AS_OF - dt.timedelta(days=1)}
        for z, zone in enumerate(ZONES)
    ]
    sessions = [
        {"session_id": f"s{z}_{i}", "plan_id": f"p{z}", "clinic_timezone": zone, "started_at": instant}
        for z, zone in enumerate(ZONES) for i, instant in enumerate(instants)
    ]
    checkins = [
        {"checkin_id": f"c{z}_{i}", "patient_key": f"pk{z}", "recorded_at": instant}
        for z, zone in enumerate(ZONES) for i, instant in enumerate(instants)
    ]
    con = core_connection(as_of=AS_OF, sessions=sessions, plans=plans, pain_checkins=checkins)
    frames = {suite.name: suite.frame_sql for suite in validate.load_suites()}

    sessions_frame = f"({frames['core_sessions']})"
    assert rows(con, f"""
        select count(*) filter (started_by_as_of),
               count(*) filter (started_by_as_of is distinct from
                                (cast(timezone(s.clinic_timezone, s.started_at) as date) <= date '{AS_OF}')),
               count(*) filter (started_on_or_after_plan_start),
               count(*) filter (started_on_or_after_plan_start is distinct from
                                (cast(timezone(s.clinic_timezone, s.started_at) as date) >= date '{AS_OF}' - 1))
        from {sessions_frame} as f join core.sessions as s using (session_id)
    """) == [(rows(con, f"select count(*) from core.sessions where cast(timezone(clinic_timezone, started_at) as date) <= date '{AS_OF}'")[0][0],
              0,
              rows(con, f"select count(*) from core.sessions where cast(timezone(clinic_timezone, started_at) as date) >= date '{AS_OF}' - 1")[0][0],
              0)]
    checkins_frame = f"({frames['core_pain_checkins']})"
    assert rows(con, f"""
        select count(*) filter (recorded_by_as_of is distinct from
                                (cast(timezone(p.clinic_timezone, c.recorded_at) as date) <= date '{AS_OF}'))
        from {checkins_frame} as f join core.pain_checkins as c using (checkin_id) join core.plans as p on p.patient_key = c.patient_key
    """) == [(0,)]
    # A row without a zone or an instant checks nothing (null), as the conversion gives.
    con.execute("update core.sessions set clinic_timezone = null where session_id = 's0_0'")
    con.execute("update core.sessions set started_at = null where session_id = 's0_1'")
    con.execute("update core.plans set clinic_timezone = null where plan_id = 'p1'")
    assert rows(con, f"""
        select session_id, started_by_as_of, started_on_or_after_plan_start from {sessions_frame}
        where session_id in ('s0_0', 's0_1', 's1_0') order by 1
    """) == [("s0_0", None, False), ("s0_1", None, None), ("s1_0", True, None)]


def test_frames_reach_gx_as_numpy_and_categorical_columns():
    con = warehouse.connect()
    frame = validate._frame(con, """
        select * from (values
            (1, 1, 'a', 'x_1', true, true, timestamptz '2026-01-01 10:00:00+00'),
            (2, null, null, 'Y 2', false, null, null),
            (3, 3, 'a', null, true, false, timestamptz '2026-01-02 10:00:00+00')
        ) as t(whole, gaps, code, site, flag, maybe, instant)
    """, text_columns={"site"})
    assert {name: str(dtype) for name, dtype in frame.dtypes.items()} == {
        "whole": "int64", "gaps": "float64", "code": "category", "site": "str", "flag": "bool",
        "maybe": "boolean", "instant": "datetime64[us, UTC]",
    }
    assert frame["code"].isna().tolist() == [False, True, False]
    assert frame["code"].astype(object).tolist()[::2] == ["a", "a"]
    assert frame["site"].tolist()[:2] == ["x_1", "Y 2"] and frame["site"].isna().tolist() == [False, False, True]
    assert frame["maybe"].isna().tolist() == [False, True, False]
    assert len(validate._frame(con, "select 'a' as code, 1 as n where false")) == 0


def test_each_frame_holds_only_the_columns_its_suite_reads():
    # GX filters the whole frame for most expectations: a column no expectation reads costs time.
    con = core_connection(**CLEAN)
    build_quality(con)
    for suite in validate.load_suites():
        read = {e["kwargs"].get("column") for e in suite.expectations} | {
            name for e in suite.expectations for name in e["kwargs"].get("column_list", [])
        }
        assert set(con.sql(suite.frame_sql).columns) == read - {None}, suite.name


def test_no_suite_frame_outlives_its_suite(monkeypatch):
    # GX caches every batch its datasource loads; validate() drops the datasource after each suite,
    # so that at 10M sessions one frame at a time is alive, not all of them.
    import gc
    import weakref

    frames = []
    build = validate._frame

    def frame(*args, **kwargs):
        gc.collect()
        assert [ref for ref in frames if ref() is not None] == [], "an earlier suite's frame is still alive"
        built = build(*args, **kwargs)
        frames.append(weakref.ref(built))
        return built

    monkeypatch.setattr(validate, "_frame", frame)
    con = core_connection(**CLEAN)
    build_quality(con)
    validate.validate(con, run_id=1, settings=Settings(), as_of=AS_OF, docs_dir=None)
    gc.collect()
    assert len(frames) == len(suite_sizes())
    assert [ref for ref in frames if ref() is not None] == []


def test_every_result_says_which_rows_it_describes():
    # interface.md: quality.expectation_results.scope is 'night' or 'full'; every night validates every row today.
    con = core_connection(**CLEAN)
    build_quality(con)
    validate.validate(con, run_id=1, settings=Settings(), as_of=AS_OF, docs_dir=None)
    assert rows(con, "select distinct scope from quality.expectation_results") == [("full",)]


def test_a_warehouse_from_before_the_scope_column_gains_it():
    con = core_connection(**CLEAN)
    build_quality(con)
    con.execute("create schema if not exists quality")
    con.execute("create table quality.expectation_results (run_id bigint, suite varchar, expectation varchar, "
                "column_name varchar, description varchar, severity varchar, dimension varchar, success boolean, "
                "element_count bigint, unexpected_count bigint, unexpected_percent double, details varchar, "
                "as_of date, evaluated_at timestamptz)")
    con.execute("insert into quality.expectation_results (run_id, suite) values (0, 'older')")
    validate.validate(con, run_id=1, settings=Settings(), as_of=AS_OF, docs_dir=None)
    assert rows(con, "select run_id = 0, scope from quality.expectation_results group by all order by 1") == [
        (False, "full"), (True, None),
    ]
