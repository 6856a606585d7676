"""R3: immediate relief from a needling session; and compute_marts end to end through DuckDB.

Mutants tried for the R3 floor (relief.could_show_relief / session_relief_summary), each caught:
- `pain_before >= mcid` -> `pain_before > mcid`: test_floor_sessions_are_counted_apart_never_as_failures
  (the session starting exactly at the MCID);
- meaningful_relief no longer null below the floor (`relief_points >= mcid` for every session): the same
  test and test_relief_points_pct_and_meaningful;
- the share over every session (`meaningful_relief.fill_null(False).mean()`): the same test.
"""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from clinic_outcomes.metrics.marts import compute_marts
from clinic_outcomes.metrics.relief import session_relief, session_relief_summary
from clinic_outcomes.settings import Rules, Settings
from clinic_outcomes.warehouse import connect, undocumented
from metrics_fixtures import (
    checkin,
    checkins_frame,
    completion,
    completion_frame,
    load_tables,
    plan,
    plans_frame,
    session,
    sessions_frame,
)


def relief_rows(*sessions: dict, mcid: float = 2.0) -> list[tuple]:
    relief = session_relief(sessions_frame(*sessions), mcid)
    return relief.select("session_id", "relief_points", "relief_pct", "meaningful_relief").sort("session_id").collect().rows()


def test_relief_points_pct_and_meaningful():
    assert relief_rows(
        session("a", 0, pain_before=8, pain_after=4),
        session("b", 1, pain_before=5, pain_after=4),  # 1 point: below the MCID
        session("c", 2, pain_before=6, pain_after=4),  # exactly the MCID: meaningful
        session("d", 3, pain_before=3, pain_after=5),  # pain rose
        session("e", 4, pain_before=0, pain_after=0),  # no pain to relieve: no percentage
        session("f", 5, pain_before=10, pain_after=0),
    ) == [
        ("a", 4, 0.5, True),
        ("b", 1, 0.2, False),
        ("c", 2, pytest.approx(1 / 3), True),
        ("d", -2, pytest.approx(-2 / 3), False),
        ("e", 0, None, None),  # starts below the MCID: cannot show meaningful relief
        ("f", 10, 1.0, True),
    ]


def test_only_completed_needling_sessions_with_both_ratings():
    assert relief_rows(
        session("needling", 0, pain_before=7, pain_after=3, therapies=("manual_therapy", "dry_needling")),
        session("manual_only", 1, pain_before=7, pain_after=3, therapies=("manual_therapy",)),
        session("cancelled", 2, pain_before=7, pain_after=3, status="cancelled"),
        session("no_show", 3, pain_before=7, pain_after=3, status="no_show"),
        session("no_after", 4, pain_before=7, pain_after=None),
        session("no_before", 5, pain_before=None, pain_after=3),
    ) == [("needling", 4, pytest.approx(4 / 7), True)]


def test_floor_sessions_are_counted_apart_never_as_failures():
    relief = session_relief(
        sessions_frame(
            session("a", 0, pain_before=1, pain_after=0, patient="p1"),  # below the MCID: too little pain
            session("b", 1, pain_before=0, pain_after=1, patient="p2"),  # below, and pain rose
            session("c", 2, pain_before=2, pain_after=0, patient="p3"),  # exactly the MCID: could show, did
            session("d", 3, pain_before=2, pain_after=1, patient="p3"),  # could show, did not
            session("e", 4, pain_before=5, pain_after=1, patient="p4"),
        ),
        2.0,
    )
    assert relief.select("session_id", "could_show_relief", "meaningful_relief").sort("session_id").collect().rows() == [
        ("a", False, None), ("b", False, None), ("c", True, True), ("d", True, False), ("e", True, True),
    ]
    overall = session_relief_summary(relief).filter(pl.col("group_by") == "all").collect().row(0, named=True)
    assert {name: overall[name] for name in (
        "sessions", "patients", "measurable_sessions", "measurable_patients", "too_little_pain_sessions",
        "meaningful_relief_sessions", "meaningful_relief_share",
    )} == {
        "sessions": 5, "patients": 4, "measurable_sessions": 3, "measurable_patients": 2,
        "too_little_pain_sessions": 2, "meaningful_relief_sessions": 2, "meaningful_relief_share": 2 / 3,
    }
    # A group with only floor sessions has no share at all (not 0%).
    only_floor = session_relief(sessions_frame(session("a", 0, pain_before=1, pain_after=0)), 2.0)
    row = session_relief_summary(only_floor).filter(pl.col("group_by") == "all").collect().row(0, named=True)
    assert (row["measurable_sessions"], row["too_little_pain_sessions"], row["meaningful_relief_share"]) == (0, 1, None)


def test_mcid_setting_is_used():
    assert relief_rows(session("a", 0, pain_before=6, pain_after=3), mcid=3.0) == [("a", 3, 0.5, True)]
    assert relief_rows(session("a", 0, pain_before=6, pain_after=3), mcid=3.5) == [("a", 3, 0.5, False)]


def test_summary_counts_sessions_and_patients_per_group():
    relief = session_relief(
        sessions_frame(
            session("a", 0, pain_before=8, pain_after=4, patient="p1", clinic="clinic_a"),
            session("b", 1, pain_before=8, pain_after=7, patient="p1", clinic="clinic_a"),
            session("c", 2, pain_before=6, pain_after=2, patient="p2", clinic="clinic_b", condition=None),
        ),
        2.0,
    )
    summary = session_relief_summary(relief).filter(pl.col("group_by").is_in(["all", "clinic", "condition"])).collect()
    assert summary.select("group_by", "group_value", "sessions", "patients", "meaningful_relief_sessions", "mean_relief_points").rows() == [
        ("all", "all", 3, 2, 2, 3.0),
        ("condition", "low_back_pain", 2, 1, 1, 2.5),
        ("condition", "not recorded", 1, 1, 1, 4.0),
        ("clinic", "clinic_a", 2, 1, 1, 2.5),
        ("clinic", "clinic_b", 1, 1, 1, 4.0),
    ]


def test_compute_marts_writes_every_mart_documented_and_without_patient_keys():
    con = connect()
    load_tables(
        con,
        {
            "core.sessions": sessions_frame(
                session("s1", 0, pain_before=7, pain_after=3, plan_id="plan1", aftercare="ice", adverse_event="soreness"),
                session("s2", 48, pain_before=6, pain_after=2, plan_id="plan1", aftercare="heat", adverse_event="none"),
                session("s3", 100, pain_before=4, pain_after=4, plan_id="plan1", therapies=("manual_therapy",)),
            ),
            "core.pain_checkins": checkins_frame(checkin("c1", 20, 4), checkin("c2", 200, 4)),
            "core.plans": plans_frame(plan("plan1", dt.date(2026, 3, 1), pcp_cleared=None)),
            "quality.plan_completion": completion_frame(completion("plan1", dt.date(2026, 3, 1))),
        },
    )
    settings = Settings(rules=Rules(min_cell_patients=1))
    written = compute_marts(con, settings, dt.date(2026, 5, 1))

    tables = dict(con.sql("select table_name, estimated_size from duckdb_tables() where schema_name = 'marts'").fetchall())
    assert set(written) == set(tables) == {
        "session_relief", "session_relief_summary", "relief_duration", "relief_summary", "relief_curves",
        "relief_comparison", "plan_outcomes", "plan_outcome_summary", "plan_completion_summary", "adverse_events",
        "aftercare_mix", "pcp_clearance",
        "casemix_coefficients", "adjusted_outcomes",  # R8 (metrics/casemix.py)
    }
    for table, rows in written.items():
        assert con.execute(f"select count(*) from marts.{table}").fetchall()[0][0] == rows
    assert written["session_relief"] == 2 and written["relief_duration"] == 2 and written["plan_outcomes"] == 1
    assert [name for name in undocumented(con) if name.startswith("marts.")] == []
    assert con.execute(
        "select count(*) from duckdb_columns() where schema_name = 'marts' and column_name = 'patient_key'"
    ).fetchall()[0][0] == 0

    # The interface's columns, with the warehouse types.
    columns = dict(con.sql(
        "select column_name, data_type from duckdb_columns() where schema_name = 'marts' and table_name = 'relief_duration'"
    ).fetchall())
    assert {name: columns[name] for name in ("session_id", "duration_hours", "relapsed", "started_at")} == {
        "session_id": "VARCHAR", "duration_hours": "DOUBLE", "relapsed": "BOOLEAN", "started_at": "TIMESTAMP WITH TIME ZONE",
    }
    # s1: relapse at s2's pain_before 6 (> 7 - 2) after 48 h; s2: s3 and c2 report 4 (<= 6 - 2), censored at c2.
    assert con.sql(
        "select session_id, relapsed, duration_hours from marts.relief_duration order by session_id"
    ).fetchall() == [("s1", True, 48.0), ("s2", False, 152.0)]
    assert con.sql(
        "select baseline_pain, final_pain, change_points, achieved_mcid from marts.plan_outcomes"
    ).fetchall() == [(7, 4, 3, True)]  # baseline s1, final c2
    assert con.sql(
        "select plans, plans_without_pcp_clearance, plans_pcp_not_recorded from marts.pcp_clearance where group_by = 'all'"
    ).fetchall() == [(1, 0, 1)]

    # Running again replaces the marts rather than appending.
    assert compute_marts(con, settings, dt.date(2026, 5, 1)) == written


def test_relief_summary_is_the_same_to_the_last_bit_on_every_run():
    """A rerun with no new drops must publish identical tables: no float sum whose order varies."""
    import numpy as np

    from clinic_outcomes.metrics.relief import session_relief_summary

    rng = np.random.default_rng(1)
    n = 300_000
    before, after = rng.integers(0, 11, n), rng.integers(0, 11, n)
    relief = pl.DataFrame(
        {
            "session_id": [f"s{i}" for i in range(n)],
            "patient_key": rng.integers(0, 5000, n).astype(str),
            "clinic_id": rng.choice(["a", "b", "c"], n),
            "clinician_role": rng.choice(["nurse", "physician"], n),
            "condition": rng.choice(["neck_pain", "low_back_pain"], n),
            "aftercare": rng.choice(["ice", "heat", "none"], n),
            "pain_before": before,
            "pain_after": after,
            "relief_points": before - after,
        }
    ).with_columns(
        relief_pct=pl.when(pl.col("pain_before") > 0).then(pl.col("relief_points") / pl.col("pain_before")),
        could_show_relief=pl.col("pain_before") >= 2,
    ).with_columns(
        meaningful_relief=pl.when(pl.col("could_show_relief")).then(pl.col("relief_points") >= 2),
    )
    runs = [session_relief_summary(relief.lazy()).collect() for _ in range(12)]
    assert all(run.equals(runs[0]) for run in runs)
    plain = relief.select(pl.col("relief_pct").mean()).item()
    overall = runs[0].filter(pl.col("group_by") == "all")["mean_relief_pct"].item()
    assert abs(overall - plain) < 1e-12


def test_aggregate_groups_matches_a_group_by_over_the_stacked_groupings():
    """One group-by per grouping gives the rows a group-by over stack_groups gave (nulls: 'not recorded')."""
    from clinic_outcomes.metrics.frames import RELIEF_GROUPS, aggregate_groups, stack_groups

    frame = pl.LazyFrame(
        {
            "patient_key": ["p1", "p2", "p1", "p3", "p2", "p4"],
            "clinic_id": ["a", "a", "b", None, "b", "a"],
            "clinician_role": ["nurse", None, "nurse", "physician", "physician", None],
            "condition": [None, None, "neck_pain", "neck_pain", "low_back_pain", "neck_pain"],
            "aftercare": ["ice", "heat", None, "ice", "ice", "none"],
            "relief_points": [1, 2, 3, 4, 5, 6],
        }
    )
    aggs = {"rows": pl.len(), "patients": pl.col("patient_key").n_unique(), "points": pl.col("relief_points").sum()}
    stacked = stack_groups(frame, RELIEF_GROUPS).group_by("group_by", "group_value").agg(**aggs)
    per_grouping = aggregate_groups(frame, RELIEF_GROUPS, **aggs)
    assert per_grouping.collect_schema() == stacked.drop("grouping_order", strict=False).collect_schema()
    key = ["group_by", "group_value"]
    assert per_grouping.sort(key).collect().equals(stacked.sort(key).collect())

    by_role = aggregate_groups(frame, {"clinic": "clinic_id"}, by=["aftercare"], rows=pl.len()).sort(
        "group_value", "aftercare", nulls_last=True
    )
    assert by_role.collect().rows() == [
        ("clinic", "a", "heat", 1), ("clinic", "a", "ice", 1), ("clinic", "a", "none", 1),
        ("clinic", "b", "ice", 1), ("clinic", "b", None, 1), ("clinic", "not recorded", "ice", 1),
    ]


def test_compute_marts_leaves_the_previous_marts_when_a_mart_fails(monkeypatch):
    """All marts are replaced in one transaction: a failure part-way leaves the last night's marts."""
    from clinic_outcomes.metrics import marts as metrics

    con = connect()
    load_tables(
        con,
        {
            "core.sessions": sessions_frame(session("s1", 0, pain_before=7, pain_after=3, plan_id="plan1")),
            "core.pain_checkins": checkins_frame(checkin("c1", 20, 4)),
            "core.plans": plans_frame(plan("plan1", dt.date(2026, 3, 1))),
            "quality.plan_completion": completion_frame(completion("plan1", dt.date(2026, 3, 1))),
        },
    )
    settings = Settings(rules=Rules(min_cell_patients=1))
    compute_marts(con, settings, dt.date(2026, 5, 1))
    con.execute("insert into core.sessions select * replace ('s2' as session_id) from core.sessions")

    def failing(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(metrics, "relief_comparison", failing)
    with pytest.raises(RuntimeError, match="boom"):
        compute_marts(con, settings, dt.date(2026, 5, 1))
    assert con.sql("select session_id from marts.session_relief order by 1").fetchall() == [("s1",)]
    assert con.sql("select count(*) from marts.relief_comparison").fetchall()[0][0] > 0


# Mutants tried (2026-12-07; src/clinic_outcomes/metrics/relief.py, applied, tests run, reverted):
# - `meaningful_relief = relief_points >= mcid` as `>`: killed by test_relief_points_pct_and_meaningful.
# - `relief_pct` when `pain_before != 0` as `> 1`: survived this module; killed by
#   tests/metrics/test_session_relief_edges.py (pain_before 1).
