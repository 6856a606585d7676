"""R6: adverse events per 100 needling sessions, the aftercare mix, and primary-care clearance."""

from __future__ import annotations

import datetime as dt

import polars as pl

from clinic_outcomes.metrics.frames import (
    ADVERSE_EVENT_TYPES,
    AFTERCARE_ADVICE,
    NOT_RECORDED,
    PCP_GROUPS,
    SAFETY_GROUPS,
    _in_grouping_order,
    aggregate_groups,
    needling_sessions,
)

# --- R6 safety and aftercare ------------------------------------------------------------------


def adverse_events(sessions: pl.LazyFrame) -> pl.LazyFrame:
    """R6: adverse events per 100 needling sessions, one row per group and event type (zeros included).

    A needling session without a recorded adverse_event stays in the
    denominator (unrecorded_sessions says how many there are).
    """
    needling = needling_sessions(sessions)
    totals = aggregate_groups(
        needling,
        SAFETY_GROUPS,
        needling_sessions=pl.len().cast(pl.Int64),
        patients=pl.col("patient_key").n_unique().cast(pl.Int64),
        unrecorded_sessions=pl.col("adverse_event").is_null().sum().cast(pl.Int64),
    )
    counts = aggregate_groups(
        needling.filter(pl.col("adverse_event").is_in(ADVERSE_EVENT_TYPES)).rename({"adverse_event": "event_type"}),
        SAFETY_GROUPS,
        by=["event_type"],
        events=pl.len().cast(pl.Int64),
    )
    types = pl.LazyFrame({"event_type": list(ADVERSE_EVENT_TYPES)})
    type_order = {name: position for position, name in enumerate(ADVERSE_EVENT_TYPES)}
    return _in_grouping_order(
        totals.join(types, how="cross")
        .join(counts, on=["group_by", "group_value", "event_type"], how="left")
        .with_columns(pl.col("events").fill_null(0))
        .select(
            "group_by",
            "group_value",
            "needling_sessions",
            "patients",
            "unrecorded_sessions",
            "event_type",
            "events",
            per_100_sessions=pl.col("events") * 100.0 / pl.col("needling_sessions"),
        ),
        SAFETY_GROUPS,
        pl.col("event_type").replace_strict(type_order, return_dtype=pl.Int32),
    )


def aftercare_mix(sessions: pl.LazyFrame) -> pl.LazyFrame:
    """R6: the mix of aftercare advice after needling sessions, one row per group and advice."""
    needling = needling_sessions(sessions).with_columns(advice=pl.col("aftercare").fill_null(NOT_RECORDED))
    advice_values = [*AFTERCARE_ADVICE, NOT_RECORDED]
    counts = aggregate_groups(needling, SAFETY_GROUPS, by=["advice"], sessions=pl.len().cast(pl.Int64)).rename(
        {"advice": "aftercare"}
    )
    totals = aggregate_groups(
        needling,
        SAFETY_GROUPS,
        needling_sessions=pl.len().cast(pl.Int64),
        patients=pl.col("patient_key").n_unique().cast(pl.Int64),
    )
    advice_order = {name: position for position, name in enumerate(advice_values)}
    return _in_grouping_order(
        totals
        .join(pl.LazyFrame({"aftercare": advice_values}), how="cross")
        .join(counts, on=["group_by", "group_value", "aftercare"], how="left")
        .with_columns(pl.col("sessions").fill_null(0))
        .select(
            "group_by",
            "group_value",
            "needling_sessions",
            "patients",
            "aftercare",
            "sessions",
            share=pl.col("sessions") / pl.col("needling_sessions"),
        ),
        SAFETY_GROUPS,
        pl.col("aftercare").replace_strict(advice_order, return_dtype=pl.Int32),
    )


def pcp_clearance(plans: pl.LazyFrame, as_of: dt.date) -> pl.LazyFrame:
    """R6: share of plans started (start_date <= as_of, any status) without PCP clearance.

    Only pcp_cleared = false is "without clearance". A plan whose pcp_cleared is null is not recorded: its
    own count and share (not_recorded_share), never counted as not cleared. Both shares are over every plan
    started, so cleared + without + not recorded = plans.
    """
    started = plans.filter(pl.col("start_date") <= as_of)
    without = pl.col("pcp_cleared").not_().fill_null(False)
    not_recorded = pl.col("pcp_cleared").is_null()
    return _in_grouping_order(
        aggregate_groups(
            started,
            PCP_GROUPS,
            plans=pl.len().cast(pl.Int64),
            patients=pl.col("patient_key").n_unique().cast(pl.Int64),
            plans_without_pcp_clearance=without.sum().cast(pl.Int64),
            plans_pcp_not_recorded=not_recorded.sum().cast(pl.Int64),
            share=without.mean(),
            not_recorded_share=not_recorded.mean(),
        ),
        PCP_GROUPS,
    )
