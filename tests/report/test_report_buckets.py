"""The report's bucket_date (sql/report/report_sessions.sql) places every completed session in the same
period, month and reported range as its local date would, in zones from UTC-11 to UTC+14, hour by hour
across every boundary the report compares dates with."""

from __future__ import annotations

import report_fixtures as rf
from clinic_outcomes.report.queries import create_report_tables, period_params
from clinic_outcomes.report.wording import PERIOD_DAYS

ZONES = ("Pacific/Pago_Pago", "America/New_York", "UTC", "Europe/London", "Asia/Kathmandu", "Pacific/Kiritimati")


def test_bucket_date_buckets_like_the_local_date():
    con = rf.build_warehouse()
    params = {name: value for name, value in period_params(rf.AS_OF).items() if name in ('as_of', 'first_day')}
    zones = ", ".join(f"'{zone}'" for zone in ZONES)
    # one session every 37 minutes (every minute of the hour comes round) from 3 days before the first day
    # reported to 3 days after as_of, in each zone
    con.execute(
        f"""
        insert into core.sessions (session_id, patient_key, plan_id, clinic_id, started_at, status, therapies,
                                   clinic_timezone)
        select 'b' || zone || epoch_us(ts), 'p', 'plan', 'clinic_' || zone, ts, 'completed', ['dry_needling'], zone
        from unnest([{zones}]) as z(zone),
             generate_series(($first_day - 3)::timestamptz, ($as_of + 4)::timestamptz, interval 37 minute) as t(ts)
        """,
        params,
    )
    create_report_tables(con, rf.AS_OF)
    buckets = """
        {day} between $first_day and $as_of as in_range,
        strftime({day}, '%Y-%m') as month,
        {day} > $as_of - {period} as current_period,
        {day} > $as_of - {twice} as recent
    """
    exact, bucketed = (
        con.sql(
            f"""
            select sessions.session_id, {buckets.format(day=day, period=PERIOD_DAYS, twice=2 * PERIOD_DAYS)}
            from report_sessions as report
            join core.sessions as sessions using (session_id)
            where sessions.session_id like 'b%'
            order by sessions.session_id
            """,
            params=params,
        ).fetchall()
        for day in ("cast(timezone(sessions.clinic_timezone, sessions.started_at) as date)", "report.bucket_date")
    )
    assert len(exact) > 6 * 24 * 400
    assert bucketed == exact
    # the UTC date alone would not do: it puts some sessions in another bucket
    utc = con.sql(
        f"""
        select session_id, {buckets.format(day="cast(timezone('UTC', started_at) as date)", period=PERIOD_DAYS,
                                           twice=2 * PERIOD_DAYS)}
        from core.sessions where session_id like 'b%' order by session_id
        """,
        params=params,
    ).fetchall()
    assert utc != exact


# Mutants tried (2026-12-07; src/clinic_outcomes/report/render.py REPORT_TABLES_SQL, applied, this test run,
# reverted; every one killed by test_bucket_date_buckets_like_the_local_date): the `<= 1` of $first_day and
# $as_of as `<= 0`; of `$as_of - PERIOD_DAYS` as `<= 0`; of `$as_of - 2 * PERIOD_DAYS` as `<= 0`; the
# month-start condition as `false`; `or day(utc_date + 1) = 1` dropped.
