"""R3 immediate relief and R4 how long it lasts (relief episodes, Kaplan-Meier summaries, comparisons)."""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import polars as pl

from clinic_outcomes.metrics.frames import (
    COMPARISON_FACTORS,
    IN_RELIEF_AT,
    NEEDLING,
    NOT_RECORDED,
    RELIEF_GROUPS,
    _INSTANT,
    _hours_between,
    _in_grouping_order,
    aggregate_groups,
    completed_sessions,
    needling_sessions,
    stack_groups,
)
from clinic_outcomes.metrics.cox import fit_cox
from clinic_outcomes.metrics.survival import Z_95, curve_summary, kaplan_meier

# --- R3 immediate relief ----------------------------------------------------------------------


def could_show_relief(mcid: float) -> pl.Expr:
    """R3 floor: a session starting below the MCID (pain_before < MCID) cannot show meaningful relief."""
    return pl.col("pain_before") >= mcid


def session_relief(sessions: pl.LazyFrame, mcid: float) -> pl.LazyFrame:
    """R3: one row per needling session with both pain_before and pain_after.

    could_show_relief is pain_before >= MCID. meaningful_relief (relief_points >= MCID) is null for a session
    that could not show it ("too little pain to measure"): such a session is neither a success nor a
    failure, so any share or mean of meaningful_relief is over the sessions that could show it.
    """
    relief_points = pl.col("pain_before") - pl.col("pain_after")
    return (
        needling_sessions(sessions)
        .filter(pl.col("pain_before").is_not_null() & pl.col("pain_after").is_not_null())
        .select(
            "session_id",
            "patient_key",
            "clinic_id",
            "clinician_role",
            "condition",
            "aftercare",
            pl.col("started_at").cast(_INSTANT),
            "pain_before",
            "pain_after",
            relief_points=relief_points.cast(pl.Int32),
            relief_pct=pl.when(pl.col("pain_before") != 0).then(
                relief_points.cast(pl.Float64) / pl.col("pain_before")
            ),
            could_show_relief=could_show_relief(mcid),
            meaningful_relief=pl.when(could_show_relief(mcid)).then(relief_points >= mcid),
        )
    )


def _exact_mean_relief_pct() -> pl.Expr:
    """The mean of relief_pct, the same to the last bit on every run.

    A plain float mean adds the parallel group-by's partial sums in a varying order, so its last bits change
    from run to run on the same data. relief_pct = relief_points / pain_before with pain_before in 1..10, so
    times 2520 (the least common multiple of 1..10) each value is a whole number and the sum is exact.
    (The other means here are of integers and booleans, whose float sums are exact in any order.)
    """
    known = pl.col("relief_pct").is_not_null()
    return (
        pl.when(known.sum() > 0)
        .then(
            (pl.col("relief_points") * (2520 // pl.col("pain_before"))).filter(known).sum()
            / (2520 * known.sum())
        )
    )


def session_relief_summary(relief: pl.LazyFrame) -> pl.LazyFrame:
    """R3 per group: how often and how much needling relieves pain at once.

    sessions/patients count every needling session with both ratings (and mean_relief_points,
    mean_relief_pct are over them); meaningful_relief_share is over the measurable sessions (those that
    could show relief, pain_before >= MCID), whose distinct patients are measurable_patients (the
    share's denominator, for suppression); too_little_pain_sessions are counted apart.
    """
    measurable = pl.col("could_show_relief")
    return _in_grouping_order(
        aggregate_groups(
            relief,
            RELIEF_GROUPS,
            sessions=pl.len().cast(pl.Int64),
            patients=pl.col("patient_key").n_unique().cast(pl.Int64),
            measurable_sessions=measurable.sum().cast(pl.Int64),
            measurable_patients=pl.col("patient_key").filter(measurable).n_unique().cast(pl.Int64),
            too_little_pain_sessions=(~measurable).sum().cast(pl.Int64),
            meaningful_relief_sessions=pl.col("meaningful_relief").sum().cast(pl.Int64),
            meaningful_relief_share=pl.col("meaningful_relief").filter(measurable).mean(),
            mean_relief_points=pl.col("relief_points").mean(),
            mean_relief_pct=_exact_mean_relief_pct(),
        ),
        RELIEF_GROUPS,
    )


# --- R4 relief duration -----------------------------------------------------------------------


# Row kinds of the follow-up stream, in their order within one instant: readings and needling
# sessions first, so a cap at the same instant includes them ("up to and including"); episode
# starts last, so looking forward from a start sees only what happens strictly after it.
_READING, _CAP, _START = 0, 1, 2


def relief_episodes(
    sessions: pl.LazyFrame,
    checkins: pl.LazyFrame,
    mcid: float,
    followup_days: int,
) -> pl.LazyFrame:
    """R4: one row per relief episode (needling session with meaningful relief).

    Follow-up runs over observations strictly after started_at up to and
    including follow_up_until = the earlier of the patient's next needling
    session (strictly later start) and started_at + followup_days (elapsed).
    Relapse is the first observation with pain > pain_before - mcid; otherwise
    the episode is censored at its last observation; with none it is not
    followed up (followed_up false, duration_hours and relapsed null).

    Observation order within the same instant cannot change the result: the
    relapse time is the earliest relapsing observation, the censoring time the
    latest observation, so ties in time need no tie-break.

    How: one stream per patient, sorted by time, of observations, needling
    sessions, episode starts and the episodes' 42-day marks; "next" and "last"
    are backward / forward fills of row numbers over it (linear after one
    sort, whatever a patient's history length).
    """
    episodes = (
        session_relief(sessions, mcid)
        .filter(pl.col("meaningful_relief"))
        .drop("meaningful_relief")
        .with_columns(
            # Pain is whole points: pain > pain_before - mcid  <=>  pain > floor(pain_before - mcid).
            relapse_above=(pl.col("pain_before") - mcid).floor().clip(-1, 10).cast(pl.Int32),
            cap_at=pl.col("started_at") + pl.duration(days=followup_days),
        )
    )
    no_session = pl.lit(None, dtype=pl.String)
    no_pain = pl.lit(None, dtype=pl.Int32)
    not_needling = pl.lit(False)
    stream = (
        pl.concat(
            [
                checkins.select(
                    "patient_key",
                    at=pl.col("recorded_at").cast(_INSTANT),
                    kind=pl.lit(_READING, pl.Int8),
                    pain=pl.col("pain").cast(pl.Int32),
                    needling=not_needling,
                    session_id=no_session,
                ),
                # A session row is a reading when it has pain_before, and a needling mark when
                # it is a needling session; one row serves as both.
                completed_sessions(sessions)
                .with_columns(needling=pl.col("therapies").list.contains(NEEDLING).fill_null(False))
                .filter(pl.col("pain_before").is_not_null() | pl.col("needling"))
                .select(
                    "patient_key",
                    at=pl.col("started_at").cast(_INSTANT),
                    kind=pl.lit(_READING, pl.Int8),
                    pain=pl.col("pain_before").cast(pl.Int32),
                    needling="needling",
                    session_id=no_session,
                ),
                episodes.select(
                    "patient_key", at="cap_at", kind=pl.lit(_CAP, pl.Int8), pain=no_pain, needling=not_needling,
                    session_id="session_id",
                ),
                # In a start row `pain` holds the episode's relapse threshold.
                episodes.select(
                    "patient_key", at="started_at", kind=pl.lit(_START, pl.Int8), pain="relapse_above",
                    needling=not_needling, session_id="session_id",
                ),
            ],
            how="vertical",
        )
        # One integer sort key for (instant, kind): sorting on two columns instead of three.
        .with_columns(_order=pl.col("at").dt.epoch("us") * 4 + pl.col("kind"))
        .sort("patient_key", "_order")
    )

    row = pl.int_range(pl.len(), dtype=pl.UInt32)
    is_reading = (pl.col("kind") == _READING) & pl.col("pain").is_not_null()

    def forward_from(condition: pl.Expr) -> pl.Expr:
        """Row number of the first row at or after this one where condition holds."""
        return pl.when(condition).then(row).fill_null(strategy="backward")

    def same_patient(at_row: str) -> pl.Expr:
        return pl.col("patient").gather(pl.col(at_row)) == pl.col("patient")

    def time_at(at_row: str) -> pl.Expr:
        return pl.when(same_patient(at_row)).then(pl.col("at").gather(pl.col(at_row)))

    first_above_row = pl.lit(None, dtype=pl.UInt32)
    for level in range(-1, 11):
        first_above_row = pl.when(pl.col("pain") == level).then(
            forward_from(is_reading & (pl.col("pain") > level))
        ).otherwise(first_above_row)
    # The last reading-kind row of its instant: every reading at that instant is at or before it.
    closes_instant = (pl.col("kind") == _READING) & (
        (pl.col("patient_key").shift(-1) != pl.col("patient_key"))
        | (pl.col("at").shift(-1) != pl.col("at"))
        | (pl.col("kind").shift(-1) != _READING)
    ).fill_null(True)
    followed = stream.with_columns(
        patient=(pl.col("patient_key") != pl.col("patient_key").shift()).fill_null(True).cum_sum(),
        last_reading_row=pl.when(is_reading).then(row).fill_null(strategy="forward"),
        next_needling_row=forward_from(pl.col("needling")),
        instant_end_row=forward_from(closes_instant),
    ).with_columns(
        reading_before_next_needling_row=pl.col("last_reading_row").gather(
            pl.col("instant_end_row").gather(pl.col("next_needling_row"))
        ),
        first_above_row=pl.when(pl.col("kind") == _START).then(first_above_row),
    )
    # Gather by row number on the whole stream, then keep the rows that carry an answer.
    answered = followed.with_columns(
        next_needling_at=time_at("next_needling_row"),
        last_before_needling_at=pl.when(same_patient("next_needling_row")).then(
            time_at("reading_before_next_needling_row")
        ),
        first_above_at=time_at("first_above_row"),
        last_before_cap_at=time_at("last_reading_row"),
    )
    at_starts = answered.filter(pl.col("kind") == _START).select(
        "session_id", "next_needling_at", "last_before_needling_at", "first_above_at"
    )
    at_caps = answered.filter(pl.col("kind") == _CAP).select("session_id", "last_before_cap_at")

    return (
        episodes.join(at_starts, on="session_id", how="left")
        .join(at_caps, on="session_id", how="left")
        .with_columns(
            follow_up_until=pl.min_horizontal("next_needling_at", "cap_at"),
            last_observed_at=pl.when(pl.col("next_needling_at") <= pl.col("cap_at"))
            .then(pl.col("last_before_needling_at"))
            .otherwise(pl.col("last_before_cap_at")),
        )
        .with_columns(followed_up=(pl.col("last_observed_at") > pl.col("started_at")).fill_null(False))
        .with_columns(
            relapsed=pl.when(pl.col("followed_up")).then(
                pl.col("first_above_at").is_not_null() & (pl.col("first_above_at") <= pl.col("follow_up_until"))
            ),
        )
        .with_columns(
            ended_at=pl.when(pl.col("relapsed"))
            .then(pl.col("first_above_at"))
            .when(pl.col("followed_up"))
            .then(pl.col("last_observed_at")),
        )
        .select(
            "session_id",
            "patient_key",
            "clinic_id",
            "clinician_role",
            "condition",
            "aftercare",
            "started_at",
            "pain_before",
            "follow_up_until",
            "followed_up",
            "relapsed",
            duration_hours=_hours_between("started_at", "ended_at"),
        )
        .sort("started_at", "session_id")
    )


# Stacked rows (followed-up episodes x groupings) per Kaplan-Meier estimate in relief_curves: memory against
# fixed cost per estimate (see there).
ROWS_PER_CURVE_BATCH = 2_000_000


def relief_curves(episodes: pl.LazyFrame, groups: Mapping[str, str | None] = RELIEF_GROUPS) -> pl.LazyFrame:
    """Kaplan-Meier step points of relief duration per group (followed-up episodes only)."""
    followed = episodes.filter(pl.col("followed_up"))
    # The groupings in batches of at most ROWS_PER_CURVE_BATCH stacked rows (at least one grouping each), in the
    # groupings' order; kaplan_meier orders each batch by grouping, group and hours. Every grouping holds every
    # followed-up episode once, and a curve reads only its own group's rows, so the curves are those of one
    # estimate over all groupings stacked (the same survival; the band within rounding, since its running sums
    # carry the totals of the groupings before it in the batch: at 1M, one grouping per batch, 66 of 162k bounds
    # differ by 1.1e-16). At 10M sessions all five at once were the metrics' peak, +3.6 GiB (measured
    # 2026-12-07); on a small network one batch avoids kaplan_meier's fixed cost five times over.
    rows = followed.select(pl.len()).collect().item()
    per_batch = max(1, ROWS_PER_CURVE_BATCH // max(rows, 1))
    names = list(groups)
    parts = [
        kaplan_meier(
            stack_groups(followed, {name: groups[name] for name in names[start:start + per_batch]}),
            ["grouping_order", "group_by", "group_value"], duration="duration_hours", event="relapsed",
            cluster="patient_key",
        ).collect().drop("grouping_order")
        for start in range(0, len(names), per_batch)
    ]
    return pl.concat(parts, how="vertical").lazy()


def _at_risk_column(share: str) -> str:
    return f"_patients_at_risk_{share}"


def _episode_counts(episodes: pl.LazyFrame, groups: Mapping[str, str | None]) -> pl.LazyFrame:
    followed = pl.col("followed_up")
    # Patients still followed at t: those with an episode in the estimate whose duration is >= t (relapsing
    # at t or censored at t still counts at t, as in the Kaplan-Meier risk set).
    at_risk = {
        _at_risk_column(share): pl.col("patient_key")
        .filter(followed & (pl.col("duration_hours") >= hours))
        .n_unique()
        .cast(pl.Int64)
        for share, hours in IN_RELIEF_AT.items()
    }
    return aggregate_groups(
        episodes,
        groups,
        episodes=followed.sum().cast(pl.Int64),
        relapses=pl.col("relapsed").filter(followed).sum().cast(pl.Int64),
        patients=pl.col("patient_key").filter(followed).n_unique().cast(pl.Int64),
        no_followup=(~followed).sum().cast(pl.Int64),
        **at_risk,
    )


# The columns of a relief summary row (marts.relief_summary), which marts.relief_comparison repeats.
_SUMMARY_COUNTS_AND_MEDIAN = (
    "group_by", "group_value", "episodes", "relapses", "patients", "no_followup",
    "median_hours", "median_ci_low", "median_ci_high",
)
_SHARES_AND_COLUMNS = tuple(
    (share, column) for share in IN_RELIEF_AT for column in (share, f"{share}_ci_low", f"{share}_ci_high")
)
_SHARE_COLUMNS = tuple(column for _, column in _SHARES_AND_COLUMNS)


def relief_summary(
    episodes: pl.LazyFrame,
    curves: pl.LazyFrame | None = None,
    groups: Mapping[str, str | None] = RELIEF_GROUPS,
    *,
    min_cell_patients: int,
) -> pl.LazyFrame:
    """R4 per group: Kaplan-Meier median with its 95% CI and the share still in relief.

    episodes/relapses/patients count followed-up episodes (those in the
    estimate); no_followup counts the episodes left out for lack of follow-up.
    A group whose episodes all lack follow-up has null estimates.

    A share at 24 h, 72 h, 7 d or 14 d is null when fewer than min_cell_patients distinct patients are
    still followed at that time (an episode in the estimate with duration_hours >= t): past that point
    the estimate is carried forward from fewer observations, or from none (rules.md R4).
    """
    if curves is None:
        curves = relief_curves(episodes, groups)
    estimates = curve_summary(curves, ["group_by", "group_value"], IN_RELIEF_AT)
    summary = _episode_counts(episodes, groups).join(estimates, on=["group_by", "group_value"], how="left")
    return _in_grouping_order(
        summary.select(
            *_SUMMARY_COUNTS_AND_MEDIAN,
            *(
                pl.when(pl.col(_at_risk_column(share)) >= min_cell_patients).then(pl.col(column)).alias(column)
                for share, column in _SHARES_AND_COLUMNS
            ),
        ),
        groups,
    )


def _reference_group(factor: str, compared: list[str], episodes_per_group: dict[str, int]) -> str:
    """The group the others are compared with: no aftercare advice ('none') if compared, else the largest."""
    if factor == "aftercare" and "none" in compared:
        return "none"
    return max(compared, key=lambda group: (episodes_per_group[group], group))


def relief_comparison(
    episodes: pl.LazyFrame,
    min_cell_patients: int,
    summary: pl.LazyFrame | None = None,
) -> pl.LazyFrame:
    """Relief duration by aftercare advice and by clinician role, compared by a Cox model with patients as clusters.

    The comparison takes the groups of a factor that reach min_cell_patients distinct patients (aftercare
    'not recorded' is no advice and never takes part); in_comparison says which. One Cox model per factor
    (metrics.cox: Breslow ties, cluster-robust variance with each patient's episodes as one cluster) gives
    each compared group's hazard ratio of relapse against the reference group (is_reference; aftercare
    'none' when compared, else the group with most episodes) with its robust 95% CI and p-value, and
    factor_p, the robust Wald test that the factor's groups share one hazard. All null when fewer than two
    groups qualify. These are associations: advice and clinician were not assigned at random.
    """
    if summary is None:
        summary = relief_summary(episodes, groups=COMPARISON_FACTORS, min_cell_patients=min_cell_patients)
    by_factor = (
        summary.filter(pl.col("group_by").is_in(list(COMPARISON_FACTORS)))
        .with_columns(
            in_comparison=(pl.col("patients") >= min_cell_patients) & (pl.col("group_value") != NOT_RECORDED),
        )
        .collect()
    )
    followed = episodes.filter(pl.col("followed_up"))
    results = []
    for factor, column in COMPARISON_FACTORS.items():
        rows = by_factor.filter((pl.col("group_by") == factor) & pl.col("in_comparison"))
        compared = rows["group_value"].to_list()
        if len(compared) < 2:
            continue
        reference = _reference_group(factor, compared, dict(zip(compared, rows["episodes"].to_list())))
        others = [group for group in compared if group != reference]
        data = followed.filter(pl.col(column).is_in(compared)).select(
            "duration_hours", "relapsed", "patient_key", pl.col(column).alias("_group")
        ).collect()
        covariates = np.column_stack([(data["_group"] == group).to_numpy() for group in others]).astype(np.float64)
        fit = fit_cox(
            data["duration_hours"].to_numpy(), data["relapsed"].to_numpy(), covariates, data["patient_key"].to_numpy()
        )
        factor_p = fit.wald_p()
        half_width = Z_95 * fit.robust_se
        results.append({"group_by": factor, "group_value": reference, "is_reference": True, "hazard_ratio": 1.0,
                        "hazard_ratio_ci_low": None, "hazard_ratio_ci_high": None, "hazard_ratio_p": None,
                        "factor_p": factor_p})
        for position, group in enumerate(others):
            beta = float(fit.coefficients[position])
            results.append({
                "group_by": factor, "group_value": group, "is_reference": False,
                "hazard_ratio": math.exp(beta),
                "hazard_ratio_ci_low": math.exp(beta - float(half_width[position])),
                "hazard_ratio_ci_high": math.exp(beta + float(half_width[position])),
                "hazard_ratio_p": float(fit.coefficient_p()[position]),
                "factor_p": factor_p,
            })
    schema = {
        "group_by": pl.String, "group_value": pl.String, "is_reference": pl.Boolean, "hazard_ratio": pl.Float64,
        "hazard_ratio_ci_low": pl.Float64, "hazard_ratio_ci_high": pl.Float64, "hazard_ratio_p": pl.Float64,
        "factor_p": pl.Float64,
    }
    tests = pl.DataFrame(results, schema=schema)
    compared_groups = by_factor.join(tests, on=["group_by", "group_value"], how="left").select(
        *_SUMMARY_COUNTS_AND_MEDIAN,
        *_SHARE_COLUMNS,
        "in_comparison",
        "is_reference",
        "hazard_ratio",
        "hazard_ratio_ci_low",
        "hazard_ratio_ci_high",
        "hazard_ratio_p",
        # the factor's test belongs to every compared group of the factor
        pl.col("factor_p").max().over("group_by").alias("factor_p"),
    )
    return _in_grouping_order(compared_groups.lazy(), COMPARISON_FACTORS).rename({"group_by": "factor"})
