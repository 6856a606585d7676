"""Naive local times in a daylight-saving change, through real CSV rows (README, "Decisions where the
contract is silent"): "a wall-clock time in the spring-forward gap is read with the offset in force before
the change (02:30 -> 03:30 EDT); one that occurs twice in the autumn is read as the second occurrence
(standard time)". And R1's 72 hours across those changes, from naive times in the export to the flags.

The reference is plain Python: zoneinfo gives both readings of a wall-clock time (fold=0 and fold=1); in a
gap the rule takes the offset before the change, in a repeated hour the second occurrence.

Mutants tried (each applied, tests run, reverted; every one killed):
- sql/models/core/sessions.sql reading a repeated wall time as its first occurrence, and nothing else
  (`timezone(zone, local) - case when timezone(zone, local) - timezone(zone, local - interval 1 hour)
  = interval 2 hour then interval 1 hour else interval 0 hour end`): every test of
  tests/loading/test_load_dialect.py still passed; killed here by test_session_times_in_a_change_follow_the_readme
  (ny_repeat_start, ny_repeat, ny_repeat_end, berlin_repeat), test_every_quarter_hour_around_each_change_follows_the_rule
  and test_r1_across_daylight_saving_changes_from_naive_export_times (and by
  tests/core/test_incremental.py::test_the_scripted_changes_happened).
- the same expression reading a gap time at the later offset, and nothing else (`- interval 1 hour` when the
  local time does not survive the round trip): killed by the gap cases of
  test_session_times_in_a_change_follow_the_readme (New York, Berlin, Lord Howe, Santiago), the quarter-hour
  sweep and the R1 test.
- cruder forms of both (`timezone(zone, local - interval 1 hour) + interval 1 hour`, and `+`/`-` swapped):
  killed by test_session_times_in_a_change_follow_the_readme.
- sql/models/core/pain_checkins.sql reading the first occurrence (the crude form): killed by
  test_checkin_times_in_a_change_follow_the_readme (k_ny_repeat).
- sql/models/quality/retreatment_checks.sql `< retreatment_window_hours` as `<=`, and elapsed hours as New York
  wall-clock hours: killed by test_r1_across_daylight_saving_changes_from_naive_export_times.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from clinic_outcomes import warehouse
from clinic_outcomes.settings import Settings
from load_fixtures import checkin, load_all, plan, rows, session, site, write_drop
from gx_fixtures import build_quality

UTC = dt.timezone.utc
NY, BERLIN, LORD_HOWE = "America/New_York", "Europe/Berlin", "Australia/Lord_Howe"
SETTINGS = Settings(
    timezone="UTC",
    clinic_timezones={
        "c_ny": NY,
        "c_berlin": BERLIN,
        "c_lord_howe": LORD_HOWE,  # half-hour daylight saving (+10:30 / +11)
        "c_chatham": "Pacific/Chatham",  # +12:45 / +13:45
        "c_santiago": "America/Santiago",  # changes at midnight: the gap is 00:00-01:00
    },
)
CLINIC_ZONES = SETTINGS.clinic_timezones


def readme_instant(wall: str, zone: str) -> dt.datetime:
    """The README's rule in plain Python: the gap takes the offset before the change, a repeated time its
    second occurrence."""
    local = dt.datetime.fromisoformat(wall)
    first, second = (local.replace(tzinfo=ZoneInfo(zone), fold=fold) for fold in (0, 1))
    if first.utcoffset() == second.utcoffset():
        return first.astimezone(UTC)
    in_gap = first.astimezone(UTC).astimezone(ZoneInfo(zone)).replace(tzinfo=None) != local
    # in a gap fold=0 is the offset before the change; in a repeated hour fold=1 is the second occurrence
    return (first if in_gap else second).astimezone(UTC)


def _utc(*args) -> dt.datetime:
    return dt.datetime(*args, tzinfo=UTC)


# session_id, clinic, naive started_at -> the instant, spelled out
SESSION_TIMES = [
    # New York, spring 2026-03-08: 02:00-02:59 does not exist; read at EST (-05:00)
    ("ny_gap_start", "c_ny", "2026-03-08T02:00:00", _utc(2026, 3, 8, 7, 0)),
    ("ny_gap", "c_ny", "2026-03-08T02:30:00", _utc(2026, 3, 8, 7, 30)),  # = 03:30 EDT
    ("ny_gap_end", "c_ny", "2026-03-08T02:59:59", _utc(2026, 3, 8, 7, 59, 59)),
    ("ny_after_gap", "c_ny", "2026-03-08T03:00:00", _utc(2026, 3, 8, 7, 0)),  # EDT
    # New York, autumn 2026-11-01: 01:00-01:59 happens twice; read as the second (EST)
    ("ny_before_repeat", "c_ny", "2026-11-01T00:59:59", _utc(2026, 11, 1, 4, 59, 59)),  # EDT
    ("ny_repeat_start", "c_ny", "2026-11-01T01:00:00", _utc(2026, 11, 1, 6, 0)),
    ("ny_repeat", "c_ny", "2026-11-01T01:30:00", _utc(2026, 11, 1, 6, 30)),
    ("ny_repeat_end", "c_ny", "2026-11-01T01:59:59", _utc(2026, 11, 1, 6, 59, 59)),
    ("ny_after_repeat", "c_ny", "2026-11-01T02:00:00", _utc(2026, 11, 1, 7, 0)),
    # Berlin: the gap 02:00-02:59 on 2026-03-29 at CET (+01:00); 02:00-02:59 twice on 2026-10-25, the second CET
    ("berlin_gap", "c_berlin", "2026-03-29T02:30:00", _utc(2026, 3, 29, 1, 30)),
    ("berlin_repeat", "c_berlin", "2026-10-25T02:30:00", _utc(2026, 10, 25, 1, 30)),
    # Lord Howe: clocks move by half an hour; the gap 02:00-02:29 on 2026-10-04 at +10:30,
    # 01:30-01:59 twice on 2026-04-05, the second at +10:30
    ("lord_howe_gap", "c_lord_howe", "2026-10-04T02:15:00", _utc(2026, 10, 3, 15, 45)),
    ("lord_howe_repeat", "c_lord_howe", "2026-04-05T01:45:00", _utc(2026, 4, 4, 15, 15)),
    # Santiago's spring gap is at midnight (2026-09-06 00:00 -> 01:00): the day's first half hour is read at -04:00
    ("santiago_gap", "c_santiago", "2026-09-06T00:30:00", _utc(2026, 9, 6, 4, 30)),
]

# Around each change: every quarter hour from 3 hours before to 3 hours after the change, in local wall time.
CHANGES = [
    ("c_ny", "2026-03-08T02:00:00"), ("c_ny", "2026-11-01T01:00:00"),
    ("c_berlin", "2026-03-29T02:00:00"), ("c_berlin", "2026-10-25T02:00:00"),
    ("c_lord_howe", "2026-10-04T02:00:00"), ("c_lord_howe", "2026-04-05T01:30:00"),
    ("c_chatham", "2026-09-27T02:45:00"), ("c_chatham", "2026-04-05T02:45:00"),
    ("c_santiago", "2026-09-06T00:00:00"), ("c_santiago", "2026-04-05T00:00:00"),
]


def _walls_around(change: str) -> list[str]:
    middle = dt.datetime.fromisoformat(change)
    return [(middle + n * dt.timedelta(minutes=15)).isoformat() for n in range(-12, 13)]


def _quarter_hours() -> list[tuple[str, str, str]]:
    return [(f"q_{clinic}_{wall}", clinic, wall) for clinic, change in CHANGES for wall in _walls_around(change)]


QUARTER_HOURS = _quarter_hours()

# Check-ins carry no clinic: the zone of the patient's latest plan's clinic.
# checkin_id, patient_id, naive recorded_at -> the instant
CHECKIN_TIMES = [
    ("k_ny_gap", "P_ny", "2026-03-08T02:30:00", _utc(2026, 3, 8, 7, 30)),
    ("k_ny_repeat", "P_ny", "2026-11-01T01:30:00", _utc(2026, 11, 1, 6, 30)),
    ("k_berlin_gap", "P_berlin", "2026-03-29T02:30:00", _utc(2026, 3, 29, 1, 30)),
    ("k_berlin_repeat", "P_berlin", "2026-10-25T02:30:00", _utc(2026, 10, 25, 1, 30)),
]


@pytest.fixture(scope="module")
def night(tmp_path_factory):
    exports = tmp_path_factory.mktemp("dst") / "exports"
    sessions = [session(session_id=sid, clinic_id=clinic, started_at=wall, plan_id=None)
                for sid, clinic, wall, _ in SESSION_TIMES]
    sessions += [session(session_id=sid, clinic_id=clinic, started_at=wall, plan_id=None)
                 for sid, clinic, wall in QUARTER_HOURS]
    write_drop(exports, "2026-11-20", "sessions", sessions)
    write_drop(exports, "2026-11-20", "plans", [
        plan(plan_id="pl_ny", patient_id="P_ny", clinic_id="c_ny"),
        plan(plan_id="pl_berlin", patient_id="P_berlin", clinic_id="c_berlin"),
    ])
    write_drop(exports, "2026-11-20", "pain_checkins", [
        checkin(checkin_id=cid, patient_id=pid, recorded_at=wall) for cid, pid, wall, _ in CHECKIN_TIMES
    ])
    con = warehouse.connect(None)
    load_all(con, exports, settings=SETTINGS)
    assert rows(con, "select count(*) from quality.rejected_rows") == [(0,)]
    yield con
    con.close()


def _started_at(con) -> dict[str, dt.datetime]:
    return dict(rows(con, "select session_id, started_at from core.sessions"))


def test_the_reference_states_the_readme_rule():
    # the README's own example, and the first reading the autumn rule must not take
    assert readme_instant("2026-03-08T02:30:00", NY) == dt.datetime(2026, 3, 8, 3, 30, tzinfo=ZoneInfo(NY))
    assert readme_instant("2026-11-01T01:30:00", NY) == _utc(2026, 11, 1, 6, 30) != _utc(2026, 11, 1, 5, 30)
    assert all(readme_instant(wall, CLINIC_ZONES[clinic]) == instant for _, clinic, wall, instant in SESSION_TIMES)


@pytest.mark.parametrize(("session_id", "clinic", "wall", "instant"), SESSION_TIMES, ids=[c[0] for c in SESSION_TIMES])
def test_session_times_in_a_change_follow_the_readme(night, session_id, clinic, wall, instant):
    assert _started_at(night)[session_id] == instant


def test_every_quarter_hour_around_each_change_follows_the_rule(night):
    got = _started_at(night)
    wrong = {sid: (wall, got[sid]) for sid, clinic, wall in QUARTER_HOURS
             if got[sid] != readme_instant(wall, CLINIC_ZONES[clinic])}
    assert wrong == {}
    # every change has a gap or a repeated time among these times: fold=0 and fold=1 differ somewhere in each
    for clinic, change in CHANGES:
        zone = ZoneInfo(CLINIC_ZONES[clinic])
        walls = _walls_around(change)
        assert any(dt.datetime.fromisoformat(w).replace(tzinfo=zone, fold=0).utcoffset()
                   != dt.datetime.fromisoformat(w).replace(tzinfo=zone, fold=1).utcoffset() for w in walls), change


@pytest.mark.parametrize(("checkin_id", "patient_id", "wall", "instant"), CHECKIN_TIMES, ids=[c[0] for c in CHECKIN_TIMES])
def test_checkin_times_in_a_change_follow_the_readme(night, checkin_id, patient_id, wall, instant):
    assert rows(night, "select recorded_at from core.pain_checkins where checkin_id = $id", {"id": checkin_id}) == [
        (instant,)
    ]


# --- R1 across daylight-saving changes, from naive export times -------------------------------------------

# (case, earlier naive time, later naive time, New York) -> flagged with these hours, or not flagged (None)
R1_CASES = [
    # spring 2026-03-08: 72 hours of wall time are 71 elapsed
    ("spring_wall_72h", "2026-03-06T09:00:00", "2026-03-09T09:00:00", 71.0),
    ("spring_elapsed_71_5h", "2026-03-06T09:00:00", "2026-03-09T09:30:00", 71.5),
    ("spring_elapsed_exactly_72h", "2026-03-06T09:00:00", "2026-03-09T10:00:00", None),
    # autumn 2026-11-01: 72 hours of wall time are 73 elapsed; 71 of wall time are 72 elapsed
    ("autumn_wall_72h", "2026-10-29T09:00:00", "2026-11-01T09:00:00", None),
    ("autumn_elapsed_exactly_72h", "2026-10-29T09:00:00", "2026-11-01T08:00:00", None),
    ("autumn_elapsed_71_9h", "2026-10-29T09:00:00", "2026-11-01T07:54:00", 71.9),
    # a time in the gap (read at EST, 07:30 UTC) exactly 72 h after 02:30 EST three days before
    ("gap_exactly_72h", "2026-03-05T02:30:00", "2026-03-08T02:30:00", None),
    ("gap_71_5h", "2026-03-05T03:00:00", "2026-03-08T02:30:00", 71.5),
    # a repeated time (read as its second occurrence, EST, 06:30 UTC) exactly 72 h after 02:30 EDT
    ("repeat_exactly_72h", "2026-10-29T02:30:00", "2026-11-01T01:30:00", None),
    ("repeat_71_5h", "2026-10-29T03:00:00", "2026-11-01T01:30:00", 71.5),
]


def test_r1_across_daylight_saving_changes_from_naive_export_times(tmp_path):
    exports = tmp_path / "exports"
    sessions, sites = [], []
    for case, earlier, later, _ in R1_CASES:
        for suffix, wall in (("a", earlier), ("b", later)):
            sessions.append(session(session_id=f"{case}_{suffix}", patient_id=f"P_{case}", plan_id=None,
                                    clinic_id="c_ny", started_at=wall, therapies="dry_needling"))
            sites.append(site(session_id=f"{case}_{suffix}", site="upper_trapezius", side="left"))
    write_drop(exports, "2026-11-20", "sessions", sessions)
    write_drop(exports, "2026-11-20", "needle_sites", sites)
    con = warehouse.connect(None)
    try:
        load_all(con, exports, settings=SETTINGS)
        build_quality(con, SETTINGS)
        flagged = dict(rows(con, "select session_id, round(hours_since_previous, 4) from quality.retreatment_flags"))
        checked = dict(rows(con, "select session_id, round(hours_since_previous, 4) from quality.retreatment_checks "
                                 "where previous_session_id is not null"))
    finally:
        con.close()
    expected_flags = {f"{case}_b": hours for case, _, _, hours in R1_CASES if hours is not None}
    assert flagged == expected_flags
    # and the elapsed hours of the unflagged pairs are what the README rule makes them
    for case, earlier, later, hours in R1_CASES:
        elapsed = (readme_instant(later, NY) - readme_instant(earlier, NY)).total_seconds() / 3600
        assert checked[f"{case}_b"] == pytest.approx(elapsed)
        assert (elapsed < 72) == (hours is not None), case
