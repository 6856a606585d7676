"""Everything exports.md accepts: the CSV dialect, .csv.gz and typed parquet, and timestamps with or without offsets.

Each variant is its own drop of one night, loaded once for the module; the
tests read like tables: given this file, expect these core rows.
"""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest

from clinic_outcomes.loading import load
from clinic_outcomes.core import build as core_build
from clinic_outcomes import warehouse
from clinic_outcomes.settings import Settings
from load_fixtures import AS_OF, checkin, csv_text, load_all, plan, rows, session, site, write_drop

UTC = dt.timezone.utc
SETTINGS = Settings(
    timezone="Europe/Berlin",  # the default zone: clinics not named below
    clinic_timezones={"c_ny": "America/New_York", "c_la": "America/Los_Angeles"},
)

SESSION_COLUMNS = list(session())

# drop, file name extension, the file's text (written with bom/crlf as flagged)
DIALECT_FILES = {
    "bom_crlf": (
        "csv",
        csv_text([session(session_id="s_bom", therapies="ultrasound")]),
        {"bom": True, "crlf": True},
    ),
    "quoted": (
        "csv",
        'session_id,patient_id,plan_id,clinic_id,clinician_id,clinician_role,started_at,status,therapies,updated_at\n'
        '"s_quoted","P100","pl1","c1","d ""Bo"", PT, MSc",nurse,2026-10-02T09:00:00Z,"completed","dry_needling;ultrasound",'
        '"2026-10-02T10:00:00Z"\n',
        {},
    ),
    "header_case_order": (
        "csv",
        " Updated_At ,THERAPIES,  Status,started_at,Clinician_Role,clinician_id,CLINIC_ID,plan_id,patient_id, Session_ID \n"
        "2026-10-02T10:00:00Z,heat_ice,completed,2026-10-02T09:00:00Z,chiropractor,d1,c1,pl1,P100,s_header\n",
        {},
    ),
    "empty_fields": (
        "csv",
        "session_id,patient_id,plan_id,clinic_id,clinician_id,clinician_role,started_at,status,therapies,condition,"
        "pain_before,pain_after,aftercare,adverse_event,updated_at\n"
        's_empty,P100,,c1,d1,nurse,2026-10-02T09:00:00Z,completed,dry_needling,"",,"",,"",2026-10-02T10:00:00Z\n',
        {},
    ),
    "enum_case": (
        "csv",
        csv_text([
            session(
                session_id="s_case",
                clinician_role="NURSE",
                status="Completed",
                therapies=" Dry_Needling ; manual_therapy;",
                condition="Neck_Pain",
                aftercare="HEAT",
                adverse_event="Soreness",
            )
        ]),
        {},
    ),
    "gzip": ("csv.gz", csv_text([session(session_id="s_gzip", pain_before="8", pain_after="5")]), {"bom": True}),
}

# session_id -> (clinician_id, clinician_role, status, therapies, condition, pain_before, pain_after, aftercare, adverse_event)
DIALECT_EXPECTED = {
    "s_bom": ("d1", "physical_therapist", "completed", ["ultrasound"], "low_back_pain", 6, 3, "ice", "none"),
    "s_quoted": ('d "Bo", PT, MSc', "nurse", "completed", ["dry_needling", "ultrasound"], None, None, None, None, None),
    "s_header": ("d1", "chiropractor", "completed", ["heat_ice"], None, None, None, None, None),
    "s_empty": ("d1", "nurse", "completed", ["dry_needling"], None, None, None, None, None),
    "s_case": ("d1", "nurse", "completed", ["dry_needling", "manual_therapy"], "neck_pain", 6, 3, "heat", "soreness"),
    "s_gzip": ("d1", "physical_therapist", "completed", ["dry_needling", "manual_therapy"], "low_back_pain", 8, 5, "ice", "none"),
    "s_pq_winter": ("d9", "physician", "completed", ["dry_needling", "electrical_stimulation"], None, 7, 4, None, None),
    "s_pq_summer": ("d9", "physician", "cancelled", ["manual_therapy"], None, None, None, None, None),
}

# plan_id, pcp_cleared as written -> as loaded
BOOL_SPELLINGS = [
    ("pl_true", "true", True),
    ("pl_TRUE", "TRUE", True),
    ("pl_False", "False", False),
    ("pl_yes", "yes", True),
    ("pl_YES", "YES", True),
    ("pl_No", "No", False),
    ("pl_1", "1", True),
    ("pl_0", "0", False),
    ("pl_padded", " yes ", True),
    ("pl_empty", None, None),
]

# Naive times are local in the clinic's zone; an offset (or Z) is an exact instant whatever the zone.
# session_id, clinic_id, started_at as written -> the instant (UTC)
SESSION_TIMES = [
    ("ny_before_spring", "c_ny", "2026-03-08T01:30:00", dt.datetime(2026, 3, 8, 6, 30, tzinfo=UTC)),  # EST, -05:00
    ("ny_after_spring", "c_ny", "2026-03-08T03:30:00", dt.datetime(2026, 3, 8, 7, 30, tzinfo=UTC)),  # EDT, -04:00
    ("ny_space_separator", "c_ny", "2026-03-08 03:30:00", dt.datetime(2026, 3, 8, 7, 30, tzinfo=UTC)),
    ("ny_before_fall", "c_ny", "2026-11-01T00:30:00", dt.datetime(2026, 11, 1, 4, 30, tzinfo=UTC)),  # EDT
    ("ny_after_fall", "c_ny", "2026-11-01T03:30:00", dt.datetime(2026, 11, 1, 8, 30, tzinfo=UTC)),  # EST
    ("ny_offset", "c_ny", "2026-11-01T03:30:00+01:00", dt.datetime(2026, 11, 1, 2, 30, tzinfo=UTC)),
    ("ny_zulu", "c_ny", "2026-11-01T03:30:00Z", dt.datetime(2026, 11, 1, 3, 30, tzinfo=UTC)),
    ("ny_fraction_offset", "c_ny", "2026-11-01T03:30:00.250-05:00", dt.datetime(2026, 11, 1, 8, 30, 0, 250000, tzinfo=UTC)),
    ("la_summer", "c_la", "2026-07-01T09:00:00", dt.datetime(2026, 7, 1, 16, 0, tzinfo=UTC)),  # PDT
    ("default_zone_winter", "c_unnamed", "2026-03-08T01:30:00", dt.datetime(2026, 3, 8, 0, 30, tzinfo=UTC)),  # CET
    ("default_zone_summer", "c_unnamed", "2026-03-29T03:30:00", dt.datetime(2026, 3, 29, 1, 30, tzinfo=UTC)),  # CEST
    ("default_zone_offset", "c_unnamed", "2026-03-29T03:30:00-05:00", dt.datetime(2026, 3, 29, 8, 30, tzinfo=UTC)),
]

# Check-ins carry no clinic: the zone of the patient's latest plan's clinic, else the default zone.
# checkin_id, patient_id, recorded_at as written -> the instant
CHECKIN_TIMES = [
    ("k_ny", "P_ny", "2026-11-01T03:30:00", dt.datetime(2026, 11, 1, 8, 30, tzinfo=UTC)),  # NY, EST
    ("k_ny_summer", "P_ny", "2026-11-01T00:30:00", dt.datetime(2026, 11, 1, 4, 30, tzinfo=UTC)),  # NY, EDT
    ("k_ny_offset", "P_ny", "2026-11-01T03:30:00+00:00", dt.datetime(2026, 11, 1, 3, 30, tzinfo=UTC)),
    ("k_moved", "P_moved", "2026-11-01T03:30:00", dt.datetime(2026, 11, 1, 11, 30, tzinfo=UTC)),  # latest plan in LA, PST
    ("k_no_plan", "P_no_plan", "2026-11-01T03:30:00", dt.datetime(2026, 11, 1, 2, 30, tzinfo=UTC)),  # Berlin, CET
]
PLANS_FOR_ZONES = [
    plan(plan_id="pl_ny", patient_id="P_ny", clinic_id="c_ny", start_date="2026-09-01"),
    plan(plan_id="pl_moved_old", patient_id="P_moved", clinic_id="c_ny", start_date="2026-01-05"),
    plan(plan_id="pl_moved_new", patient_id="P_moved", clinic_id="c_la", start_date="2026-09-01"),
]


def _typed_parquet_sessions() -> pa.Table:
    return pa.table(
        {
            "session_id": ["s_pq_winter", "s_pq_summer"],
            "patient_id": ["P100", "P100"],
            "plan_id": pa.array([None, "pl1"], pa.string()),
            "clinic_id": ["c_ny", "c_ny"],
            "clinician_id": ["d9", "d9"],
            "clinician_role": ["physician", "Physician"],
            "started_at": pa.array([dt.datetime(2026, 3, 8, 1, 30), dt.datetime(2026, 3, 8, 3, 30)], pa.timestamp("us")),
            "status": ["completed", "cancelled"],
            "therapies": pa.array([["dry_needling", "electrical_stimulation"], ["manual_therapy"]], pa.list_(pa.string())),
            "pain_before": pa.array([7, None], pa.int64()),
            "pain_after": pa.array([4, None], pa.int32()),
            "updated_at": pa.array(
                [dt.datetime(2026, 3, 8, 12, tzinfo=UTC)] * 2, pa.timestamp("us", tz="America/New_York")
            ),
        }
    )


def _typed_parquet_plans() -> pa.Table:
    return pa.table(
        {
            "plan_id": ["pl_pq"],
            "patient_id": ["P100"],
            "clinic_id": ["c_ny"],
            "start_date": pa.array([dt.date(2026, 3, 2)], pa.date32()),
            "planned_weeks": pa.array([8], pa.int16()),
            "planned_sessions": pa.array([None], pa.int32()),
            "pcp_cleared": pa.array([False], pa.bool_()),
            "status": ["discharged"],
            "updated_at": pa.array([dt.datetime(2026, 3, 2, 9, 15)], pa.timestamp("ms")),
        }
    )


@pytest.fixture(scope="module")
def night(tmp_path_factory):
    exports = tmp_path_factory.mktemp("dialect") / "exports"
    for drop, (ext, text, flags) in DIALECT_FILES.items():
        write_drop(exports, drop, "sessions", text, ext=ext, **flags)
    write_drop(exports, "parquet", "sessions", _typed_parquet_sessions(), ext="parquet")
    write_drop(exports, "parquet", "plans", _typed_parquet_plans(), ext="parquet")
    write_drop(exports, "parquet", "needle_sites", [site(session_id="s_pq_winter", side="Midline", needles="3")], ext="parquet")
    write_drop(
        exports,
        "bools",
        "plans",
        [plan(plan_id=plan_id, pcp_cleared=written, status="Active") for plan_id, written, _ in BOOL_SPELLINGS],
        crlf=True,
    )
    write_drop(
        exports,
        "times",
        "sessions",
        [session(session_id=sid, clinic_id=clinic, started_at=written) for sid, clinic, written, _ in SESSION_TIMES],
    )
    write_drop(exports, "times", "plans", PLANS_FOR_ZONES)
    write_drop(
        exports,
        "times",
        "pain_checkins",
        [checkin(checkin_id=cid, patient_id=pid, recorded_at=written, channel="SMS") for cid, pid, written, _ in CHECKIN_TIMES],
    )
    con = warehouse.connect(None)
    summary = load_all(con, exports, settings=SETTINGS)
    yield con, summary
    con.close()


def test_every_dialect_file_loads_whole(night):
    con, summary = night
    assert rows(con, "select count(*) from quality.rejected_rows") == [(0,)]
    assert all(f.status == "loaded" and f.rows_rejected == 0 for f in summary.files)


@pytest.mark.parametrize("session_id", DIALECT_EXPECTED)
def test_dialect_variant_loads_as_the_same_values(night, session_id):
    con, _ = night
    got = rows(
        con,
        """
        select clinician_id, clinician_role, status, therapies, condition, pain_before, pain_after, aftercare, adverse_event
        from core.sessions where session_id = $id
        """,
        {"id": session_id},
    )
    assert got == [DIALECT_EXPECTED[session_id]]


def test_a_bom_does_not_stick_to_the_first_column_name(night):
    con, _ = night
    assert rows(con, "select ignored_columns from ops.loaded_files where path = 'bom_crlf/sessions.csv'") == [([],)]


@pytest.mark.parametrize(("plan_id", "written", "loaded"), BOOL_SPELLINGS)
def test_bool_spellings(night, plan_id, written, loaded):
    con, _ = night
    assert rows(con, "select pcp_cleared, status from core.plans where plan_id = $id", {"id": plan_id}) == [(loaded, "active")]


def test_typed_parquet_columns_load_as_their_csv_text_would(night):
    con, _ = night
    assert rows(
        con,
        "select session_id, plan_id, started_at, updated_at from core.sessions where session_id like 's_pq%' order by 1",
    ) == [
        ("s_pq_summer", "pl1", dt.datetime(2026, 3, 8, 7, 30, tzinfo=UTC), dt.datetime(2026, 3, 8, 12, tzinfo=UTC)),
        ("s_pq_winter", None, dt.datetime(2026, 3, 8, 6, 30, tzinfo=UTC), dt.datetime(2026, 3, 8, 12, tzinfo=UTC)),
    ]
    assert rows(
        con,
        "select start_date, planned_weeks, planned_sessions, pcp_cleared, status, updated_at from core.plans where plan_id = 'pl_pq'",
    ) == [(dt.date(2026, 3, 2), 8, None, False, "discharged", dt.datetime(2026, 3, 2, 14, 15, tzinfo=UTC))]
    assert rows(con, "select site, side, needles from core.needle_sites where session_id = 's_pq_winter'") == [
        ("lumbar_multifidus", "midline", 3)
    ]


@pytest.mark.parametrize(("session_id", "clinic_id", "written", "instant"), SESSION_TIMES, ids=[t[0] for t in SESSION_TIMES])
def test_session_started_at_is_the_right_instant(night, session_id, clinic_id, written, instant):
    con, _ = night
    assert rows(con, "select started_at from core.sessions where session_id = $id", {"id": session_id}) == [(instant,)]


def test_elapsed_time_across_the_spring_change_is_one_hour(night):
    con, _ = night
    assert rows(
        con,
        """
        select after.started_at - before.started_at
        from core.sessions as before, core.sessions as after
        where before.session_id = 'ny_before_spring' and after.session_id = 'ny_after_spring'
        """,
    ) == [(dt.timedelta(hours=1),)]


@pytest.mark.parametrize(("checkin_id", "patient_id", "written", "instant"), CHECKIN_TIMES, ids=[t[0] for t in CHECKIN_TIMES])
def test_checkin_recorded_at_is_read_in_the_zone_of_the_patients_latest_plan(night, checkin_id, patient_id, written, instant):
    con, _ = night
    assert rows(
        con, "select recorded_at, channel from core.pain_checkins where checkin_id = $id", {"id": checkin_id}
    ) == [(instant, "sms")]


def test_without_settings_every_naive_time_is_utc(night):
    # core is rebuilt from raw with the run's settings: the same naive wall-clock times, now read in UTC.
    con, _ = night
    load.prepare(con, Settings(), AS_OF, 2)
    core_build.build_core(con)
    try:
        assert rows(
            con,
            "select session_id, started_at from core.sessions where session_id in ('ny_after_fall', 'ny_offset') order by 1",
        ) == [
            ("ny_after_fall", dt.datetime(2026, 11, 1, 3, 30, tzinfo=UTC)),
            ("ny_offset", dt.datetime(2026, 11, 1, 2, 30, tzinfo=UTC)),
        ]
        assert rows(con, "select recorded_at from core.pain_checkins where checkin_id = 'k_moved'") == [
            (dt.datetime(2026, 11, 1, 3, 30, tzinfo=UTC),)
        ]
    finally:
        load.prepare(con, SETTINGS, AS_OF, 1)
        core_build.build_core(con)
