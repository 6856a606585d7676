"""The outcome report clinic managers read each morning (issue 7).

One self-contained HTML file (inline CSS and SVG charts, no script, no network
request) and a PDF of the same HTML (WeasyPrint), built from the finished
warehouse after every run: a network overview, then one section per clinic.

Where the figures come from:
- the marts and quality tables where they carry the figure (relief curves and
  medians of the network, adverse events, plan completion, rejected rows);
- DuckDB SQL over core/marts here where they do not (per-period and monthly
  figures, per-clinic splits, distinct patients for small-cell suppression),
  with Kaplan-Meier estimates from clinic_outcomes.metrics.survival, the module the marts use.

Every figure that rests on patients goes through `small_cell()`: computed from
fewer than `settings.rules.min_cell_patients` distinct patients, it is shown as
"fewer than 11" (rules.md, Small cells) and it is left out of charts.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import importlib
import math
import re
import textwrap
import threading
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, Callable

import duckdb
import jinja2
import polars as pl
from markupsafe import Markup

from clinic_outcomes.settings import Settings
from clinic_outcomes.metrics.survival import curve_summary, kaplan_meier
from clinic_outcomes.warehouse import scalar

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"

# The agreed tables and the columns this report reads (a missing one is an error, not a blank section).
REQUIRED_COLUMNS: dict[str, tuple[str, ...]] = {
    "core.sessions": (
        "session_id", "patient_key", "plan_id", "clinic_id", "clinician_id", "clinician_role", "started_at",
        "status", "therapies", "condition", "aftercare", "adverse_event", "clinic_timezone",
    ),
    "core.plans": ("plan_id", "patient_key", "clinic_id", "pcp_cleared"),
    "quality.retreatment_flags": (
        "session_id", "previous_session_id", "site", "side", "hours_since_previous", "clinic_id", "clinician_id",
    ),
    "quality.plan_completion": ("plan_id", "patient_key", "clinic_id", "window_end", "completion", "reasons"),
    "quality.rejected_rows": ("run_id", "source_file", "entity", "reason"),
    "quality.expectation_results": ("run_id", "suite", "expectation", "severity", "success", "unexpected_count"),
    "ops.runs": ("run_id", "started_at", "finished_at", "as_of", "status", "rows_loaded", "rows_rejected"),
    "marts.session_relief": ("session_id", "relief_points", "meaningful_relief", "clinic_id", "clinician_role", "condition"),
    "marts.relief_duration": ("session_id", "clinic_id", "condition", "aftercare", "duration_hours", "relapsed"),
    "marts.relief_summary": (
        "group_by", "group_value", "episodes", "relapses", "patients", "no_followup", "median_hours",
        "median_ci_low", "median_ci_high", "in_relief_24h", "in_relief_72h", "in_relief_7d", "in_relief_14d",
    ),
    "marts.relief_curves": ("group_by", "group_value", "hours", "survival"),
    "marts.relief_comparison": (
        "factor", "group_value", "episodes", "patients", "median_hours", "in_relief_72h", "in_relief_7d", "logrank_p",
    ),
    "marts.plan_outcomes": ("plan_id", "baseline_pain", "final_pain", "change_points", "achieved_mcid", "moderate", "substantial"),
    "marts.adverse_events": ("group_by", "group_value", "needling_sessions", "patients", "event_type", "events", "per_100_sessions"),
    "marts.aftercare_mix": ("group_by", "group_value", "aftercare", "needling_sessions", "share"),
    "marts.pcp_clearance": ("group_by", "group_value", "plans", "plans_without_pcp_clearance", "share"),
}

RELIEF_AT_HOURS = {"in_relief_24h": 24.0, "in_relief_72h": 72.0, "in_relief_7d": 168.0, "in_relief_14d": 336.0}
EVENT_TYPES = ("soreness", "bruising", "swelling", "bleeding", "fainting", "other")
COMPLETION_ORDER = ("complete", "incomplete", "in_progress", "cancelled")
REASON_ORDER = ("no_final_week_session", "no_dry_needling", "no_adjunct_therapy", "too_few_sessions")
PERIOD_DAYS = 30
TREND_MONTHS = 12
RETREATMENT_LIST_DAYS = 30
RETREATMENT_LIST_MAX = 50  # per clinic, most recent first; the warehouse holds the rest
CURVE_POINTS = 240  # per curve: enough for a smooth step line, small enough for 100+ charts

WORDS = {
    # conditions, roles, aftercare, completion, reasons: plain words for the codes
    "low_back_pain": "Low back pain", "neck_pain": "Neck pain", "cervicogenic_headache": "Headache from the neck",
    "carpal_tunnel_syndrome": "Carpal tunnel syndrome", "shoulder_pain": "Shoulder pain", "other": "Other",
    "physical_therapist": "Physical therapist", "chiropractor": "Chiropractor", "acupuncturist": "Acupuncturist",
    "nurse": "Nurse", "physician": "Physician",
    "ice": "Ice", "heat": "Heat", "none": "No aftercare advice",
    "complete": "Complete", "incomplete": "Incomplete", "in_progress": "In progress", "cancelled": "Cancelled",
    "no_final_week_session": "No session in the plan's last week",
    "no_dry_needling": "No dry needling in the plan",
    "no_adjunct_therapy": "No therapy besides dry needling",
    "too_few_sessions": "Fewer sessions than planned",
    "not recorded": "Not recorded",
    "soreness": "Soreness", "bruising": "Bruising", "swelling": "Swelling", "bleeding": "Bleeding", "fainting": "Fainting",
}


class ReportInputError(RuntimeError):
    """The warehouse lacks a table or column the report is built from."""


@dataclass(frozen=True)
class ReportPaths:
    html: Path
    pdf: Path


def small_cell(patients: int | None, min_cell_patients: int) -> str | None:
    """The words shown instead of a figure that rests on too few patients, else None.

    rules.md, Small cells: a figure computed from fewer distinct patients than the
    minimum cell is shown as "fewer than 11" (the setting), never as a number, so
    that no patient stands out. Unknown counts are treated as too few; a figure
    with no patients at all has nothing to show ("no data").
    """
    if patients == 0:
        return "no data"
    if patients is None or patients < min_cell_patients:
        return f"fewer than {min_cell_patients}"
    return None


# ---------------------------------------------------------------------------
# Definitions: every figure's meaning in plain words (rules.md), shown on hover
# (title attribute) and in the "What the figures mean" list the figures link to.


def definitions(settings: Settings) -> dict[str, tuple[str, str]]:
    rules = settings.rules
    mcid = _number(rules.mcid_points)
    window = _number(rules.retreatment_window_hours)
    weeks = rules.plan_weeks
    cell = rules.min_cell_patients
    return {
        "patients": ("Patients", "Different patients with at least one completed session in the period."),
        "plans": ("Plans in care", "Treatment plans with at least one completed session in the period."),
        "needling_sessions": (
            "Needling sessions",
            "Completed sessions that included dry needling. Cancelled and no-show sessions never count.",
        ),
        "plans_complete": (
            "Plans complete",
            f"Of the plans whose planned window ended in the period (default {weeks} weeks; a plan's own length wins), "
            "the share that had a session in the last week, dry needling, another therapy besides needling, "
            "and at least the planned number of sessions.",
        ),
        "meaningful_relief": (
            "Sessions with meaningful relief",
            f"Of the needling sessions with pain rated before and after, the share where pain dropped by at least "
            f"{mcid} points on the 0-10 scale right after the session.",
        ),
        "median_relief": (
            "Median relief duration",
            f"How long relief lasts after a session with meaningful relief: the time by which half of the patients' pain "
            f"had come back up to within {mcid} points of where it started (Kaplan-Meier estimate, using check-ins and later "
            f"sessions for up to {rules.relief_followup_days} days). \"Not reached\": more than half were still in relief "
            "at the end of follow-up.",
        ),
        "mcid_plans": (
            "Plans reaching a meaningful improvement",
            f"Of the finished plans with a pain rating, the share whose latest pain was at least {mcid} points below the "
            "pain at the first session (the minimal clinically important difference). Plans count in the period their "
            "window ended.",
        ),
        "change": (
            "Change",
            f"Difference from the {PERIOD_DAYS} days before. Shares change in percentage points. No comparison is shown "
            f"when either period has fewer than {cell} patients.",
        ),
        "pain_reduction": (
            "Pain reduction",
            "Average drop in pain (0-10 scale) from before to right after a needling session, with the share of sessions "
            f"with meaningful relief (a drop of at least {mcid} points).",
        ),
        "relief_curves": (
            "Relief curves",
            "Share of relief episodes still in relief (pain not back up to within "
            f"{mcid} points of where it started) against time since the session. Kaplan-Meier estimate: an episode "
            "whose follow-up ends without relapse counts until its last check-in.",
        ),
        "logrank": (
            "Log-rank test",
            "Whether relief lasts equally long in every group, allowing for episodes still in relief when their "
            "follow-up ended. A p-value below 0.05 means the differences between the groups are unlikely to be chance. "
            f"Only groups of at least {cell} patients take part.",
        ),
        "in_relief": (
            "Still in relief",
            "Estimated share of relief episodes still in relief 24 hours, 72 hours, 7 days and 14 days after the session.",
        ),
        "no_followup": (
            "No follow-up",
            "Sessions with meaningful relief but no later pain rating at all (no check-in and no later session); they "
            "cannot be timed and are left out of the durations.",
        ),
        "retreatment": (
            "Re-treatment within the window",
            f"The same spot (same patient, muscle and side) needled again less than {window} hours after the previous "
            f"needling, against the advice to let the tissue recover for {window} hours. One line per spot.",
        ),
        "plan_completion": (
            "Plan completion",
            "Every plan: complete, incomplete (with every reason that applies), still in progress (its window has not "
            "ended), or cancelled. Plans discharged early are judged at discharge.",
        ),
        "plan_outcome": (
            "Plan outcome",
            "For finished plans with a pain rating: pain at the first session against the latest pain in the plan's "
            f"window (sessions and check-ins). Meaningful: at least {mcid} points better; moderate: at least 30% better; "
            "substantial: at least 50% better.",
        ),
        "adverse_events": (
            "Adverse events per 100 needling sessions",
            "Adverse events recorded at needling sessions, by type, per 100 needling sessions.",
        ),
        "aftercare_mix": ("Aftercare advice", "Share of needling sessions by the aftercare advised: ice, heat or none."),
        "pcp_clearance": (
            "Plans without PCP clearance",
            "Share of plans started without the patient's primary-care physician having been consulted before needling.",
        ),
        "rejected_rows": (
            "Rows rejected",
            "Rows of the clinics' export files that could not be loaded, by file type and reason (values removed). "
            "Every row read is either loaded or listed here.",
        ),
        "expectations": (
            "Checks failed",
            "Automatic data checks (Great Expectations) that failed in this run, with the number of rows that broke them.",
        ),
        "small_cells": (
            f"fewer than {cell}",
            f"A figure computed from fewer than {cell} different patients is not shown, so that no patient stands out.",
        ),
        "trends": ("Monthly trends", "The headline figures by calendar month (local dates of each clinic); the current month is to date."),
    }


# ---------------------------------------------------------------------------
# Formatting: plain words and numbers, every patient-based figure through small_cell().


def _number(value: float) -> str:
    return f"{value:g}"


def _hours_text(hours: float | None) -> str:
    if hours is None or (isinstance(hours, float) and math.isnan(hours)):
        return "not reached"
    if hours < 72:
        return f"{hours:.0f} hours"
    return f"{hours / 24:.1f} days"


def _label(code: Any, missing: str = "Not recorded") -> str:
    if code is None:
        return missing
    return WORDS.get(str(code), str(code).replace("_", " "))


@dataclass(frozen=True)
class Shown:
    """One figure as the report shows it: text, or the small-cell words; value kept for charts and changes."""

    text: str
    value: float | None
    suppressed: bool


class Formatter:
    def __init__(self, min_cell_patients: int):
        self.min_cell = min_cell_patients

    def figure(self, value: float | None, patients: int | None, render: Callable[[Any], str]) -> Shown:
        hidden = small_cell(patients, self.min_cell)
        if hidden is not None:
            return Shown(hidden, None, True)
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return Shown("none", None, False)
        return Shown(render(value), float(value), False)

    def count(self, value: int | None, patients: int | None) -> Shown:
        return self.figure(value or 0, patients, lambda v: f"{int(v):,}")

    def share(self, value: float | None, patients: int | None) -> Shown:
        return self.figure(value, patients, lambda v: f"{100 * v:.0f}%")

    def points(self, value: float | None, patients: int | None) -> Shown:
        return self.figure(value, patients, lambda v: f"{v:.1f}")

    def rate(self, value: float | None, patients: int | None) -> Shown:
        return self.figure(value, patients, lambda v: f"{v:.1f}")

    def hours(self, value: float | None, patients: int | None) -> Shown:
        hidden = small_cell(patients, self.min_cell)
        if hidden is not None:
            return Shown(hidden, None, True)
        return Shown(_hours_text(value), value, False)


def _change(kind: str, now: Shown, before: Shown) -> str:
    if now.suppressed or before.suppressed or now.value is None or before.value is None:
        return "no comparison"
    delta = now.value - before.value
    shown = round(100 * delta) if kind == "share" else round(delta)  # the arrow follows the rounded change
    arrow = "▲" if shown > 0 else "▼" if shown < 0 else "="
    if kind == "share":
        return f"{arrow} {abs(100 * delta):.0f} points"
    if kind == "hours":
        return f"{arrow} {_hours_text(abs(delta))}"
    return f"{arrow} {abs(delta):,.0f}"


# ---------------------------------------------------------------------------
# Queries. Results are small (groups × periods); the big scans stay in DuckDB.


def _missing_inputs(con: duckdb.DuckDBPyConnection) -> list[str]:
    present = con.sql(
        "select schema_name || '.' || table_name as table_name, column_name from duckdb_columns()"
    ).pl()
    have: dict[str, set[str]] = {}
    for table, column in present.iter_rows():
        have.setdefault(table, set()).add(column)
    missing = []
    for table, columns in REQUIRED_COLUMNS.items():
        if table not in have:
            missing.append(table)
            continue
        missing.extend(f"{table}.{column}" for column in columns if column not in have[table])
    return missing


def _frame(con: duckdb.DuckDBPyConnection, query: str, params: dict | None = None) -> pl.DataFrame:
    return con.sql(query, params=params).pl()


def _rows(con: duckdb.DuckDBPyConnection, query: str, params: dict | None = None) -> list[dict[str, Any]]:
    """Small aggregate results only (groups x periods), as dicts for the template."""
    return _frame(con, query, params).to_dicts()


# Each row of activity falls in its calendar month and, when recent, in one of the two 30-day periods.
BUCKETS = """
    list_concat(
        [strftime({day}, '%Y-%m')],
        case
            when {day} > $as_of - {days} then ['current']
            when {day} > $as_of - {twice} then ['previous']
            else []
        end
    )
"""


def _buckets(day: str) -> str:
    return BUCKETS.format(day=day, days=PERIOD_DAYS, twice=2 * PERIOD_DAYS)


# Built once per report, dropped after it: every patient as a small integer (hashing and comparing the
# 64-character patient_key is most of the cost of a distinct count or a join at a million sessions), and the
# completed sessions with what the queries below read of them: the day they count in (bucket_date, below) and
# their relief (one join with marts.session_relief instead of one per query).
#
# bucket_date: the day the report's periods and months place a session in. A session belongs to the period
# or month of its local date (its clinic's zone), which is its UTC date or a day either side (zones are
# within a day of UTC). The report compares that date only with these boundaries: the first day of a month,
# the first and the last day reported ($first_day, $as_of) and the starts of the two 30-day periods (PERIOD_DAYS).
# Unless one of them is within a day of the UTC date, the three candidate dates fall in the same month, period
# and range, so the UTC date places the session where its local date would. Only the sessions near a boundary
# need the time-zone conversion, which was most of this table's cost (0.3 s wall at 1M sessions).
# bucket_date is for bucketing only: it is not the session's local date.
REPORT_TABLES_SQL = """
create or replace temp table report_patients as
with keys as (
    select patient_key from core.sessions
    union select patient_key from core.plans
    union select patient_key from quality.plan_completion
)
select patient_key, (row_number() over ())::uinteger as patient_no
from keys
where patient_key is not null;

create or replace temp table report_sessions as
with completed as (
    select
        *,
        date '1970-01-01' + (epoch_us(started_at) // 86400000000)::integer as utc_date,
    from core.sessions
    where status = 'completed'
)
select
    sessions.session_id,
    patients.patient_no,
    sessions.plan_id,
    sessions.clinic_id,
    sessions.clinician_role,
    sessions.condition,
    case
        when day(sessions.utc_date) = 1 or day(sessions.utc_date + 1) = 1
            or abs(sessions.utc_date - $first_day) <= 1 or abs(sessions.utc_date - $as_of) <= 1
            or abs(sessions.utc_date - ($as_of - {PERIOD_DAYS})) <= 1
            or abs(sessions.utc_date - ($as_of - {2 * PERIOD_DAYS})) <= 1
        then cast(timezone(sessions.clinic_timezone, sessions.started_at) as date)
        else sessions.utc_date
    end as bucket_date,
    list_contains(sessions.therapies, 'dry_needling') as is_needling,
    coalesce(sessions.adverse_event, 'none') <> 'none' as had_adverse_event,
    relief.relief_points,
    relief.meaningful_relief,
from completed as sessions
left join report_patients as patients on patients.patient_key = sessions.patient_key
left join marts.session_relief as relief on relief.session_id = sessions.session_id;
""".replace("{PERIOD_DAYS}", str(PERIOD_DAYS)).replace("{2 * PERIOD_DAYS}", str(2 * PERIOD_DAYS))

REPORT_TABLES = ("report_sessions", "report_patients")

# Distinct patients of a group as a bitstring over the report's patient numbers (bit n: patient n): the
# patients of a coarser group are the OR of its finer groups' bitstrings, so no query needs a row per patient.
PATIENT_BITS = "bitstring_agg(patient_no, 1, $patients) filter (where patient_no is not null{also})"
PATIENT_COUNT = "coalesce(bit_count(bit_or({bits})), 0)"

ACTIVITY_SQL = f"""
with

source as (
    select
        patient_no,
        plan_id,
        clinic_id,
        is_needling,
        had_adverse_event,
        relief_points is not null as has_relief,
        meaningful_relief,
        bucket_date,
    from report_sessions
    where bucket_date between $first_day and $as_of
),

-- One row per plan and bucket: its calendar month, and the current or previous {PERIOD_DAYS} days when recent.
-- (Unnesting the buckets and counting distinct plans and patients per grouping set took twice as long at 1M.)
per_plan as (
    select
        clinic_id,
        patient_no,
        plan_id,
        strftime(bucket_date, '%Y-%m') as bucket,
        {{counts}}
    from source
    group by all

    union all

    select
        clinic_id,
        patient_no,
        plan_id,
        if(bucket_date > $as_of - {PERIOD_DAYS}, 'current', 'previous') as bucket,
        {{counts}}
    from source
    where bucket_date > $as_of - {2 * PERIOD_DAYS}
    group by all
),

-- then one row per clinic and bucket, its patients as bitstrings: the network's are their OR
per_clinic as (
    select
        clinic_id,
        bucket,
        -- one row per patient and plan here: in the network, a plan counts once per clinic it was seen in
        count(plan_id) as plans,
        sum(needling_sessions) as needling_sessions,
        sum(adverse_events) as adverse_events,
        sum(relief_sessions) as relief_sessions,
        sum(meaningful_relief_sessions) as meaningful_relief_sessions,
        {PATIENT_BITS.format(also="")} as patients,
        {PATIENT_BITS.format(also=" and plan_id is not null")} as plan_patients,
        {PATIENT_BITS.format(also=" and needling_sessions > 0")} as needling_patients,
        {PATIENT_BITS.format(also=" and relief_sessions > 0")} as relief_patients,
    from per_plan
    group by all
),

final as (
    select
        clinic_id,
        bucket,
        {PATIENT_COUNT.format(bits="patients")} as patients,
        sum(plans) as plans,
        {PATIENT_COUNT.format(bits="plan_patients")} as plan_patients,
        sum(needling_sessions) as needling_sessions,
        {PATIENT_COUNT.format(bits="needling_patients")} as needling_patients,
        sum(adverse_events) as adverse_events,
        sum(relief_sessions) as relief_sessions,
        sum(meaningful_relief_sessions) as meaningful_relief_sessions,
        {PATIENT_COUNT.format(bits="relief_patients")} as relief_patients,
    from per_clinic
    group by grouping sets ((bucket), (clinic_id, bucket))
)

select * from final
""".replace("{counts}", """count(*) filter (where is_needling) as needling_sessions,
        count(*) filter (where is_needling and had_adverse_event) as adverse_events,
        count(*) filter (where is_needling and has_relief) as relief_sessions,
        count(*) filter (where is_needling and meaningful_relief) as meaningful_relief_sessions,""")

PLAN_PERIODS_SQL = f"""
with

source as (
    select
        completion.plan_id,
        patients.patient_no,
        completion.clinic_id,
        completion.completion = 'complete' as is_complete,
        -- a plan belongs to the period its planned window ended in (its last day)
        cast(completion.window_end as date) - 1 as last_day,
        outcome.achieved_mcid,
    from quality.plan_completion as completion
    left join report_patients as patients on patients.patient_key = completion.patient_key
    left join marts.plan_outcomes as outcome on outcome.plan_id = completion.plan_id
    where completion.completion in ('complete', 'incomplete')
),

bucketed as (
    select
        *,
        unnest({_buckets('last_day')}) as bucket,
    from source
    where last_day between $first_day and $as_of
),

per_clinic as (
    select
        clinic_id,
        bucket,
        count(*) as evaluated_plans,
        {PATIENT_BITS.format(also="")} as evaluated_patients,
        count(*) filter (where is_complete) as complete_plans,
        count(achieved_mcid) as outcome_plans,
        count(*) filter (where achieved_mcid) as mcid_plans,
        {PATIENT_BITS.format(also=" and achieved_mcid is not null")} as outcome_patients,
    from bucketed
    group by all
),

final as (
    select
        clinic_id,
        bucket,
        sum(evaluated_plans) as evaluated_plans,
        {PATIENT_COUNT.format(bits="evaluated_patients")} as evaluated_patients,
        sum(complete_plans) as complete_plans,
        sum(outcome_plans) as outcome_plans,
        sum(mcid_plans) as mcid_plans,
        {PATIENT_COUNT.format(bits="outcome_patients")} as outcome_patients,
    from per_clinic
    group by grouping sets ((bucket), (clinic_id, bucket))
)

select * from final
"""

EPISODES_SQL = f"""
with

source as (
    select
        episodes.clinic_id,
        episodes.condition,
        episodes.aftercare,
        episodes.duration_hours,
        episodes.relapsed,
        sessions.patient_no as patient_key,
        sessions.bucket_date,
    from marts.relief_duration as episodes
    -- every episode starts at a completed needling session
    inner join report_sessions as sessions on sessions.session_id = episodes.session_id
    where episodes.duration_hours is not null
),

final as (
    select
        * exclude (bucket_date),
        case when bucket_date between $first_day and $as_of then {_buckets('bucket_date')} else [] end as buckets,
    from source
)

select * from final
"""

PAIN_SQL = f"""
with

-- marts.session_relief's rows, joined to their (completed needling) sessions in report_sessions
source as (
    select
        clinic_id,
        condition,
        clinician_role,
        relief_points,
        meaningful_relief,
        patient_no,
    from report_sessions
    where relief_points is not null
),

finest as (
    select
        clinic_id,
        condition,
        clinician_role,
        count(*) as sessions,
        sum(relief_points) as relief_points,
        count(*) filter (where meaningful_relief) as meaningful_sessions,
        count(meaningful_relief) as rated_sessions,
        {PATIENT_BITS.format(also="")} as patients,
    from source
    group by all
),

final as (
    select
        clinic_id,
        grouping(clinic_id) = 1 as all_clinics,
        condition,
        grouping(condition) = 1 as all_conditions,
        clinician_role,
        grouping(clinician_role) = 1 as all_roles,
        sum(sessions)::bigint as sessions,
        {PATIENT_COUNT.format(bits="patients")} as patients,
        -- relief points are whole numbers: the same mean as avg() over the sessions
        sum(relief_points) / sum(sessions) as mean_relief_points,
        sum(meaningful_sessions) / sum(rated_sessions) as meaningful_share,
    from finest
    group by grouping sets (
        (condition, clinician_role), (condition), (clinician_role), (),
        (clinic_id, condition, clinician_role), (clinic_id, condition), (clinic_id, clinician_role), (clinic_id)
    )
)

select * from final
"""

COMPLETION_SQL = f"""
with

source as (
    select completion.clinic_id, completion.completion, completion.reasons, patients.patient_no,
    from quality.plan_completion as completion
    left join report_patients as patients on patients.patient_key = completion.patient_key
),

per_clinic as (
    select
        clinic_id,
        'completion' as kind,
        completion as value,
        count(*) as plans,
        {PATIENT_BITS.format(also="")} as patients,
    from source
    group by all

    union all

    select
        clinic_id,
        'reason' as kind,
        reason as value,
        count(*) as plans,
        {PATIENT_BITS.format(also="")} as patients,
    from (select clinic_id, patient_no, unnest(reasons) as reason from source where completion = 'incomplete')
    group by all
),

final as (
    select
        clinic_id,
        grouping(clinic_id) = 1 as all_clinics,
        kind,
        value,
        sum(plans) as plans,
        {PATIENT_COUNT.format(bits="patients")} as patients,
    from per_clinic
    group by grouping sets ((kind, value), (clinic_id, kind, value))
)

select * from final
"""

OUTCOMES_SQL = """
with

source as (
    select
        outcome.*,
        completion.patient_key,
        completion.clinic_id as plan_clinic_id,
    from marts.plan_outcomes as outcome
    inner join quality.plan_completion as completion on completion.plan_id = outcome.plan_id
),

final as (
    select
        plan_clinic_id as clinic_id,
        grouping(plan_clinic_id) = 1 as all_clinics,
        count(*) as plans,
        count(distinct patient_key) as patients,
        avg(baseline_pain) as baseline_pain,
        avg(final_pain) as final_pain,
        avg(change_points) as change_points,
        avg(achieved_mcid::integer) as mcid_share,
        avg(moderate::integer) as moderate_share,
        avg(substantial::integer) as substantial_share,
    from source
    group by grouping sets ((), (plan_clinic_id))
)

select * from final
"""

# Distinct patients behind the safety marts' groups, which do not carry them all.
GROUP_PATIENTS_SQL = f"""
with

needling as (
    select clinic_id, clinician_role, {PATIENT_BITS.format(also="")} as patients,
    from report_sessions
    where is_needling
    group by all
),

needling_groups as (
    select
        'sessions' as source,
        case when grouping(clinic_id) = 0 then 'clinic' when grouping(clinician_role) = 0 then 'clinician_role' else 'all' end as group_by,
        coalesce(clinic_id, clinician_role) as group_value,
        {PATIENT_COUNT.format(bits="patients")} as patients,
    from needling
    group by grouping sets ((), (clinic_id), (clinician_role))
),

plan_groups as (
    select
        'plans' as source,
        case when grouping(clinic_id) = 0 then 'clinic' else 'all' end as group_by,
        clinic_id as group_value,
        count(distinct patient_key) as patients,
    from core.plans
    group by grouping sets ((), (clinic_id))
),

final as (
    select * from needling_groups
    union all
    select * from plan_groups
)

select * from final
"""

RETREATMENT_SQL = """
with

source as (
    select
        flags.clinic_id,
        flags.clinician_id,
        flags.site,
        flags.side,
        flags.hours_since_previous,
        cast(timezone(sessions.clinic_timezone, sessions.started_at) as date) as local_date,
    from quality.retreatment_flags as flags
    inner join core.sessions as sessions on sessions.session_id = flags.session_id
),

final as (
    select
        *,
        local_date > $as_of - $days and local_date <= $as_of as is_recent,
    from source
)

select * from final
"""

REJECTED_SQL = """
with

source as (
    select * from quality.rejected_rows where run_id = $run_id
),

final as (
    select
        entity,
        -- reasons quote the offending value; the report names the problem, never the value
        regexp_replace(reason, '''[^'']*''|"[^"]*"', '(value)', 'g') as reason,
        count(*) as rows_rejected,
    from source
    group by all
)

select * from final order by rows_rejected desc, entity, reason
"""

EXPECTATIONS_SQL = """
select suite, expectation, severity, unexpected_count
from quality.expectation_results
where run_id = $run_id and not success
order by severity, suite, expectation
"""

RUNS_SQL = """
with

failed as (
    select run_id, count(*) filter (where not success) as expectations_failed
    from quality.expectation_results
    group by run_id
),

final as (
    select
        runs.run_id,
        runs.started_at,
        runs.finished_at,
        runs.as_of,
        runs.status,
        runs.rows_loaded,
        runs.rows_rejected,
        coalesce(failed.expectations_failed, 0) as expectations_failed,
    from ops.runs as runs
    left join failed on failed.run_id = runs.run_id
)

select * from final order by run_id desc limit 10
"""


# ---------------------------------------------------------------------------
# Charts: hand-written SVG (no script, no fonts to fetch, a few kB each).

# Presentation as SVG attributes, not CSS: WeasyPrint's SVG renderer ignores stylesheet properties.
TICK = 'font-size="10" fill="#5b6475"'
LEGEND = 'font-size="11" fill="#1d2330"'
PALETTE = ("#1f6fb2", "#d95f02", "#1b9e77", "#7570b3", "#e7298a", "#66a61e", "#a6761d", "#666666")


@dataclass
class Series:
    label: str
    points: list[tuple[float, float | None]]  # None: a gap (suppressed month)
    note: str = ""


def _esc(text: Any) -> str:
    return html.escape(str(text), quote=True)


def line_chart(
    series: list[Series],
    *,
    title: str,
    x_ticks: list[tuple[float, str]],
    y_ticks: list[tuple[float, str]],
    x_max: float,
    y_max: float,
    step: bool = False,
    width: int = 520,
    height: int = 250,
) -> Markup:
    """A line (or step) chart as inline SVG; the legend lists each series."""
    left, right, top, bottom = 46, 185, 12, 34
    plot_w, plot_h = width - left - right, height - top - bottom

    def sx(x: float) -> float:
        return left + plot_w * (x / x_max if x_max else 0)

    def sy(y: float) -> float:
        return top + plot_h * (1 - (y / y_max if y_max else 0))

    parts = [
        f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" role="img" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}"><title>{_esc(title)}</title>'
    ]
    for y, text in y_ticks:
        parts.append(
            f'<line class="grid" x1="{left}" x2="{left + plot_w}" y1="{sy(y):.1f}" y2="{sy(y):.1f}" stroke="#e6e9ef"/>'
            f'<text class="tick" x="{left - 4}" y="{sy(y) + 3:.1f}" text-anchor="end" {TICK}>{_esc(text)}</text>'
        )
    for x, text in x_ticks:
        parts.append(
            f'<line class="axis" x1="{sx(x):.1f}" x2="{sx(x):.1f}" y1="{top + plot_h}" y2="{top + plot_h + 4}" stroke="#8a93a3"/>'
            f'<text class="tick" x="{sx(x):.1f}" y="{top + plot_h + 16}" text-anchor="middle" {TICK}>{_esc(text)}</text>'
        )
    parts.append(f'<line class="axis" x1="{left}" x2="{left + plot_w}" y1="{top + plot_h}" y2="{top + plot_h}" stroke="#8a93a3"/>')
    for index, one in enumerate(series):
        colour = PALETTE[index % len(PALETTE)]
        path: list[str] = []
        pen_down = False
        previous_y: float | None = None
        for x, y in one.points:
            if y is None:
                pen_down = False
                continue
            if pen_down and step and previous_y is not None:
                path.append(f"L{sx(x):.1f} {sy(previous_y):.1f}")
            path.append(f"{'L' if pen_down else 'M'}{sx(x):.1f} {sy(y):.1f}")
            pen_down, previous_y = True, y
        if path:
            parts.append(
                f'<path class="series" d="{"".join(path)}" stroke="{colour}" fill="none" stroke-width="2"><title>{_esc(one.label)}</title></path>'
            )
            if not step:
                for x, y in one.points:
                    if y is not None:
                        parts.append(f'<circle class="dot" cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="2.5" fill="{colour}"/>')
        legend_y = top + 12 + 16 * index
        parts.append(
            f'<rect x="{left + plot_w + 12}" y="{legend_y - 8}" width="10" height="10" fill="{colour}"/>'
            f'<text class="legend" x="{left + plot_w + 26}" y="{legend_y + 1}" {LEGEND}>{_esc(one.label)}</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))


# ---------------------------------------------------------------------------
# Building the report's content.


@dataclass
class Section:
    clinic_id: str | None
    title: str
    anchor: str
    headline: list[dict[str, Any]] = field(default_factory=list)
    pain: dict[str, Any] = field(default_factory=dict)
    relief: dict[str, Any] = field(default_factory=dict)
    retreatment: dict[str, Any] = field(default_factory=dict)
    plans: dict[str, Any] = field(default_factory=dict)
    safety: dict[str, Any] = field(default_factory=dict)
    trends: dict[str, Any] = field(default_factory=dict)


def _months(as_of: dt.date) -> list[str]:
    year, month = as_of.year, as_of.month
    labels = []
    for _ in range(TREND_MONTHS):
        labels.append(f"{year:04d}-{month:02d}")
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
    return labels[::-1]


def _period_params(as_of: dt.date) -> dict[str, dt.date]:
    """$as_of and $first_day of the queries: the first day of the first trend month, or of the previous period."""
    first = _months(as_of)[0]
    first_month = dt.date(int(first[:4]), int(first[5:]), 1)
    return {"as_of": as_of, "first_day": min(first_month, as_of - dt.timedelta(days=2 * PERIOD_DAYS - 1))}


def _month_title(label: str) -> str:
    return dt.date(int(label[:4]), int(label[5:]), 1).strftime("%b %Y")


def _keyed(rows: list[dict[str, Any]], *keys: str) -> dict[tuple, dict[str, Any]]:
    return {tuple(row[key] for key in keys): row for row in rows}


def _safe_div(numerator: float | None, denominator: float | None) -> float | None:
    return None if not denominator else (numerator or 0) / denominator


def _period_medians(episodes: pl.DataFrame) -> dict[tuple, dict[str, Any]]:
    """Kaplan-Meier median relief per (clinic or network, period/month), with the patients behind it.

    The network's estimates, then every clinic's: each group's curve is its own, so estimating them one after
    the other gives the same figures as one call over both (which stacked a network copy of every episode onto
    the clinics' rows: at 10M sessions 1.8 GB at once instead of about half).
    """
    long = episodes.select("clinic_id", "patient_key", "duration_hours", "relapsed", "buckets").explode("buckets")
    long = long.filter(pl.col("buckets").is_not_null()).rename({"buckets": "bucket"})
    result = {}
    for by in (["bucket"], ["clinic_id", "bucket"]):
        scoped = long if len(by) == 1 else long.filter(pl.col("clinic_id").is_not_null())
        medians = curve_summary(kaplan_meier(scoped.lazy(), by), by, {})
        patients = scoped.group_by(by).agg(patients=pl.col("patient_key").n_unique())
        joined = medians.collect().join(patients, on=by, how="left")
        for row in joined.to_dicts():
            result[(row.get("clinic_id"), row["bucket"])] = row
    return result


def _curve_series(curves: pl.DataFrame, group_column: str, max_hours: float) -> dict[Any, list[tuple[float, float]]]:
    """Each curve's survival on an even grid of hours (step value at the last point at or before each grid time)."""
    grid_step = max_hours / CURVE_POINTS
    series: dict[Any, list[tuple[float, float]]] = {}
    for (group_value,), curve in curves.sort("hours").group_by([group_column], maintain_order=True):
        hours = curve["hours"].to_list()
        last_hours = min(hours[-1], max_hours)
        grid = pl.DataFrame({"hours": [i * grid_step for i in range(int(last_hours / grid_step) + 1)] + [last_hours]})
        sampled = grid.join_asof(curve.select("hours", "survival"), on="hours", strategy="backward")
        points = [(0.0, 1.0)] if hours[0] > 0 else []
        for h, s in sampled.iter_rows():
            # a step line needs only the points where it changes, and its end
            if s is not None and (not points or s != points[-1][1]):
                points.append((h, s))
        if points and points[-1][0] < last_hours:
            points.append((last_hours, points[-1][1]))
        series[group_value] = points
    return series


def _relief_chart(
    curves: pl.DataFrame, patients: dict[Any, int], group_column: str, fmt: Formatter, title: str, max_hours: float
) -> dict[str, Any]:
    shown, hidden = [], []
    sampled = _curve_series(curves, group_column, max_hours) if curves.height else {}
    for group_value in sorted(sampled, key=lambda v: (v is None, str(v))):
        label = _label(group_value)
        if small_cell(patients.get(group_value), fmt.min_cell) is not None:
            hidden.append(label)
            continue
        shown.append(Series(label, sampled[group_value]))
    days = max_hours / 24
    tick_days = [d for d in (0, 3, 7, 14, 21, 28, 35, 42, 56, 70, 84) if d <= days]
    chart = (
        line_chart(
            shown,
            title=title,
            x_ticks=[(d * 24, f"{d}d") for d in tick_days],
            y_ticks=[(v / 100, f"{v}%") for v in (0, 25, 50, 75, 100)],
            x_max=max_hours,
            y_max=1.0,
            step=True,
        )
        if shown
        else None
    )
    return {"chart": chart, "hidden": hidden, "title": title}


def _relief_table_rows(summary_rows: list[dict[str, Any]], fmt: Formatter, with_ci: bool) -> list[dict[str, Any]]:
    rows = []
    for row in summary_rows:
        patients = row.get("patients")
        median = fmt.hours(row.get("median_hours"), patients)
        if with_ci and not median.suppressed and row.get("median_hours") is not None:
            low = row.get("median_ci_low")
            high = row.get("median_ci_high")
            ci = f"{_hours_text(low)} to {_hours_text(high)}" if low is not None else ""
        else:
            ci = ""
        rows.append(
            {
                "label": row["label"],
                "episodes": fmt.count(row.get("episodes"), patients).text,
                "median": median.text,
                "ci": ci,
                **{name: fmt.share(row.get(name), patients).text for name in RELIEF_AT_HOURS},
                "no_followup": fmt.count(row.get("no_followup"), patients).text if "no_followup" in row else "",
            }
        )
    return rows


def _scoped(rows: list[dict[str, Any]], clinic_id: str | None) -> list[dict[str, Any]]:
    if clinic_id is None:
        return [row for row in rows if row["all_clinics"]]
    return [row for row in rows if not row["all_clinics"] and row["clinic_id"] == clinic_id]


class _Builder:
    def __init__(self, con: duckdb.DuckDBPyConnection, settings: Settings, as_of: dt.date, run_id: int | None):
        self.con = con
        self.settings = settings
        self.as_of = as_of
        self.fmt = Formatter(settings.rules.min_cell_patients)
        self.months = _months(as_of)
        self.params = _period_params(as_of)
        self.max_hours = float(settings.rules.relief_followup_days * 24)

        self.episodes = _frame(con, EPISODES_SQL, self.params)
        self._km_cache: dict[str | None, dict[str, pl.DataFrame]] = {}
        # The Kaplan-Meier estimates (Polars) need only the episodes: they run in a thread while the queries
        # below run in DuckDB (both release the interpreter while they compute).
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="report-km") as estimating:
            medians = estimating.submit(_period_medians, self.episodes)
            clinic_km = estimating.submit(lambda: [self._every_clinic_km(by) for by in (None, "condition", "aftercare")])
            self._query(con, run_id)
            self.medians = medians.result()
            clinic_km.result()

    def _query(self, con: duckdb.DuckDBPyConnection, run_id: int | None) -> None:
        patients = {"patients": max(1, scalar(con, "select count(*) from report_patients"))}
        self.activity = _keyed(_rows(con, ACTIVITY_SQL, {**self.params, **patients}), "clinic_id", "bucket")
        self.plan_periods = _keyed(_rows(con, PLAN_PERIODS_SQL, {**self.params, **patients}), "clinic_id", "bucket")
        self.pain_rows = _rows(con, PAIN_SQL, patients)
        self.completion = _rows(con, COMPLETION_SQL, patients)
        self.outcomes = _rows(con, OUTCOMES_SQL)
        self.group_patients = _keyed(_rows(con, GROUP_PATIENTS_SQL, patients), "source", "group_by", "group_value")
        self.adverse = _rows(con, "select * from marts.adverse_events")
        self.aftercare = _rows(con, "select * from marts.aftercare_mix")
        self.pcp = _rows(con, "select * from marts.pcp_clearance")
        self.relief_summary = _rows(con, "select * from marts.relief_summary")
        self.relief_comparison = _rows(con, "select * from marts.relief_comparison order by factor, group_value")
        self.network_curves = _frame(
            con,
            "select group_by, group_value, hours, survival from marts.relief_curves "
            "where group_by in ('condition', 'aftercare') order by group_by, group_value, hours",
        )
        self.flags = _frame(con, RETREATMENT_SQL, {"as_of": self.as_of, "days": RETREATMENT_LIST_DAYS})
        clinic_rows = con.sql(
            "select distinct clinic_id from core.sessions union select distinct clinic_id from core.plans order by 1"
        ).fetchall()
        self.clinics = [row[0] for row in clinic_rows if row[0] is not None]

        runs = _rows(con, RUNS_SQL)
        self.runs = runs
        self.run_id = run_id if run_id is not None else (runs[0]["run_id"] if runs else None)

    # -- headline and trends ------------------------------------------------

    def _metrics(self, clinic_id: str | None, bucket: str) -> dict[str, Shown]:
        fmt = self.fmt
        # a period with no rows at all has zero patients ("no data"), not an unknown number
        activity = defaultdict(int, self.activity.get((clinic_id, bucket), {}))
        plans = defaultdict(int, self.plan_periods.get((clinic_id, bucket), {}))
        median = defaultdict(int, self.medians.get((clinic_id, bucket), {}))
        return {
            "patients": fmt.count(activity["patients"], activity["patients"]),
            "plans": fmt.count(activity["plans"], activity["plan_patients"]),
            "needling_sessions": fmt.count(activity["needling_sessions"], activity["needling_patients"]),
            "plans_complete": fmt.share(
                _safe_div(plans["complete_plans"], plans["evaluated_plans"]), plans["evaluated_patients"]
            ),
            "meaningful_relief": fmt.share(
                _safe_div(activity["meaningful_relief_sessions"], activity["relief_sessions"]),
                activity["relief_patients"],
            ),
            "median_relief": fmt.hours(median["median_hours"], median["patients"]),
            "mcid_plans": fmt.share(
                _safe_div(plans["mcid_plans"], plans["outcome_plans"]), plans["outcome_patients"]
            ),
            "adverse_per_100": fmt.rate(
                None if not activity["needling_sessions"]
                else 100 * activity["adverse_events"] / activity["needling_sessions"],
                activity["needling_patients"],
            ),
        }

    HEADLINE = (
        ("patients", "count"), ("plans", "count"), ("needling_sessions", "count"), ("plans_complete", "share"),
        ("meaningful_relief", "share"), ("median_relief", "hours"), ("mcid_plans", "share"),
    )

    def headline(self, clinic_id: str | None) -> list[dict[str, Any]]:
        now = self._metrics(clinic_id, "current")
        before = self._metrics(clinic_id, "previous")
        return [
            {"key": key, "text": now[key].text, "suppressed": now[key].suppressed,
             "previous": before[key].text, "change": _change(kind, now[key], before[key])}
            for key, kind in self.HEADLINE
        ]

    TRENDS = (
        ("patients", "Patients", "count"),
        ("needling_sessions", "Needling sessions", "count"),
        ("meaningful_relief", "Sessions with meaningful relief", "share"),
        ("plans_complete", "Plans complete", "share"),
        ("mcid_plans", "Plans reaching a meaningful improvement", "share"),
        ("median_relief", "Median relief duration", "hours"),
        ("adverse_per_100", "Adverse events per 100 needling sessions", "rate"),
    )

    def trends(self, clinic_id: str | None) -> dict[str, Any]:
        by_month = {month: self._metrics(clinic_id, month) for month in self.months}
        table = [
            {"month": _month_title(month) + (" (to date)" if index == len(self.months) - 1 else ""),
             **{key: by_month[month][key].text for key, _, _ in self.TRENDS}}
            for index, month in enumerate(self.months)
        ]
        charts = []
        x_ticks = [(i, _month_title(m)[:3]) for i, m in enumerate(self.months) if i % 2 == len(self.months) % 2 - 1 or i == len(self.months) - 1]
        for key, title, kind in self.TRENDS[1:4]:
            values = [by_month[month][key].value for month in self.months]
            hidden = [_month_title(month) for month in self.months if by_month[month][key].suppressed]
            if all(v is None for v in values):
                charts.append({"title": title, "chart": None, "hidden": hidden})
                continue
            top = max(v for v in values if v is not None)
            if kind == "share":
                y_max, y_ticks = 1.0, [(v / 100, f"{v}%") for v in (0, 25, 50, 75, 100)]
            else:
                y_max = _nice_ceiling(top)
                y_ticks = [(y_max * i / 4, f"{y_max * i / 4:,.0f}") for i in range(5)]
            charts.append({
                "title": title,
                "hidden": hidden,
                "chart": line_chart(
                    [Series(title, list(enumerate(values)))],
                    title=f"{title} by month",
                    x_ticks=x_ticks,
                    y_ticks=y_ticks,
                    x_max=len(self.months) - 1,
                    y_max=y_max,
                    width=420,
                    height=200,
                ),
            })
        return {"table": table, "charts": charts, "columns": [(key, title) for key, title, _ in self.TRENDS]}

    # -- detail sections -------------------------------------------------------

    def pain(self, clinic_id: str | None) -> dict[str, Any]:
        rows = _scoped(self.pain_rows, clinic_id)
        roles = sorted({r["clinician_role"] for r in rows if not r["all_roles"] and r["clinician_role"] is not None})
        if any(not r["all_roles"] and r["clinician_role"] is None for r in rows):
            roles.append(None)
        conditions = sorted(
            {r["condition"] for r in rows if not r["all_conditions"]}, key=lambda v: (v is None, str(v))
        )
        cells = {(r["all_conditions"], r["condition"], r["all_roles"], r["clinician_role"]): r for r in rows}

        def cell(all_conditions: bool, condition: Any, all_roles: bool, role: Any) -> dict[str, str]:
            row = cells.get((all_conditions, None if all_conditions else condition, all_roles, None if all_roles else role))
            if row is None:
                return {"text": "", "detail": ""}
            points = self.fmt.points(row["mean_relief_points"], row["patients"])
            if points.suppressed:
                return {"text": points.text, "detail": ""}
            share = self.fmt.share(row["meaningful_share"], row["patients"])
            return {"text": f"{points.text} points", "detail": f"{share.text} meaningful, {row['sessions']:,} sessions"}

        table = [
            {"label": _label(condition), "total": False, "cells": [cell(False, condition, False, role) for role in roles]
             + [cell(False, condition, True, None)]}
            for condition in conditions
        ]
        table.append({"label": "All conditions", "total": True,
                      "cells": [cell(True, None, False, role) for role in roles] + [cell(True, None, True, None)]})
        return {"roles": [_label(role) for role in roles] + ["All roles"], "table": table}

    def relief(self, clinic_id: str | None) -> dict[str, Any]:
        fmt = self.fmt
        if clinic_id is None:
            summary = self.relief_summary
            patients = {(r["group_by"], r["group_value"]): r["patients"] for r in summary}
            charts = []
            for group_by, title in (("condition", "by condition"), ("aftercare", "by aftercare advice")):
                curves = self.network_curves.filter(pl.col("group_by") == group_by)
                group_patients = {value: n for (by, value), n in patients.items() if by == group_by}
                charts.append(_relief_chart(curves, group_patients, "group_value", fmt, f"Still in relief {title}", self.max_hours))
            table = []
            for group_by in ("all", "condition", "aftercare"):
                for row in sorted((r for r in summary if r["group_by"] == group_by), key=lambda r: (r["group_value"] is None, str(r["group_value"]))):
                    label = "All needling sessions" if group_by == "all" else _label(row["group_value"])
                    table.append({**row, "label": label})
            return {
                "charts": charts,
                "table": _relief_table_rows(table, fmt, with_ci=True),
                "with_ci": True,
                "comparison": self._relief_comparison(),
            }

        charts, table = [], []
        overall = self._clinic_km(clinic_id, None)
        table.extend(overall["rows"])
        for group_column, title in (("condition", "by condition"), ("aftercare", "by aftercare advice")):
            km = self._clinic_km(clinic_id, group_column)
            table.extend(km["rows"])
            charts.append(_relief_chart(km["curves"], km["patients"], group_column, fmt, f"Still in relief {title}", self.max_hours))
        # The log-rank comparison is a network figure: per clinic, most groups fall under the minimum cell.
        return {"charts": charts, "table": _relief_table_rows(table, fmt, with_ci=True), "with_ci": True, "comparison": []}

    def _relief_comparison(self) -> list[dict[str, Any]]:
        """Relief duration by aftercare advice and by clinician role, each with its log-rank p-value."""
        fmt = self.fmt
        factors = []
        for factor, title in (("aftercare", "By aftercare advice"), ("clinician_role", "By clinician role")):
            rows = [r for r in self.relief_comparison if r["factor"] == factor]
            if not rows:
                continue
            p_value = next((r["logrank_p"] for r in rows if r["logrank_p"] is not None), None)
            if p_value is None:
                verdict = "Too few patients in at least two groups to compare them."
            else:
                shown = "below 0.001" if p_value < 0.001 else f"{p_value:.3f}"
                meaning = (
                    "relief lasts differently long between these groups"
                    if p_value < 0.05
                    else "no clear difference between these groups"
                )
                verdict = f"Log-rank p-value {shown}: {meaning}."
            factors.append(
                {
                    "title": title,
                    "verdict": verdict,
                    "rows": [
                        {
                            "label": _label(r["group_value"]),
                            "episodes": fmt.count(r["episodes"], r["patients"]).text,
                            "median": fmt.hours(r["median_hours"], r["patients"]).text,
                            "in_relief_72h": fmt.share(r["in_relief_72h"], r["patients"]).text,
                            "in_relief_7d": fmt.share(r["in_relief_7d"], r["patients"]).text,
                        }
                        for r in rows
                    ],
                }
            )
        return factors

    def _clinic_km(self, clinic_id: str, group_column: str | None) -> dict[str, Any]:
        """One clinic's Kaplan-Meier curves, summary rows and patients per group (None: all its episodes)."""
        every = self._every_clinic_km(group_column)
        by = [group_column or "group"]

        def mine(frame: pl.DataFrame) -> pl.DataFrame:
            return frame.filter(pl.col("clinic_id") == clinic_id).drop("clinic_id") if frame.height else frame

        curves, summary, counts = mine(every["curves"]), mine(every["summary"]), mine(every["counts"])
        rows = []
        if summary.height:
            joined = summary.join(counts, on=by, how="left", nulls_equal=True)
            for row in joined.sort(by, nulls_last=True).to_dicts():
                label = "All needling sessions" if not group_column else _label(row[group_column])
                rows.append({**row, "label": label})
        patients = {row[by[0]]: row["patients"] for row in counts.to_dicts()}
        return {"curves": curves, "patients": patients, "rows": rows}

    def _every_clinic_km(self, group_column: str | None) -> dict[str, pl.DataFrame]:
        """Kaplan-Meier of every clinic at once (curves are estimated per group, so each clinic's are its own)."""
        if group_column not in self._km_cache:
            frame = self.episodes if group_column else self.episodes.with_columns(group=pl.lit("all"))
            by = ["clinic_id", group_column or "group"]
            if frame.height:
                curves = kaplan_meier(frame.lazy(), by).collect()
                summary = curve_summary(curves.lazy(), by, RELIEF_AT_HOURS).collect()
            else:
                curves = summary = pl.DataFrame()
            counts = frame.group_by(by).agg(episodes=pl.len(), patients=pl.col("patient_key").n_unique(),
                                            relapses=pl.col("relapsed").sum())
            self._km_cache[group_column] = {"curves": curves, "summary": summary, "counts": counts}
        return self._km_cache[group_column]

    def retreatment(self, clinic_id: str | None) -> dict[str, Any]:
        flags = self.flags
        if clinic_id is None:
            counts = (
                flags.group_by("clinic_id")
                .agg(recent=pl.col("is_recent").sum(), total=pl.len())
                .sort("clinic_id")
                .with_columns(anchor=pl.lit("clinic-") + pl.col("clinic_id").map_elements(_anchor, return_dtype=pl.String))
                .to_dicts()
            )
            return {"counts": counts, "days": RETREATMENT_LIST_DAYS}
        recent = (
            flags.filter((pl.col("clinic_id") == clinic_id) & pl.col("is_recent"))
            # every shown column in the order, so that rows tied on date, clinician, site and side keep one order
            .sort(["local_date", "clinician_id", "site", "side", "hours_since_previous"],
                  descending=[True, False, False, False, False])
        )
        rows = [
            {"date": row["local_date"].isoformat(), "clinician_id": row["clinician_id"], "site": row["site"].replace("_", " "),
             "side": row["side"], "hours": f"{row['hours_since_previous']:.1f}"}
            for row in recent.head(RETREATMENT_LIST_MAX).to_dicts()
        ]
        return {"rows": rows, "more": max(0, recent.height - RETREATMENT_LIST_MAX), "days": RETREATMENT_LIST_DAYS,
                "total": flags.filter(pl.col("clinic_id") == clinic_id).height}

    def plans(self, clinic_id: str | None) -> dict[str, Any]:
        fmt = self.fmt
        rows = _scoped(self.completion, clinic_id)
        statuses = {r["value"]: r for r in rows if r["kind"] == "completion"}
        reasons = {r["value"]: r for r in rows if r["kind"] == "reason"}
        total = sum(r["plans"] for r in statuses.values())
        completion = [
            {"label": _label(status), "plans": fmt.count(statuses[status]["plans"], statuses[status]["patients"]).text,
             "share": fmt.share(_safe_div(statuses[status]["plans"], total), statuses[status]["patients"]).text}
            for status in COMPLETION_ORDER if status in statuses
        ]
        incomplete = statuses.get("incomplete", {}).get("plans", 0)
        reason_rows = [
            {"label": _label(reason), "plans": fmt.count(reasons[reason]["plans"], reasons[reason]["patients"]).text,
             "share": fmt.share(_safe_div(reasons[reason]["plans"], incomplete), reasons[reason]["patients"]).text}
            for reason in [*REASON_ORDER, *sorted(set(reasons) - set(REASON_ORDER))] if reason in reasons
        ]
        outcome_row = next(iter(_scoped(self.outcomes, clinic_id)), None)
        outcome = None
        if outcome_row is not None:
            n = outcome_row["patients"]
            outcome = {
                "plans": fmt.count(outcome_row["plans"], n).text,
                "baseline": fmt.points(outcome_row["baseline_pain"], n).text,
                "final": fmt.points(outcome_row["final_pain"], n).text,
                "change": fmt.points(outcome_row["change_points"], n).text,
                "mcid": fmt.share(outcome_row["mcid_share"], n).text,
                "moderate": fmt.share(outcome_row["moderate_share"], n).text,
                "substantial": fmt.share(outcome_row["substantial_share"], n).text,
            }
        return {"completion": completion, "reasons": reason_rows, "outcome": outcome}

    def _mart_group(self, rows: list[dict[str, Any]], group_by: str, group_value: Any) -> list[dict[str, Any]]:
        return [r for r in rows if r["group_by"] == group_by and (group_by == "all" or r["group_value"] == group_value)]

    def safety(self, clinic_id: str | None) -> dict[str, Any]:
        fmt = self.fmt
        group_by, group_value = ("all", None) if clinic_id is None else ("clinic", clinic_id)

        def events_column(rows: list[dict[str, Any]]) -> dict[str, str]:
            by_type = {r["event_type"]: r for r in rows}
            return {
                event: fmt.rate(by_type[event]["per_100_sessions"], by_type[event]["patients"]).text
                if event in by_type else fmt.rate(0.0, rows[0]["patients"] if rows else None).text
                for event in EVENT_TYPES
            }

        columns = [("All needling sessions" if clinic_id is None else "This clinic", self._mart_group(self.adverse, group_by, group_value))]
        if clinic_id is None:
            roles = sorted({r["group_value"] for r in self.adverse if r["group_by"] == "clinician_role"}, key=str)
            columns += [(_label(role), self._mart_group(self.adverse, "clinician_role", role)) for role in roles]
            clinics = sorted({r["group_value"] for r in self.adverse if r["group_by"] == "clinic"}, key=str)
        else:
            clinics = []
        adverse = {
            "headers": [title for title, _ in columns],
            "rows": [{"label": _label(event), "cells": [events_column(rows)[event] for _, rows in columns]} for event in EVENT_TYPES],
            "sessions": [
                fmt.count(rows[0]["needling_sessions"], rows[0]["patients"]).text if rows else "none" for _, rows in columns
            ],
        }
        by_clinic = [
            {"clinic_id": clinic, **events_column(self._mart_group(self.adverse, "clinic", clinic))} for clinic in clinics
        ]
        needling_patients = self.group_patients.get(("sessions", group_by, group_value), {}).get("patients")
        mix = [
            {"label": _label(r["aftercare"]), "share": fmt.share(r["share"], needling_patients).text}
            for r in sorted(self._mart_group(self.aftercare, group_by, group_value), key=lambda r: (r["aftercare"] is None, str(r["aftercare"])))
        ]
        plan_patients = self.group_patients.get(("plans", group_by, group_value), {}).get("patients")
        pcp_rows = self._mart_group(self.pcp, group_by, group_value)
        pcp = fmt.share(pcp_rows[0]["share"], plan_patients).text if pcp_rows else fmt.share(None, plan_patients).text
        return {"adverse": adverse, "by_clinic": by_clinic, "event_types": [_label(e) for e in EVENT_TYPES],
                "aftercare": mix, "pcp": pcp}

    def data_quality(self) -> dict[str, Any]:
        if self.run_id is None:
            return {"run_id": None, "rejected": [], "expectations": [], "runs": []}
        params = {"run_id": self.run_id}
        return {
            "run_id": self.run_id,
            "rejected": _rows(self.con, REJECTED_SQL, params),
            "expectations": _rows(self.con, EXPECTATIONS_SQL, params),
            "runs": self.runs,
        }

    def section(self, clinic_id: str | None) -> Section:
        title = "All clinics" if clinic_id is None else f"Clinic {clinic_id}"
        anchor = "network" if clinic_id is None else f"clinic-{_anchor(clinic_id)}"
        return Section(
            clinic_id=clinic_id, title=title, anchor=anchor,
            headline=self.headline(clinic_id), pain=self.pain(clinic_id), relief=self.relief(clinic_id),
            retreatment=self.retreatment(clinic_id), plans=self.plans(clinic_id), safety=self.safety(clinic_id),
            trends=self.trends(clinic_id),
        )


def _anchor(text: str) -> str:
    return "".join(ch if ch.isalnum() else "-" for ch in text)


def _nice_ceiling(value: float) -> float:
    if value <= 0:
        return 1.0
    magnitude = 10 ** math.floor(math.log10(value))
    for factor in (1, 2, 2.5, 4, 5, 8, 10):
        if value <= factor * magnitude:
            return factor * magnitude
    return 10 * magnitude


# ---------------------------------------------------------------------------
# The PDF: the same HTML, with each table set as lines of fixed-width text.
#
# WeasyPrint lays out every table cell as its own box (about half a millisecond each): the
# report's ~4,700 cells took most of the PDF's time. A row of text is one box, so in the
# PDF each table becomes one line (or a few, where a cell wraps) per row, columns aligned
# in a monospace font. Every cell's text stays as it is: small-cell words included.

PRINT_TABLE_CHARS = 150  # characters per table line: report.css sets them in 11px DejaVu Sans Mono on A4 landscape
PRINT_COLUMN_GAP = 2
_TABLE_RE = re.compile(r'<table class="grid[^"]*"[^>]*>.*?</table>', re.S)


@dataclass
class _Cell:
    text: str = ""  # explicit line breaks (<br>) as "\n"
    span: int = 1


@dataclass
class _Row:
    kind: str  # "head", "body" or "total"
    cells: list[_Cell] = field(default_factory=list)


class _TableReader(HTMLParser):
    """The caption and rows of one of the report's own tables (cell text only; links' "?" left out)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.attrs: dict[str, str | None] = {}
        self.caption: list[str] = []
        self.rows: list[_Row] = []
        self._section = "body"
        self._cell: _Cell | None = None
        self._in_caption = False
        self._skip_depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        named = dict(attrs)
        if tag == "table":
            self.attrs = named
        elif tag == "thead":
            self._section = "head"
        elif tag == "tbody":
            self._section = "body"
        elif tag == "tr":
            total = "total" in (named.get("class") or "").split()
            self.rows.append(_Row("head" if self._section == "head" else "total" if total else "body"))
        elif tag in ("th", "td"):
            self._cell = _Cell(span=int(named.get("colspan") or 1))
            self.rows[-1].cells.append(self._cell)
        elif tag == "br" and self._cell is not None:
            self._cell.text += "\n"
        elif tag == "caption":
            self._in_caption = True
        elif tag == "a" and "ref" in (named.get("class") or "").split():
            self._skip_depth += 1  # the "?" link to a definition: nothing to follow on paper

    def handle_endtag(self, tag: str) -> None:
        if tag in ("th", "td"):
            self._cell = None
        elif tag == "caption":
            self._in_caption = False
        elif tag == "a" and self._skip_depth:
            self._skip_depth -= 1

    def handle_data(self, data: str) -> None:
        if self._skip_depth:
            return
        if self._cell is not None:
            self._cell.text += data
        elif self._in_caption:
            self.caption.append(data)


def _squash(text: str) -> str:
    return " ".join(text.split())


def _column_widths(rows: list[_Row], columns: int, budget: int) -> list[int]:
    """Each column as wide as its widest line, narrowed until the table fits the budget.

    Headers wrap first (down to the column's widest value), then the widest values wrap; a column
    is never narrower than its longest word. The widest column gives way first, so widths even out.
    """
    values, headers, longest_word = [0] * columns, [0] * columns, [1] * columns
    for row in rows:
        column = 0
        for cell in row.cells:
            if cell.span == 1 and column < columns:
                widest = max(len(_squash(line)) for line in cell.text.split("\n"))
                if row.kind == "head":
                    headers[column] = max(headers[column], widest)
                else:
                    values[column] = max(values[column], widest)
                longest_word[column] = max(longest_word[column], *(len(word) for word in cell.text.split()), 0)
            column += cell.span
    widths = [max(v, h, w) for v, h, w in zip(values, headers, longest_word)]
    for floor in ([max(v, w) for v, w in zip(values, longest_word)], longest_word):
        while sum(widths) + PRINT_COLUMN_GAP * (columns - 1) > budget:
            narrower = [i for i in range(columns) if widths[i] > floor[i]]
            if not narrower:
                break
            widest = max(narrower, key=lambda i: widths[i])
            widths[widest] -= 1
    return widths


def _cell_lines(text: str, width: int) -> list[str]:
    lines: list[str] = []
    for line in text.split("\n"):
        lines.extend(textwrap.wrap(_squash(line), width) or [""])
    return lines


def text_table(rows: list[_Row], budget: int = PRINT_TABLE_CHARS) -> list[tuple[str, str]]:
    """(kind, text) per row: the cells in aligned columns, first column left, the others right (as on screen)."""
    if not rows:
        return []
    columns = max(sum(cell.span for cell in row.cells) for row in rows)
    widths = _column_widths(rows, columns, budget)
    gap = " " * PRINT_COLUMN_GAP
    out = []
    for row in rows:
        placed: list[tuple[list[str], int, bool]] = []  # lines, width, left-aligned
        column = 0
        for cell in row.cells:
            span = min(cell.span, columns - column)
            width = sum(widths[column:column + span]) + PRINT_COLUMN_GAP * (span - 1)
            placed.append((_cell_lines(cell.text, width), width, column == 0 or span > 1))
            column += span
        height = max((len(lines) for lines, _, _ in placed), default=1)
        text_lines = []
        for index in range(height):
            parts = []
            for lines, width, left in placed:
                piece = lines[index] if index < len(lines) else ""
                parts.append(piece.ljust(width) if left else piece.rjust(width))
            text_lines.append(gap.join(parts).rstrip())
        out.append((row.kind, "\n".join(text_lines)))
    return out


def _text_table_html(match: re.Match[str]) -> str:
    reader = _TableReader()
    reader.feed(match.group(0))
    reader.close()
    attributes = "".join(
        f' {name}="{_esc(value)}"' for name, value in reader.attrs.items() if name.startswith("data-") and value is not None
    )
    parts = [f'<div class="text-table"{attributes}>']
    caption = _squash("".join(reader.caption))
    if caption:
        parts.append(f'<p class="caption">{_esc(caption)}</p>')
    for kind, text in text_table(reader.rows):
        parts.append(f'<div class="line {kind}">{html.escape(text, quote=False)}</div>')
    parts.append("</div>")
    return "".join(parts)


# Each chart goes to WeasyPrint as an image of the same SVG (a data: URL) instead of inline: WeasyPrint draws
# both with the same SVG renderer (the PDF's bytes are the same), but inline, every element of a chart is
# first tokenised by its HTML parser and given a computed CSS style like any HTML element; as an image the
# SVG is read by an XML parser and styled by nothing but its own attributes. At 1M: the 40 charts cost
# 1.1 CPU s inline, 0.85 as images. The style repeats what report.css gives `svg.chart` on paper.
_CHART_RE = re.compile(r'<svg class="chart" [^>]*>.*?</svg>', re.S)
PRINT_CHART_STYLE = "display: block; max-width: 100%; height: auto;"


def _chart_image(match: re.Match[str]) -> str:
    data = base64.b64encode(match.group(0).encode("utf-8")).decode("ascii")
    return f'<img class="chart" alt="" style="{PRINT_CHART_STYLE}" src="data:image/svg+xml;base64,{data}">'


def print_html(document: str) -> str:
    """The report's HTML as it goes to WeasyPrint: every table as fixed-width lines of text, every chart an image."""
    return _CHART_RE.sub(_chart_image, _TABLE_RE.sub(_text_table_html, document))


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["label"] = _label
    return env


def build_html(con: duckdb.DuckDBPyConnection, *, settings: Settings, as_of: dt.date,
               data_docs_href: str | None = "data-docs/index.html", run_id: int | None = None) -> str:
    """The report as one self-contained HTML document."""
    missing = _missing_inputs(con)
    if missing:
        raise ReportInputError("the warehouse lacks what the report is built from: " + ", ".join(missing))
    params = _period_params(as_of)
    for statement in REPORT_TABLES_SQL.split(";"):
        if statement.strip():
            con.execute(statement, {name: params[name] for name in params if f"${name}" in statement})
    try:
        builder = _Builder(con, settings, as_of, run_id)
    finally:
        for table in REPORT_TABLES:
            con.execute(f"drop table if exists temp.{table}")
    sections = [builder.section(None)] + [builder.section(clinic) for clinic in builder.clinics]
    current_start = as_of - dt.timedelta(days=PERIOD_DAYS - 1)
    context = {
        "as_of": as_of,
        "period": f"{current_start:%d %b %Y} to {as_of:%d %b %Y}",
        "sections": sections,
        "definitions": definitions(settings),
        "quality": builder.data_quality(),
        "data_docs_href": data_docs_href,
        "min_cell": settings.rules.min_cell_patients,
        "css": Markup((TEMPLATES_DIR / "report.css").read_text(encoding="utf-8")),
    }
    return _environment().get_template("report.html.j2").render(**context)


def render_report(
    con: duckdb.DuckDBPyConnection,
    *,
    settings: Settings,
    as_of: dt.date,
    out_dir: Path,
    data_docs_href: str | None = "data-docs/index.html",
    run_id: int | None = None,
) -> ReportPaths:
    """Write report.html and report.pdf (the same document) into out_dir."""
    # WeasyPrint is imported here (loading pango costs time that build_html callers need not pay), in a
    # thread: the import (about a second) runs while the warehouse queries hold no lock on the interpreter.
    loading = threading.Thread(target=importlib.import_module, args=("weasyprint",), name="import-weasyprint", daemon=True)
    loading.start()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        document = build_html(con, settings=settings, as_of=as_of, data_docs_href=data_docs_href, run_id=run_id)
    finally:
        loading.join()
    import weasyprint  # already loaded by the thread; an import error shows here
    paths = ReportPaths(html=out_dir / "report.html", pdf=out_dir / "report.pdf")
    paths.html.write_text(document, encoding="utf-8")
    # base_url None: the HTML refers to nothing outside itself, so WeasyPrint must fetch nothing.
    weasyprint.HTML(string=print_html(document), base_url=None).write_pdf(paths.pdf)
    return paths
