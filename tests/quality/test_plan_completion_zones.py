"""R2 in every zone: a session counts in a plan's window by its local date in the plan's clinic's zone.

sql/models/quality/plan_completion.sql converts to local time only the sessions whose UTC date is within a day of
a window edge (start, final week, end) and takes the UTC date elsewhere. This brute force checks that
shortcut against a plain-Python reference (zoneinfo) in zones from UTC-11 to UTC+14, with half- and
quarter-hour offsets and daylight saving in both hemispheres: every 15 minutes from 50 hours before to 50
hours after each edge, for plans starting in winter, on the United States' and on Europe's spring-forward
days, with windows of 1 and 6 weeks. Each session has a plan of its own, so the plan's row says where the
session fell: `sessions_in_window` (in the window or not) and `no_final_week_session` (in the final week
or not).

Mutants tried (each applied to sql/models/quality/plan_completion.sql, this module run, reverted):
- the three `<= 1` as `<= 0` (all 15 tests of test_plan_completion.py passed with it):
  test_sessions_fall_in_the_window_of_their_local_date and
  test_east_of_utc_the_start_day_begins_the_evening_before_in_utc (Tokyo, Kiritimati) fail.
- `abs(utc_date - (window_end - 7)) <= 1` dropped: the brute force fails (final-week edge, east and west).
- `abs(utc_date - window_end) <= 1` dropped: the brute force fails (the end edge).
- `else utc_date` as `else utc_date + 2`: the brute force fails (a session whose UTC date is two days
  before an edge moves onto it). (`+ 1` is an equivalent mutant: a date at least two days from every edge
  stays on the same side of each after one day's shift, so no test can tell it apart.)
- `local_date < window_end` as `<=`: the brute force fails.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from clinic_outcomes.settings import Settings
from gx_fixtures import at, build_quality, core_connection, rows
from zone_fixtures import ZONES

UTC = dt.timezone.utc

STARTS = (
    dt.date(2026, 1, 15),  # winter in the north, summer time in the south
    dt.date(2026, 3, 8),  # the United States move their clocks forward that night
    dt.date(2026, 3, 29),  # Europe moves its clocks forward that night
)
WEEKS = (1, 6)  # 1 week: the final week starts on the first day
STEP = dt.timedelta(minutes=15)
REACH = dt.timedelta(hours=50)  # beyond a day either side of every edge, in every zone
AS_OF = dt.date(2027, 1, 1)  # every window is over: every plan is evaluated


def _edges(start: dt.date, weeks: int) -> tuple[dt.date, dt.date, dt.date]:
    end = start + dt.timedelta(days=7 * weeks)
    return start, end - dt.timedelta(days=7), end


def _instants_around(day: dt.date):
    midnight = dt.datetime.combine(day, dt.time(), UTC)
    instant = midnight - REACH
    while instant <= midnight + REACH:
        yield instant
        instant += STEP


def _cases():
    """(plan_id, zone, start, weeks, started_at), one session per plan, around every edge."""
    cases = []
    for zone in ZONES:
        for start in STARTS:
            for weeks in WEEKS:
                instants = sorted({i for edge in set(_edges(start, weeks)) for i in _instants_around(edge)})
                for instant in instants:
                    cases.append((f"{zone}|{start}|{weeks}|{instant:%Y%m%d%H%M}", zone, start, weeks, instant))
    return cases


def _expected(zone: str, start: dt.date, weeks: int, started_at: dt.datetime) -> tuple[int, bool]:
    """The reference: (sessions_in_window, has a session in the final week), from the zoneinfo local date."""
    local = started_at.astimezone(ZoneInfo(zone)).date()
    _, final_week, end = _edges(start, weeks)
    return int(start <= local < end), final_week <= local < end


def _completion(cases) -> dict[str, tuple[int, bool]]:
    con = core_connection(
        plans=[
            {"plan_id": plan_id, "start_date": start, "planned_weeks": weeks, "clinic_timezone": zone}
            for plan_id, zone, start, weeks, _ in cases
        ],
        sessions=[
            # the session's own clinic zone is UTC: R2 reads the plan's clinic's zone, never the session's
            {"session_id": f"s{n}", "plan_id": plan_id, "started_at": started_at,
             "therapies": ["dry_needling", "manual_therapy"]}
            for n, (plan_id, _, _, _, started_at) in enumerate(cases)
        ],
        as_of=AS_OF,
    )
    build_quality(con, Settings(), AS_OF)
    return {
        plan_id: (in_window, not list_has_final_week)
        for plan_id, in_window, list_has_final_week in rows(
            con,
            "select plan_id, sessions_in_window, list_contains(reasons, 'no_final_week_session') "
            "from quality.plan_completion where completion in ('complete', 'incomplete')",
        )
    }


def test_sessions_fall_in_the_window_of_their_local_date():
    cases = _cases()
    assert len(cases) > len(ZONES) * len(STARTS) * 2 * 400
    got = _completion(cases)
    assert len(got) == len(cases)
    wrong = [
        (plan_id, got[plan_id], _expected(zone, start, weeks, started_at))
        for plan_id, zone, start, weeks, started_at in cases
        if got[plan_id] != _expected(zone, start, weeks, started_at)
    ]
    assert wrong == []
    # the cases reach both sides of every edge: in and out of the window, in and out of the final week
    assert {value for value in got.values()} == {(0, False), (1, False), (1, True)}


@pytest.mark.parametrize("zone", ["Asia/Tokyo", "Pacific/Kiritimati", "Asia/Kolkata"])
def test_east_of_utc_the_start_day_begins_the_evening_before_in_utc(zone):
    # 00:30 local on the first day is the previous day in UTC: it counts; 23:30 the evening before does not.
    # 23:30 local on the window's last day counts; 00:30 the day after (still that day in UTC) does not.
    start = dt.date(2026, 9, 1)
    cases = [
        ("first", zone, start, 6, at("2026-09-01 00:30", zone)),
        ("before", zone, start, 6, at("2026-08-31 23:30", zone)),
        ("last", zone, start, 6, at("2026-10-12 23:30", zone)),
        ("after", zone, start, 6, at("2026-10-13 00:30", zone)),
    ]
    assert cases[0][4].date() == dt.date(2026, 8, 31)  # the premise: the UTC date is the day before
    assert cases[3][4].date() == dt.date(2026, 10, 12)
    assert _completion(cases) == {"first": (1, False), "before": (0, False), "last": (1, True), "after": (0, False)}
