"""A small, hand-made finished warehouse for the report tests, and tools to read the report back.

Every table the report reads is created with the agreed columns and types
(interface.md, the report brief), so a table or column the report needs but the
fixture lacks fails loudly (ReportInputError) instead of leaving a blank section.

The story of the rows (as of 2026-11-23; "current" = 25 Oct to 23 Nov, "previous" = 25 Sep to 24 Oct):

    clinic_a (America/New_York): patients A1, A2, A3     clinic_b (UTC): patient B1

    session  patient plan clinic    role                when (UTC)           therapies               pain  note
    s1       A1      P1   clinic_a  physical_therapist  2026-11-02 14:00     needling+manual         6->3  meaningful, ice
    s2       A1      P1   clinic_a  physical_therapist  2026-11-04 14:00     needling                5->4  48 h after s1, same spot; soreness
    s3       A2      P2   clinic_a  chiropractor        2026-11-10 15:00     needling+exercise       8->4  meaningful, ice
    s4       A3      -    clinic_a  physical_therapist  2026-10-01 13:00     needling                7->4  meaningful (previous period); bruising
    s5       A2      P2   clinic_a  chiropractor        2026-11-12 15:00     needling (cancelled)     -    counts for nothing
    s6       B1      P3   clinic_b  acupuncturist       2026-11-15 10:00     needling                5->2  meaningful, ice
    s7       A3      -    clinic_a  physical_therapist  2026-11-20 04:30     manual only             6->6  local date 19 Nov
    s8       A1      P1   clinic_a  physical_therapist  2026-10-25 03:00     needling                 -    local 24 Oct 23:00: previous period
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Hashable
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import duckdb

from clinic_outcomes import warehouse
from clinic_outcomes.settings import Rules, Settings, load_settings

UTC = dt.timezone.utc
AS_OF = dt.date(2026, 11, 23)
NEW_YORK = "America/New_York"


def patient_key(emr_number: str) -> str:
    """A pseudonymous key that looks like the real ones (64 hex characters)."""
    return hashlib.sha256(f"test-key:{emr_number}".encode()).hexdigest()


A1, A2, A3, B1 = (patient_key(n) for n in ("A1", "A2", "A3", "B1"))
PATIENT_KEYS = (A1, A2, A3, B1)
# Values that must never reach the report: EMR numbers and a date of birth quoted by a rejection reason.
NEVER_SHOWN = ("EMR-000117", "1961-02-03", "Jane Roe", *PATIENT_KEYS)


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=UTC)


def settings(min_cell_patients: int = 2) -> Settings:
    return Settings(rules=Rules(min_cell_patients=min_cell_patients))


TABLES: dict[str, dict[str, str]] = {
    "core.sessions": {
        "session_id": "varchar", "patient_key": "varchar", "plan_id": "varchar", "clinic_id": "varchar",
        "clinician_id": "varchar", "clinician_role": "varchar", "started_at": "timestamptz", "status": "varchar",
        "therapies": "varchar[]", "condition": "varchar", "pain_before": "integer", "pain_after": "integer",
        "aftercare": "varchar", "adverse_event": "varchar", "updated_at": "timestamptz", "clinic_timezone": "varchar",
    },
    "core.needle_sites": {"session_id": "varchar", "site": "varchar", "side": "varchar", "needles": "integer"},
    "core.plans": {
        "plan_id": "varchar", "patient_key": "varchar", "clinic_id": "varchar", "start_date": "date",
        "planned_weeks": "integer", "planned_sessions": "integer", "pcp_cleared": "boolean", "status": "varchar",
        "updated_at": "timestamptz", "clinic_timezone": "varchar",
    },
    "core.pain_checkins": {
        "checkin_id": "varchar", "patient_key": "varchar", "recorded_at": "timestamptz", "pain": "integer", "channel": "varchar",
    },
    "core.patients": {"patient_key": "varchar", "sex": "varchar", "age_band": "varchar", "updated_at": "timestamptz"},
    "quality.retreatment_flags": {
        "session_id": "varchar", "previous_session_id": "varchar", "site": "varchar", "side": "varchar",
        "hours_since_previous": "double", "clinic_id": "varchar", "clinician_id": "varchar",
    },
    "quality.plan_completion": {
        "plan_id": "varchar", "patient_key": "varchar", "clinic_id": "varchar", "clinic_timezone": "varchar",
        "start_date": "date", "planned_weeks": "integer", "window_end": "date", "completion": "varchar",
        "reasons": "varchar[]", "sessions_in_window": "bigint",
    },
    "quality.rejected_rows": {
        "run_id": "integer", "source_file": "varchar", "line_number": "bigint", "entity": "varchar",
        "reason": "varchar", "record": "json",
    },
    "quality.expectation_results": {
        "run_id": "integer", "suite": "varchar", "expectation": "varchar", "severity": "varchar",
        "success": "boolean", "unexpected_count": "bigint",
    },
    "ops.runs": {
        "run_id": "integer", "started_at": "timestamptz", "finished_at": "timestamptz", "as_of": "date",
        "status": "varchar", "rows_loaded": "bigint", "rows_rejected": "bigint",
    },
    "marts.session_relief": {
        "session_id": "varchar", "relief_points": "integer", "relief_pct": "double", "meaningful_relief": "boolean",
        "clinic_id": "varchar", "clinician_role": "varchar", "condition": "varchar", "aftercare": "varchar",
        "started_at": "timestamptz", "could_show_relief": "boolean",
    },
    "marts.relief_duration": {
        "session_id": "varchar", "clinic_id": "varchar", "condition": "varchar", "aftercare": "varchar",
        "clinician_role": "varchar", "duration_hours": "double", "relapsed": "boolean",
    },
    "marts.relief_summary": {
        "group_by": "varchar", "group_value": "varchar", "episodes": "bigint", "relapses": "bigint",
        "patients": "bigint", "no_followup": "bigint", "median_hours": "double", "median_ci_low": "double",
        "median_ci_high": "double", "in_relief_24h": "double", "in_relief_72h": "double",
        "in_relief_7d": "double", "in_relief_14d": "double",
        **{f"{share}_ci_{end}": "double" for share in ("in_relief_24h", "in_relief_72h", "in_relief_7d", "in_relief_14d")
           for end in ("low", "high")},
    },
    "marts.relief_curves": {
        "group_by": "varchar", "group_value": "varchar", "hours": "double", "survival": "double",
        "ci_low": "double", "ci_high": "double", "at_risk": "bigint",
    },
    "marts.relief_comparison": {
        "factor": "varchar", "group_value": "varchar", "episodes": "bigint", "relapses": "bigint",
        "patients": "bigint", "median_hours": "double", "in_relief_72h": "double", "in_relief_7d": "double",
        "in_comparison": "boolean", "is_reference": "boolean", "hazard_ratio": "double",
        "hazard_ratio_ci_low": "double", "hazard_ratio_ci_high": "double", "hazard_ratio_p": "double",
        "factor_p": "double",
    },
    "marts.plan_outcomes": {
        "plan_id": "varchar", "baseline_pain": "integer", "final_pain": "integer", "change_points": "integer",
        "change_pct": "double", "achieved_mcid": "boolean", "clinic_id": "varchar", "moderate": "boolean",
        "substantial": "boolean",
    },
    "marts.adverse_events": {
        "group_by": "varchar", "group_value": "varchar", "needling_sessions": "bigint", "patients": "bigint",
        "event_type": "varchar", "events": "bigint", "per_100_sessions": "double",
    },
    "marts.aftercare_mix": {
        "group_by": "varchar", "group_value": "varchar", "aftercare": "varchar", "needling_sessions": "bigint",
        "share": "double",
    },
    "marts.pcp_clearance": {
        "group_by": "varchar", "group_value": "varchar", "plans": "bigint", "plans_without_pcp_clearance": "bigint",
        "share": "double", "plans_pcp_not_recorded": "bigint", "not_recorded_share": "double",
    },
}

DN, MT, TE = "dry_needling", "manual_therapy", "therapeutic_exercise"

ROWS: dict[str, list[tuple]] = {
    "core.sessions": [
        # session patient plan  clinic      clinician role                  started_at                    status       therapies  condition        before after aftercare adverse     updated_at                 zone
        ("s1", A1, "P1", "clinic_a", "c_pt1", "physical_therapist", at("2026-11-02 14:00"), "completed", [DN, MT], "low_back_pain", 6, 3, "ice", "none", at("2026-11-02 15:00"), NEW_YORK),
        ("s2", A1, "P1", "clinic_a", "c_pt1", "physical_therapist", at("2026-11-04 14:00"), "completed", [DN], "low_back_pain", 5, 4, "heat", "soreness", at("2026-11-04 15:00"), NEW_YORK),
        ("s3", A2, "P2", "clinic_a", "c_ch1", "chiropractor", at("2026-11-10 15:00"), "completed", [DN, TE], "neck_pain", 8, 4, "ice", "none", at("2026-11-10 16:00"), NEW_YORK),
        ("s4", A3, None, "clinic_a", "c_pt1", "physical_therapist", at("2026-10-01 13:00"), "completed", [DN], "low_back_pain", 7, 4, "none", "bruising", at("2026-10-01 14:00"), NEW_YORK),
        ("s5", A2, "P2", "clinic_a", "c_ch1", "chiropractor", at("2026-11-12 15:00"), "cancelled", [DN], "neck_pain", None, None, None, None, at("2026-11-12 16:00"), NEW_YORK),
        ("s6", B1, "P3", "clinic_b", "c_ac1", "acupuncturist", at("2026-11-15 10:00"), "completed", [DN], "neck_pain", 5, 2, "ice", "none", at("2026-11-15 11:00"), "UTC"),
        ("s7", A3, None, "clinic_a", "c_pt1", "physical_therapist", at("2026-11-20 04:30"), "completed", [MT], "low_back_pain", 6, 6, None, None, at("2026-11-20 05:00"), NEW_YORK),
        ("s8", A1, "P1", "clinic_a", "c_pt1", "physical_therapist", at("2026-10-25 03:00"), "completed", [DN], "low_back_pain", None, None, None, "none", at("2026-10-25 04:00"), NEW_YORK),
    ],
    "core.needle_sites": [
        ("s1", "lumbar_multifidus", "left", 2),
        ("s2", "lumbar_multifidus", "left", 1),
        ("s3", "upper_trapezius", "right", 2),
        ("s4", "gluteus_medius", "left", 1),
        ("s6", "suboccipitals", "midline", 2),
        ("s8", "quadratus_lumborum", "right", 1),
    ],
    "core.plans": [
        # plan  patient clinic      start                  weeks sessions pcp    status        updated_at                 zone
        ("P1", A1, "clinic_a", dt.date(2026, 10, 12), 6, 6, True, "active", at("2026-10-12 12:00"), NEW_YORK),
        ("P2", A2, "clinic_a", dt.date(2026, 11, 9), None, None, False, "active", at("2026-11-09 12:00"), NEW_YORK),
        ("P3", B1, "clinic_b", dt.date(2026, 10, 1), 4, 2, True, "discharged", at("2026-10-29 12:00"), "UTC"),
        ("P4", A3, "clinic_a", dt.date(2026, 8, 1), 6, None, None, "discharged", at("2026-09-12 12:00"), NEW_YORK),
        ("P5", A2, "clinic_a", dt.date(2026, 7, 1), 6, None, False, "cancelled", at("2026-07-02 12:00"), NEW_YORK),
    ],
    "core.pain_checkins": [
        ("c1", A2, at("2026-11-14 19:00"), 4, "sms"),
        ("c2", B1, at("2026-11-16 06:00"), 4, "app"),
    ],
    "core.patients": [
        (A1, "female", "40-49", at("2026-10-01 00:00")),
        (A2, "male", "30-39", at("2026-10-01 00:00")),
        (A3, "female", "60-69", at("2026-10-01 00:00")),
        (B1, "other", "18-29", at("2026-10-01 00:00")),
    ],
    "quality.retreatment_flags": [
        ("s2", "s1", "lumbar_multifidus", "left", 48.0, "clinic_a", "c_pt1"),
    ],
    "quality.plan_completion": [
        # plan patient clinic      zone      start                  weeks window_end             completion     reasons                                          sessions
        ("P1", A1, "clinic_a", NEW_YORK, dt.date(2026, 10, 12), 6, dt.date(2026, 11, 23), "incomplete", ["no_final_week_session", "too_few_sessions"], 3),
        ("P2", A2, "clinic_a", NEW_YORK, dt.date(2026, 11, 9), 6, dt.date(2026, 12, 21), "in_progress", [], 1),
        ("P3", B1, "clinic_b", "UTC", dt.date(2026, 10, 1), 4, dt.date(2026, 10, 29), "complete", [], 2),
        ("P4", A3, "clinic_a", NEW_YORK, dt.date(2026, 8, 1), 6, dt.date(2026, 9, 12), "complete", [], 6),
        ("P5", A2, "clinic_a", NEW_YORK, dt.date(2026, 7, 1), 6, dt.date(2026, 8, 12), "cancelled", [], 0),
    ],
    "quality.rejected_rows": [
        (2, "exports/2026-11-23/patients.csv", 4, "patients", "date_of_birth: '1961-02-03' is not a date (YYYY-MM-DD)", '{"sex": "female"}'),
        (2, "exports/2026-11-23/sessions.csv", 7, "sessions", "pain_before: '12' is not a whole number from 0 to 10", '{"session_id": "s9"}'),
        (2, "exports/2026-11-23/sessions.csv", 9, "sessions", "pain_before: '11' is not a whole number from 0 to 10", '{"session_id": "s10"}'),
        (1, "exports/2026-11-22/sessions.csv", 3, "sessions", "patient_id: missing", '{"note": "EMR-000117 Jane Roe"}'),
    ],
    "quality.expectation_results": [
        (2, "core_sessions", "expect_column_values_to_not_be_null(session_id)", "error", True, 0),
        (2, "retreatment", "expect_column_values_to_be_null(retreatment_flag)", "warning", False, 1),
        (1, "retreatment", "expect_column_values_to_be_null(retreatment_flag)", "warning", False, 1),
    ],
    "ops.runs": [
        (1, at("2026-11-22 07:00"), at("2026-11-22 07:02"), dt.date(2026, 11, 22), "published", 40, 1),
        (2, at("2026-11-23 07:00"), at("2026-11-23 07:03"), dt.date(2026, 11, 23), "published", 12, 3),
    ],
    "marts.session_relief": [
        ("s1", 3, 0.5, True, "clinic_a", "physical_therapist", "low_back_pain", "ice", at("2026-11-02 14:00"), True),
        ("s2", 1, 0.2, False, "clinic_a", "physical_therapist", "low_back_pain", "heat", at("2026-11-04 14:00"), True),
        ("s3", 4, 0.5, True, "clinic_a", "chiropractor", "neck_pain", "ice", at("2026-11-10 15:00"), True),
        ("s4", 3, 3 / 7, True, "clinic_a", "physical_therapist", "low_back_pain", "none", at("2026-10-01 13:00"), True),
        ("s6", 3, 0.6, True, "clinic_b", "acupuncturist", "neck_pain", "ice", at("2026-11-15 10:00"), True),
        ("s8", None, None, None, "clinic_a", "physical_therapist", "low_back_pain", None, at("2026-10-25 03:00"), None),
    ],
    "marts.relief_duration": [
        ("s1", "clinic_a", "low_back_pain", "ice", "physical_therapist", 48.0, True),
        ("s3", "clinic_a", "neck_pain", "ice", "chiropractor", 100.0, False),
        ("s4", "clinic_a", "low_back_pain", "none", "physical_therapist", 30.0, True),
        ("s6", "clinic_b", "neck_pain", "ice", "acupuncturist", 20.0, True),
    ],
    "marts.relief_summary": [
        # group_by     value            episodes relapses patients no_fu median ci_low ci_high 24h   72h   7d    14d
        # 14 days: fewer than min_cell_patients still followed, so the mart leaves the share null
        ("all", None, 4, 3, 4, 0, 30.0, 20.0, None, 0.75, 0.25, 0.25, None, 0.55, 0.9, 0.1, 0.5, None, None, None, None),
        ("condition", "low_back_pain", 2, 2, 2, 0, 30.0, 30.0, None, 1.0, 0.0, 0.0, 0.0, None, None, None, None, None, None, None, None),
        ("condition", "neck_pain", 2, 1, 2, 0, 20.0, 20.0, None, 0.5, 0.5, 0.5, 0.5, None, None, None, None, None, None, None, None),
        ("aftercare", "ice", 3, 2, 3, 0, 48.0, 20.0, None, 2 / 3, 1 / 3, 1 / 3, 1 / 3, None, None, None, None, None, None, None, None),
        ("aftercare", "none", 1, 1, 1, 0, 30.0, None, None, 1.0, 0.0, 0.0, 0.0, None, None, None, None, None, None, None, None),
        ("clinic", "clinic_a", 3, 2, 3, 0, 48.0, 30.0, None, 1.0, 1 / 3, 1 / 3, 1 / 3, None, None, None, None, None, None, None, None),
        ("clinic", "clinic_b", 1, 1, 1, 0, 20.0, None, None, 0.0, 0.0, 0.0, 0.0, None, None, None, None, None, None, None, None),
    ],
    "marts.relief_curves": [
        ("condition", "low_back_pain", 0.0, 1.0, 1.0, 1.0, 2),
        ("condition", "low_back_pain", 30.0, 0.5, 0.1, 0.9, 2),
        ("condition", "low_back_pain", 48.0, 0.0, None, None, 1),
        ("condition", "neck_pain", 0.0, 1.0, 1.0, 1.0, 2),
        ("condition", "neck_pain", 20.0, 0.5, 0.1, 0.9, 2),
        ("condition", "neck_pain", 100.0, 0.5, 0.1, 0.9, 1),
        ("aftercare", "ice", 0.0, 1.0, 1.0, 1.0, 3),
        ("aftercare", "ice", 20.0, 2 / 3, 0.2, 0.9, 3),
        ("aftercare", "ice", 48.0, 1 / 3, 0.05, 0.8, 2),
        ("aftercare", "ice", 100.0, 1 / 3, 0.05, 0.8, 1),
        ("aftercare", "none", 0.0, 1.0, 1.0, 1.0, 1),
        ("aftercare", "none", 30.0, 0.0, None, None, 1),
    ],
    "marts.relief_comparison": [
        # factor    group   episodes relapses patients median 72h  7d  in_comparison reference HR  low   high  p     factor_p
        ("aftercare", "ice", 3, 2, 3, 48.0, 0.6, 0.2, True, False, 1.8, 0.62, 5.2, 0.28, 0.4),
        ("aftercare", "none", 1, 1, 1, 30.0, 0.3, 0.0, True, True, 1.0, None, None, None, 0.4),
    ],
    "marts.plan_outcomes": [
        ("P1", 6, 4, 2, 1 / 3, True, "clinic_a", True, False),
        ("P3", 5, 4, 1, 0.2, False, "clinic_b", False, False),
        ("P4", 7, 2, 5, 5 / 7, True, "clinic_a", True, True),
    ],
    "marts.adverse_events": [
        ("all", "all", 6, 4, "soreness", 1, 100 / 6),
        ("all", "all", 6, 4, "bruising", 1, 100 / 6),
        ("clinic", "clinic_a", 5, 3, "soreness", 1, 20.0),
        ("clinic", "clinic_a", 5, 3, "bruising", 1, 20.0),
        ("clinician_role", "physical_therapist", 4, 2, "soreness", 1, 25.0),
        ("clinician_role", "physical_therapist", 4, 2, "bruising", 1, 25.0),
        ("clinician_role", "chiropractor", 1, 1, "soreness", 0, 0.0),
        ("clinician_role", "acupuncturist", 1, 1, "soreness", 0, 0.0),
    ],
    "marts.aftercare_mix": [
        ("all", "all", "ice", 6, 0.5),
        ("all", "all", "heat", 6, 1 / 6),
        ("all", "all", "none", 6, 1 / 6),
        ("all", "all", None, 6, 1 / 6),
        ("clinic", "clinic_a", "ice", 5, 0.4),
        ("clinic", "clinic_a", "heat", 5, 0.2),
        ("clinic", "clinic_a", "none", 5, 0.2),
        ("clinic", "clinic_a", None, 5, 0.2),
        ("clinic", "clinic_b", "ice", 1, 1.0),
    ],
    "marts.pcp_clearance": [
        # pcp_cleared false: P2, P5; not recorded (null): P4, never counted as not cleared
        ("all", "all", 5, 2, 0.4, 1, 0.2),
        ("clinic", "clinic_a", 4, 2, 0.5, 1, 0.25),
        ("clinic", "clinic_b", 1, 0, 0.0, 0, 0.0),
    ],
}


def create_table(con: duckdb.DuckDBPyConnection, name: str, rows: Iterable[tuple]) -> None:
    columns = TABLES[name]
    ddl = ", ".join(f"{column} {kind}" for column, kind in columns.items())
    con.execute(f"create table {name} ({ddl})")
    rows = list(rows)
    if rows:
        placeholders = ", ".join("?" for _ in columns)
        con.executemany(f"insert into {name} values ({placeholders})", rows)


def build_warehouse(
    con: duckdb.DuckDBPyConnection | None = None,
    *,
    rows: dict[str, list[tuple]] | None = None,
    without: Iterable[str] = (),
) -> duckdb.DuckDBPyConnection:
    """A finished warehouse with ROWS (or `rows` overriding some tables); `without` leaves tables out."""
    con = con or warehouse.connect()
    warehouse.create_schemas(con)
    tables = {**ROWS, **(rows or {})}
    skip = set(without)
    for name in TABLES:
        if name not in skip:
            create_table(con, name, tables.get(name, []))
    return con


# ---------------------------------------------------------------------------
# Reading the report back.


def figures(html_text: str, scope: str) -> dict[str, str]:
    """The headline figures of one section: {figure key: shown text}."""
    section = section_html(html_text, scope)
    return {key: _text(value) for key, value in re.findall(r'data-figure="([^"]+)">(.*?)</', section, re.S)}


def changes(html_text: str, scope: str) -> dict[str, str]:
    section = section_html(html_text, scope)
    return {key: _text(value) for key, value in re.findall(r'data-change="([^"]+)"[^>]*>(.*?) <span', section, re.S)}


def section_html(html_text: str, scope: str) -> str:
    match = re.search(rf'<section[^>]*data-scope="{re.escape(scope)}"[^>]*>(.*?)</section>', html_text, re.S)
    assert match, f"no section for {scope}"
    return match.group(1)


def table_rows(html_text: str, scope: str | None, table: str) -> list[list[str]]:
    """The body rows of a table (data-table=...) as lists of cell texts."""
    where = section_html(html_text, scope) if scope else html_text
    match = re.search(rf'<table[^>]*data-table="{re.escape(table)}"[^>]*>(.*?)</table>', where, re.S)
    assert match, f"no table {table} in {scope}"
    body = re.search(r"<tbody>(.*?)</tbody>", match.group(1), re.S).group(1)
    return [
        [_text(cell) for cell in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row, re.S)]
        for row in re.findall(r"<tr[^>]*>(.*?)</tr>", body, re.S)
    ]


def _text(fragment: str) -> str:
    import html as html_module

    inline = re.sub(r"</?(strong|span|a|em|sup)\b[^>]*>", "", fragment)
    without_tags = re.sub(r"<[^>]+>", " ", inline)
    return " ".join(html_module.unescape(without_tags).split())


def pdf_text(pdf: bytes) -> str:
    """The text of a PDF, page after page, as pypdf extracts it (fonts' ToUnicode maps, ligatures such as
    "fi" back to their letters). A home-made extractor here missed whole text objects of WeasyPrint's PDFs."""
    import io

    import pypdf

    return "\n".join(page.extract_text() for page in pypdf.PdfReader(io.BytesIO(pdf)).pages)


def assert_absent(text: str, where: str) -> None:
    for value in NEVER_SHOWN:
        assert value not in text, f"{value!r} appears in the {where}"



# ---------------------------------------------------------------------------
# Disclosure control (R7) for the report's tests.


class PrimaryOnlySuppression:
    """A stand-in for clinic_outcomes.disclosure.suppression (same interface) until that module is merged:
    primary suppression only, so tests of what the report shows can run; never used by the product."""

    @dataclass(frozen=True)
    class Cell:
        key: Hashable
        value: float | None
        patients: int

    @dataclass(frozen=True)
    class Equation:
        total: Hashable
        members: tuple[Hashable, ...]

    @staticmethod
    def protect(cells, equations, min_cell, groups=None):
        return {
            cell.key: None if cell.patients >= min_cell or (cell.patients == 0 and not cell.value) else "primary"
            for cell in cells
        }


def report_html(con: duckdb.DuckDBPyConnection, *, settings: Settings, as_of: dt.date, primary_only: bool = False,
                **kwargs) -> str:
    """What the report stage does before rendering (marts.report_cells), then one report's HTML.

    primary_only: with the primary-only stand-in instead of the disclosure module, for the tests of how
    each figure is computed on the small fixture (two clinics, one of one patient: with complementary
    suppression, most network figures would hide). Complementary suppression is tested on whole networks
    (test_report_disclosure.py) and in tests/disclosure."""
    from clinic_outcomes.report.cells import build_report_cells
    from clinic_outcomes.report.render import build_html

    # None: the product's own protection (protect_grid, the LP search as its fallback), as the night runs it
    build_report_cells(con, settings=settings, as_of=as_of, suppression=PrimaryOnlySuppression if primary_only else None)
    return build_html(con, settings=settings, as_of=as_of, **kwargs)


def reports(con: duckdb.DuckDBPyConnection, *, settings: Settings, as_of: dt.date, primary_only: bool = False,
            **kwargs) -> dict[str | None, str]:
    """The network's report (key None) and every clinic's, as render_report makes them."""
    from clinic_outcomes.report.render import build_html

    documents: dict[str | None, str] = {
        None: report_html(con, settings=settings, as_of=as_of, primary_only=primary_only, **kwargs)
    }
    clinics = con.sql("select clinic_id from core.sessions union select clinic_id from core.plans order by 1").fetchall()
    for (clinic,) in clinics:
        if clinic is not None:
            documents[clinic] = build_html(con, settings=settings, as_of=as_of, clinic_id=clinic, **kwargs)
    return documents


def every_report(con: duckdb.DuckDBPyConnection, *, settings: Settings, as_of: dt.date, **kwargs) -> str:
    """The network's report, then every clinic's, one after the other: a section found by its scope is the
    first with it, so "network" is the network report's and each clinic's is its own report's."""
    return "\n".join(reports(con, settings=settings, as_of=as_of, **kwargs).values())


def generated_network(root: Path, patients: int, clinics: int | None = None) -> tuple:
    """A generated network of `patients` patients through exports -> load -> core -> quality -> marts ->
    ops.runs, as the nightly flow does, minus validation: (connection, settings, as-of date, exports folder)."""
    from clinic_outcomes.core import build as core_build
    from clinic_outcomes.loading import keys, load
    from clinic_outcomes.metrics import marts
    from clinic_outcomes.publishing import publish
    from clinic_outcomes.publishing.runs import write_ops_runs
    from clinic_outcomes.quality import tables as quality_tables
    from clinic_outcomes.synthetic.generate import generate
    from clinic_outcomes.warehouse import connect, run_sql, set_variables

    exports = root / "exports"
    summary = generate(exports, patients=patients, clinics=clinics)
    as_of = summary.end_date + dt.timedelta(days=1)
    settings = load_settings(str(exports / "settings.toml") if (exports / "settings.toml").exists() else None)
    path = root / "warehouse.duckdb"
    con = connect(path)
    set_variables(con, settings, as_of)
    load.prepare(con, settings, as_of, 1)
    load.load_exports(con, exports, secret=keys.load_key(path), run_id=1)
    core_build.build_core(con)
    quality_tables.build(con, settings, as_of)
    run_sql(con, "ddl/quality_expectation_results")
    marts.compute_marts(con, settings, as_of)
    record = publish.RunRecord(run_id=1, started_at="2026-11-24T02:00:00+00:00", as_of=as_of.isoformat(),
                               status="published")
    write_ops_runs(con, publish.RunJournal(path), record)
    return con, settings, as_of, exports
