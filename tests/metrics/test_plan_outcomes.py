"""R5: outcome of a plan. Given a plan's sessions and the patient's check-ins, expect its pain change.

Plans start on 2026-03-02 (T0's date) and run 6 weeks: the window is
[2026-03-02, 2026-04-13) in the plan clinic's local dates.
"""

from __future__ import annotations

import datetime as dt

import pytest

from clinic_outcomes.metrics.plans import plan_outcome_summary, plan_outcomes
from metrics_fixtures import checkin, checkins_frame, completion, completion_frame, session, sessions_frame

START = dt.date(2026, 3, 2)
UTC = dt.timezone.utc


def outcome_rows(plans: list[dict], sessions: list[dict], checkins: list[dict], *, mcid: float = 2.0) -> list[tuple]:
    outcomes = plan_outcomes(completion_frame(*plans), sessions_frame(*sessions), checkins_frame(*checkins), mcid)
    return outcomes.select(
        "plan_id", "baseline_pain", "final_pain", "change_points", "change_pct", "achieved_mcid", "moderate", "substantial"
    ).collect().rows()


def test_baseline_is_the_first_rated_session_and_final_the_latest_observation():
    sessions = [
        session("unrated", 0, pain_before=None, plan_id="plan1"),
        session("first", 24, pain_before=8, pain_after=5, plan_id="plan1"),
        session("second", 96, pain_before=6, pain_after=4, plan_id="plan1"),
    ]
    checkins = [checkin("c1", 50, 7), checkin("c2", 500, 4), checkin("c3", 300, 2)]
    assert outcome_rows([completion("plan1", START)], sessions, checkins) == [
        ("plan1", 8, 4, 4, 0.5, True, True, True),
    ]


def test_on_a_tie_in_time_the_sessions_pain_before_wins():
    sessions = [
        session("first", 0, pain_before=8, plan_id="plan1", therapies=("manual_therapy",)),
        session("last", 200, pain_before=5, plan_id="plan1"),
    ]
    for checkins in ([checkin("c1", 200, 2)], [checkin("zz", 200, 2)], [checkin("aa", 200, 9)]):
        assert outcome_rows([completion("plan1", START)], sessions, checkins) == [
            ("plan1", 8, 5, 3, 0.375, True, True, False),
        ]


def test_only_the_window_the_plans_sessions_and_the_patients_checkins_count():
    sessions = [
        session("before_start", -24, pain_before=10, plan_id="plan1"),  # 2026-03-01: before the window
        session("s1", 0, pain_before=7, plan_id="plan1"),
        session("cancelled", 10, pain_before=1, plan_id="plan1", status="cancelled"),
        session("other_plan", 20, pain_before=1, plan_id="plan2"),
        session("no_plan", 30, pain_before=1),
        session("after_window", 42 * 24, pain_before=1, plan_id="plan1"),  # 2026-04-13: window_end is exclusive
    ]
    checkins = [
        checkin("in_window", 41 * 24 + 14, 6),  # 2026-04-12 23:00 UTC: the last day of the window
        checkin("after", 42 * 24 - 9, 1),  # 2026-04-13 00:00 UTC
        checkin("someone_else", 40 * 24, 1, patient="p2"),
    ]
    assert outcome_rows([completion("plan1", START)], sessions, checkins) == [
        ("plan1", 7, 6, 1, pytest.approx(1 / 7), False, False, False),
    ]


def test_window_is_taken_in_the_plan_clinics_local_dates():
    zone = "America/New_York"
    sessions = [
        # 2026-03-02 03:00 UTC is 2026-03-01 22:00 in New York: before the window there.
        session("late_evening_before", 0, pain_before=9, plan_id="plan1", started_at=dt.datetime(2026, 3, 2, 3, 0, tzinfo=UTC)),
        session("s1", 0, pain_before=7, plan_id="plan1", started_at=dt.datetime(2026, 3, 2, 15, 0, tzinfo=UTC)),
    ]
    checkins = [
        # 2026-04-13 02:00 UTC is 2026-04-12 22:00 in New York: still in the window.
        checkin("last_local_day", 0, 3, recorded_at=dt.datetime(2026, 4, 13, 2, 0, tzinfo=UTC)),
        # 2026-04-13 05:00 UTC is 01:00 on 2026-04-13 in New York: after it.
        checkin("after", 0, 9, recorded_at=dt.datetime(2026, 4, 13, 5, 0, tzinfo=UTC)),
    ]
    plans = [completion("plan1", START, zone=zone)]
    assert outcome_rows(plans, sessions, checkins) == [("plan1", 7, 3, 4, pytest.approx(4 / 7), True, True, True)]
    # Read in UTC the edges move: the evening session is in, both check-ins (2026-04-13) are out.
    utc_plans = [completion("plan1", START, zone="UTC")]
    assert outcome_rows(utc_plans, sessions, checkins) == [("plan1", 9, 7, 2, pytest.approx(2 / 9), True, False, False)]


def test_only_evaluated_plans_with_a_rated_session():
    plans = [
        completion("complete", START, completion="complete", patient="p1"),
        completion("incomplete", START, completion="incomplete", patient="p2"),
        completion("in_progress", START, completion="in_progress", patient="p3"),
        completion("cancelled", START, completion="cancelled", patient="p4"),
        completion("unrated", START, completion="complete", patient="p5"),
    ]
    sessions = [
        session(f"s_{plan['plan_id']}", 0, pain_before=6, plan_id=plan["plan_id"], patient=plan["patient_key"])
        for plan in plans
        if plan["plan_id"] != "unrated"
    ] + [session("s_unrated", 0, pain_before=None, plan_id="unrated", patient="p5")]
    checkins = [checkin("c5", 100, 2, patient="p5")]  # a check-in alone gives no baseline
    assert [row[0] for row in outcome_rows(plans, sessions, checkins)] == ["complete", "incomplete"]


@pytest.mark.parametrize(
    ("baseline", "final", "expected"),
    [
        (10, 7, (3, 0.3, True, True, False)),  # exactly 30%: moderate
        (10, 5, (5, 0.5, True, True, True)),  # exactly 50%: substantial
        (4, 3, (1, 0.25, False, False, False)),
        (3, 1, (2, pytest.approx(2 / 3), True, True, True)),  # exactly the MCID
        (5, 8, (-3, -0.6, False, False, False)),  # worse
        (0, 0, (0, None, False, None, None)),  # no baseline pain: no percentage
    ],
)
def test_change_thresholds(baseline, final, expected):
    sessions = [session("s1", 0, pain_before=baseline, plan_id="plan1")]
    row = outcome_rows([completion("plan1", START)], sessions, [checkin("c1", 100, final)])[0]
    assert row[3:] == expected


def test_plan_condition_and_summary():
    plans = [
        completion("plan1", START, patient="p1", clinic="clinic_a"),
        completion("plan2", START, patient="p2", clinic="clinic_a"),
        completion("plan3", START, patient="p2", clinic="clinic_b", completion="incomplete"),
    ]
    sessions = [
        session("a", 0, pain_before=8, plan_id="plan1", patient="p1", condition=None),
        session("b", 5, pain_before=4, plan_id="plan1", patient="p1", condition="neck_pain"),
        session("c", 0, pain_before=6, plan_id="plan2", patient="p2"),
        session("d", 1, pain_before=5, plan_id="plan2", patient="p2"),
        session("e", 2, pain_before=6, plan_id="plan3", patient="p2", clinic="clinic_b", condition=None),
        session("f", 3, pain_before=6, plan_id="plan3", patient="p2", clinic="clinic_b", condition=None),
    ]
    outcomes = plan_outcomes(completion_frame(*plans), sessions_frame(*sessions), checkins_frame(), 2.0)
    assert outcomes.select("plan_id", "condition", "completion", "change_points", "sessions_with_pain").collect().rows() == [
        ("plan1", "neck_pain", "complete", 4, 2),
        ("plan2", "low_back_pain", "complete", 1, 2),
        ("plan3", None, "incomplete", 0, 2),
    ]
    summary = plan_outcome_summary(outcomes).collect()
    assert summary.select("group_by", "group_value", "plans", "patients", "achieved_mcid_share", "mean_change_points").rows() == [
        ("all", "all", 3, 2, pytest.approx(1 / 3), pytest.approx(5 / 3)),
        ("clinic", "clinic_a", 2, 2, 0.5, 2.5),
        ("clinic", "clinic_b", 1, 1, 0.0, 0.0),
        ("condition", "low_back_pain", 1, 1, 0.0, 1.0),
        ("condition", "neck_pain", 1, 1, 1.0, 4.0),
        ("condition", "not recorded", 1, 1, 0.0, 0.0),
    ]


def test_zones_in_the_data_need_not_be_listed():
    # Berlin is ahead of UTC: 23:30 UTC the evening before the start is 00:30 on the first day there (in the
    # window), and 23:30 UTC on the window's last day is 01:30 the day after (out of it). Read in UTC, the
    # baseline would be 6 and the final pain 1.
    plans = completion_frame(completion("plan1", START, zone="Europe/Berlin"))
    sessions = sessions_frame(
        session("first_day_in_berlin", -9.5, pain_before=8, plan_id="plan1"),  # 2026-03-01 23:30 UTC
        session("middle", 240, pain_before=6, plan_id="plan1"),
        session("day_after_in_berlin", 41 * 24 + 14.5, pain_before=1, plan_id="plan1"),  # 2026-04-12 23:30 UTC
    )
    outcomes = plan_outcomes(plans, sessions, checkins_frame(), 2.0).collect()
    assert outcomes.select("baseline_pain", "final_pain", "sessions_with_pain").rows() == [(8, 6, 2)]
    listed = plan_outcomes(plans, sessions, checkins_frame(), 2.0, zones=["Europe/Berlin"]).collect()
    assert listed.equals(outcomes)
    # a zone missing from an explicit list has no local dates: the zones read from the data are what counted
    assert plan_outcomes(plans, sessions, checkins_frame(), 2.0, zones=["UTC"]).collect().height == 0


# Mutants tried (2026-12-07; each applied to src/clinic_outcomes/metrics/plans.py, this module run, reverted):
# - baseline `.sort_by(by_time).first()` as `.last()`: killed by
#   test_baseline_is_the_first_rated_session_and_final_the_latest_observation.
# - the session's `source_rank` 1 as -1 (check-ins win ties): killed by test_on_a_tie_in_time_the_sessions_pain_before_wins.
# - the window `closed="left"` as `"both"`: killed by test_only_the_window_the_plans_sessions_and_the_patients_checkins_count.
# - zones ignored (frames.local_date taking the UTC date): killed by test_zones_in_the_data_need_not_be_listed;
#   the test's previous version passed with it.
