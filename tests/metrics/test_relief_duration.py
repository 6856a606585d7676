"""R4: how long relief lasts. Given a patient's timeline, expect each episode's outcome.

Every scenario is one patient's sessions and check-ins, in hours after T0;
MCID 2 points and a 42-day follow-up unless a test says otherwise.
"""

from __future__ import annotations

import datetime as dt
import random

from hypothesis import given, settings, strategies as st

from clinic_outcomes.metrics.relief import relief_episodes
from metrics_fixtures import at, checkin, checkins_frame, session, sessions_frame

MCID = 2.0
FOLLOWUP_DAYS = 42
CAP_HOURS = 42 * 24.0


def outcomes(sessions: list[dict], checkins: list[dict], *, mcid: float = MCID) -> list[tuple]:
    """(session_id, followed_up, relapsed, duration_hours) per episode, by session_id."""
    episodes = relief_episodes(sessions_frame(*sessions), checkins_frame(*checkins), mcid, FOLLOWUP_DAYS)
    rows = episodes.select("session_id", "followed_up", "relapsed", "duration_hours").sort("session_id").collect()
    return list(rows.iter_rows())


def test_relapse_at_a_checkin():
    # pain_before 7, MCID 2: relief holds while pain <= 5.
    given_sessions = [session("s1", 0, pain_before=7, pain_after=3)]
    given_checkins = [checkin("c1", 10, 4), checkin("c2", 20, 5), checkin("c3", 30, 6), checkin("c4", 40, 8)]
    assert outcomes(given_sessions, given_checkins) == [("s1", True, True, 30.0)]


def test_relapse_at_the_next_sessions_pain_before():
    given_sessions = [
        session("s1", 0, pain_before=7, pain_after=3),
        session("s2", 48, pain_before=6, pain_after=5),  # next needling session: 6 > 7 - 2
    ]
    assert outcomes(given_sessions, [checkin("c1", 20, 5)]) == [("s1", True, True, 48.0)]


def test_a_later_session_without_needling_is_an_observation_but_does_not_end_follow_up():
    given_sessions = [
        session("s1", 0, pain_before=7, pain_after=3),
        session("m1", 24, pain_before=5, therapies=("manual_therapy",)),
        session("m2", 50, pain_before=6, therapies=("manual_therapy", "therapeutic_exercise")),
    ]
    assert outcomes(given_sessions, []) == [("s1", True, True, 50.0)]


def test_censored_at_the_42_day_cap_inclusive():
    given_sessions = [session("s1", 0, pain_before=7, pain_after=3)]
    given_checkins = [
        checkin("c1", 100, 3),
        checkin("c2", CAP_HOURS, 4),  # exactly 42 days later: still follow-up
        checkin("c3", CAP_HOURS + 1, 9),  # after the cap: ignored
    ]
    assert outcomes(given_sessions, given_checkins) == [("s1", True, False, CAP_HOURS)]


def test_relapse_exactly_at_the_cap_counts():
    given_sessions = [session("s1", 0, pain_before=7, pain_after=3)]
    assert outcomes(given_sessions, [checkin("c1", CAP_HOURS, 9)]) == [("s1", True, True, CAP_HOURS)]


def test_censored_at_the_next_needling_session():
    given_sessions = [
        session("s1", 0, pain_before=7, pain_after=3),
        session("s2", 72, pain_before=5, pain_after=4),  # no relapse, not meaningful relief either
    ]
    given_checkins = [checkin("c1", 24, 4), checkin("c2", 80, 9)]  # c2 is after s2: not s1's follow-up
    assert outcomes(given_sessions, given_checkins) == [("s1", True, False, 72.0)]


def test_next_needling_session_without_pain_ends_follow_up_before_its_reading():
    given_sessions = [
        session("s1", 0, pain_before=7, pain_after=3),
        session("s2", 20, pain_before=None, pain_after=None),
    ]
    given_checkins = [checkin("c1", 10, 4), checkin("c2", 30, 9)]
    assert outcomes(given_sessions, given_checkins) == [("s1", True, False, 10.0)]


def test_each_episode_follows_up_to_the_next_needling_session():
    given_sessions = [
        session("s1", 0, pain_before=8, pain_after=4),
        session("s2", 96, pain_before=5, pain_after=2),  # s1: 5 <= 6, censored here; s2 starts at 96
    ]
    given_checkins = [checkin("c1", 120, 4), checkin("c2", 150, 6)]  # s2: relapse when pain > 3
    assert outcomes(given_sessions, given_checkins) == [
        ("s1", True, False, 96.0),
        ("s2", True, True, 24.0),
    ]


def test_episode_without_follow_up_is_counted_apart():
    given_sessions = [
        session("s1", 0, pain_before=7, pain_after=3),
        session("other", 5, pain_before=9, pain_after=9, patient="p2"),
    ]
    given_checkins = [
        checkin("before", -5, 9),  # before the episode
        checkin("at_start", 0, 9),  # at the very instant: not after started_at
        checkin("someone_else", 10, 9, patient="p2"),
    ]
    assert outcomes(given_sessions, given_checkins) == [("s1", False, None, None)]


def test_pain_before_zero_starts_no_episode_and_pain_zero_is_no_relapse():
    given_sessions = [
        session("zero", 0, pain_before=0, pain_after=0),
        session("s1", 10, pain_before=6, pain_after=2),
        session("m1", 30, pain_before=0, therapies=("manual_therapy",)),
    ]
    assert outcomes(given_sessions, [checkin("c1", 20, 0)]) == [("s1", True, False, 20.0)]


def test_ties_in_time_relapse_wins_whatever_the_row_order():
    given_sessions = [
        session("s1", 0, pain_before=7, pain_after=3),
        session("s2", 48, pain_before=4, pain_after=3),  # next needling session
    ]
    # Two readings at 24 h, neither a relapse: censored at the last reading, s2's pain_before 4 at 48 h.
    assert outcomes(given_sessions, [checkin("c1", 24, 4), checkin("c2", 24, 5)]) == [("s1", True, False, 48.0)]
    assert outcomes(given_sessions, [checkin("c2", 24, 7), checkin("c1", 24, 4)]) == [("s1", True, True, 24.0)]
    assert outcomes(given_sessions, [checkin("c1", 24, 4), checkin("c2", 24, 7)]) == [("s1", True, True, 24.0)]
    # A check-in at the same instant as the next needling session is still inside the follow-up.
    assert outcomes(given_sessions, [checkin("c3", 48, 9)]) == [("s1", True, True, 48.0)]


def test_all_readings_at_the_next_needling_instant_count():
    given = [session("s1", 0, pain_before=7, pain_after=3)]
    # Two needling sessions start at 48 h; only one of them reports a relapse, whichever sorts first.
    for first, second in [("s2", "s3"), ("s3", "s2")]:
        later = [
            session(first, 48, pain_before=4, pain_after=4),
            session(second, 48, pain_before=6, pain_after=6),
        ]
        assert outcomes(given + later, [checkin("c1", 24, 4)]) == [("s1", True, True, 48.0)]
    # None relapses: censored at the last reading, at 48 h, whatever the needling session without pain.
    later = [session("s2", 48, pain_before=None, pain_after=None), session("s3", 48, pain_before=5, pain_after=5)]
    assert outcomes(given + later, [checkin("c1", 24, 4)]) == [("s1", True, False, 48.0)]


def test_two_relief_sessions_at_the_same_instant_do_not_end_each_other():
    given_sessions = [
        session("s1", 0, pain_before=7, pain_after=3),
        session("s1b", 0, pain_before=7, pain_after=4),
    ]
    assert outcomes(given_sessions, [checkin("c1", 30, 6)]) == [
        ("s1", True, True, 30.0),
        ("s1b", True, True, 30.0),
    ]


def test_cancelled_and_no_show_sessions_count_for_nothing():
    given_sessions = [
        session("s1", 0, pain_before=7, pain_after=3),
        session("cancelled", 10, pain_before=9, pain_after=1, status="cancelled"),
        session("no_show", 20, pain_before=9, status="no_show"),
    ]
    assert outcomes(given_sessions, [checkin("c1", 30, 5)]) == [("s1", True, False, 30.0)]


def test_fractional_mcid_threshold():
    # MCID 2.5, pain_before 8: relapse when pain > 5.5, i.e. at 6.
    given_sessions = [session("s1", 0, pain_before=8, pain_after=5)]
    given_checkins = [checkin("c1", 10, 5), checkin("c2", 20, 6)]
    assert outcomes(given_sessions, given_checkins, mcid=2.5) == [("s1", True, True, 20.0)]


def test_durations_are_elapsed_time_across_a_dst_change():
    # New York springs forward on 2026-03-08: 24 local hours later is 23 elapsed hours.
    start = dt.datetime(2026, 3, 7, 14, 0, tzinfo=dt.timezone.utc)
    given_sessions = [session("s1", 0, pain_before=7, pain_after=3, started_at=start, clinic_timezone="America/New_York")]
    given_checkins = [checkin("c1", 0, 8, recorded_at=start + dt.timedelta(hours=23))]
    assert outcomes(given_sessions, given_checkins) == [("s1", True, True, 23.0)]


def test_marts_columns_carry_the_episode_context():
    given_sessions = [
        session("s1", 0, pain_before=7, pain_after=3, aftercare="ice", condition="neck_pain", clinic="clinic_b"),
    ]
    episodes = relief_episodes(sessions_frame(*given_sessions), checkins_frame(checkin("c1", 6, 4)), MCID, FOLLOWUP_DAYS)
    row = episodes.collect().row(0, named=True)
    assert row["clinic_id"] == "clinic_b" and row["condition"] == "neck_pain" and row["aftercare"] == "ice"
    assert row["started_at"] == at(0) and row["follow_up_until"] == at(CAP_HOURS)


# --- the same rules, written the slow obvious way, on random timelines ---------------------------


def reference_episodes(sessions: list[dict], checkins: list[dict], mcid: float, followup_days: int) -> list[tuple]:
    done = [s for s in sessions if s["status"] == "completed"]
    needling = [s for s in done if "dry_needling" in s["therapies"]]
    result = []
    for episode in needling:
        before, after = episode["pain_before"], episode["pain_after"]
        if before is None or after is None or before - after < mcid:
            continue
        start, patient = episode["started_at"], episode["patient_key"]
        later_needling = [s["started_at"] for s in needling if s["patient_key"] == patient and s["started_at"] > start]
        horizon = min([start + dt.timedelta(days=followup_days), *later_needling])
        observations = [(c["recorded_at"], c["pain"]) for c in checkins if c["patient_key"] == patient]
        observations += [(s["started_at"], s["pain_before"]) for s in done if s["patient_key"] == patient and s["pain_before"] is not None]
        observations = sorted(o for o in observations if start < o[0] <= horizon)
        relapses = [t for t, pain in observations if pain > before - mcid]
        if relapses:
            result.append((episode["session_id"], True, True, (relapses[0] - start) / dt.timedelta(hours=1)))
        elif observations:
            result.append((episode["session_id"], True, False, (observations[-1][0] - start) / dt.timedelta(hours=1)))
        else:
            result.append((episode["session_id"], False, None, None))
    return sorted(result)


pain = st.integers(min_value=0, max_value=10)
hour = st.integers(min_value=0, max_value=1200).map(lambda h: h * 1.5)  # ties and the 42-day cap both occur
session_rows = st.lists(
    st.tuples(
        st.sampled_from(["p1", "p2"]),
        hour,
        st.none() | pain,
        st.none() | pain,
        st.sampled_from([("dry_needling",), ("manual_therapy",), ("dry_needling", "heat_ice")]),
        st.sampled_from(["completed", "completed", "completed", "cancelled"]),
    ),
    max_size=12,
)
checkin_rows = st.lists(st.tuples(st.sampled_from(["p1", "p2"]), hour, pain), max_size=15)


@settings(max_examples=100, deadline=None)
@given(session_rows, checkin_rows, st.sampled_from([1.0, 2.0, 2.5, 3.0]), st.integers(0, 1_000_000))
def test_matches_the_rules_written_the_slow_way(raw_sessions, raw_checkins, mcid, seed):
    given_sessions = [
        session(f"s{i}", h, patient=p, pain_before=b, pain_after=a, therapies=t, status=status)
        for i, (p, h, b, a, t, status) in enumerate(raw_sessions)
    ]
    given_checkins = [checkin(f"c{i}", h, v, patient=p) for i, (p, h, v) in enumerate(raw_checkins)]
    random.Random(seed).shuffle(given_checkins)
    expected = reference_episodes(given_sessions, given_checkins, mcid, FOLLOWUP_DAYS)
    assert outcomes(given_sessions, given_checkins, mcid=mcid) == expected


# Mutants tried (2026-12-07; each applied to src/clinic_outcomes/metrics/, tests run, reverted):
# - relapse `pain > level` as `>=` (relief.py): killed by test_relapse_at_a_checkin.
# - the follow-up cap `days=followup_days` as `followup_days + 1` (relief.py): killed by
#   test_censored_at_the_42_day_cap_inclusive.
# - the median's `survival <= 0.5` as `< 0.5` (survival.py): killed by
#   tests/metrics/test_survival.py::test_median_when_survival_is_exactly_one_half.
