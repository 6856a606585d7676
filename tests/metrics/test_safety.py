"""R6: safety and aftercare. Given sessions and plans, expect rates, mixes and shares per group.

Mutants tried for R6's clearance (safety.pcp_clearance), each caught by
test_pcp_clearance_of_plans_started_by_the_as_of_date: a null pcp_cleared counted as without clearance
(`.fill_null(False).not_()`, today's code before the fix); `start_date <= as_of` -> `<`.
"""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from clinic_outcomes.metrics.frames import ADVERSE_EVENT_TYPES
from clinic_outcomes.metrics.safety import adverse_events, aftercare_mix, pcp_clearance
from metrics_fixtures import plan, plans_frame, session, sessions_frame

SESSIONS = sessions_frame(
    session("a1", 0, patient="p1", clinic="clinic_a", role="physical_therapist", adverse_event="soreness", aftercare="ice"),
    session("a2", 1, patient="p1", clinic="clinic_a", role="physical_therapist", adverse_event="soreness", aftercare="ice"),
    session("a3", 2, patient="p2", clinic="clinic_a", role="chiropractor", adverse_event="bruising", aftercare="heat"),
    session("a4", 3, patient="p2", clinic="clinic_a", role="chiropractor", adverse_event="none", aftercare=None),
    session("b1", 4, patient="p3", clinic="clinic_b", role="physical_therapist", adverse_event=None, aftercare="none"),
    # count for nothing: not needling, or not completed
    session("m1", 5, patient="p3", clinic="clinic_b", therapies=("manual_therapy",), adverse_event="fainting", aftercare="ice"),
    session("x1", 6, patient="p3", clinic="clinic_b", status="cancelled", adverse_event="fainting", aftercare="ice"),
)


def test_adverse_events_per_100_needling_sessions_with_zero_rows():
    events = adverse_events(SESSIONS).collect()
    assert events.height == 5 * len(ADVERSE_EVENT_TYPES)  # all, 2 clinics, 2 roles
    nonzero = events.filter(pl.col("events") > 0).select(
        "group_by", "group_value", "needling_sessions", "patients", "unrecorded_sessions", "event_type", "events", "per_100_sessions"
    )
    assert nonzero.rows() == [
        ("all", "all", 5, 3, 1, "soreness", 2, 40.0),
        ("all", "all", 5, 3, 1, "bruising", 1, 20.0),
        ("clinic", "clinic_a", 4, 2, 0, "soreness", 2, 50.0),
        ("clinic", "clinic_a", 4, 2, 0, "bruising", 1, 25.0),
        ("clinician_role", "chiropractor", 2, 1, 0, "bruising", 1, 50.0),
        ("clinician_role", "physical_therapist", 3, 2, 1, "soreness", 2, pytest.approx(200 / 3)),
    ]
    clinic_b = events.filter(pl.col("group_value") == "clinic_b")
    assert clinic_b.select("event_type", "events", "per_100_sessions").rows() == [
        (event_type, 0, 0.0) for event_type in ADVERSE_EVENT_TYPES
    ]


def test_aftercare_mix_of_needling_sessions():
    mix = aftercare_mix(SESSIONS).collect()
    assert mix.filter(pl.col("group_by") == "all").select("needling_sessions", "patients", "aftercare", "sessions", "share").rows() == [
        (5, 3, "ice", 2, 0.4),
        (5, 3, "heat", 1, 0.2),
        (5, 3, "none", 1, 0.2),
        (5, 3, "not recorded", 1, 0.2),
    ]
    assert mix.filter(pl.col("group_value") == "clinic_b").select("aftercare", "sessions", "share").rows() == [
        ("ice", 0, 0.0),
        ("heat", 0, 0.0),
        ("none", 1, 1.0),
        ("not recorded", 0, 0.0),
    ]
    shares = mix.group_by("group_by", "group_value").agg(pl.col("share").sum())["share"]
    assert shares.to_list() == pytest.approx([1.0] * 5)


def test_pcp_clearance_of_plans_started_by_the_as_of_date():
    plans = plans_frame(
        plan("cleared", dt.date(2026, 1, 5), patient="p1", clinic="clinic_a", pcp_cleared=True),
        plan("not_cleared", dt.date(2026, 1, 5), patient="p1", clinic="clinic_a", pcp_cleared=False),
        plan("not_recorded", dt.date(2026, 2, 1), patient="p2", clinic="clinic_b", pcp_cleared=None),
        plan("cancelled", dt.date(2026, 2, 1), patient="p3", clinic="clinic_b", pcp_cleared=True, status="cancelled"),
        plan("starts_on_as_of", dt.date(2026, 3, 1), patient="p3", clinic="clinic_b", pcp_cleared=False),
        plan("starts_later", dt.date(2026, 3, 2), patient="p4", clinic="clinic_b", pcp_cleared=False),
    )
    shares = pcp_clearance(plans, dt.date(2026, 3, 1)).collect()
    # rules.md R6: only pcp_cleared = false is "without clearance"; null is its own share, never "not cleared".
    assert shares.select(
        "group_by", "group_value", "plans", "patients", "plans_without_pcp_clearance", "share",
        "plans_pcp_not_recorded", "not_recorded_share",
    ).rows() == [
        ("all", "all", 5, 3, 2, 0.4, 1, 0.2),
        ("clinic", "clinic_a", 2, 1, 1, 0.5, 0, 0.0),
        ("clinic", "clinic_b", 3, 2, 1, pytest.approx(1 / 3), 1, pytest.approx(1 / 3)),
    ]


# Mutants tried (2026-12-07; each applied to src/clinic_outcomes/metrics/safety.py, this module run, reverted):
# - `events * 100.0 / needling_sessions` as `* 10.0`: killed by test_adverse_events_per_100_needling_sessions_with_zero_rows.
# - plans started `start_date <= as_of` as `<`: killed by test_pcp_clearance_of_plans_started_by_the_as_of_date.
