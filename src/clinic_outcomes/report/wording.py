"""How the report words its figures: plain words for the codes, every figure's definition, the formats,
and the words shown instead of a figure that rests on too few patients.

Constants of the report's layout live here too (periods, trend months, list lengths), beside the words
that explain them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

from clinic_outcomes.metrics import definitions as shared
from clinic_outcomes.settings import Settings

RELIEF_AT_HOURS = {"in_relief_24h": 24.0, "in_relief_72h": 72.0, "in_relief_7d": 168.0, "in_relief_14d": 336.0}
EVENT_TYPES = ("soreness", "bruising", "swelling", "bleeding", "fainting", "other")
# R2: "plans complete" = complete + discharged_improved over the evaluated plans (metrics.plans.PLANS_COMPLETE_SQL)
COMPLETION_ORDER = ("complete", "discharged_improved", "incomplete", "in_progress", "cancelled")
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
    "complete": "Complete", "discharged_improved": "Discharged improved", "incomplete": "Incomplete", "in_progress": "In progress", "cancelled": "Cancelled",
    "no_final_week_session": "No session in the plan's last week",
    "no_dry_needling": "No dry needling in the plan",
    "no_adjunct_therapy": "No therapy besides dry needling",
    "too_few_sessions": "Fewer sessions than planned",
    "not recorded": "Not recorded",
    "soreness": "Soreness", "bruising": "Bruising", "swelling": "Swelling", "bleeding": "Bleeding", "fainting": "Fainting",
}


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


# The report's keys whose label and hover text come from clinic_outcomes.metrics.definitions (one wording for
# the warehouse's measures; the report adds only what it alone decides, e.g. the period a figure counts in).
SHARED = {
    "plans_complete": ("plans_complete_share", "A plan counts in the period its planned window ended."),
    "discharged_improved": ("discharged_improved_plans", ""),
    "meaningful_relief": ("meaningful_relief_share", ""),
    "too_little_pain": ("too_little_pain_sessions", ""),
    "median_relief": ("median_hours", "\"Not reached\": more than half were still in relief at the end of follow-up."),
    "in_relief": ("in_relief_24h", "The same at 72 hours, 7 days and 14 days; \"not enough patients followed\" "
                  "where the estimate would be carried forward, not observed."),
    "no_followup": ("no_followup", ""),
    "mcid_plans": ("plan_achieved_mcid_share", "A plan counts in the period its planned window ended."),
    "hazard_ratio": ("hazard_ratio", ""),
    "retreatment": ("retreatment_flags", ""),
    "aftercare_mix": ("aftercare_share", ""),
    "pcp_clearance": ("pcp_without_clearance_share", ""),
    "pcp_not_recorded": ("pcp_not_recorded_share", ""),
}


def definitions(settings: Settings) -> dict[str, tuple[str, str]]:
    """Every figure's (label, one-sentence meaning), for hover texts and the "What the figures mean" list.
    Measures the metrics define take clinic_outcomes.metrics.definitions' label, definition and method note
    (SHARED); `intervals` is its INTERVALS text and `method` names the clustered methods."""
    texts = _own_definitions(settings)
    common = shared.definitions(settings.rules)
    for key, (name, addition) in SHARED.items():
        found = common[name]
        texts[key] = (found.label, " ".join(part for part in (found.definition, found.method, addition) if part))
    texts["intervals"] = ("95% intervals", shared.INTERVALS)
    texts["adjusted"] = (
        "Outcomes adjusted for case mix",
        "Each clinic's observed outcome against the mean of what the network's models (logistic for yes/no "
        "outcomes, least squares for the change in points; baseline pain, condition, age band, sex and chronicity, "
        "no clinic term) predict for its patients. The difference's 95% interval is cluster-robust over the "
        "clinic's patients; the funnel says whether it falls outside the 95% or 99.8% limits for its size. Only "
        f"clinics with at least {settings.rules.min_cell_patients} patients are shown. An adjusted difference is an "
        "association with the recorded case mix, not proof of better care.",
    )
    texts["method"] = (
        "How the intervals and comparisons are computed",
        f"Relief durations: {shared.CLUSTERED_KM_METHOD}. Comparisons between advice or clinician roles: "
        f"{shared.CLUSTERED_COX_METHOD}. Both use a cluster-robust variance with patients as clusters: a patient's "
        "episodes are not independent of each other. Comparisons are associations: advice and clinicians were not "
        "assigned at random.",
    )
    return texts


def _own_definitions(settings: Settings) -> dict[str, tuple[str, str]]:
    rules = settings.rules
    mcid = number(rules.mcid_points)
    window = number(rules.retreatment_window_hours)
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


def number(value: float) -> str:
    return f"{value:g}"


def hours_text(hours: float | None) -> str:
    if hours is None or (isinstance(hours, float) and math.isnan(hours)):
        return "not reached"
    if hours < 72:
        return f"{hours:.0f} hours"
    return f"{hours / 24:.1f} days"


def label_of(code: Any, missing: str = "Not recorded") -> str:
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
        return Shown(hours_text(value), value, False)


def change_text(kind: str, now: Shown, before: Shown) -> str:
    if now.suppressed or before.suppressed or now.value is None or before.value is None:
        return "no comparison"
    delta = now.value - before.value
    shown = round(100 * delta) if kind == "share" else round(delta)  # the arrow follows the rounded change
    arrow = "▲" if shown > 0 else "▼" if shown < 0 else "="
    if kind == "share":
        return f"{arrow} {abs(100 * delta):.0f} points"
    if kind == "hours":
        return f"{arrow} {hours_text(abs(delta))}"
    return f"{arrow} {abs(delta):,.0f}"


