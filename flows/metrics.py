"""Outcome metrics R3-R6 (../shared/spec/rules.md) with lazy Polars, into marts.*.

Each metric is a pure function, LazyFrame in -> LazyFrame out, so tests run it
on hand-made rows without DuckDB. compute_marts() reads core.* and
quality.plan_completion from DuckDB through Arrow, runs the functions and
writes every mart back through Arrow, then documents it (sql/marts/comments.toml).

Internal frames keep patient_key so summaries can count distinct patients (the
report suppresses figures from fewer than min_cell_patients patients); no mart
carries patient_key. compute_marts swaps the keys for run-local integers first:
joins, sorts and distinct counts over patients are then much cheaper.

Where rules.md is silent (documented per column in sql/marts/comments.toml):
- a null condition or aftercare is its own group, 'not recorded';
- R4: "later" means a strictly later instant; episodes without follow-up keep a
  row in marts.relief_duration (followed_up false, duration and relapsed null)
  and are counted per group as no_followup;
- R4 summaries: survival past a group's longest follow-up carries the last
  estimate, as lifelines does; the log-rank test compares the groups with at
  least min_cell_patients patients, never aftercare 'not recorded';
- R5: moderate/substantial are null when the baseline is 0; final-pain ties in
  time go to the session, then to the larger id;
- R6: needling sessions without a recorded adverse_event stay in the
  denominator; "plans started" are plans with start_date <= as_of, any status;
  a null pcp_cleared counts as without clearance.

Inputs, as in core.*: sessions (session_id, patient_key, plan_id, clinic_id,
clinician_role, started_at, status, therapies, condition, pain_before,
pain_after, aftercare, adverse_event), pain check-ins (checkin_id,
patient_key, recorded_at, pain), plans (plan_id, patient_key, clinic_id,
start_date, pcp_cleared) and quality.plan_completion. Instants are
Datetime(us, UTC).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor

import duckdb
import polars as pl

from flows.settings import Rules, Settings
from flows.survival import curve_summary, kaplan_meier, logrank_p_value
from flows.warehouse import apply_comments, transaction

NEEDLING = "dry_needling"
NOT_RECORDED = "not recorded"
AFTERCARE_ADVICE = ("ice", "heat", "none")
ADVERSE_EVENT_TYPES = ("soreness", "bruising", "swelling", "bleeding", "fainting", "other")
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


# --- R3 immediate relief ----------------------------------------------------------------------


def session_relief(sessions: pl.LazyFrame, mcid: float) -> pl.LazyFrame:
    """R3: one row per needling session with both pain_before and pain_after."""
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
            meaningful_relief=relief_points >= mcid,
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
    """R3 per group: how often and how much needling relieves pain at once."""
    return _in_grouping_order(
        aggregate_groups(
            relief,
            RELIEF_GROUPS,
            sessions=pl.len().cast(pl.Int64),
            patients=pl.col("patient_key").n_unique().cast(pl.Int64),
            meaningful_relief_sessions=pl.col("meaningful_relief").sum().cast(pl.Int64),
            meaningful_relief_share=pl.col("meaningful_relief").mean(),
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


def relief_curves(episodes: pl.LazyFrame, groups: Mapping[str, str | None] = RELIEF_GROUPS) -> pl.LazyFrame:
    """Kaplan-Meier step points of relief duration per group (followed-up episodes only)."""
    followed = stack_groups(episodes.filter(pl.col("followed_up")), groups)
    # Ordered by grouping, group and hours as kaplan_meier returns it: no second sort of a big table.
    curves = kaplan_meier(
        followed, ["grouping_order", "group_by", "group_value"], duration="duration_hours", event="relapsed"
    )
    return curves.drop("grouping_order")


def _episode_counts(episodes: pl.LazyFrame, groups: Mapping[str, str | None]) -> pl.LazyFrame:
    followed = pl.col("followed_up")
    return aggregate_groups(
        episodes,
        groups,
        episodes=followed.sum().cast(pl.Int64),
        relapses=pl.col("relapsed").filter(followed).sum().cast(pl.Int64),
        patients=pl.col("patient_key").filter(followed).n_unique().cast(pl.Int64),
        no_followup=(~followed).sum().cast(pl.Int64),
    )


def relief_summary(
    episodes: pl.LazyFrame,
    curves: pl.LazyFrame | None = None,
    groups: Mapping[str, str | None] = RELIEF_GROUPS,
) -> pl.LazyFrame:
    """R4 per group: Kaplan-Meier median with its 95% CI and the share still in relief.

    episodes/relapses/patients count followed-up episodes (those in the
    estimate); no_followup counts the episodes left out for lack of follow-up.
    A group whose episodes all lack follow-up has null estimates.
    """
    if curves is None:
        curves = relief_curves(episodes, groups)
    estimates = curve_summary(curves, ["group_by", "group_value"], IN_RELIEF_AT)
    summary = _episode_counts(episodes, groups).join(estimates, on=["group_by", "group_value"], how="left")
    return _in_grouping_order(
        summary.select(
            "group_by",
            "group_value",
            "episodes",
            "relapses",
            "patients",
            "no_followup",
            "median_hours",
            "median_ci_low",
            "median_ci_high",
            *IN_RELIEF_AT,
        ),
        groups,
    )


def relief_comparison(
    episodes: pl.LazyFrame,
    min_cell_patients: int,
    summary: pl.LazyFrame | None = None,
) -> pl.LazyFrame:
    """Relief duration by aftercare advice and by clinician role, with a log-rank p-value per factor.

    The test compares the groups of a factor that reach min_cell_patients
    distinct patients (aftercare 'not recorded' is no advice and never takes
    part); logrank_p is null when fewer than two groups qualify. in_logrank
    says which groups were compared.
    """
    if summary is None:
        summary = relief_summary(episodes, groups=COMPARISON_FACTORS)
    by_factor = (
        summary.filter(pl.col("group_by").is_in(list(COMPARISON_FACTORS)))
        .with_columns(
            in_logrank=(pl.col("patients") >= min_cell_patients) & (pl.col("group_value") != NOT_RECORDED),
        )
        .collect()
    )
    followed = episodes.filter(pl.col("followed_up"))
    p_values = []
    for factor, column in COMPARISON_FACTORS.items():
        compared = by_factor.filter((pl.col("group_by") == factor) & pl.col("in_logrank"))["group_value"].to_list()
        p_value = None
        if len(compared) >= 2:
            data = (
                followed.filter(pl.col(column).is_in(compared))
                # numeric group codes: numpy sorts them far faster than strings
                .select("duration_hours", "relapsed", group=pl.col(column).rank("dense"))
                .collect()
            )
            p_value = logrank_p_value(
                data["duration_hours"].to_numpy(),
                data["relapsed"].to_numpy(),
                data["group"].to_numpy(),
            )
        p_values.append({"group_by": factor, "logrank_p": p_value})
    tests = pl.DataFrame(p_values, schema={"group_by": pl.String, "logrank_p": pl.Float64})
    compared_groups = by_factor.join(tests, on="group_by", how="left").select(
        "group_by",
        "group_value",
        "episodes",
        "relapses",
        "patients",
        "no_followup",
        "median_hours",
        "median_ci_low",
        "median_ci_high",
        *IN_RELIEF_AT,
        "in_logrank",
        "logrank_p",
    )
    return _in_grouping_order(compared_groups.lazy(), COMPARISON_FACTORS).rename({"group_by": "factor"})


# --- R5 plan outcomes -------------------------------------------------------------------------


def plan_outcomes(
    plan_completion: pl.LazyFrame,
    sessions: pl.LazyFrame,
    checkins: pl.LazyFrame,
    mcid: float,
    zones: Sequence[str] | None = None,
) -> pl.LazyFrame:
    """R5: one row per evaluated plan (complete or incomplete) with a session that has pain_before.

    A plan's observations are its completed sessions and the patient's
    check-ins whose local date, in the plan's clinic zone, lies in
    [start_date, window_end). `zones` lists the zones that occur (read from
    plan_completion when not given).
    """
    plans = plan_completion.filter(pl.col("completion").is_in(["complete", "incomplete"])).select(
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

    pcp_cleared null (not recorded) counts as without clearance.
    """
    without = pl.col("pcp_cleared").fill_null(False).not_()
    return _in_grouping_order(
        aggregate_groups(
            plans.filter(pl.col("start_date") <= as_of),
            PCP_GROUPS,
            plans=pl.len().cast(pl.Int64),
            patients=pl.col("patient_key").n_unique().cast(pl.Int64),
            plans_without_pcp_clearance=without.sum().cast(pl.Int64),
            share=without.mean(),
        ),
        PCP_GROUPS,
    )


# --- warehouse ------------------------------------------------------------------------------------


def _read(con: duckdb.DuckDBPyConnection, query: str) -> pl.LazyFrame:
    # Read once through Arrow; every metric below reuses the same in-memory frame.
    return pl.from_arrow(con.sql(query).to_arrow_table()).lazy()


# Relief episodes (R4) and plan outcomes (R5) are worked out per patient. Their intermediate frames (one
# sorted stream of every check-in, session and episode mark, and a dozen row-number columns over it) take
# several times the memory of their inputs: at 10M sessions ~4 GiB at once. Above this many session and
# check-in rows they are computed for one slice of the patients at a time, which bounds that peak and
# gives the same rows (no episode or plan outcome reads another patient's rows). At 1M sessions (~1.7M
# rows) everything is one slice.
ROWS_PER_PATIENT_SLICE = 4_000_000


def patient_slices(rows: int) -> int:
    """How many slices of patients to compute relief episodes and plan outcomes in, for `rows` input rows."""
    return max(1, -(-rows // ROWS_PER_PATIENT_SLICE))


def in_patient_slice(index: int, slices: int) -> pl.Expr:
    """Rows of the patients of slice `index` of `slices` (by run-local patient number; rows without a patient go to slice 0)."""
    return (pl.col("patient_key") % slices).fill_null(0) == index


def _episodes_and_outcomes(
    sessions: pl.LazyFrame,
    checkins: pl.LazyFrame,
    plan_completion: pl.LazyFrame,
    rules: Rules,
    slices: int,
    *more: pl.LazyFrame,
) -> list[pl.DataFrame]:
    """relief_episodes and plan_outcomes (then `more`, collected alongside), slice by slice of patients."""
    mcid, followup_days = rules.mcid_points, rules.relief_followup_days
    if slices == 1:
        return pl.collect_all([
            relief_episodes(sessions, checkins, mcid, followup_days),
            plan_outcomes(plan_completion, sessions, checkins, mcid),
            *more,
        ])
    zones = plan_completion.select(pl.col("clinic_timezone").unique()).collect()["clinic_timezone"]
    zones = zones.drop_nulls().to_list()
    episode_parts, outcome_parts = [], []
    for index in range(slices):
        mine = in_patient_slice(index, slices)
        episode_parts.append(relief_episodes(sessions.filter(mine), checkins.filter(mine), mcid, followup_days).collect())
        # A session reaches its plan through plan_id (the plan's patient may differ): the join with the
        # slice's plans picks the sessions, so every session is offered; check-ins join by patient.
        outcome_parts.append(
            plan_outcomes(plan_completion.filter(mine), sessions, checkins.filter(mine), mcid, zones=zones).collect()
        )
    return [
        pl.concat(episode_parts).sort("started_at", "session_id"),
        pl.concat(outcome_parts).sort("plan_id"),
        *pl.collect_all(list(more)),
    ]


def _read_numbered(con: duckdb.DuckDBPyConnection, table: str, columns: str, where: str = "true") -> pl.LazyFrame:
    """Read `columns` of the rows of `table` that pass `where`, patient_key replaced by the run's patient number."""
    return _read(
        con,
        f"""
        select source.{columns.replace(", ", ", source.")}, numbers.patient_no as patient_key,
        from {table} as source
        left join metrics_patient_numbers as numbers on numbers.patient_key = source.patient_key
        where {where}
        """,
    )


def _write(con: duckdb.DuckDBPyConnection, table: str, frame: pl.DataFrame) -> int:
    view = f"_arrow_marts_{table}"
    con.register(view, frame.to_arrow())
    try:
        con.execute(f"create or replace table marts.{table} as select * from {view}")
    finally:
        con.unregister(view)
    return frame.height


def _without_patient_key(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.drop("patient_key", strict=False)


def compute_marts(con: duckdb.DuckDBPyConnection, settings: Settings, as_of: dt.date) -> dict[str, int]:
    """Build every marts.* table from core.* and quality.plan_completion; rows written per table.

    All marts are replaced in one transaction. Each is written (by one background thread, on
    this connection, which nothing else uses meanwhile) as soon as it is computed: DuckDB
    stores a table on one core while Polars computes the next marts.
    """
    rules = settings.rules
    # Inside this run patients are small integers rather than 64-character keys: every
    # join, sort and distinct count over patients is several times cheaper, and the
    # numbers never leave the function (no mart carries a patient column).
    con.execute(
        """
        create or replace temp table metrics_patient_numbers as
        with keys as (
            select patient_key from core.sessions
            union select patient_key from core.pain_checkins
            union select patient_key from core.plans
            union select patient_key from quality.plan_completion
        )
        select
            patient_key,
            (row_number() over (order by patient_key))::uinteger as patient_no,
        from keys
        """
    )
    try:
        # Every session metric counts completed sessions only (completed_sessions); the
        # others need not cross into Polars at all.
        sessions = _read_numbered(
            con,
            "core.sessions",
            "session_id, plan_id, clinic_id, clinician_role, started_at, status, therapies, condition, "
            "pain_before, pain_after, aftercare, adverse_event",
            where="source.status = 'completed'",
        )
        checkins = _read_numbered(con, "core.pain_checkins", "checkin_id, recorded_at, pain")
        plans = _read_numbered(con, "core.plans", "plan_id, clinic_id, start_date, pcp_cleared")
        plan_completion = _read_numbered(
            con,
            "quality.plan_completion",
            "plan_id, clinic_id, clinic_timezone, start_date, window_end, completion",
        )
    finally:
        con.execute("drop table if exists metrics_patient_numbers")

    con.execute("create schema if not exists marts")
    with transaction(con):
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="marts-writer") as writer:
            written: dict[str, Future[int]] = {}

            def write(table: str, frame: pl.DataFrame) -> None:
                written[table] = writer.submit(_write, con, table, _without_patient_key(frame))

            relief = session_relief(sessions, rules.mcid_points).collect()
            write("session_relief", relief)
            # Independent queries are collected together so they share the cores.
            rows = sessions.select(pl.len()).collect().item() + checkins.select(pl.len()).collect().item()
            episodes, outcomes, relief_by_group, adverse, mix, clearance = _episodes_and_outcomes(
                sessions, checkins, plan_completion, rules, patient_slices(rows),
                session_relief_summary(relief.lazy()),
                adverse_events(sessions),
                aftercare_mix(sessions),
                pcp_clearance(plans, as_of),
            )
            write("relief_duration", episodes)
            write("plan_outcomes", outcomes)
            write("session_relief_summary", relief_by_group)
            write("adverse_events", adverse)
            write("aftercare_mix", mix)
            write("pcp_clearance", clearance)
            curves, outcomes_by_group = pl.collect_all([
                relief_curves(episodes.lazy()),
                plan_outcome_summary(outcomes.lazy()),
            ])
            write("relief_curves", curves)
            write("plan_outcome_summary", outcomes_by_group)
            summary = relief_summary(episodes.lazy(), curves.lazy()).collect()
            write("relief_summary", summary)
            comparison = relief_comparison(episodes.lazy(), rules.min_cell_patients, summary.lazy()).collect()
            write("relief_comparison", comparison)
        rows = {table: future.result() for table, future in written.items()}
        apply_comments(con, "marts")
    return {table: rows[table] for table in MART_TABLES}
