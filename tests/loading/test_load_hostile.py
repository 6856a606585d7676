"""Hostile values in identifiers, and the same record twice in one file (exports.md, "Bad input").

Control and bidirectional-formatting characters (C0/C1 controls, NUL, DEL, U+202A-U+202E, U+2066-U+2069,
U+200E/U+200F, U+061C) in an identifier reject the row with a reason that names the column and shows the
character as U+XXXX; in any value, they never reach the warehouse raw (reasons and records hold <U+XXXX>).

The same record twice in one file (same id and updated_at; check-ins: same id): the later line wins, the
earlier is recorded as a rejected row whose reason says "duplicate in file".

Mutants tried (each made a test here fail):
- `\\x{202a}-\\x{202e}` -> `\\x{202a}-\\x{202d}` in sql/macros/has_control.sql: U+202E loads;
- reason_control('clinician_id', ...) removed from staging/sessions.sql: that case loads;
- `withhold` true -> false for patient_id in staging/plans.sql: the patient number shows in the reason;
- `escaped_controls(...)` removed from shown_value: the reasons hold raw characters;
- checks.escape_records not called: records hold raw U+202E / JSON-escaped NUL;
- `target._line < repeated.last_line` -> `<=`: the winning line is rejected too;
- `, updated_at` dropped from the duplicate key: a newer version in the same file is flagged.
"""

from __future__ import annotations

import pytest

from clinic_outcomes import warehouse
from load_fixtures import checkin, csv_text, ledger, load_all, patient, plan, rejected, rows, session, site, write_drop

CHARACTERS = ["\x00", "\x01", "\t", "\n", "\r", "\x1b", "\x7f", "\x85", "\x9f", "\u061c", "\u200e", "\u200f",
              *[chr(c) for c in range(0x202A, 0x202F)], *[chr(c) for c in range(0x2066, 0x206A)]]
REASON = "holds a control or bidirectional-formatting character"


def _u(ch: str) -> str:
    return f"U+{ord(ch):04X}"


# (entity, row, the reason); in drop "controls", one file per entity, rows from line 2 in this order
CASES: list[tuple[str, dict, str]] = [
    *[("sessions", session(session_id=f"s{ch}x"), f"session_id: 's<{_u(ch)}>x' {REASON} ({_u(ch)})") for ch in CHARACTERS],
    ("sessions", session(session_id="s_clinic", clinic_id="c\u202e1"), f"clinic_id: 'c<U+202E>1' {REASON} (U+202E)"),
    ("sessions", session(session_id="s_clinician", clinician_id="\u2066d1"), f"clinician_id: '<U+2066>d1' {REASON} (U+2066)"),
    ("sessions", session(session_id="s_plan", plan_id="pl\x001"), f"plan_id: 'pl<U+0000>1' {REASON} (U+0000)"),
    ("sessions", session(session_id="s_patient", patient_id="P\u202e100"), f"patient_id: value withheld (never stored) {REASON} (U+202E)"),
    ("sessions", session(session_id="s_status", status="completed\u200f"),
     "status: 'completed<U+200F>' is not one of completed, cancelled, no_show"),
    ("sessions", session(session_id="s_time", started_at="2026-10-02T09:00:00Z\x85"),
     "started_at: '2026-10-02T09:00:00Z<U+0085>' is not an ISO 8601 timestamp"),
    ("needle_sites", site(site="upper_trap\u202eezius"), f"site: 'upper_trap<U+202E>ezius' {REASON} (U+202E)"),
    ("needle_sites", site(side="left\t"), "side: 'left<U+0009>' is not one of left, right, midline"),
    ("plans", plan(plan_id="pl\u200e9"), f"plan_id: 'pl<U+200E>9' {REASON} (U+200E)"),
    ("plans", plan(plan_id="pl_p", patient_id="P\x1b[31m"), f"patient_id: value withheld (never stored) {REASON} (U+001B)"),
    ("pain_checkins", checkin(checkin_id="k\u2069"), f"checkin_id: 'k<U+2069>' {REASON} (U+2069)"),
    ("patients", patient(patient_id="P\x7f"), f"patient_id: value withheld (never stored) {REASON} (U+007F)"),
]
ENTITIES = ("plans", "sessions", "needle_sites", "pain_checkins", "patients")
RAW = set(CHARACTERS)

# Duplicates: drop "duplicates", one file per entity; (row, winner?) in line order from line 2
DUPLICATE_SESSIONS = [
    session(session_id="s_dup", pain_before="1"),  # 2 rejected: line 4 repeats it
    session(session_id="s_dup", pain_before="2"),  # 3 rejected: line 4 repeats it
    session(session_id="s_dup", pain_before="3"),  # 4 wins
    session(session_id="s_versions", pain_before="4", updated_at="2026-10-02T11:00:00Z"),  # 5 newer version: wins
    session(session_id="s_versions", pain_before="5"),  # 6 older version: loaded, loses the merge, not flagged
    session(session_id="s_bad_later", pain_before="6"),  # 7 wins: the later line is rejected
    session(session_id="s_bad_later", pain_before="11"),  # 8 rejected: out of range
]
DUPLICATE_REJECTIONS = [
    ("duplicates/pain_checkins.csv", 2, "checkin_id: 'k_dup' appears again later in this file (duplicate in file); the later line wins"),
    ("duplicates/patients.csv", 2, "patient_id: value withheld (never stored) appears again later in this file with the same updated_at (duplicate in file); the later line wins"),
    ("duplicates/plans.csv", 2, "plan_id: 'pl_dup' appears again later in this file with the same updated_at (duplicate in file); the later line wins"),
    ("duplicates/sessions.csv", 2, "session_id: 's_dup' appears again later in this file with the same updated_at (duplicate in file); the later line wins"),
    ("duplicates/sessions.csv", 3, "session_id: 's_dup' appears again later in this file with the same updated_at (duplicate in file); the later line wins"),
    ("duplicates/sessions.csv", 8, "pain_before: '11' is out of range 0-10"),
]


@pytest.fixture(scope="module")
def night(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hostile")
    exports = tmp / "exports"
    for entity in ENTITIES:
        write_drop(exports, "controls", entity, csv_text([r for e, r, _ in CASES if e == entity]))
    write_drop(exports, "duplicates", "sessions", DUPLICATE_SESSIONS)
    write_drop(exports, "duplicates", "plans", [plan(plan_id="pl_dup", status="active"), plan(plan_id="pl_dup", status="discharged")])
    write_drop(exports, "duplicates", "pain_checkins", [checkin(checkin_id="k_dup", pain="1"), checkin(checkin_id="k_dup", pain="2")])
    write_drop(exports, "duplicates", "patients", [patient(patient_id="P_dup", sex="male"), patient(patient_id="P_dup", sex="female")])
    # the same session in another file of a later drop is not a duplicate in file
    write_drop(exports, "later", "sessions", [session(session_id="s_dup", pain_before="7")])
    path = tmp / "wh.duckdb"
    con = warehouse.connect(path)
    summary = load_all(con, exports)
    yield con, summary
    con.close()


def test_a_control_character_in_an_identifier_rejects_the_row_naming_the_column(night):
    con, _ = night
    got = [r for r in rejected(con) if r[0].startswith("controls/")]
    expected = []
    for entity in ENTITIES:
        reasons = [reason for e, _, reason in CASES if e == entity]
        expected += [(f"controls/{entity}.csv", line, reason) for line, reason in zip(_lines(entity), reasons)]
    assert sorted(got) == sorted(expected)


def _lines(entity: str) -> list[int]:
    """Physical lines of the entity's control cases: a quoted line break moves the later lines down."""
    line, out = 2, []
    for e, row, _ in CASES:
        if e == entity:
            out.append(line)
            line += 1 + sum(str(v).count("\n") + (str(v).count("\r") if "\n" not in str(v) else 0) for v in row.values() if v)
    return out


def test_no_row_with_a_control_character_loads(night):
    con, _ = night
    assert [r[1:] for r in ledger(con) if r[0].startswith("controls/")] == [
        (status, n, 0, n) for status, n in [("loaded", sum(1 for e, *_ in CASES if e == entity)) for entity in ENTITIES]
    ]


def test_no_raw_control_character_is_stored_anywhere(night):
    con, _ = night
    tables = rows(con, "select schema_name, table_name from duckdb_tables() where schema_name in ('raw', 'core', 'quality', 'ops')")
    found = []
    for schema, table in tables:
        columns = [c for (c,) in rows(con, f"select column_name from (describe {schema}.{table})")]
        for values in rows(con, f"select {', '.join(f'{chr(34)}{c}{chr(34)}::varchar' for c in columns)} from {schema}.{table}"):
            found += [(table, v) for v in values if v is not None and RAW & set(v)]
    assert found == []
    # nor escaped as JSON (\u0000 decodes back to the raw character)
    assert rows(con, r"select count(*) from quality.rejected_rows where regexp_matches(record::varchar, '\\u00[01]')") == [(0,)]
    records = rows(con, "select record ->> 'session_id' from quality.rejected_rows where source_file = 'controls/sessions.csv' and line_number = 2")
    assert records == [("s<U+0000>x",)]


def test_the_same_record_twice_in_one_file_the_later_line_wins_and_the_earlier_is_flagged(night):
    con, _ = night
    assert [r for r in rejected(con) if r[0].startswith("duplicates/")] == DUPLICATE_REJECTIONS
    assert rows(con, "select session_id, pain_before from core.sessions where session_id in ('s_dup', 's_versions', 's_bad_later') order by 1") == [
        ("s_bad_later", 6), ("s_dup", 7), ("s_versions", 4)
    ]
    assert rows(con, "select status from core.plans where plan_id = 'pl_dup'") == [("discharged",)]
    assert rows(con, "select pain from core.pain_checkins where checkin_id = 'k_dup'") == [(2,)]
    assert rows(con, "select sex from core.patients") == [("female",)]


def test_duplicates_count_as_rejected_rows_and_the_counts_add_up(night):
    con, summary = night
    assert [r for r in ledger(con) if r[0].startswith(("duplicates/", "later/"))] == [
        ("duplicates/plans.csv", "loaded", 2, 1, 1),
        ("duplicates/sessions.csv", "loaded", 7, 4, 3),
        ("duplicates/pain_checkins.csv", "loaded", 2, 1, 1),
        ("duplicates/patients.csv", "loaded", 2, 1, 1),
        ("later/sessions.csv", "loaded", 1, 1, 0),
    ]
    for f in summary.files:
        assert f.rows_read == f.rows_loaded + f.rows_rejected


def test_a_duplicates_record_holds_its_values_not_the_patient_number(night):
    con, _ = night
    (record,), = rows(con, "select record from quality.rejected_rows where source_file = 'duplicates/patients.csv'")
    assert "P_dup" not in record and '"sex":"male"' in record
