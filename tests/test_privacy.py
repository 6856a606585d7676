"""Direct identifiers never reach the warehouse or the logs; patient numbers become keyed hashes; birth dates age bands.

exports.md: never store full_name, date_of_birth, phone, postal_code, nor
patient_id itself, anywhere - rejected rows included. The export below carries
distinctive values of each in valid rows, rejected rows, a line the CSV reader
cannot split, a file rejected whole, a parquet file and unknown extra columns.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging

import pyarrow as pa
import pytest

from clinic_outcomes import warehouse
from load_fixtures import AS_OF, SECRET, checkin, csv_text, load_all, patient, plan, rows, session, write_drop

NAMES = ["Zebulon Quixotefeather", "Ottoline Marchbanks-Vyse", "Perpetua Lindqvist-Oyelaran"]
PHONES = ["+1 (555) 014-9321", "0555 987 6543", "555.013.7777"]
BIRTH_DATES = ["1937-02-11", "1941-07-29", "1929-12-03"]
POSTAL_CODES = ["K9Z 7Q4", "SW1A 9ZZ", "90210-4711"]
PATIENT_NUMBERS = ["MRN-55501234", "MRN-55509876", "MRN-55507777", "MRN-55503333"]
EMAIL = "zeb.quixote@example.org"
NEVER_STORED = [*NAMES, *PHONES, *BIRTH_DATES, *POSTAL_CODES, *PATIENT_NUMBERS, EMAIL, "11/02/1937"]


def _person(i: int, **values) -> dict:
    identifiers = {
        "patient_id": PATIENT_NUMBERS[i],
        "full_name": NAMES[i],
        "date_of_birth": BIRTH_DATES[i],
        "phone": PHONES[i],
        "postal_code": POSTAL_CODES[i],
    }
    return patient(**{**identifiers, **values})


def _write_exports(exports) -> None:
    mrn = PATIENT_NUMBERS
    extra = {"email": EMAIL, "mrn_copy": mrn[0], "patient_name": NAMES[0]}
    write_drop(
        exports,
        "2026-11-01",
        "patients",
        [
            {**_person(0), **extra},  # valid
            {**_person(1, sex="woman"), **extra},  # rejected: sex
            {**_person(2, date_of_birth="11/02/1937", updated_at="soon"), **extra},  # rejected: never-stored date, ts
        ],
    )
    # a line with one field too many, holding a name and a phone
    with_broken_line = csv_text([_person(0, updated_at="2026-10-05T08:00:00Z")]) + (
        f"{mrn[3]},{NAMES[1]},{BIRTH_DATES[1]},female,{PHONES[1]},{POSTAL_CODES[1]},2026-10-05T08:00:00Z,surplus\n"
    )
    write_drop(exports, "2026-11-02", "patients", with_broken_line)
    write_drop(
        exports,
        "2026-11-01",
        "sessions",
        [
            {**session(patient_id=mrn[0]), **extra},
            {**session(session_id="s2", patient_id=mrn[1], pain_before="11"), **extra},
            {**session(session_id="s3", patient_id=f"  {mrn[2]} "), **extra},
        ],
    )
    write_drop(
        exports,
        "2026-11-01",
        "plans",
        [plan(patient_id=mrn[0]), plan(plan_id="pl2", patient_id=mrn[3], clinic_id=None), plan(plan_id="pl3", patient_id=mrn[1], status="on hold")],
    )
    write_drop(
        exports,
        "2026-11-01",
        "pain_checkins",
        [checkin(patient_id=mrn[0]), checkin(checkin_id="k2", patient_id=mrn[2], pain="12"), checkin(checkin_id="k3", patient_id=mrn[3], channel="fax")],
    )
    # rejected whole (no updated_at column), every never-stored value inside
    write_drop(
        exports,
        "2026-11-03",
        "patients",
        csv_text([_person(i) for i in range(3)], columns=["patient_id", "full_name", "date_of_birth", "phone", "postal_code"]),
    )
    # typed parquet: the date of birth as a DATE column
    write_drop(
        exports,
        "2026-11-04",
        "patients",
        pa.table(
            {
                "patient_id": [mrn[2]],
                "full_name": [NAMES[2]],
                "date_of_birth": pa.array([dt.date.fromisoformat(BIRTH_DATES[2])], pa.date32()),
                "phone": [PHONES[2]],
                "postal_code": [POSTAL_CODES[2]],
                "sex": ["male"],
                "updated_at": ["2026-10-09T08:00:00Z"],
            }
        ),
        ext="parquet",
    )


class LogRecords(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    """The warehouse folder (closed), its exports and what the load logged."""
    tmp = tmp_path_factory.mktemp("privacy")
    exports = tmp / "exports"
    _write_exports(exports)
    folder = tmp / "warehouse"
    folder.mkdir()
    con = warehouse.connect(folder / "wh.duckdb")
    # Uncompressed storage, so that a value that reached the file shows in its raw bytes.
    con.execute("pragma force_compression = 'uncompressed'")
    logger = logging.getLogger()
    logged = LogRecords()
    logged.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    level = logger.level
    logger.addHandler(logged)
    logger.setLevel(logging.DEBUG)
    try:
        summary = load_all(con, exports)
    finally:
        logger.removeHandler(logged)
        logger.setLevel(level)
    con.execute("checkpoint")
    con.close()
    con = warehouse.connect(folder / "wh.duckdb", read_only=True)
    try:
        stored = _every_value_as_text(con)
        patient_keys = rows(con, "select patient_key from core.patients order by 1")
    finally:
        con.close()
    return {
        "folder": folder,
        "exports": exports,
        "log": "\n".join(logged.lines),
        "summary": summary,
        "stored": stored,
        "patient_keys": patient_keys,
    }


def _every_value_as_text(con) -> list[tuple[str, str]]:
    """(table, text) for every value of every table and view, and every catalog entry."""
    found = []
    tables = rows(con, "select schema_name, table_name from duckdb_tables() union all select schema_name, view_name from duckdb_views() where not internal")
    assert len(tables) >= 10
    for schema, table in tables:
        columns = [c for (c,) in rows(con, f"select column_name from (describe {schema}.{table})")]
        cast = ", ".join(f'"{c}"::varchar' for c in columns)
        for values in rows(con, f"select {cast} from {schema}.{table}"):
            found += [(f"{schema}.{table}", v) for v in values if v is not None]
    for catalog in ("duckdb_tables()", "duckdb_columns()", "duckdb_views()"):
        for values in rows(con, f"select * from {catalog}"):
            found += [(catalog, str(v)) for v in values if v is not None]
    return found


def test_the_loads_held_what_they_must_not_store(loaded):
    # The test is only as good as its input: each kind of identifier reached a valid row, a rejected row and a rejected file.
    summary = loaded["summary"]
    assert {(f.file.relpath, f.status, f.rows_loaded, f.rows_rejected) for f in summary.files} == {
        ("2026-11-01/patients.csv", "loaded", 1, 2),
        ("2026-11-01/sessions.csv", "loaded", 2, 1),
        ("2026-11-01/plans.csv", "loaded", 1, 2),
        ("2026-11-01/pain_checkins.csv", "loaded", 1, 2),
        ("2026-11-02/patients.csv", "loaded", 1, 1),
        ("2026-11-03/patients.csv", "rejected", 0, 3),
        ("2026-11-04/patients.parquet", "loaded", 1, 0),
    }


@pytest.mark.parametrize("value", NEVER_STORED)
def test_no_table_column_or_catalog_entry_holds_it(loaded, value):
    assert {table for table, text in loaded["stored"] if value.lower() in text.lower()} == set()


@pytest.mark.parametrize("value", NEVER_STORED)
def test_no_byte_of_the_warehouse_files_holds_it(loaded, value):
    files = [p for p in loaded["folder"].rglob("*") if p.is_file()]
    assert files
    for path in files:
        assert value.encode("utf-8") not in path.read_bytes(), path.name


@pytest.mark.parametrize("value", NEVER_STORED)
def test_no_log_line_holds_it(loaded, value):
    assert "rejected file 2026-11-03/patients.csv" in loaded["log"]
    assert value.lower() not in loaded["log"].lower()


def _key(patient_number: str, secret: bytes = SECRET) -> str:
    return hmac.new(secret, patient_number.encode("utf-8"), hashlib.sha256).hexdigest()


def test_patient_key_is_the_hmac_sha256_of_the_trimmed_patient_number(loaded):
    con = warehouse.connect(loaded["folder"] / "wh.duckdb", read_only=True)
    try:
        assert rows(con, "select distinct patient_key from core.sessions order by 1") == sorted(
            [(_key(PATIENT_NUMBERS[0]),), (_key(PATIENT_NUMBERS[2]),)]
        )
        assert rows(con, "select patient_key, sex from core.patients order by 1") == sorted(
            [(_key(PATIENT_NUMBERS[0]), "female"), (_key(PATIENT_NUMBERS[2]), "male")]
        )
        assert rows(con, "select patient_key from core.plans") == [(_key(PATIENT_NUMBERS[0]),)]
        assert rows(con, "select patient_key from core.pain_checkins") == [(_key(PATIENT_NUMBERS[0]),)]
    finally:
        con.close()


def test_rejected_rows_carry_the_key_not_the_number(loaded):
    con = warehouse.connect(loaded["folder"] / "wh.duckdb", read_only=True)
    try:
        records = rows(
            con,
            "select line_number, record ->> 'patient_key', json_keys(record) from quality.rejected_rows "
            "where source_file = '2026-11-01/patients.csv' order by line_number",
        )
    finally:
        con.close()
    assert records == [
        (3, _key(PATIENT_NUMBERS[1]), ["patient_key", "sex", "updated_at"]),
        (4, _key(PATIENT_NUMBERS[2]), ["patient_key", "sex", "updated_at"]),
    ]


def test_patient_keys_are_stable_for_one_secret_and_differ_for_another(loaded):
    def keys_with(secret: bytes) -> list[tuple]:
        con = warehouse.connect(None)
        load_all(con, loaded["exports"], secret=secret)
        return rows(con, "select patient_key from core.patients order by 1")

    first, again, other = loaded["patient_keys"], keys_with(SECRET), keys_with(b"another-secret-of-32-characters!")
    assert first == again == sorted([(_key(PATIENT_NUMBERS[0]),), (_key(PATIENT_NUMBERS[2]),)])
    assert other == sorted([(_key(PATIENT_NUMBERS[0], b"another-secret-of-32-characters!"),), (_key(PATIENT_NUMBERS[2], b"another-secret-of-32-characters!"),)])
    assert set(first).isdisjoint(other)


# Age bands at the as-of date (2026-11-23): the birthday itself counts.
AGE_BANDS = [
    ("P_newborn", "2026-11-23", "under 18"),
    ("P_18_tomorrow", "2008-11-24", "under 18"),
    ("P_18_today", "2008-11-23", "18-29"),
    ("P_30_tomorrow", "1996-11-24", "18-29"),
    ("P_30_today", "1996-11-23", "30-39"),
    ("P_40_today", "1986-11-23", "40-49"),
    ("P_50_yesterday", "1976-11-22", "50-59"),
    ("P_70_today", "1956-11-23", "70-79"),
    ("P_80_tomorrow", "1946-11-24", "70-79"),
    ("P_80_today", "1946-11-23", "80+"),
    ("P_104", "1922-01-01", "80+"),
    ("P_leap_day", "2008-02-29", "18-29"),
    ("P_born_tomorrow", "2026-11-24", None),
    ("P_no_birth_date", None, None),
]


@pytest.fixture(scope="module")
def age_bands(tmp_path_factory):
    exports = tmp_path_factory.mktemp("age_bands") / "exports"
    write_drop(exports, "2026-11-01", "patients", [patient(patient_id=pid, date_of_birth=dob) for pid, dob, _ in AGE_BANDS])
    con = warehouse.connect(None)
    load_all(con, exports, as_of=AS_OF)
    bands = dict(rows(con, "select patient_key, age_band from core.patients"))
    con.close()
    return bands


@pytest.mark.parametrize(("patient_id", "date_of_birth", "band"), AGE_BANDS, ids=[a[0] for a in AGE_BANDS])
def test_age_band_at_the_as_of_date(age_bands, patient_id, date_of_birth, band):
    assert age_bands[_key(patient_id)] == band
