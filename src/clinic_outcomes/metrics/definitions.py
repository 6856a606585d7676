"""What each measure in the report means: its short label, one-sentence definition (hover text) and method note.

The texts are generated from the settings (Rules) and the constants the metrics compute with (MCID, relapse
rule, windows, the times of the in-relief shares, the moderate/substantial cut-offs, the minimum cell), so a
changed threshold changes the words with it; tests/metrics/test_definitions.py checks that. The report
renders these texts; it does not write its own.

What an interval means (INTERVALS): a 95% confidence interval is a range of values compatible with the data
under the model's assumptions, with each patient's episodes treated as one cluster (a patient's episodes are
not independent). It says how precisely the figure is estimated from these patients; it does not say how
much any one patient's relief would last, nor that a difference between groups was caused by the grouping
(advice and clinicians were not assigned at random: comparisons are associations).
"""

from __future__ import annotations

from dataclasses import dataclass

from clinic_outcomes.metrics.frames import IN_RELIEF_AT, MODERATE_CHANGE, SUBSTANTIAL_CHANGE
from clinic_outcomes.settings import Rules

CLUSTERED_KM_METHOD = "Kaplan-Meier estimate with a log(-log) 95% band whose variance is cluster-robust (Ying & Wei 1994)"
CLUSTERED_COX_METHOD = "Cox proportional-hazards model (Breslow ties) with a cluster-robust sandwich variance (Lin & Wei 1989)"

INTERVALS = (
    "A 95% confidence interval is the range of values compatible with these data, treating each patient's "
    "episodes as one cluster because they are not independent. It shows how precisely the figure is estimated; "
    "it is not the range of any one patient's experience, and a difference between groups is an association, "
    "not proof that the advice or the clinician caused it."
)


@dataclass(frozen=True)
class Definition:
    label: str  # short label for a table header or chart title
    definition: str  # one sentence, the hover text
    method: str  # how it is computed, for the report's methods section


def _number(value: float) -> str:
    return f"{value:g}"


def _points(value: float) -> str:
    return f"{_number(value)} point" + ("" if value == 1 else "s")


def _percent(share: float) -> str:
    return f"{_number(share * 100)}%"


def _time(hours: float) -> str:
    if hours % 24 == 0 and hours >= 24 * 7:
        days = int(hours // 24)
        return f"{days} days"
    return f"{_number(hours)} hours"


def definitions(rules: Rules | None = None) -> dict[str, Definition]:
    """Every measure the report shows, keyed by the mart column (or measure) it reads."""
    rules = rules or Rules()
    mcid = _points(rules.mcid_points)
    cell = rules.min_cell_patients
    window = _number(rules.retreatment_window_hours)
    clusters = "each patient's episodes count as one cluster"
    texts: dict[str, Definition] = {
        "retreatment_flags": Definition(
            "Same spot re-needled within " + window + " h",
            f"Needling sessions that needled a spot (patient, site, side) less than {window} hours after the "
            f"previous needling of that spot; exactly {window} hours is allowed.",
            "One flag per spot re-needled too early; elapsed time between the two sessions' start instants.",
        ),
        "plans_complete_share": Definition(
            "Plans complete",
            f"Share of evaluated plans that were complete, or discharged before their last week with pain down "
            f"by at least the MCID ({mcid}).",
            f"Complete: within the plan window ({rules.plan_weeks} weeks unless the plan sets its own) a session in "
            "the last week, dry needling, another therapy and the planned number of sessions. Evaluated plans: "
            "complete, discharged_improved and incomplete (not cancelled, not in progress).",
        ),
        "discharged_improved_plans": Definition(
            "Discharged improved",
            f"Plans discharged before their window's last week whose pain fell by at least {mcid}: the patient "
            "got better sooner, not a lapse in care.",
            "Outcome as for plan outcomes (first rated session to the last reading in the window); their "
            "failing criteria are still listed.",
        ),
        "meaningful_relief_share": Definition(
            "Meaningful relief",
            f"Share of needling sessions with pain down by at least {mcid} (the MCID) between the start and "
            f"the end of the session, among sessions that started at {mcid} or more.",
            f"Over sessions rated before and after. A session starting below {mcid} cannot show meaningful "
            "relief and is counted apart, never as a failure.",
        ),
        "too_little_pain_sessions": Definition(
            "Too little pain to measure",
            f"Needling sessions that started with pain below {mcid} (the MCID), which cannot show meaningful relief.",
            "Counted and shown apart; left out of the share with meaningful relief.",
        ),
        "mean_relief_points": Definition(
            "Mean relief (points)",
            "Mean drop in pain (0-10 scale) from the start to the end of a needling session.",
            "Over needling sessions rated before and after, including those starting with little pain.",
        ),
        "median_hours": Definition(
            "Median relief duration",
            f"Hours after a session with meaningful relief until half the relief episodes had relapsed, that is "
            f"pain rose above the session's starting pain minus {mcid}.",
            f"{CLUSTERED_KM_METHOD}; {clusters}. Follow-up: the patient's check-ins and later sessions' starting "
            f"pain, up to the next needling session and at most {rules.relief_followup_days} days; episodes "
            "without relapse are censored at their last reading. The median is the first time the estimate is at "
            "or below one half, compared exactly.",
        ),
        "no_followup": Definition(
            "No follow-up",
            "Relief episodes with no pain reading after the session, left out of the duration estimate.",
            "Counted per group.",
        ),
        "hazard_ratio": Definition(
            "Relapse hazard ratio",
            "How fast relief ended in this group relative to the reference group (above 1: sooner); an "
            "association, not an effect of the advice or the clinician.",
            f"{CLUSTERED_COX_METHOD}; {clusters}. Only groups with at least {cell} patients take part; the "
            "p-value tests whether the groups share one hazard.",
        ),
        "plan_achieved_mcid_share": Definition(
            "Plans reaching the MCID",
            f"Share of evaluated plans whose pain fell by at least {mcid} from the plan's first rated session "
            "to its last pain reading in the window.",
            "Baseline: pain before the first session with a rating; final: the latest reading in the window (a "
            "session's rating wins a tie with a check-in).",
        ),
        "moderate_share": Definition(
            "Moderate improvement",
            f"Share of plans whose pain fell by at least {_percent(MODERATE_CHANGE)} of its baseline.",
            "Plans with a baseline of 0 are left out.",
        ),
        "substantial_share": Definition(
            "Substantial improvement",
            f"Share of plans whose pain fell by at least {_percent(SUBSTANTIAL_CHANGE)} of its baseline.",
            "Plans with a baseline of 0 are left out.",
        ),
        "per_100_sessions": Definition(
            "Adverse events per 100 sessions",
            "Adverse events of this type recorded per 100 completed needling sessions.",
            "Sessions without a recorded adverse event stay in the denominator.",
        ),
        "aftercare_share": Definition(
            "Aftercare advice",
            "Share of needling sessions after which this aftercare (ice, heat, none) was advised.",
            "'Not recorded' is its own share.",
        ),
        "pcp_without_clearance_share": Definition(
            "Started without primary-care clearance",
            "Share of plans started whose primary-care physician was recorded as not consulted.",
            "Plans where clearance was not recorded are their own share, never counted as not cleared.",
        ),
        "pcp_not_recorded_share": Definition(
            "Clearance not recorded",
            "Share of plans started with no record of primary-care clearance either way.",
            "Shown apart from plans recorded as not cleared.",
        ),
        "suppressed": Definition(
            f"fewer than {cell}",
            f"Not shown: fewer than {cell} patients are behind this figure.",
            "Primary and complementary suppression, so a hidden figure cannot be worked out from the others.",
        ),
    }
    for share, hours in IN_RELIEF_AT.items():
        time = _time(hours)
        texts[share] = Definition(
            f"Still in relief at {time}",
            f"Estimated share of relief episodes not yet relapsed {time} after the session (pain not above the "
            f"session's starting pain minus {mcid}).",
            f"{CLUSTERED_KM_METHOD}; {clusters}; relapses at exactly {time} count. Not shown when fewer than "
            f"{cell} patients are still followed at {time} (the estimate there would be carried forward, not "
            "observed).",
        )
    return texts
