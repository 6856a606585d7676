"""What every metric shares: the value sets they group by, the groupings, and the frame shapes.

Internal frames keep patient_key so summaries can count distinct patients (the report suppresses figures from
fewer than min_cell_patients patients); no mart carries patient_key.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import polars as pl

from clinic_outcomes.seeds import value_set

NEEDLING = "dry_needling"
NOT_RECORDED = "not recorded"
AFTERCARE_ADVICE = value_set("aftercare")
# The adverse-event types R6 counts: every recorded event but 'none'.
ADVERSE_EVENT_TYPES = tuple(event for event in value_set("adverse_events") if event != "none")
IN_RELIEF_AT = {"in_relief_24h": 24.0, "in_relief_72h": 72.0, "in_relief_7d": 7 * 24.0, "in_relief_14d": 14 * 24.0}
MODERATE_CHANGE = 0.30
SUBSTANTIAL_CHANGE = 0.50

# Groupings: the value of group_by -> the column whose value is group_value (None: one group 'all').
RELIEF_GROUPS = {
    "all": None,
    "condition": "condition",
    "clinic": "clinic_id",
    "aftercare": "aftercare",
    "clinician_role": "clinician_role",
}
COMPARISON_FACTORS = {"aftercare": "aftercare", "clinician_role": "clinician_role"}
PLAN_GROUPS = {"all": None, "clinic": "clinic_id", "condition": "condition"}
PLAN_COMPLETION_GROUPS = {"all": None, "clinic": "clinic_id"}
SAFETY_GROUPS = {"all": None, "clinic": "clinic_id", "clinician_role": "clinician_role"}
PCP_GROUPS = {"all": None, "clinic": "clinic_id"}

# The marts compute_marts writes, in the order it reports them.
MART_TABLES = (
    "session_relief",
    "session_relief_summary",
    "relief_duration",
    "relief_summary",
    "relief_curves",
    "relief_comparison",
    "plan_outcomes",
    "plan_outcome_summary",
    "plan_completion_summary",
    "adverse_events",
    "aftercare_mix",
    "pcp_clearance",
)

_INSTANT = pl.Datetime("us", "UTC")
_MICROSECONDS_PER_HOUR = 3_600_000_000


# --- shared shapes ----------------------------------------------------------------------------


def completed_sessions(sessions: pl.LazyFrame) -> pl.LazyFrame:
    """Sessions that count at all: cancelled and no-show sessions count for nothing."""
    return sessions.filter(pl.col("status") == "completed")


def needling_sessions(sessions: pl.LazyFrame) -> pl.LazyFrame:
    """Completed sessions whose therapies include dry needling."""
    return completed_sessions(sessions).filter(pl.col("therapies").list.contains(NEEDLING))


def stack_groups(frame: pl.LazyFrame, groups: Mapping[str, str | None]) -> pl.LazyFrame:
    """One copy of `frame` per grouping, tagged group_by / group_value (null values: 'not recorded').

    grouping_order numbers the groupings in the order given, for sorting.
    """
    parts = []
    for position, (name, column) in enumerate(groups.items()):
        value = pl.lit("all") if column is None else pl.col(column).cast(pl.String).fill_null(NOT_RECORDED)
        parts.append(
            frame.with_columns(
                group_by=pl.lit(name), group_value=value, grouping_order=pl.lit(position, dtype=pl.Int32)
            )
        )
    return pl.concat(parts, how="vertical")


def aggregate_groups(
    frame: pl.LazyFrame,
    groups: Mapping[str, str | None],
    *aggs: pl.Expr,
    by: Sequence[str] = (),
    **named_aggs: pl.Expr,
) -> pl.LazyFrame:
    """Aggregate `frame` once per grouping: group_by, group_value, the `by` columns, then the aggregations.

    The same rows as stack_groups(frame, groups).group_by("group_by", "group_value", *by).agg(*aggs),
    without materialising a copy of the frame per grouping: each grouping is a group-by on the
    frame itself, and only the (small) results are stacked.
    """
    parts = []
    for name, column in groups.items():
        value = pl.lit("all") if column is None else pl.col(column).cast(pl.String).fill_null(NOT_RECORDED)
        parts.append(
            frame.group_by(value.alias("group_value"), *by)
            .agg(*aggs, **named_aggs)
            .select(pl.lit(name).alias("group_by"), pl.all())
        )
    return pl.concat(parts, how="vertical")


def _in_grouping_order(frame: pl.LazyFrame, groups: Mapping[str, str | None], *more: str) -> pl.LazyFrame:
    order = {name: position for position, name in enumerate(groups)}
    rank = pl.col("group_by").replace_strict(order, return_dtype=pl.Int32)
    return frame.sort(rank, "group_value", *more)


def _hours_between(start: str, end: str) -> pl.Expr:
    return (pl.col(end) - pl.col(start)).dt.total_microseconds() / _MICROSECONDS_PER_HOUR


def local_date(instant: str, zone_column: str, zones: Iterable[str]) -> pl.Expr:
    """The local calendar date of `instant` in the IANA zone named per row by `zone_column`.

    Polars converts a column to one zone at a time, so this branches over the
    (few) zones that occur; rows with a zone not in `zones` get null.
    """
    unknown = pl.lit(None, dtype=pl.Date)
    expr = None
    for zone in sorted(set(zones)):
        in_zone = pl.col(zone_column) == zone
        date = pl.col(instant).dt.convert_time_zone(zone).dt.date()
        expr = pl.when(in_zone).then(date) if expr is None else expr.when(in_zone).then(date)
    return unknown if expr is None else expr.otherwise(unknown)


