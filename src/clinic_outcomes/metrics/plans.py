"""R2's "plans complete" and R5: the outcome of each evaluated plan, and their summaries."""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from clinic_outcomes.metrics.frames import (
    MODERATE_CHANGE,
    PLAN_COMPLETION_GROUPS,
    PLAN_GROUPS,
    SUBSTANTIAL_CHANGE,
    _INSTANT,
    _in_grouping_order,
    aggregate_groups,
    completed_sessions,
    local_date,
)

# --- R2 plans complete: one definition ----------------------------------------------------------

# Evaluated plans (rules.md R2): neither cancelled nor in progress.
EVALUATED_COMPLETIONS = ("complete", "discharged_improved", "incomplete")
# "Plans complete" in every report: complete, or discharged early with an outcome reaching the MCID.
COMPLETE_COMPLETIONS = ("complete", "discharged_improved")


def _sql_set(values: Sequence[str]) -> str:
    return ", ".join(f"'{value}'" for value in values)


# The same definition for SQL over any relation with a `completion` column (e.g. quality.plan_completion):
# the share, null when no plan is evaluated.
PLANS_COMPLETE_SQL = (
    f"count(*) filter (where completion in ({_sql_set(COMPLETE_COMPLETIONS)}))"
    f" / nullif(count(*) filter (where completion in ({_sql_set(EVALUATED_COMPLETIONS)})), 0)"
)


def plans_complete_share() -> pl.Expr:
    """R2 "plans complete": (complete + discharged_improved) / evaluated plans; null when none is evaluated."""
    evaluated = pl.col("completion").is_in(EVALUATED_COMPLETIONS)
    complete = pl.col("completion").is_in(COMPLETE_COMPLETIONS)
    return pl.when(evaluated.sum() > 0).then(complete.sum() / evaluated.sum())


def plan_completion_summary(plan_completion: pl.LazyFrame) -> pl.LazyFrame:
    """R2 per group (all, clinic): evaluated plans by completion and the share of plans complete.

    patients counts the distinct patients of the evaluated plans (the share's denominator).
    """
    evaluated = pl.col("completion").is_in(EVALUATED_COMPLETIONS)

    def plans_with(value: str) -> pl.Expr:
        return (pl.col("completion") == value).sum().cast(pl.Int64)

    return _in_grouping_order(
        aggregate_groups(
            plan_completion,
            PLAN_COMPLETION_GROUPS,
            evaluated_plans=evaluated.sum().cast(pl.Int64),
            patients=pl.col("patient_key").filter(evaluated).n_unique().cast(pl.Int64),
            complete_plans=plans_with("complete"),
            discharged_improved_plans=plans_with("discharged_improved"),
            incomplete_plans=plans_with("incomplete"),
            in_progress_plans=plans_with("in_progress"),
            cancelled_plans=plans_with("cancelled"),
            plans_complete_share=plans_complete_share(),
        ),
        PLAN_COMPLETION_GROUPS,
    )


# --- R5 plan outcomes -------------------------------------------------------------------------


def plan_outcomes(
    plan_completion: pl.LazyFrame,
    sessions: pl.LazyFrame,
    checkins: pl.LazyFrame,
    mcid: float,
    zones: Sequence[str] | None = None,
) -> pl.LazyFrame:
    """R5: one row per evaluated plan (complete, discharged_improved or incomplete) with a session that has pain_before.

    A plan's observations are its completed sessions and the patient's
    check-ins whose local date, in the plan's clinic zone, lies in
    [start_date, window_end). `zones` lists the zones that occur (read from
    plan_completion when not given).
    """
    plans = plan_completion.filter(pl.col("completion").is_in(EVALUATED_COMPLETIONS)).select(
        "plan_id", "patient_key", "clinic_id", "clinic_timezone", "start_date", "window_end", "completion"
    )
    if zones is None:
        zones = plans.select(pl.col("clinic_timezone").unique()).collect()["clinic_timezone"].drop_nulls().to_list()
    in_window = pl.col("local_date").is_between(pl.col("start_date"), pl.col("window_end"), closed="left")

    plan_sessions = (
        completed_sessions(sessions)
        .filter(pl.col("plan_id").is_not_null())
        .select(
            "plan_id",
            "session_id",
            "condition",
            "pain_before",
            pl.col("started_at").cast(_INSTANT),
        )
        .join(plans, on="plan_id", how="inner")
        .with_columns(local_date=local_date("started_at", "clinic_timezone", zones))
        .filter(in_window)
    )
    rated_sessions = plan_sessions.filter(pl.col("pain_before").is_not_null())
    by_time = ["started_at", "session_id"]
    baselines = rated_sessions.group_by("plan_id").agg(
        baseline_pain=pl.col("pain_before").sort_by(by_time).first().cast(pl.Int32),
        sessions_with_pain=pl.len().cast(pl.Int64),
    )
    conditions = plan_sessions.filter(pl.col("condition").is_not_null()).group_by("plan_id").agg(
        condition=pl.col("condition").sort_by(by_time).first(),
    )

    plan_checkins = (
        checkins.select(
            "patient_key",
            "checkin_id",
            "pain",
            pl.col("recorded_at").cast(_INSTANT),
        )
        .join(plans, on="patient_key", how="inner")
        .with_columns(local_date=local_date("recorded_at", "clinic_timezone", zones))
        .filter(in_window)
    )
    # On a tie in time the session's reading wins (source_rank 1 sorts last); ids break what is left.
    observations = pl.concat(
        [
            rated_sessions.select(
                "plan_id",
                observed_at="started_at",
                source_rank=pl.lit(1, dtype=pl.Int8),
                observation_id="session_id",
                pain=pl.col("pain_before").cast(pl.Int32),
            ),
            plan_checkins.select(
                "plan_id",
                observed_at="recorded_at",
                source_rank=pl.lit(0, dtype=pl.Int8),
                observation_id="checkin_id",
                pain=pl.col("pain").cast(pl.Int32),
            ),
        ],
        how="vertical",
    )
    finals = observations.group_by("plan_id").agg(
        final_pain=pl.col("pain").sort_by(["observed_at", "source_rank", "observation_id"]).last(),
        checkins_in_window=(pl.col("source_rank") == 0).sum().cast(pl.Int64),
    )

    change_pct = pl.col("change_points").cast(pl.Float64) / pl.col("baseline_pain")
    return (
        plans.join(baselines, on="plan_id", how="inner")
        .join(finals, on="plan_id", how="left")
        .join(conditions, on="plan_id", how="left")
        .with_columns(change_points=(pl.col("baseline_pain") - pl.col("final_pain")).cast(pl.Int32))
        .with_columns(change_pct=pl.when(pl.col("baseline_pain") != 0).then(change_pct))
        .select(
            "plan_id",
            "patient_key",
            "clinic_id",
            "condition",
            "completion",
            "baseline_pain",
            "final_pain",
            "change_points",
            "change_pct",
            achieved_mcid=pl.col("change_points") >= mcid,
            moderate=pl.col("change_pct") >= MODERATE_CHANGE,
            substantial=pl.col("change_pct") >= SUBSTANTIAL_CHANGE,
            sessions_with_pain="sessions_with_pain",
            checkins_in_window="checkins_in_window",
        )
        .sort("plan_id")
    )


def plan_outcome_summary(outcomes: pl.LazyFrame) -> pl.LazyFrame:
    """R5 per group: shares of plans reaching the MCID, moderate and substantial change."""
    return _in_grouping_order(
        aggregate_groups(
            outcomes,
            PLAN_GROUPS,
            plans=pl.len().cast(pl.Int64),
            patients=pl.col("patient_key").n_unique().cast(pl.Int64),
            mean_baseline_pain=pl.col("baseline_pain").mean(),
            mean_final_pain=pl.col("final_pain").mean(),
            mean_change_points=pl.col("change_points").mean(),
            achieved_mcid_share=pl.col("achieved_mcid").mean(),
            moderate_share=pl.col("moderate").mean(),
            substantial_share=pl.col("substantial").mean(),
        ),
        PLAN_GROUPS,
    )


