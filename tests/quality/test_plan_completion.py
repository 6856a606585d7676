"""R2 — completion of the 6-week plan (rules.md), every edge.

Each test: given a plan and its sessions, expect this row of quality.plan_completion
(completion, reasons, sessions_in_window, and the window where it matters).
"""

from __future__ import annotations

import datetime as dt

from clinic_outcomes.settings import Rules, Settings
from gx_fixtures import at, build_quality, core_connection, replace_core, rows

LA = "America/Los_Angeles"
AS_OF = dt.date(2026, 11, 23)
START = dt.date(2026, 9, 1)  # a Tuesday; the default window is 2026-09-01 .. 2026-10-12

BOTH = ["dry_needling", "manual_therapy"]


def plan(plan_id: str = "p1", **columns) -> dict:
    return {"plan_id": plan_id, "start_date": START, **columns}


def visit(session_id: str, day: dt.date | str, plan_id: str = "p1", hour: str = "10:00",
          zone: str = "UTC", **columns) -> dict:
    """A session on a local day of the clinic's zone."""
    day = dt.date.fromisoformat(day) if isinstance(day, str) else day
    return {
        "session_id": session_id,
        "plan_id": plan_id,
        "started_at": at(f"{day.isoformat()} {hour}", zone),
        "clinic_timezone": zone,
        **columns,
    }


def day(offset: int) -> dt.date:
    return START + dt.timedelta(days=offset)


def completion(plans: list[dict], sessions: list[dict], settings: Settings | None = None,
               as_of: dt.date = AS_OF) -> list[tuple]:
    con = core_connection(plans=plans, sessions=sessions, settings=settings, as_of=as_of)
    build_quality(con, settings, as_of)
    return rows(
        con,
        "select plan_id, completion, reasons, sessions_in_window from quality.plan_completion order by plan_id",
    )


def test_a_complete_plan_combines_needling_and_other_therapies_up_to_its_final_week():
    assert completion(
        [plan()],
        [
            visit("s1", day(0), therapies=["dry_needling"]),
            visit("s2", day(10), therapies=["manual_therapy"]),
            visit("s3", day(41), therapies=["therapeutic_exercise"]),  # the window's last day
        ],
    ) == [("p1", "complete", [], 3)]


def test_window_and_its_columns_use_the_default_length():
    con = core_connection(plans=[plan()], sessions=[])
    build_quality(con)
    assert rows(
        con,
        "select plan_id, patient_key, clinic_id, clinic_timezone, start_date, planned_weeks, window_end "
        "from quality.plan_completion",
    ) == [("p1", "pk_a", "clinic_utc", "UTC", START, 6, dt.date(2026, 10, 13))]


def test_every_failing_reason_in_the_order_rules_md_lists_them():
    assert completion([plan(planned_sessions=3)], []) == [
        ("p1", "incomplete", ["no_final_week_session", "no_dry_needling", "no_adjunct_therapy", "too_few_sessions"], 0),
    ]


def test_each_reason_alone():
    plans = [plan("a"), plan("b"), plan("c"), plan("d", planned_sessions=3), plan("e", planned_sessions=2)]
    sessions = [
        # a: no session in the final week (days 35..41)
        visit("a1", day(0), "a", therapies=BOTH), visit("a2", day(34), "a", therapies=BOTH),
        # b: no needling
        visit("b1", day(0), "b", therapies=["manual_therapy"]), visit("b2", day(35), "b", therapies=["heat_ice"]),
        # c: needling only
        visit("c1", day(0), "c", therapies=["dry_needling"]), visit("c2", day(36), "c", therapies=["dry_needling"]),
        # d: two of three planned sessions
        visit("d1", day(0), "d", therapies=BOTH), visit("d2", day(40), "d", therapies=BOTH),
        # e: exactly the planned sessions
        visit("e1", day(0), "e", therapies=BOTH), visit("e2", day(40), "e", therapies=BOTH),
    ]
    assert completion(plans, sessions) == [
        ("a", "incomplete", ["no_final_week_session"], 2),
        ("b", "incomplete", ["no_dry_needling"], 2),
        ("c", "incomplete", ["no_adjunct_therapy"], 2),
        ("d", "incomplete", ["too_few_sessions"], 2),
        ("e", "complete", [], 2),
    ]


def test_the_plans_own_planned_weeks_win_over_the_setting():
    # 4 weeks: the window is days 0..27 and its final week days 21..27; day 30 is outside.
    con = core_connection(
        plans=[plan(planned_weeks=4)],
        sessions=[visit("s1", day(0), therapies=BOTH), visit("s2", day(27), therapies=BOTH),
                  visit("s3", day(30), therapies=BOTH)],
    )
    build_quality(con)
    assert rows(con, "select planned_weeks, window_end, completion, reasons, sessions_in_window "
                     "from quality.plan_completion") == [(4, day(28), "complete", [], 2)]


def test_the_setting_serves_plans_without_their_own_planned_weeks():
    eight_weeks = Settings(rules=Rules(plan_weeks=8))
    sessions = [visit("s1", day(0), therapies=BOTH), visit("s2", day(41), therapies=BOTH)]
    assert completion([plan()], sessions) == [("p1", "complete", [], 2)]
    assert completion([plan()], sessions, eight_weeks) == [("p1", "incomplete", ["no_final_week_session"], 2)]


def test_late_evening_on_the_final_days_last_day_in_a_zone_behind_utc():
    # 22:30 in Los Angeles on the window's last day is already the next day in UTC; it still counts.
    # 20:00 on the day before the start is already the start day in UTC; it does not count.
    sessions = [
        visit("s0", day(-1), hour="20:00", zone=LA, therapies=BOTH),
        visit("s1", day(3), zone=LA, therapies=BOTH),
        visit("s2", day(41), hour="22:30", zone=LA, therapies=["dry_needling"]),
    ]
    assert completion([plan(clinic_timezone=LA)], sessions) == [("p1", "complete", [], 2)]
    # The same instants read in UTC would move both sessions: the window is the plan clinic's.
    assert completion([plan(clinic_timezone="UTC")], sessions) == [
        ("p1", "incomplete", ["no_final_week_session"], 2),
    ]


def test_discharged_early_is_evaluated_before_its_window_ends():
    sessions = [visit("s1", day(0), therapies=BOTH), visit("s2", day(7), therapies=BOTH)]
    as_of = day(14)
    assert completion([plan(status="discharged")], sessions, as_of=as_of) == [
        ("p1", "incomplete", ["no_final_week_session"], 2),
    ]


def test_a_still_running_plan_is_in_progress_until_its_window_ends():
    sessions = [visit("s1", day(0), therapies=["dry_needling"])]
    active = [plan(status="active")]
    assert completion(active, sessions, as_of=day(20)) == [("p1", "in_progress", [], 1)]
    assert completion(active, sessions, as_of=day(41)) == [("p1", "in_progress", [], 1)]  # last day of the window
    assert completion(active, sessions, as_of=day(42)) == [
        ("p1", "incomplete", ["no_final_week_session", "no_adjunct_therapy"], 1),
    ]


def test_a_cancelled_plan_is_cancelled_whatever_its_sessions():
    assert completion([plan(status="cancelled", planned_sessions=9)], []) == [("p1", "cancelled", [], 0)]


def test_cancelled_and_no_show_sessions_count_for_nothing():
    sessions = [
        visit("s1", day(0), therapies=BOTH),
        visit("s2", day(38), therapies=BOTH, status="cancelled"),
        visit("s3", day(39), therapies=BOTH, status="no_show"),
    ]
    assert completion([plan(planned_sessions=2)], sessions) == [
        ("p1", "incomplete", ["no_final_week_session", "too_few_sessions"], 1),
    ]


def test_adjunct_therapy_in_the_same_session_as_needling_counts():
    sessions = [visit("s1", day(0), therapies=["dry_needling", "electrical_stimulation"]),
                visit("s2", day(40), therapies=["dry_needling"])]
    assert completion([plan()], sessions) == [("p1", "complete", [], 2)]


def test_sessions_of_other_plans_without_a_plan_or_outside_the_window_do_not_count():
    sessions = [
        visit("s1", day(0), therapies=BOTH),
        visit("s2", day(40), plan_id="other", therapies=BOTH),
        visit("s3", day(40), plan_id=None, therapies=BOTH),
        visit("s4", day(42), therapies=BOTH),  # the day after the window
        visit("s5", day(-1), therapies=BOTH),
    ]
    assert completion([plan()], sessions) == [("p1", "incomplete", ["no_final_week_session"], 1)]


def test_every_plan_gets_a_row():
    assert [r[0] for r in completion([plan("a"), plan("b", status="active"), plan("c", status="cancelled")], [])] == [
        "a", "b", "c",
    ]


def test_a_session_moved_by_a_later_drop_is_judged_at_its_new_date():
    con = core_connection(plans=[plan()], sessions=[visit("s1", day(0), therapies=BOTH), visit("s2", day(40), therapies=BOTH)])
    build_quality(con)
    assert rows(con, "select completion from quality.plan_completion") == [("complete",)]
    replace_core(con, "sessions", [visit("s1", day(0), therapies=BOTH), visit("s2", day(43), therapies=BOTH)])
    build_quality(con)
    assert rows(con, "select completion, reasons from quality.plan_completion") == [
        ("incomplete", ["no_final_week_session"]),
    ]


# Mutants tried (2026-12-07; each applied to sql/models/quality/plan_completion.sql, tests run, reverted):
# - `as_of < window_end` (in_progress) as `<=`: killed by test_a_still_running_plan_is_in_progress_until_its_window_ends.
# - `sessions_in_window < planned_sessions` as `<=`: killed by test_each_reason_alone.
# - `local_date >= final_week_start` as `>`: killed by test_each_reason_alone.
# - the three `<= 1` of the local-date shortcut as `<= 0`: survived every test here (UTC and Los Angeles
#   only); killed by tests/quality/test_plan_completion_zones.py (east of UTC), with the other shortcut
#   mutants listed there.


# --- discharged_improved (R2 with R5's outcome) -----------------------------------------------------------
#
# Mutants tried in sql/models/quality/plan_completion.sql, each caught:
# - `>= getvariable('mcid_points')` -> `>`: test_discharged_before_the_final_week_with_an_outcome_at_the_mcid_is_improved;
# - the status condition dropped (any plan without a final-week session): test_only_a_discharge_before_the_final_week_counts;
# - final pain by time only, ties not broken (session first, then greater id): test_final_pain_ties_and_checkins_as_r5
#   (the random comparison with metrics did not catch this one);
# - check-ins left out of the final pain: test_final_pain_ties_and_checkins_as_r5;
# - EVALUATED_COMPLETIONS without discharged_improved (metrics.plans): test_quality_outcome_equals_metrics_plan_outcomes,
#   test_plans_complete_is_one_definition_in_sql_and_polars.


def checkin_on(checkin_id: str, day_: dt.date, pain: int, hour: str = "12:00", zone: str = "UTC", **columns) -> dict:
    return {"checkin_id": checkin_id, "recorded_at": at(f"{day_.isoformat()} {hour}", zone), "pain": pain, **columns}


def early_rows(plans: list[dict], sessions: list[dict], checkins: list[dict] = (), as_of: dt.date = AS_OF,
               settings: Settings | None = None) -> list[tuple]:
    con = core_connection(plans=plans, sessions=sessions, pain_checkins=list(checkins), settings=settings, as_of=as_of)
    build_quality(con, settings, as_of)
    return rows(
        con,
        "select plan_id, completion, reasons, early_baseline_pain, early_final_pain, early_achieved_mcid "
        "from quality.plan_completion order by plan_id",
    )


def test_discharged_before_the_final_week_with_an_outcome_at_the_mcid_is_improved():
    plans = [plan("at_mcid", status="discharged"), plan("below", status="discharged")]
    sessions = [
        visit("a1", day(0), "at_mcid", therapies=BOTH, pain_before=6),
        visit("a2", day(14), "at_mcid", therapies=BOTH, pain_before=4),  # 6 - 4 = 2 = the MCID
        visit("b1", day(0), "below", therapies=BOTH, pain_before=6),
        visit("b2", day(14), "below", therapies=BOTH, pain_before=5),
    ]
    assert early_rows(plans, sessions) == [
        ("at_mcid", "discharged_improved", ["no_final_week_session"], 6, 4, True),
        ("below", "incomplete", ["no_final_week_session"], 6, 5, False),
    ]
    # The MCID setting is the threshold: 3 points makes the first plan incomplete.
    stricter = Settings(rules=Rules(mcid_points=3.0))
    assert early_rows(plans, sessions, settings=stricter)[0][:2] == ("at_mcid", "incomplete")


def test_only_a_discharge_before_the_final_week_counts():
    improved = [visit("s1", day(0), therapies=["dry_needling"], pain_before=8), visit("s2", day(10), therapies=["dry_needling"], pain_before=2)]
    # Discharged, improved, every reason still listed.
    assert early_rows([plan(status="discharged", planned_sessions=4)], improved) == [
        ("p1", "discharged_improved", ["no_final_week_session", "no_adjunct_therapy", "too_few_sessions"], 8, 2, True),
    ]
    # Active plan whose window ended without a final-week session: not a discharge, incomplete.
    assert early_rows([plan(status="active")], improved) == [
        ("p1", "incomplete", ["no_final_week_session", "no_adjunct_therapy"], None, None, None),
    ]
    # Discharged with a session in the final week: not discharged early, incomplete for its other reason.
    late = [*improved, visit("s3", day(36), therapies=["dry_needling"], pain_before=2)]
    assert early_rows([plan(status="discharged")], late) == [("p1", "incomplete", ["no_adjunct_therapy"], None, None, None)]
    # Discharged early without any pain_before in the window: no outcome, incomplete.
    unrated = [visit("s1", day(0), therapies=BOTH, pain_before=None)]
    assert early_rows([plan(status="discharged")], unrated) == [
        ("p1", "incomplete", ["no_final_week_session"], None, None, None),
    ]


def test_final_pain_ties_and_checkins_as_r5():
    sessions = [visit("s1", day(0), therapies=BOTH, pain_before=7), visit("s2", day(9), therapies=BOTH, pain_before=6)]
    checkins = [
        checkin_on("c1", day(20), 5, hour="08:00"),
        checkin_on("c9", day(20), 2, hour="08:00"),  # same instant: the greater checkin_id wins
        checkin_on("c2", day(42), 0),  # outside the window (day 42 is window_end)
        checkin_on("c3", day(-1), 0),
    ]
    assert early_rows([plan(status="discharged")], sessions, checkins) == [
        ("p1", "discharged_improved", ["no_final_week_session"], 7, 2, True),
    ]
    # A session at the same instant as a check-in wins the tie.
    tie = [*sessions, visit("s3", day(20), hour="08:00", therapies=BOTH, pain_before=6)]
    assert early_rows([plan(status="discharged")], tie, checkins) == [
        ("p1", "incomplete", ["no_final_week_session"], 7, 6, False),
    ]


def test_quality_outcome_equals_metrics_plan_outcomes():
    """R5 computed in SQL (quality stage) gives marts.plan_outcomes' values for the plans discharged early."""
    import numpy as np
    import polars as pl

    from clinic_outcomes.metrics.plans import plan_outcomes

    rng = np.random.default_rng(5)
    zones = ["UTC", LA, "Pacific/Kiritimati"]
    plans, sessions, checkins = [], [], []
    for index in range(120):
        plan_id, patient, zone = f"p{index:03d}", f"pk{index % 70}", zones[index % 3]
        plans.append(plan(plan_id, patient_key=patient, clinic_timezone=zone,
                          status=str(rng.choice(["discharged", "active"], p=[0.8, 0.2]))))
        last_day = int(rng.integers(3, 45))
        for number in range(int(rng.integers(0, 6))):
            pain = None if rng.random() < 0.15 else int(rng.integers(0, 11))
            # whole hours on few days, so ties between sessions and check-ins happen
            sessions.append(visit(f"{plan_id}_s{number}", day(int(rng.integers(-1, last_day))), plan_id,
                                  hour=f"{int(rng.integers(0, 24)):02d}:00", zone=zone,
                                  patient_key=patient, therapies=BOTH, pain_before=pain))
        for number in range(int(rng.integers(0, 4))):
            checkins.append(checkin_on(f"{plan_id}_c{number}", day(int(rng.integers(-1, 43))), int(rng.integers(0, 11)),
                                       hour=f"{int(rng.integers(0, 24)):02d}:00", zone=zone, patient_key=patient))
    con = core_connection(plans=plans, sessions=sessions, pain_checkins=checkins)
    build_quality(con)
    completion = con.sql("select * from quality.plan_completion").pl()
    early = completion.filter(pl.col("early_baseline_pain").is_not_null())
    assert early.height > 20 and set(early["completion"]) == {"discharged_improved", "incomplete"}
    outcomes = plan_outcomes(
        completion.lazy(),
        con.sql("select * from core.sessions").pl().lazy(),
        con.sql("select * from core.pain_checkins").pl().lazy(),
        2.0,
    ).collect()
    joined = early.join(outcomes, on="plan_id", how="left")
    assert joined.select(
        pl.col("early_baseline_pain") == pl.col("baseline_pain"),
        pl.col("early_final_pain") == pl.col("final_pain"),
        pl.col("early_achieved_mcid") == pl.col("achieved_mcid"),
    ).to_numpy().all()
    # Every plan discharged early with an outcome has one in the metrics, and no other discharged-early plan does.
    discharged_early = completion.filter(
        (pl.col("status") == "discharged") & pl.col("reasons").list.contains("no_final_week_session")
    )
    with_outcome = outcomes.filter(pl.col("plan_id").is_in(discharged_early["plan_id"].implode()))
    assert sorted(with_outcome["plan_id"]) == sorted(early["plan_id"])
    improved = completion.filter(pl.col("completion") == "discharged_improved")["plan_id"].to_list()
    assert sorted(improved) == sorted(outcomes.filter(pl.col("plan_id").is_in(early["plan_id"].implode()) & pl.col("achieved_mcid"))["plan_id"])


def test_plans_complete_is_one_definition_in_sql_and_polars():
    import polars as pl

    from clinic_outcomes.metrics.plans import PLANS_COMPLETE_SQL, plan_completion_summary

    plans = [plan("a", status="discharged"), plan("b", status="discharged"), plan("c", status="discharged"),
             plan("d", status="active"), plan("e", status="cancelled")]
    sessions = [
        visit("a1", day(0), "a", therapies=BOTH), visit("a2", day(40), "a", therapies=BOTH),  # complete
        visit("b1", day(0), "b", therapies=BOTH, pain_before=8), visit("b2", day(7), "b", therapies=BOTH, pain_before=3),
        visit("c1", day(0), "c", therapies=BOTH, pain_before=8), visit("c2", day(7), "c", therapies=BOTH, pain_before=8),
    ]
    con = core_connection(plans=plans, sessions=sessions)
    build_quality(con, as_of=day(20))
    assert rows(con, "select plan_id, completion from quality.plan_completion order by 1") == [
        ("a", "complete"), ("b", "discharged_improved"), ("c", "incomplete"), ("d", "in_progress"), ("e", "cancelled"),
    ]
    in_sql = rows(con, f"select {PLANS_COMPLETE_SQL} from quality.plan_completion")[0][0]
    summary = plan_completion_summary(con.sql("select * from quality.plan_completion").pl().lazy()).collect()
    overall = summary.filter(pl.col("group_by") == "all").row(0, named=True)
    assert in_sql == overall["plans_complete_share"] == 2 / 3
    assert (overall["evaluated_plans"], overall["complete_plans"], overall["discharged_improved_plans"],
            overall["incomplete_plans"], overall["in_progress_plans"], overall["cancelled_plans"]) == (3, 1, 1, 1, 1, 1)
    assert rows(con, f"select {PLANS_COMPLETE_SQL} from quality.plan_completion where completion = 'cancelled'") == [(None,)]
