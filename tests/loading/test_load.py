"""Bad input (exports.md, "Bad input"): every rejected row and file is recorded with a reason, nothing is lost.

One night's exports, loaded once for the module, holds every bad-input case as
its own row or file; each test below reads one table of cases against it.
"""

from __future__ import annotations

import gzip
import logging

import pytest

from clinic_outcomes import warehouse
from load_fixtures import (
    checkin,
    csv_text,
    ledger,
    load_all,
    patient,
    plan,
    rejected,
    rows,
    session,
    site,
    write_drop,
)

ROW_CASES = "2026-11-01"  # one file per entity: a valid first row, then one bad row per case
BROKEN_LINES = "2026-11-02"  # rows the CSV reader cannot split; extra columns; files that are not exports
BROKEN_FILES = "2026-11-03"  # files rejected whole, beside a good file of the same drop
NOT_WHOLE = "2026-11-04"  # numbers that are not whole
BLANK_LINE = "2026-11-05"  # a blank line between rows
MULTILINE_FIELD = "2026-11-06"  # a quoted field spanning two lines
MESSY_GZIP = "2026-11-07"  # all of it at once, gzipped, with a BOM and CRLF line ends

# Physical line numbers hold through blank lines, line breaks inside quotes and lines the reader cannot split.
MESSY_NEEDLE_SITES = (
    "session_id,site,side,needles\n"  # line 1
    "s_messy,a,left,1\n"  # 2 loads
    "\n"  # 3 blank
    's_messy,"upper\ntrapezius",left,0\n'  # 4-5 needles out of range
    "s_messy,b,left,1,9\n"  # 6 too many fields
    "s_messy,c,both,1\n"  # 7 unknown side
    "s_messy,d,right,2\n"  # 8 loads
)

THERAPIES = "dry_needling, manual_therapy, therapeutic_exercise, electrical_stimulation, ultrasound, heat_ice, spinal_injection, other"

# entity, the bad row, the recorded reason. The file's line of a case is its place among its entity's cases + 2
# (line 1 is the header, line 2 the valid row).
BAD_ROWS: list[tuple[str, dict, str]] = [
    # missing required value, every required column of every entity
    ("plans", plan(plan_id=None), "plan_id: required value is missing"),
    ("plans", plan(patient_id=None), "patient_id: required value is missing"),
    ("plans", plan(clinic_id=None), "clinic_id: required value is missing"),
    ("plans", plan(start_date=None), "start_date: required value is missing"),
    ("plans", plan(status=None), "status: required value is missing"),
    ("plans", plan(updated_at=None), "updated_at: required value is missing"),
    ("sessions", session(session_id=None), "session_id: required value is missing"),
    ("sessions", session(patient_id=None), "patient_id: required value is missing"),
    ("sessions", session(clinic_id=None), "clinic_id: required value is missing"),
    ("sessions", session(clinician_id=None), "clinician_id: required value is missing"),
    ("sessions", session(clinician_role=None), "clinician_role: required value is missing"),
    ("sessions", session(started_at=None), "started_at: required value is missing"),
    ("sessions", session(status=None), "status: required value is missing"),
    ("sessions", session(therapies=None), "therapies: required value is missing"),
    ("sessions", session(updated_at=None), "updated_at: required value is missing"),
    ("needle_sites", site(session_id=None), "session_id: required value is missing"),
    ("needle_sites", site(site=None), "site: required value is missing"),
    ("needle_sites", site(side=None), "side: required value is missing"),
    ("pain_checkins", checkin(checkin_id=None), "checkin_id: required value is missing"),
    ("pain_checkins", checkin(patient_id=None), "patient_id: required value is missing"),
    ("pain_checkins", checkin(recorded_at=None), "recorded_at: required value is missing"),
    ("pain_checkins", checkin(pain=None), "pain: required value is missing"),
    ("patients", patient(patient_id=None), "patient_id: required value is missing"),
    ("patients", patient(updated_at=None), "updated_at: required value is missing"),
    # a value that does not parse as its type
    ("sessions", session(pain_before="six"), "pain_before: 'six' is not a whole number"),
    ("plans", plan(planned_sessions="many"), "planned_sessions: 'many' is not a whole number"),
    ("plans", plan(pcp_cleared="maybe"), "pcp_cleared: 'maybe' is not true/false, yes/no or 1/0"),
    ("sessions", session(status="done"), "status: 'done' is not one of completed, cancelled, no_show"),
    ("sessions", session(therapies="dry_needling;cupping"), f"therapies: 'dry_needling;cupping' has values not among {THERAPIES}"),
    ("sessions", session(therapies=";"), "therapies: ';' holds no value"),
    ("sessions", session(started_at="02/11/2026 09:30"), "started_at: '02/11/2026 09:30' is not an ISO 8601 timestamp"),
    ("sessions", session(updated_at="2026-11-02T25:00:00"), "updated_at: '2026-11-02T25:00:00' is not an ISO 8601 timestamp"),
    ("pain_checkins", checkin(recorded_at="yesterday"), "recorded_at: 'yesterday' is not an ISO 8601 timestamp"),
    ("plans", plan(start_date="2026-02-30"), "start_date: '2026-02-30' is not a YYYY-MM-DD date"),
    ("plans", plan(start_date="01/10/2026"), "start_date: '01/10/2026' is not a YYYY-MM-DD date"),
    # out-of-range numbers
    ("sessions", session(pain_before="11"), "pain_before: '11' is out of range 0-10"),
    ("sessions", session(pain_after="-1"), "pain_after: '-1' is out of range 0-10"),
    ("pain_checkins", checkin(pain="11"), "pain: '11' is out of range 0-10"),
    ("plans", plan(planned_weeks="0"), "planned_weeks: '0' is out of range 1-52"),
    ("plans", plan(planned_weeks="53"), "planned_weeks: '53' is out of range 1-52"),
    ("plans", plan(planned_sessions="0"), "planned_sessions: '0' is out of range 1 or more"),
    ("needle_sites", site(needles="0"), "needles: '0' is out of range 1 or more"),
    # unknown enum values
    ("sessions", session(clinician_role="surgeon"), "clinician_role: 'surgeon' is not one of physical_therapist, chiropractor, acupuncturist, nurse, physician, other"),
    ("sessions", session(condition="knee_pain"), "condition: 'knee_pain' is not one of low_back_pain, neck_pain, cervicogenic_headache, carpal_tunnel_syndrome, shoulder_pain, other"),
    ("sessions", session(aftercare="cold"), "aftercare: 'cold' is not one of ice, heat, none"),
    ("sessions", session(adverse_event="rash"), "adverse_event: 'rash' is not one of none, soreness, bruising, swelling, bleeding, fainting, other"),
    ("needle_sites", site(side="both"), "side: 'both' is not one of left, right, midline"),
    ("plans", plan(status="paused"), "status: 'paused' is not one of active, discharged, cancelled"),
    ("pain_checkins", checkin(channel="email"), "channel: 'email' is not one of sms, app, phone"),
    ("patients", patient(sex="f"), "sex: 'f' is not one of female, male, other, unknown"),
    # never-stored values are named but not echoed
    ("patients", patient(date_of_birth="17/05/1980"), "date_of_birth: value withheld (never stored) is not a YYYY-MM-DD date"),
    # every failing column of a row is named
    ("sessions", session(pain_before="11", aftercare="cold"), "pain_before: '11' is out of range 0-10; aftercare: 'cold' is not one of ice, heat, none"),
]
ENTITIES = ("plans", "sessions", "needle_sites", "pain_checkins", "patients")


def _expected_rejections() -> list[tuple[str, int, str]]:
    expected = []
    for entity in ENTITIES:
        cases = [reason for case_entity, _, reason in BAD_ROWS if case_entity == entity]
        expected += [(f"{ROW_CASES}/{entity}.csv", line, reason) for line, reason in enumerate(cases, start=3)]
    return expected


# Rows the CSV reader cannot split into the header's columns, between good rows: later line numbers stay right.
NEEDLE_SITES_WITH_BROKEN_LINES = (
    "session_id,site,side,needles\n"  # line 1
    "s1,upper_trapezius,left,1\n"  # 2 loads
    "s1,upper_trapezius,right,1,7\n"  # 3 too many fields
    "s1,gluteus_medius,left,2\n"  # 4 loads
    "s1,gluteus_medius\n"  # 5 too few fields
    "s1,suboccipitals,midline,0\n"  # 6 needles out of range
    "s1,pronator_teres,left,1\n"  # 7 loads
)


@pytest.fixture(scope="module")
def night(tmp_path_factory):
    """The warehouse connection after loading the bad-input exports once, and the load summary."""
    tmp = tmp_path_factory.mktemp("bad_input")
    exports = tmp / "exports"
    valid_first = {"plans": plan(), "sessions": session(), "needle_sites": site(), "pain_checkins": checkin(), "patients": patient()}
    for entity in ENTITIES:
        cases = [values for case_entity, values, _ in BAD_ROWS if case_entity == entity]
        write_drop(exports, ROW_CASES, entity, [valid_first[entity], *cases])

    write_drop(exports, BROKEN_LINES, "needle_sites", NEEDLE_SITES_WITH_BROKEN_LINES)
    with_extras = [{**session(session_id="s_extra"), "Referral Source": "web", "room": "3"}]
    write_drop(exports, BROKEN_LINES, "sessions", with_extras)
    # identifiers that point nowhere: loaded now, flagged later by validation
    write_drop(exports, BROKEN_LINES, "plans", [plan(plan_id="pl_orphan", patient_id="P_nobody")])
    write_drop(exports, BROKEN_LINES, "pain_checkins", [checkin(checkin_id="k_orphan", patient_id="P_nobody")])
    (exports / BROKEN_LINES / "notes.txt").write_text("not an export")
    (exports / BROKEN_LINES / "sessions.xlsx").write_bytes(b"PK\x03\x04")
    (exports / BROKEN_LINES / "old").mkdir()
    (exports / BROKEN_LINES / "old" / "sessions.csv").write_text(csv_text([session(session_id="s_in_subfolder")]))

    write_drop(exports, BROKEN_FILES, "pain_checkins", csv_text([checkin()]).encode(), ext="csv.gz")  # not gzip at all
    write_drop(exports, BROKEN_FILES, "patients", b"PAR1 this is not parquet PAR1", ext="parquet")
    write_drop(exports, BROKEN_FILES, "plans", csv_text([plan(plan_id="pl_a"), plan(plan_id="pl_b")], columns=["plan_id", "patient_id", "start_date", "status", "updated_at"]))
    write_drop(exports, BROKEN_FILES, "needle_sites", [site(session_id="s_unknown", site="quadratus_lumborum", side="right", needles="3")])
    write_drop(exports, BROKEN_FILES, "sessions", [session(session_id="s_orphan", plan_id="pl_unknown")])

    write_drop(exports, NOT_WHOLE, "sessions", [session(session_id="s_5.5", pain_before="5.5"), session(session_id="s_1e1", pain_before="1e1")])
    write_drop(exports, BLANK_LINE, "needle_sites", "session_id,site,side,needles\ns_blank,a,left,1\n\ns_blank,b,left,0\n")
    write_drop(exports, MESSY_GZIP, "needle_sites", MESSY_NEEDLE_SITES, ext="csv.gz", bom=True, crlf=True)
    write_drop(exports, MULTILINE_FIELD, "needle_sites", 'session_id,site,side,needles\ns_multi,"upper\ntrapezius",left,1\ns_multi,b,left,0\n')

    con = warehouse.connect(None)
    logged = LogRecords()
    logger = logging.getLogger("clinic_outcomes")
    level = logger.level
    logger.addHandler(logged)
    logger.setLevel(logging.DEBUG)
    try:
        summary = load_all(con, exports)
    finally:
        logger.removeHandler(logged)
        logger.setLevel(level)
    yield con, summary, logged.messages
    con.close()


class LogRecords(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def test_every_bad_row_is_rejected_with_its_line_and_a_reason_naming_column_and_value(night):
    con, *_ = night
    got = [r for r in rejected(con) if r[0].startswith(ROW_CASES)]
    assert got == sorted(_expected_rejections())


@pytest.mark.parametrize("entity", ENTITIES)
def test_the_valid_row_beside_bad_rows_still_loads(night, entity):
    con, *_ = night
    cases = sum(1 for case_entity, _, _ in BAD_ROWS if case_entity == entity)
    assert [r[1:] for r in ledger(con) if r[0] == f"{ROW_CASES}/{entity}.csv"] == [("loaded", cases + 1, 1, cases)]


def test_rows_the_reader_cannot_split_are_rejected_at_their_own_line_and_later_lines_stay_right(night):
    con, *_ = night
    got = [(line, reason) for path, line, reason in rejected(con) if path == f"{BROKEN_LINES}/needle_sites.csv"]
    assert got == [
        (3, "line cannot be split into the header's columns (too many columns: Expected Number of Columns: 4 Found: 5)"),
        (5, "line cannot be split into the header's columns (missing columns: Expected Number of Columns: 4 Found: 2)"),
        (6, "needles: '0' is out of range 1 or more"),
    ]
    assert rows(con, "select site, side, needles from core.needle_sites where session_id = 's1' order by site, side") == [
        ("gluteus_medius", "left", 2),
        ("pronator_teres", "left", 1),
        ("upper_trapezius", "left", 1),
    ]
    assert [r for r in ledger(con) if r[0] == f"{BROKEN_LINES}/needle_sites.csv"] == [
        (f"{BROKEN_LINES}/needle_sites.csv", "loaded", 6, 3, 3)
    ]


# file, status, rows_read, rows_loaded, rows_rejected; the recorded reason (one row, no line number)
FILE_CASES = [
    (f"{BROKEN_FILES}/pain_checkins.csv.gz", ("rejected", 0, 0, 0), "file rejected: file cannot be read: "),
    (f"{BROKEN_FILES}/patients.parquet", ("rejected", 0, 0, 0), "file rejected: file cannot be read: "),
    (f"{BROKEN_FILES}/plans.csv", ("rejected", 2, 0, 2), "file rejected: missing required column: clinic_id; all 2 rows rejected"),
]


@pytest.mark.parametrize(("path", "counts", "reason"), FILE_CASES, ids=[c[0] for c in FILE_CASES])
def test_a_file_that_cannot_be_read_or_lacks_a_required_column_is_rejected_whole(night, path, counts, reason):
    con, summary, _ = night
    assert [r[1:] for r in ledger(con) if r[0] == path] == [counts]
    (line, recorded), = [(line, why) for p, line, why in rejected(con) if p == path]
    assert line is None
    assert recorded.startswith(reason)
    assert [f.reason for f in summary.files if f.file.relpath == path][0] in recorded


def test_the_other_files_of_a_drop_with_rejected_files_still_load(night):
    con, *_ = night
    assert [r for r in ledger(con) if r[0] in (f"{BROKEN_FILES}/sessions.csv", f"{BROKEN_FILES}/needle_sites.csv")] == [
        (f"{BROKEN_FILES}/sessions.csv", "loaded", 1, 1, 0),
        (f"{BROKEN_FILES}/needle_sites.csv", "loaded", 1, 1, 0),
    ]
    assert rows(con, "select count(*) from core.plans where plan_id in ('pl_a', 'pl_b')") == [(0,)]


def test_identifiers_that_point_nowhere_are_loaded_not_rejected(night):
    con, *_ = night
    assert rows(con, "select session_id, site, side, needles from core.needle_sites where session_id = 's_unknown'") == [
        ("s_unknown", "quadratus_lumborum", "right", 3)
    ]
    assert rows(con, "select session_id, plan_id from core.sessions where session_id = 's_orphan'") == [("s_orphan", "pl_unknown")]
    assert rows(con, "select count(*) from core.plans where plan_id = 'pl_orphan'") == [(1,)]
    assert rows(con, "select count(*) from core.pain_checkins where checkin_id = 'k_orphan'") == [(1,)]


def test_unknown_extra_columns_are_ignored_and_reported_once_per_file(night):
    con, *_ = night
    assert rows(con, "select path, ignored_columns from ops.loaded_files where ignored_columns <> [] order by path") == [
        (f"{BROKEN_LINES}/sessions.csv", ["Referral Source", "room"]),
    ]
    assert rows(con, "select count(*) from core.sessions where session_id = 's_extra'") == [(1,)]


def test_files_that_are_not_exports_are_ignored_and_reported(night):
    con, summary, _ = night
    assert rows(con, "select path from ops.ignored_files order by path") == [
        (f"{BROKEN_LINES}/notes.txt",),
        (f"{BROKEN_LINES}/old/sessions.csv",),
        (f"{BROKEN_LINES}/sessions.xlsx",),
    ]
    assert rows(con, "select count(*) from core.sessions where session_id = 's_in_subfolder'") == [(0,)]
    assert sorted(path for path, _ in summary.ignored) == [
        f"{BROKEN_LINES}/notes.txt",
        f"{BROKEN_LINES}/old/sessions.csv",
        f"{BROKEN_LINES}/sessions.xlsx",
    ]


def test_counts_add_up_per_file_and_match_the_recorded_rejections(night):
    con, summary, _ = night
    by_file = rows(
        con,
        """
        select
            files.path,
            files.status,
            files.rows_read,
            files.rows_loaded,
            files.rows_rejected,
            count(rejects.source_file) as recorded,
            count(rejects.source_file) filter (where rejects.line_number is null) as recorded_whole,
        from ops.loaded_files as files
        left join quality.rejected_rows as rejects on rejects.source_file = files.path
        group by all
        order by files.path
        """,
    )
    assert len(by_file) == 18
    for path, status, read, loaded, rejected_count, recorded, recorded_whole in by_file:
        assert read == loaded + rejected_count, path
        if status == "rejected":
            assert (loaded, rejected_count, recorded, recorded_whole) == (0, read, 1, 1), path
        else:
            assert (rejected_count, recorded_whole) == (recorded, 0), path
    assert summary.rows_rejected == sum(r[4] for r in by_file)
    assert summary.files_rejected == 3


def test_every_reason_names_its_column_and_quotes_the_value_given(night):
    con, *_ = night
    recorded = {(path, line): reason for path, line, reason in rejected(con)}
    for (path, line, _), (_, values, _) in zip(_expected_rejections(), _cases_in_file_order()):
        for clause in recorded[(path, line)].split("; "):
            column = clause.split(":")[0]
            assert column in values, clause
            if values[column] is not None and column != "date_of_birth":
                assert f"'{values[column]}'" in clause


def _cases_in_file_order() -> list[tuple[str, dict, str]]:
    return [case for entity in ENTITIES for case in BAD_ROWS if case[0] == entity]


def test_a_rejected_file_and_ignored_columns_are_logged(night):
    *_, logged = night
    assert f"rejected file {BROKEN_FILES}/plans.csv: missing required column: clinic_id" in logged
    assert f"{BROKEN_LINES}/sessions.csv: ignored unknown columns Referral Source, room" in logged


def test_a_number_that_is_not_whole_is_rejected(night):
    con, *_ = night
    assert [r for r in rejected(con) if r[0].startswith(NOT_WHOLE)] == [
        (f"{NOT_WHOLE}/sessions.csv", 2, "pain_before: '5.5' is not a whole number"),
        (f"{NOT_WHOLE}/sessions.csv", 3, "pain_before: '1e1' is not a whole number"),
    ]


def test_line_numbers_count_blank_lines(night):
    con, *_ = night
    assert [r for r in rejected(con) if r[0].startswith(BLANK_LINE)] == [
        (f"{BLANK_LINE}/needle_sites.csv", 4, "needles: '0' is out of range 1 or more")
    ]


def test_line_numbers_count_line_breaks_inside_quoted_fields(night):
    con, *_ = night
    # A site code with a line break is itself rejected (a control character in an identifier), at its first line.
    assert [r for r in rejected(con) if r[0].startswith(MULTILINE_FIELD)] == [
        (f"{MULTILINE_FIELD}/needle_sites.csv", 2,
         "site: 'upper<U+000A>trapezius' holds a control or bidirectional-formatting character (U+000A)"),
        (f"{MULTILINE_FIELD}/needle_sites.csv", 4, "needles: '0' is out of range 1 or more"),
    ]


def test_a_gzip_file_with_a_corrupt_body_is_rejected_whole_and_the_drop_still_loads(tmp_path):
    exports = tmp_path / "exports"
    compressed = bytearray(gzip.compress(csv_text([checkin(), checkin(checkin_id="k2")]).encode(), mtime=0))
    compressed[10:20] = b"\xff" * 10  # the deflate stream right after the 10-byte gzip header
    write_drop(exports, "2026-11-01", "pain_checkins", bytes(compressed), ext="csv.gz")
    write_drop(exports, "2026-11-01", "sessions", [session()])
    con = warehouse.connect(None)
    load_all(con, exports)
    assert [r[1:] for r in ledger(con)] == [("loaded", 1, 1, 0), ("rejected", 0, 0, 0)]
    (path, line, reason), = rejected(con)
    assert (path, line) == ("2026-11-01/pain_checkins.csv.gz", None)
    assert reason.startswith("file rejected: file cannot be read")


def test_a_file_outside_any_drop_folder_is_reported(tmp_path):
    exports = tmp_path / "exports"
    write_drop(exports, "2026-11-01", "sessions", [session()])
    (exports / "sessions.csv").write_text(csv_text([session(session_id="s_stray")]))
    con = warehouse.connect(None)
    load_all(con, exports)
    assert rows(con, "select path from ops.ignored_files") == [("sessions.csv",)]


def test_physical_line_numbers_in_a_gzipped_file_with_a_bom_crlf_blank_lines_and_multi_line_fields(night):
    con, *_ = night
    assert [(line, reason) for path, line, reason in rejected(con) if path.startswith(MESSY_GZIP)] == [
        (4, "site: 'upper<U+000D><U+000A>trapezius' holds a control or bidirectional-formatting character (U+000D); "
            "needles: '0' is out of range 1 or more"),
        (6, "line cannot be split into the header's columns (too many columns: Expected Number of Columns: 4 Found: 5)"),
        (7, "side: 'both' is not one of left, right, midline"),
    ]
    assert rows(con, "select site, side, needles from core.needle_sites where session_id = 's_messy' order by site") == [
        ("a", "left", 1),
        ("d", "right", 2),
    ]
