"""The views for managers' common questions (sql/views/): given a few rows of core and quality, expect these rows.

Mutants tried (each made a test here fail): the month taken from the UTC instant instead of the clinic's local
time; the 30-day window's `>= as_of - 30` as `>`, its `< as_of` as `<=`; the window's as-of from any run instead
of published runs (`where true`); `count(flags.session_id)` as `count(*)`; discharged_improved left out of the
completed share.
"""

from __future__ import annotations

import datetime as dt

import pytest

from clinic_outcomes import warehouse

NY = "America/New_York"


def _session(session_id, clinic, local: str, zone=NY, patient="k1", status="completed", therapies=("dry_needling",)):
    return (session_id, patient, clinic, zone, local, status, list(therapies))


@pytest.fixture
def con():
    con = warehouse.connect()
    for schema in ("core", "quality", "ops"):
        con.execute(f"create schema {schema}")
    con.execute(
        "create table core.sessions (session_id varchar, patient_key varchar, clinic_id varchar, "
        "clinic_timezone varchar, started_at timestamptz, status varchar, therapies varchar[])"
    )
    con.execute(
        "create table quality.retreatment_flags (session_id varchar, previous_session_id varchar, site varchar, "
        "side varchar, hours_since_previous double, clinic_id varchar, clinician_id varchar, started_at timestamptz)"
    )
    con.execute(
        "create table quality.plan_completion (plan_id varchar, patient_key varchar, clinic_id varchar, completion varchar)"
    )
    con.execute("create table ops.runs (run_id integer, as_of date, status varchar)")
    con.execute("insert into ops.runs values (1, '2026-11-24', 'published'), (2, '2026-12-01', 'failed')")
    yield con
    con.close()


def _add_sessions(con, rows):
    for session_id, patient, clinic, zone, local, status, therapies in rows:
        con.execute(
            "insert into core.sessions values (?, ?, ?, ?, timezone(?, ?::timestamp), ?, ?)",
            [session_id, patient, clinic, zone, zone, local, status, therapies],
        )


def test_monthly_needling_counts_local_months_completed_needling_and_distinct_patients(con):
    _add_sessions(con, [
        # 23:30 in New York on 31 October is 1 November in UTC: it belongs to October.
        _session("s1", "clinic_nyc", "2026-10-31 23:30:00", patient="k1"),
        _session("s2", "clinic_nyc", "2026-10-05 09:00:00", patient="k1"),
        _session("s3", "clinic_nyc", "2026-10-06 09:00:00", patient="k2"),
        _session("s4", "clinic_nyc", "2026-11-01 00:30:00", patient="k2"),
        _session("s5", "clinic_nyc", "2026-10-07 09:00:00", status="no_show"),
        _session("s6", "clinic_nyc", "2026-10-08 09:00:00", therapies=("manual_therapy",)),
        # 1 November 08:00 in Tokyo is 31 October in UTC: it belongs to November.
        _session("s7", "clinic_tok", "2026-11-01 08:00:00", zone="Asia/Tokyo", patient="k9"),
    ])
    warehouse.create_views(con)

    rows = con.execute("select * from views.monthly_needling_by_clinic").fetchall()

    assert rows == [
        ("clinic_nyc", dt.date(2026, 10, 1), 3, 2),
        ("clinic_nyc", dt.date(2026, 11, 1), 1, 1),
        ("clinic_tok", dt.date(2026, 11, 1), 1, 1),
    ]


def test_retreatment_flags_last_30_days_window_edges_and_clinics_without_flags(con):
    _add_sessions(con, [
        _session("first_day", "clinic_nyc", "2026-10-25 00:10:00"),  # as_of - 30: in
        _session("before", "clinic_nyc", "2026-10-24 23:50:00"),  # as_of - 31: out
        _session("last_day", "clinic_nyc", "2026-11-23 23:50:00"),  # as_of - 1: in
        _session("as_of_day", "clinic_nyc", "2026-11-24 00:10:00"),  # the as-of date itself: out
        _session("quiet", "clinic_bos", "2026-11-10 10:00:00"),
    ])
    for session_id, site in [("first_day", "trap"), ("first_day", "glute"), ("before", "trap"), ("as_of_day", "trap")]:
        con.execute("insert into quality.retreatment_flags (session_id, site) values (?, ?)", [session_id, site])
    warehouse.create_views(con)

    rows = con.execute("select * from views.retreatment_flags_last_30_days").fetchall()

    # as-of 2026-11-24 is the published run's (run 2, as of 1 December, failed)
    assert rows == [
        ("clinic_bos", dt.date(2026, 10, 25), dt.date(2026, 11, 23), 1, 0, 0, 0.0),
        ("clinic_nyc", dt.date(2026, 10, 25), dt.date(2026, 11, 23), 2, 1, 2, 50.0),
    ]


def test_plan_completion_by_clinic_counts_each_state_and_the_completed_share(con):
    plans = (
        [("a", "complete")] * 3 + [("a", "discharged_improved")] + [("a", "incomplete")] * 4
        + [("a", "in_progress"), ("a", "cancelled"), ("b", "in_progress")]
    )
    for i, (clinic, completion) in enumerate(plans):
        con.execute(
            "insert into quality.plan_completion values (?, ?, ?, ?)", [f"p{i}", f"k{i}", f"clinic_{clinic}", completion]
        )
    warehouse.create_views(con)

    rows = con.execute("select * from views.plan_completion_by_clinic").fetchall()

    assert rows == [("clinic_a", 10, 3, 1, 4, 1, 1, 8, 50.0), ("clinic_b", 1, 0, 0, 0, 1, 0, 0, None)]


def test_no_view_exposes_a_patient_column_and_every_view_and_column_is_commented(con):
    warehouse.create_views(con)
    columns = con.execute("select table_name, column_name from duckdb_columns() where schema_name = 'views'").fetchall()
    assert {table for table, _ in columns} == {
        "monthly_needling_by_clinic", "retreatment_flags_last_30_days", "plan_completion_by_clinic"
    }
    assert [c for c in columns if "patient" in c[1] and c[1] != "patients"] == []
    assert [name for name in warehouse.undocumented(con) if name.startswith("views.")] == []
    # the hand-made tables of this fixture carry no comment, and undocumented() finds them
    assert "core.sessions.patient_key" in warehouse.undocumented(con)
