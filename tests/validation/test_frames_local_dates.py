"""The validation frames' local dates, in every zone, against a plain-Python reference (zoneinfo).

sql/frames/core_sessions.sql and core_pain_checkins.sql compare an instant's local date with a date
(the as-of date, a plan's start) and convert to local time only the instants within a day of that date in
UTC. This brute force runs the frames' SQL files on small core tables: every 15 minutes from 50 hours before
to 50 hours after the date, in zones from UTC-11 to UTC+14 (half and quarter hours, DST north and south),
on an as-of date and a plan start on daylight-saving days. Each session's clinic is in one zone and its
plan's clinic in another, so each comparison must use its own zone.

Mutants tried (each applied to the frame's SQL, this module run, reverted; every one killed):
- core_sessions `started_at < as_of then true` as `started_at <= as_of + 1 then true`, and
  `started_at >= as_of + 2 then false` as `+ 1`: killed by
  test_started_by_as_of_is_the_local_date_in_the_sessions_clinic_zone.
- core_sessions `>= start_date + 1 then true` as `>= start_date`, `< start_date - 1 then false` as
  `< start_date`, and the plan comparison in `sessions.clinic_timezone` instead of the plan's zone: killed by
  test_started_on_or_after_plan_start_is_the_local_date_in_the_plans_clinic_zone.
- core_pain_checkins `recorded_at >= as_of + 2 then false` as `+ 1`, and `getvariable('default_timezone')`
  as `'UTC'`: killed by test_recorded_by_as_of_is_the_local_date_in_the_latest_plans_zone.
- core_pain_checkins' latest plan by `(start_date, plan_id)` (as it was before this module found it): killed
  by test_the_latest_plan_is_chosen_as_the_loader_chooses_it.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from clinic_outcomes import warehouse
from clinic_outcomes.settings import Settings
from gx_fixtures import core_connection, rows
from zone_fixtures import ZONES

UTC = dt.timezone.utc
AS_OF = dt.date(2026, 3, 8)  # the United States move their clocks forward that night
PLAN_START = dt.date(2026, 3, 29)  # so does Europe
DEFAULT_ZONE = "Asia/Tokyo"
STEP = dt.timedelta(minutes=15)
REACH = dt.timedelta(hours=50)


def _around(day: dt.date) -> list[dt.datetime]:
    midnight = dt.datetime.combine(day, dt.time(), UTC)
    steps = int(2 * REACH / STEP)
    return [midnight - REACH + n * STEP for n in range(steps + 1)]


def _local(instant: dt.datetime, zone: str) -> dt.date:
    return instant.astimezone(ZoneInfo(zone)).date()


def _other(zone: str) -> str:
    """A plan's clinic zone other than the session's: the zone across the list."""
    return ZONES[len(ZONES) - 1 - ZONES.index(zone)] if zone != ZONES[len(ZONES) // 2] else "Pacific/Kiritimati"


def _frame(con, name: str, columns: str) -> list[tuple]:
    return rows(con, f"select {columns} from ({warehouse.sql_text(f'frames/{name}')}) order by 1")


def test_started_by_as_of_is_the_local_date_in_the_sessions_clinic_zone():
    sessions = [
        {"session_id": f"{zone}|{instant:%Y%m%d%H%M}", "started_at": instant, "clinic_timezone": zone}
        for zone in ZONES
        for instant in _around(AS_OF)
    ]
    con = core_connection(sessions=sessions, as_of=AS_OF)
    got = dict(_frame(con, "core_sessions", "session_id, started_by_as_of"))
    expected = {s["session_id"]: _local(s["started_at"], s["clinic_timezone"]) <= AS_OF for s in sessions}
    assert got == expected
    assert set(got.values()) == {True, False}


def test_started_on_or_after_plan_start_is_the_local_date_in_the_plans_clinic_zone():
    plans = [
        {"plan_id": f"plan|{zone}", "start_date": PLAN_START, "clinic_timezone": _other(zone)} for zone in ZONES
    ]
    sessions = [
        {"session_id": f"{zone}|{instant:%Y%m%d%H%M}", "plan_id": f"plan|{zone}", "started_at": instant,
         "clinic_timezone": zone}
        for zone in ZONES
        for instant in _around(PLAN_START)
    ]
    con = core_connection(plans=plans, sessions=sessions, as_of=AS_OF)
    got = dict(_frame(con, "core_sessions", "session_id, started_on_or_after_plan_start"))
    expected = {
        s["session_id"]: _local(s["started_at"], _other(s["clinic_timezone"])) >= PLAN_START for s in sessions
    }
    assert got == expected
    # the session's own zone would judge some of them otherwise: the plan's zone is what is tested
    assert any((_local(s["started_at"], s["clinic_timezone"]) >= PLAN_START) != expected[s["session_id"]]
               for s in sessions)


def test_recorded_by_as_of_is_the_local_date_in_the_latest_plans_zone():
    # each patient has an older plan in UTC and a later one in the zone; the patient "none" has no plan and
    # is read in the default zone
    plans = []
    for zone in ZONES:
        plans.append({"plan_id": f"old|{zone}", "patient_key": zone, "start_date": dt.date(2025, 1, 1),
                      "clinic_timezone": "UTC"})
        plans.append({"plan_id": f"new|{zone}", "patient_key": zone, "start_date": dt.date(2026, 1, 1),
                      "clinic_timezone": zone})
    owners = {**{zone: zone for zone in ZONES}, "none": DEFAULT_ZONE}
    checkins = [
        {"checkin_id": f"{owner}|{instant:%Y%m%d%H%M}", "patient_key": owner, "recorded_at": instant}
        for owner in owners
        for instant in _around(AS_OF)
    ]
    con = core_connection(plans=plans, pain_checkins=checkins, settings=Settings(timezone=DEFAULT_ZONE),
                          as_of=AS_OF)
    got = dict(_frame(con, "core_pain_checkins", "checkin_id, recorded_by_as_of"))
    expected = {c["checkin_id"]: _local(c["recorded_at"], owners[c["patient_key"]]) <= AS_OF for c in checkins}
    assert got == expected
    assert set(got.values()) == {True, False}


def test_the_latest_plan_is_chosen_as_the_loader_chooses_it():
    # Two plans start the same day: the loader reads the patient's naive check-ins in the zone of the one
    # updated last (raw.patient_timezones: start_date, then updated_at, then plan_id), so the frame must
    # judge "recorded by the as-of date" in that zone too. Kiritimati's 00:30 on the day after as_of is
    # still as_of in Pago Pago.
    plans = [
        {"plan_id": "a_updated_last", "patient_key": "p", "start_date": dt.date(2026, 1, 1),
         "clinic_timezone": "Pacific/Kiritimati", "updated_at": dt.datetime(2026, 2, 1, tzinfo=UTC)},
        {"plan_id": "b_updated_first", "patient_key": "p", "start_date": dt.date(2026, 1, 1),
         "clinic_timezone": "Pacific/Pago_Pago", "updated_at": dt.datetime(2026, 1, 1, tzinfo=UTC)},
    ]
    instant = dt.datetime(2026, 3, 8, 10, 30, tzinfo=UTC)  # 00:30 on 03-09 in Kiritimati, 23:30 on 03-07 in Pago Pago
    con = core_connection(plans=plans, pain_checkins=[{"checkin_id": "k", "patient_key": "p", "recorded_at": instant}],
                          as_of=AS_OF)
    assert _frame(con, "core_pain_checkins", "checkin_id, recorded_by_as_of") == [("k", False)]
