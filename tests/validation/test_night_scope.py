"""Validation on the night's rows (issue 18, decision 1): quality.expectation_results.scope `night` or `full`.

Two nights through the real loader and core build: the first loads a session of an unknown plan (a warning
from an earlier night), the second adds two sessions, one of them again of an unknown plan (tonight's planted
bad row). The second night validates only the rows it wrote; the full day, a full rebuild and a run that asks
for it validate every row. Hand-made core tables (gx_fixtures) plant what the loader's merge cannot produce: a
key repeated by tonight's row from an earlier night's, and a plan changed tonight under an old session.

Mutants tried (each applied, this module run, reverted; every one killed):
- the scope filter removed from sql/frames/core_sessions.sql (`or true` added to the batch's where): killed by
  test_a_night_validates_only_the_rows_it_wrote and test_an_earlier_nights_bad_row_waits_for_the_full_day.
- the night's rows chosen by `changed_in_run = validation_run - 1` (the wrong night) in core_sessions.sql:
  killed by test_a_night_validates_only_the_rows_it_wrote and test_a_bad_row_in_tonights_drop_is_caught.
- core_sessions' key rows counted over the batch instead of the table (`from batch` for `from sessions` in
  key_rows), and the same in core_needle_sites.sql: killed by test_a_key_repeated_tonight_from_an_earlier_night_is_caught.
- the plan clause dropped from core_sessions' batch (`or sessions.plan_id in night_plans`): killed by
  test_a_plan_changed_tonight_revalidates_its_earlier_sessions.
- decide_scope: the full-validation day compared with `as_of + 1 day`'s weekday (the wrong day), and with
  `as_of.isoweekday()` indexing WEEKDAYS: killed by test_the_full_validation_day_follows_the_setting.
- decide_scope: the full-rebuild branch removed (`previous_file_id is None` ignored): killed by
  test_a_full_rebuild_validates_every_row.
- validate(): every suite given the night's scope (suite meta `scope_on_a_night` ignored): killed by
  test_every_result_row_carries_its_scope.
- settings: `full_on` not lower-cased before the check: killed by test_the_setting_is_checked.
- Scope.beside_metrics: `<` for `<=`; decide_scope's night count without `changed_in_run = $run` (every
  session): killed by test_a_scope_counts_the_sessions_it_reads_and_decides_whether_validation_runs_beside_the_metrics.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

import gx_fixtures
from clinic_outcomes import warehouse
from clinic_outcomes.quality import tables as quality_tables
from clinic_outcomes.settings import Settings, SettingsError, parse_settings
from clinic_outcomes.validation import validate
from load_fixtures import AS_OF, checkin, load_all, patient, plan, session, site, write_drop

MONDAY = AS_OF  # 2026-11-23: not the default full-validation day (sunday)
SUNDAY = dt.date(2026, 11, 29)
SETTINGS = Settings()

FIRST_NIGHT = {
    "plans": [plan(plan_id="pl1", patient_id="P100"), plan(plan_id="pl2", patient_id="P200")],
    "sessions": [
        session(session_id="s1", patient_id="P100", plan_id="pl1", started_at="2026-10-02T09:00:00Z"),
        session(session_id="s2", patient_id="P100", plan_id="pl_missing", started_at="2026-10-06T09:00:00Z"),
        session(session_id="s3", patient_id="P200", plan_id="pl2", started_at="2026-10-03T09:00:00Z"),
    ],
    "needle_sites": [site(session_id="s1"), site(session_id="s3")],
    "pain_checkins": [checkin(checkin_id="k1", patient_id="P100")],
    "patients": [patient(patient_id="P100"), patient(patient_id="P200", sex="male")],
}

SECOND_NIGHT = {
    "sessions": [
        session(session_id="s4", patient_id="P100", plan_id="pl1", started_at="2026-10-12T09:00:00Z",
                updated_at="2026-10-12T10:00:00Z"),
        # tonight's planted bad row: a session of a plan no export holds
        session(session_id="s5", patient_id="P100", plan_id="pl_gone", started_at="2026-10-12T11:00:00Z",
                updated_at="2026-10-12T12:00:00Z", therapies="manual_therapy"),
    ],
    "needle_sites": [site(session_id="s4", site="upper_trapezius")],
    "pain_checkins": [checkin(checkin_id="k2", patient_id="P200", recorded_at="2026-10-12T08:00:00Z")],
}


def _write(exports: Path, drop: str, night: dict[str, list[dict]]) -> None:
    for entity, entity_rows in night.items():
        write_drop(exports, drop, entity, entity_rows)


def _night(con, exports: Path, run_id: int, settings: Settings = SETTINGS, as_of: dt.date = MONDAY,
           full: bool = False) -> validate.Scope:
    """One night as the flow runs it: load and core, quality tables, then validation in the scope it decides."""
    load_all(con, exports, settings=settings, run_id=run_id, as_of=as_of)
    quality_tables.build(con, settings, as_of)
    scope = validate.decide_scope(con, run_id=run_id, settings=settings, as_of=as_of, full=full)
    validate.validate(con, run_id=run_id, settings=settings, as_of=as_of, docs_dir=None, scope=scope.scope)
    return scope


def _result(con, run_id: int, suite: str, column: str) -> tuple:
    """(scope, element_count, unexpected_count) of one expectation of one run."""
    (found,) = con.execute(
        "select scope, element_count, unexpected_count from quality.expectation_results "
        "where run_id = $run and suite = $suite and column_name = $column",
        {"run": run_id, "suite": suite, "column": column},
    ).fetchall()
    return found


def _checked(con, run_id: int) -> dict[str, int]:
    """Rows each suite's batch held in a run (the largest element count of its expectations)."""
    return dict(con.execute(
        "select suite, max(element_count) from quality.expectation_results where run_id = $run group by 1",
        {"run": run_id},
    ).fetchall())


@pytest.fixture(scope="module")
def two_nights(tmp_path_factory):
    root = tmp_path_factory.mktemp("night_scope")
    exports = root / "exports"
    _write(exports, "2026-10-05", FIRST_NIGHT)
    con = warehouse.connect(root / "warehouse.duckdb")
    first = _night(con, exports, run_id=1)
    _write(exports, "2026-10-12", SECOND_NIGHT)
    second = _night(con, exports, run_id=2)
    yield con, exports, first, second
    con.close()


def test_a_full_rebuild_validates_every_row(two_nights):
    con, _, first, _ = two_nights
    assert (first.scope, first.reason) == ("full", "core was rebuilt whole by this run")
    assert _checked(con, 1)["core_sessions"] == 3
    assert rows_of(con, "select distinct scope from quality.expectation_results where run_id = 1") == [("full",)]


def test_a_night_validates_only_the_rows_it_wrote(two_nights):
    con, _, _, second = two_nights
    assert second.scope == "night"
    written = {
        name: warehouse.scalar(con, f"select count(*) from core.{name} where changed_in_run = 2")
        for name in ("sessions", "needle_sites", "pain_checkins", "plans", "patients")
    }
    assert written == {"sessions": 2, "needle_sites": 1, "pain_checkins": 1, "plans": 0, "patients": 0}
    night_r1 = warehouse.scalar(  # R1 rows of the patients whose sessions or sites the night wrote (P100)
        con,
        "select count(*) from quality.retreatment_checks where session_id in "
        "(select session_id from core.sessions where patient_key in "
        "(select patient_key from core.sessions where changed_in_run = 2))",
    )
    assert 0 < night_r1 < warehouse.scalar(con, "select count(*) from quality.retreatment_checks")  # not P200's
    assert _checked(con, 2) == {
        "core_sessions": 2,
        "core_needle_sites": 1,
        "core_pain_checkins": 1,
        "core_plans": 0,
        "core_patients": 0,
        "core_session_therapies": 3,  # s4: dry_needling and manual_therapy; s5: manual_therapy
        "plan_completion": 2,  # rewritten whole every night: every plan
        "retreatment": night_r1,
    }


def test_a_scope_counts_the_sessions_it_reads_and_decides_whether_validation_runs_beside_the_metrics(two_nights):
    con, _, first, second = two_nights
    every = warehouse.scalar(con, "select count(*) from core.sessions")
    assert (first.sessions, second.sessions) == (every - 2, 2)  # run 1 wrote every session then; run 2 two
    assert validate.decide_scope(con, run_id=2, settings=SETTINGS, as_of=MONDAY, full=True).sessions == every

    def beside(scope: validate.Scope, up_to: int) -> bool:
        return scope.beside_metrics(parse_settings({"validation": {"beside_metrics_up_to": up_to}}))

    assert [beside(second, up_to) for up_to in (0, 1, 2, 3)] == [False, False, True, True]  # at most, inclusive
    assert second.beside_metrics(Settings())  # the default: side by side below 2M sessions


def test_a_bad_row_in_tonights_drop_is_caught(two_nights):
    con, _, _, _ = two_nights
    assert _result(con, 2, "core_sessions", "plan_is_known") == ("night", 2, 1)  # s5, not s4


def test_an_earlier_nights_bad_row_waits_for_the_full_day(two_nights, tmp_path):
    con, exports, _, _ = two_nights
    # run 1 (full) reported s2; run 2 (night) reports only tonight's s5, not s2 again
    assert _result(con, 1, "core_sessions", "plan_is_known") == ("full", 3, 1)
    assert _result(con, 2, "core_sessions", "plan_is_known") == ("night", 2, 1)
    # a night with nothing new on the full-validation day: every row, both bad sessions
    third = _night(con, exports, run_id=3, as_of=SUNDAY)
    assert third.scope == "full" and "full_on = 'sunday'" in third.reason
    assert _result(con, 3, "core_sessions", "plan_is_known") == ("full", 5, 2)
    # and the next night, still nothing new, validates no row of core again
    fourth = _night(con, exports, run_id=4, as_of=SUNDAY + dt.timedelta(days=1))
    assert fourth == validate.Scope("night", "this run wrote no core rows: nothing new to validate row by row")
    assert _result(con, 4, "core_sessions", "plan_is_known") == ("night", 0, 0)
    assert rows_of(con, "select bool_and(success) from quality.expectation_results where run_id = 4 "
                        "and suite like 'core_%'") == [(True,)]
    # a run that asks for it validates every row whatever the day
    fifth = _night(con, exports, run_id=5, as_of=SUNDAY + dt.timedelta(days=2), full=True)
    assert fifth.scope == "full"
    assert _result(con, 5, "core_sessions", "plan_is_known") == ("full", 5, 2)


def test_every_result_row_carries_its_scope(two_nights):
    con, _, _, _ = two_nights
    assert rows_of(
        con, "select suite, any_value(scope), count(distinct scope) from quality.expectation_results "
             "where run_id = 2 group by 1 order by 1"
    ) == [
        ("core_needle_sites", "night", 1),
        ("core_pain_checkins", "night", 1),
        ("core_patients", "night", 1),
        ("core_plans", "night", 1),
        ("core_session_therapies", "night", 1),
        ("core_sessions", "night", 1),
        ("plan_completion", "full", 1),
        ("retreatment", "night", 1),
    ]


def test_a_later_full_rebuild_is_full(tmp_path):
    exports = tmp_path / "exports"
    _write(exports, "2026-10-05", FIRST_NIGHT)
    con = warehouse.connect(tmp_path / "w.duckdb")
    try:
        assert _night(con, exports, run_id=1).scope == "full"
        _write(exports, "2026-10-12", SECOND_NIGHT)
        # a clinic's zone changes with tonight's drop: core is rebuilt whole, so every row is validated
        moved = Settings(clinic_timezones={"c1": "Europe/Berlin"})
        scope = _night(con, exports, run_id=2, settings=moved)
        assert scope == validate.Scope("full", "core was rebuilt whole by this run", sessions=5)
        assert _checked(con, 2)["core_sessions"] == 5
    finally:
        con.close()


def test_a_key_repeated_tonight_from_an_earlier_night_is_caught():
    # The merge replaces rows by key; were it to leave an earlier night's row beside tonight's, tonight's batch
    # holds one row of the key (unique within the batch) and the table two.
    con = gx_fixtures.core_connection(
        sessions=[
            {"session_id": "s1", "started_at": gx_fixtures.at("2026-10-02 09:00"), "changed_in_run": 1},
            {"session_id": "s1", "started_at": gx_fixtures.at("2026-10-02 09:00"), "changed_in_run": 2},
            {"session_id": "s2", "started_at": gx_fixtures.at("2026-10-03 09:00"), "changed_in_run": 2},
            {"session_id": "s3", "started_at": gx_fixtures.at("2026-09-03 09:00"), "changed_in_run": 1},
        ],
        needle_sites=[  # of s3, a session the night did not write (its site rows would all be in the batch)
            {"session_id": "s3", "site": "upper_trapezius", "changed_in_run": 1},
            {"session_id": "s3", "site": "upper_trapezius", "changed_in_run": 2},
        ],
        pain_checkins=[  # of a patient whose patient row and plans the night did not write (else all in the batch)
            {"checkin_id": "k1", "patient_key": "pk_c", "recorded_at": gx_fixtures.at("2026-10-03 09:00"),
             "changed_in_run": 1},
            {"checkin_id": "k1", "patient_key": "pk_c", "recorded_at": gx_fixtures.at("2026-10-03 09:00"),
             "changed_in_run": 2},
        ],
        plans=[  # of a patient the night did not write (else all their plans are in the batch)
            {"plan_id": "p1", "patient_key": "pk_d", "start_date": dt.date(2026, 10, 1), "changed_in_run": 1},
            {"plan_id": "p1", "patient_key": "pk_d", "start_date": dt.date(2026, 10, 1), "changed_in_run": 2},
        ],
        patients=[{"patient_key": "pk_a", "changed_in_run": 1}, {"patient_key": "pk_a", "changed_in_run": 2}],
    )
    gx_fixtures.build_quality(con)
    outcome = validate.validate(con, run_id=2, settings=SETTINGS, as_of=MONDAY, docs_dir=None, scope="night")
    unique_in_batch = sorted(
        (r["suite"], r["element_count"], r["success"]) for r in outcome.results
        if r["expectation"] in ("expect_column_values_to_be_unique", "expect_compound_columns_to_be_unique")
    )
    assert unique_in_batch == [
        ("core_needle_sites", 1, True), ("core_pain_checkins", 1, True), ("core_patients", 1, True),
        ("core_plans", 1, True), ("core_sessions", 2, True),
    ]
    over_the_table = sorted(
        (r["suite"], r["column_name"], r["severity"], r["element_count"], r["unexpected_count"])
        for r in outcome.results if (r["column_name"] or "").startswith("rows_with_")
    )
    assert over_the_table == [
        ("core_needle_sites", "rows_with_site_key", "critical", 1, 1),
        ("core_pain_checkins", "rows_with_checkin_id", "critical", 1, 1),
        ("core_patients", "rows_with_patient_key", "critical", 1, 1),
        ("core_plans", "rows_with_plan_id", "critical", 1, 1),
        ("core_sessions", "rows_with_session_id", "critical", 2, 1),
    ]
    assert not outcome.publishable


def test_a_plan_changed_tonight_revalidates_its_earlier_sessions():
    # s1 was written on night 1; tonight its plan's start moves after it: s1's plan check reads the new plan.
    con = gx_fixtures.core_connection(
        sessions=[
            {"session_id": "s1", "plan_id": "p1", "started_at": gx_fixtures.at("2026-10-02 09:00"), "changed_in_run": 1},
            {"session_id": "s9", "plan_id": "p9", "started_at": gx_fixtures.at("2026-10-02 09:00"), "changed_in_run": 1},
        ],
        plans=[
            {"plan_id": "p1", "start_date": dt.date(2026, 10, 10), "changed_in_run": 2},
            {"plan_id": "p9", "start_date": dt.date(2026, 10, 10), "changed_in_run": 1},  # s9's failure is old
        ],
    )
    gx_fixtures.build_quality(con)
    outcome = validate.validate(con, run_id=2, settings=SETTINGS, as_of=MONDAY, docs_dir=None, scope="night")
    (check,) = [r for r in outcome.results if r["column_name"] == "started_on_or_after_plan_start"]
    assert (check["scope"], check["element_count"], check["unexpected_count"]) == ("night", 1, 1)


def test_the_full_validation_day_follows_the_setting(two_nights):
    con, _, _, _ = two_nights  # core's last build is incremental and was not run 99's: scope by the day alone

    def scope(settings: Settings, as_of: dt.date) -> str:
        return validate.decide_scope(con, run_id=99, settings=settings, as_of=as_of).scope

    assert [scope(SETTINGS, SUNDAY + dt.timedelta(days=n)) for n in range(7)] == ["full"] + ["night"] * 6
    wednesday = parse_settings({"validation": {"full_on": "wednesday"}})
    assert [scope(wednesday, SUNDAY + dt.timedelta(days=n)) for n in range(7)] == [
        "night", "night", "night", "full", "night", "night", "night"
    ]
    daily = parse_settings({"validation": {"full_on": "daily"}})
    assert {scope(daily, SUNDAY + dt.timedelta(days=n)) for n in range(7)} == {"full"}


def test_the_setting_is_checked():
    assert Settings().full_validation_on == "sunday"
    assert parse_settings({"validation": {"full_on": " Friday "}}).full_validation_on == "friday"
    for wrong in ("someday", "sun", 7, True, ""):
        with pytest.raises(SettingsError, match=r"validation\.full_on must be a weekday name"):
            parse_settings({"validation": {"full_on": wrong}})
    with pytest.raises(SettingsError, match=r"unknown setting validation\.'full_day'"):
        parse_settings({"validation": {"full_day": "sunday"}})
    with pytest.raises(SettingsError, match=r"setting 'validation' must be a table"):
        parse_settings({"validation": "sunday"})


def test_a_scope_that_is_neither_is_refused():
    con = gx_fixtures.core_connection()
    with pytest.raises(ValueError, match="validation scope must be one of"):
        validate.validate(con, run_id=1, settings=SETTINGS, as_of=MONDAY, docs_dir=None, scope="weekly")


def test_a_frame_read_without_the_variables_holds_every_row():
    # validate() unsets its variables when done: a frame read later on the connection is whole again.
    con = gx_fixtures.core_connection(sessions=[
        {"session_id": "s1", "started_at": gx_fixtures.at("2026-10-02 09:00"), "changed_in_run": 1},
    ])
    gx_fixtures.build_quality(con)
    validate.validate(con, run_id=2, settings=SETTINGS, as_of=MONDAY, docs_dir=None, scope="night")
    assert con.sql(f"select count(*) from ({warehouse.sql_text('frames/core_sessions')})").fetchall() == [(1,)]


def rows_of(con, query: str) -> list[tuple]:
    return con.execute(query).fetchall()
