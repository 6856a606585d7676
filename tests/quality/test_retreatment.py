"""R1 — re-treatment of the same spot within 72 hours (rules.md), every edge.

Each test: given these core rows, expect exactly these flags
(session_id, previous_session_id, site, side, hours_since_previous).
"""

from __future__ import annotations

import datetime as dt

from hypothesis import HealthCheck, given, settings as hyp_settings, strategies as st

from clinic_outcomes.settings import Rules, Settings
from gx_fixtures import at, build_quality, core_connection, replace_core, rows

NY = "America/New_York"
BERLIN = "Europe/Berlin"


def flags(con) -> list[tuple]:
    return rows(
        con,
        "select session_id, previous_session_id, site, side, round(hours_since_previous, 4) "
        "from quality.retreatment_flags order by session_id, site, side",
    )


def session(session_id: str, started_at: dt.datetime, **columns) -> dict:
    return {"session_id": session_id, "started_at": started_at, **columns}


def site(session_id: str, name: str = "upper_trapezius", side: str = "left") -> dict:
    return {"session_id": session_id, "site": name, "side": side}


def r1(sessions: list[dict], needle_sites: list[dict], settings: Settings | None = None):
    con = core_connection(sessions=sessions, needle_sites=needle_sites)
    build_quality(con, settings)
    return con


def test_exactly_72_hours_is_allowed_and_a_minute_less_is_flagged():
    con = r1(
        [
            session("a1", at("2026-05-04 09:00")),
            session("a2", at("2026-05-07 09:00")),  # exactly 72 h after a1
            session("a3", at("2026-05-10 08:59")),  # 71 h 59 min after a2
        ],
        [site("a1"), site("a2"), site("a3")],
    )
    assert flags(con) == [("a3", "a2", "upper_trapezius", "left", 71.9833)]


def test_spring_forward_inside_the_window_counts_elapsed_hours():
    # New York moves its clocks forward on 2026-03-08: 09:00 -> 09:00 three days later is 71 elapsed hours.
    con = r1(
        [
            session("b1", at("2026-03-06 09:00", NY), clinic_timezone=NY),
            session("b2", at("2026-03-09 09:00", NY), clinic_timezone=NY),
        ],
        [site("b1"), site("b2")],
    )
    assert flags(con) == [("b2", "b1", "upper_trapezius", "left", 71.0)]


def test_spring_forward_wall_clock_73_hours_is_exactly_72_elapsed():
    con = r1(
        [
            session("c1", at("2026-03-06 09:00", NY), clinic_timezone=NY),
            session("c2", at("2026-03-09 10:00", NY), clinic_timezone=NY),
        ],
        [site("c1"), site("c2")],
    )
    assert flags(con) == []


def test_fall_back_inside_the_window_counts_elapsed_hours():
    # New York moves its clocks back on 2026-11-01: 09:00 -> 09:00 three days later is 73 elapsed hours,
    # and 08:00 three days later is 72: neither is flagged, 07:30 (71.5 h) is.
    con = r1(
        [
            session("d1", at("2026-10-30 09:00", NY), clinic_timezone=NY),
            session("d2", at("2026-11-02 09:00", NY), clinic_timezone=NY),
            session("e1", at("2026-10-30 09:00", NY), clinic_timezone=NY, patient_key="pk_e"),
            session("e2", at("2026-11-02 08:00", NY), clinic_timezone=NY, patient_key="pk_e"),
            session("f1", at("2026-10-30 09:00", NY), clinic_timezone=NY, patient_key="pk_f"),
            session("f2", at("2026-11-02 07:30", NY), clinic_timezone=NY, patient_key="pk_f"),
        ],
        [site(s) for s in ("d1", "d2", "e1", "e2", "f1", "f2")],
    )
    assert flags(con) == [("f2", "f1", "upper_trapezius", "left", 71.5)]


def test_daylight_saving_change_just_before_and_just_after_the_window():
    # Berlin changes on 2026-03-29 and 2026-10-25. A window that ends just before a change and one
    # that starts just after it are plain 72-hour windows.
    con = r1(
        [
            session("g1", at("2026-03-26 01:30", BERLIN), clinic_timezone=BERLIN),
            session("g2", at("2026-03-29 01:29", BERLIN), clinic_timezone=BERLIN),  # 71.98 h, before the change
            session("h1", at("2026-10-25 03:30", BERLIN), clinic_timezone=BERLIN, patient_key="pk_h"),
            session("h2", at("2026-10-28 03:30", BERLIN), clinic_timezone=BERLIN, patient_key="pk_h"),  # 72 h, after
        ],
        [site("g1"), site("g2"), site("h1"), site("h2")],
    )
    assert flags(con) == [("g2", "g1", "upper_trapezius", "left", 71.9833)]


def test_same_site_on_the_other_side_or_of_another_patient_is_another_spot():
    con = r1(
        [
            session("i1", at("2026-05-04 09:00")),
            session("i2", at("2026-05-05 09:00")),
            session("i3", at("2026-05-05 10:00"), patient_key="pk_other"),
        ],
        [site("i1", side="left"), site("i2", side="right"), site("i3", side="left")],
    )
    assert flags(con) == []


def test_cancelled_no_show_and_non_needling_sessions_count_for_nothing():
    con = r1(
        [
            session("j1", at("2026-05-01 09:00")),
            session("j2", at("2026-05-02 09:00"), status="cancelled"),
            session("j3", at("2026-05-03 09:00"), status="no_show"),
            session("j4", at("2026-05-03 12:00"), therapies=["manual_therapy"]),
            session("j5", at("2026-05-04 10:00")),  # 73 h after j1, the spot's previous needling session
            session("j6", at("2026-05-05 09:00"), status="cancelled"),  # too soon, but cancelled
        ],
        [site(s) for s in ("j1", "j2", "j3", "j4", "j5", "j6")],
    )
    assert flags(con) == []


def test_cancelled_session_between_two_needling_sessions_does_not_hide_the_flag():
    con = r1(
        [
            session("k1", at("2026-05-01 09:00")),
            session("k2", at("2026-05-01 20:00"), status="cancelled"),
            session("k3", at("2026-05-03 09:00")),
        ],
        [site("k1"), site("k2"), site("k3")],
    )
    assert flags(con) == [("k3", "k1", "upper_trapezius", "left", 48.0)]


def test_previous_is_the_spots_latest_earlier_session_not_the_first():
    con = r1(
        [
            session("l1", at("2026-05-01 09:00")),
            session("l2", at("2026-05-05 09:00")),
            session("l3", at("2026-05-06 05:00")),
        ],
        [site("l1"), site("l2"), site("l3")],
    )
    assert flags(con) == [("l3", "l2", "upper_trapezius", "left", 20.0)]


def test_ties_in_started_at_are_ordered_by_session_id_and_flagged_at_zero_hours():
    con = r1(
        [session("m2", at("2026-05-01 09:00")), session("m1", at("2026-05-01 09:00"))],
        [site("m2"), site("m1")],
    )
    assert flags(con) == [("m2", "m1", "upper_trapezius", "left", 0.0)]


def test_several_spots_in_one_session_get_one_flag_each():
    con = r1(
        [session("n1", at("2026-05-01 09:00")), session("n2", at("2026-05-02 09:00"))],
        [
            site("n1", "upper_trapezius", "left"),
            site("n1", "upper_trapezius", "right"),
            site("n1", "gluteus_medius", "midline"),
            site("n2", "upper_trapezius", "left"),
            site("n2", "upper_trapezius", "right"),
            site("n2", "lumbar_multifidus", "left"),  # first time for this spot
        ],
    )
    assert flags(con) == [
        ("n2", "n1", "upper_trapezius", "left", 24.0),
        ("n2", "n1", "upper_trapezius", "right", 24.0),
    ]


def test_session_moved_by_a_later_drop_is_judged_at_its_new_time():
    # The loader keeps the latest version of a session; a rebuild must leave no stale flag.
    con = r1(
        [session("o1", at("2026-05-01 09:00")), session("o2", at("2026-05-02 09:00"))],
        [site("o1"), site("o2")],
    )
    assert flags(con) == [("o2", "o1", "upper_trapezius", "left", 24.0)]
    replace_core(con, "sessions", [session("o1", at("2026-05-01 09:00")), session("o2", at("2026-05-05 09:00"))])
    build_quality(con)
    assert flags(con) == []
    replace_core(con, "sessions", [session("o1", at("2026-05-01 09:00")), session("o2", at("2026-04-30 09:00"))])
    build_quality(con)
    assert flags(con) == [("o1", "o2", "upper_trapezius", "left", 24.0)]


def test_sites_replaced_by_a_later_drop_are_judged_as_replaced():
    con = r1(
        [session("p1", at("2026-05-01 09:00")), session("p2", at("2026-05-02 09:00"))],
        [site("p1"), site("p2")],
    )
    assert len(flags(con)) == 1
    replace_core(con, "needle_sites", [site("p1"), site("p2", "gluteus_medius", "right")])
    build_quality(con)
    assert flags(con) == []


def test_flag_carries_the_flagged_sessions_clinic_clinician_and_start():
    con = r1(
        [
            session("q1", at("2026-05-01 09:00"), clinic_id="clinic_a", clinician_id="clin_a"),
            session("q2", at("2026-05-02 09:00"), clinic_id="clinic_b", clinician_id="clin_b"),
        ],
        [site("q1"), site("q2")],
    )
    assert rows(con, "select session_id, clinic_id, clinician_id, started_at from quality.retreatment_flags") == [
        ("q2", "clinic_b", "clin_b", at("2026-05-02 09:00")),
    ]
    columns = [c for (c,) in rows(con, "select column_name from (describe quality.retreatment_flags)")]
    assert columns[:7] == [
        "session_id", "previous_session_id", "site", "side", "hours_since_previous", "clinic_id", "clinician_id",
    ]
    assert "patient_key" not in columns


def test_window_comes_from_settings():
    sessions = [session("r1", at("2026-05-01 09:00")), session("r2", at("2026-05-03 11:00"))]  # 50 h
    assert flags(r1(sessions, [site("r1"), site("r2")])) == [("r2", "r1", "upper_trapezius", "left", 50.0)]
    narrow = Settings(rules=Rules(retreatment_window_hours=48))
    assert flags(r1(sessions, [site("r1"), site("r2")], narrow)) == []


def test_checks_hold_every_spot_and_flags_are_exactly_the_checks_retreated_too_soon():
    con = r1(
        [session("s1", at("2026-05-01 09:00")), session("s2", at("2026-05-02 09:00")),
         session("s3", at("2026-05-09 09:00"))],
        [site("s1"), site("s2"), site("s3"), site("s3", "gluteus_medius")],
    )
    assert rows(
        con,
        "select session_id, site, previous_session_id, hours_since_previous, retreated_too_soon "
        "from quality.retreatment_checks order by session_id, site",
    ) == [
        ("s1", "upper_trapezius", None, None, False),
        ("s2", "upper_trapezius", "s1", 24.0, True),
        ("s3", "gluteus_medius", None, None, False),
        ("s3", "upper_trapezius", "s2", 168.0, False),
    ]


# --- property: R1 against a brute-force pairwise oracle -------------------------------------

BASE = dt.datetime(2026, 3, 5, tzinfo=dt.timezone.utc)
ZONES = ["UTC", NY]

random_session = st.fixed_dictionaries(
    {
        "patient_key": st.sampled_from(["pk_a", "pk_b"]),
        # a coarse half-hour grid makes ties and exactly-72-hour gaps likely
        "half_hours": st.integers(min_value=0, max_value=24 * 12),
        "status": st.sampled_from(["completed", "completed", "completed", "cancelled", "no_show"]),
        "therapies": st.sampled_from([["dry_needling"], ["dry_needling", "manual_therapy"], ["manual_therapy"]]),
        "clinic_timezone": st.sampled_from(ZONES),
        "spots": st.sets(
            st.tuples(st.sampled_from(["upper_trapezius", "gluteus_medius"]), st.sampled_from(["left", "right"])),
            max_size=3,
        ),
    }
)


def oracle(sessions: list[dict], window_hours: float) -> set[tuple]:
    """Pairwise: for each needling session and spot, the latest earlier needling session of that spot."""
    needling = [s for s in sessions if s["status"] == "completed" and "dry_needling" in s["therapies"]]
    expected = set()
    for later in needling:
        for spot in later["spots"]:
            earlier = [
                s for s in needling
                if s["patient_key"] == later["patient_key"] and spot in s["spots"]
                and (s["started_at"], s["session_id"]) < (later["started_at"], later["session_id"])
            ]
            if not earlier:
                continue
            previous = max(earlier, key=lambda s: (s["started_at"], s["session_id"]))
            hours = (later["started_at"] - previous["started_at"]).total_seconds() / 3600
            if 0 <= hours < window_hours:
                expected.add((later["session_id"], previous["session_id"], spot[0], spot[1], round(hours, 4)))
    return expected


@hyp_settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(random_session, max_size=14), st.sampled_from([72.0, 24.0]))
def test_r1_matches_a_pairwise_oracle(drawn, window_hours):
    sessions = [
        {**s, "session_id": f"x{i:02d}", "started_at": BASE + dt.timedelta(minutes=30 * s["half_hours"])}
        for i, s in enumerate(drawn)
    ]
    con = core_connection(
        settings=Settings(rules=Rules(retreatment_window_hours=window_hours)),
        sessions=[
            {k: s[k] for k in ("session_id", "patient_key", "started_at", "status", "therapies", "clinic_timezone")}
            for s in sessions
        ],
        needle_sites=[site(s["session_id"], name, side) for s in sessions for name, side in s["spots"]],
    )
    build_quality(con, Settings(rules=Rules(retreatment_window_hours=window_hours)))
    assert set(flags(con)) == oracle(sessions, window_hours)
    con.close()


# Mutants tried (2026-12-07; each applied to sql/models/quality/retreatment_checks.sql, this module run, reverted):
# - `hours_since_previous < retreatment_window_hours` as `<=`: killed by
#   test_exactly_72_hours_is_allowed_and_a_minute_less_is_flagged (and, from naive export times across DST,
#   tests/loading/test_load_dst.py::test_r1_across_daylight_saving_changes_from_naive_export_times).
# - `hours_since_previous >= 0` as `> 0`: killed by test_ties_in_started_at_are_ordered_by_session_id_and_flagged_at_zero_hours.
# - `order by started_at, session_id` as `... session_id desc`: killed by the same tie test.
# - `partition by patient_key, site, side` as `partition by patient_key, site`: killed by
#   test_same_site_on_the_other_side_or_of_another_patient_is_another_spot.
# - elapsed hours as New York wall-clock hours: killed by test_load_dst.py's R1 test (this module builds
#   its instants in Python, so only the loader test reads naive times).
