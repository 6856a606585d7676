"""Kaplan-Meier estimation, vectorised over groups.

Relief duration (rules.md R4) is a time-to-event measure with censoring. This
module estimates, for every group of a LazyFrame at once:

- the Kaplan-Meier survival curve S(t) at every distinct duration (plus t = 0),
  a right-continuous step function: S(t) counts the events at exactly t;
- Greenwood's variance and the 95% "exponential Greenwood" (log(-log))
  confidence band, the default of lifelines' KaplanMeierFitter;
- the median (first time S(t) <= 0.5, null when S never gets there) and its
  95% confidence interval: the first times the lower and the upper bound get
  to 0.5 (what `lifelines.utils.median_survival_times(kmf.confidence_interval_)`
  returns);
- the survival at fixed times (the step value at the last curve point <= t;
  past the last observed duration the last value is carried, as lifelines does).

The arithmetic follows lifelines step by step (S = exp(cumulative sum of
log(1 - d/n)), log/exp through numpy) so the two agree to rounding; the tests
compare them on random data. lifelines is a dev dependency only: nothing here
imports it.

One exception to following lifelines: the comparison with one half (rules.md R4) is exact. S(t) is
the product of the fractions (n - d) / n, and exp(sum of logs) can land a hair above 0.5 when the
product is exactly 1/2 (durations 1, 2, 2, 5, 5, 5 h: 5/6 x 3/5 = 1/2, and the float says 0.5000000000000001,
so lifelines puts the median at 5 h instead of 2 h). Wherever the float lies within 1e-9 of 0.5, the
product is recomputed in integers and the float is set on the same side of 0.5 as the exact value
(exactly 0.5 when it is 1/2). Every later comparison of `survival` with 0.5, here or in the marts, is
then exact. Elsewhere the float and the exact value are far apart from 0.5 compared with the rounding
(a sum of n logs is off by about n x 1e-16).

Cost (issue 16), measured on a warehouse from the generator (90 days, seed 11, 837,155 sessions: 303,033
relief episodes, 1.4M rows once stacked over the five groupings), kaplan_meier with cluster="patient_key"
on a machine shared with other jobs (load 6-11 on 2 cores, so CPU seconds are the steadier figure): 8.3-8.8
CPU s (21-36 s wall) before, 4.6-4.9 CPU s (15 s wall) now, curves bit for bit the same; without the cluster
0.7 CPU s. At 100k sessions 0.6 -> 0.4 CPU s. What changed: the clusters ranked once per distinct patient
instead of per stacked row, the two four-key sorts done by numpy on one packed int64 key (_packed_order),
the third sort replaced by the inverse permutation, np.add.at by np.bincount. At 10M sessions, an estimate
(not run): 100k -> 837k scaled by 11.7 (0.4 -> 4.7 CPU s), so about 12 x the 837k figure, some 60 CPU s.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import polars as pl
from scipy import stats

# Two-sided 95%: lifelines' inv_normal_cdf(1 - alpha / 2) is scipy's norm.ppf.
Z_95 = float(stats.norm.ppf(0.975))

CURVE_COLUMNS = ("hours", "at_risk", "events", "censored", "survival", "ci_low", "ci_high")


def _numpy(ufunc: np.ufunc, expr: pl.Expr) -> pl.Expr:
    """Apply a numpy ufunc (the reference's own log/exp) quietly: log(0) = -inf is expected here."""

    def apply(series: pl.Series) -> pl.Series:
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            return pl.Series(series.name, ufunc(series.cast(pl.Float64).to_numpy()))

    return expr.map_batches(apply, return_dtype=pl.Float64)


HALF = 0.5
# Floats of S within this of one half are decided in exact arithmetic (rounding errors are ~1e-12 at most).
_NEAR_HALF = 1e-9


def _product(values: Sequence[int]) -> int:
    """The product of many integers by a balanced tree (big-integer products stay fast)."""
    values = list(values)
    if not values:
        return 1
    while len(values) > 1:
        paired = [values[i] * values[i + 1] for i in range(0, len(values) - 1, 2)]
        if len(values) % 2:
            paired.append(values[-1])
        values = paired
    return values[0]


def exact_side_of_half(group: np.ndarray, at_risk: np.ndarray, events: np.ndarray, survival: np.ndarray) -> np.ndarray:
    """`survival` with every value near 0.5 put on the side of 0.5 where the exact product lies.

    Rows are one curve per `group`, in time order. S at a row is the product over the group's rows up to it of
    (at_risk - events) / at_risk; S <= 1/2 exactly when 2 x prod(at_risk - events) <= prod(at_risk).
    """
    survival = np.array(survival, dtype=np.float64, copy=True)
    near = np.flatnonzero(np.abs(survival - HALF) <= _NEAR_HALF)
    if near.size == 0:
        return survival
    starts = np.flatnonzero(np.r_[True, group[1:] != group[:-1]])
    group_start = starts[np.searchsorted(starts, near, side="right") - 1]
    below = np.nextafter(HALF, 0.0)
    above = np.nextafter(HALF, 1.0)
    # Walk each group's near rows in order, extending one running product (numerator, denominator).
    current_start, upto, numerator, denominator = -1, -1, 1, 1
    for row, start in zip(near.tolist(), group_start.tolist()):
        if start != current_start:
            current_start, upto, numerator, denominator = start, start - 1, 1, 1
        span = slice(upto + 1, row + 1)
        stepped = events[span] > 0
        numerator *= _product((at_risk[span][stepped] - events[span][stepped]).tolist())
        denominator *= _product(at_risk[span][stepped].tolist())
        common = math.gcd(numerator, denominator)
        numerator, denominator = numerator // common, denominator // common
        upto = row
        twice = 2 * numerator
        if twice == denominator:
            survival[row] = HALF
        elif twice < denominator:
            survival[row] = min(survival[row], below)
        else:
            survival[row] = max(survival[row], above)
    return survival


def _exact_near_half(columns: pl.Series) -> pl.Series:
    frame = columns.struct.unnest()
    return pl.Series(
        "survival",
        exact_side_of_half(
            frame["_group"].to_numpy(),
            frame["at_risk"].cast(pl.Int64).to_numpy(),
            frame["events"].cast(pl.Int64).to_numpy(),
            frame["survival"].to_numpy(),
        ),
    )


def _clustered_log_variance(indexed: pl.LazyFrame, table: pl.LazyFrame) -> pl.LazyFrame:
    """Cluster-robust variance of log S(t) at every (_group, _time) row of `table` (Ying & Wei 1994).

    log S^(t) - log S(t) is, to first order, a sum over subjects of influence terms
    -(d_i 1(T_i <= t) / Y(T_i) - H(min(T_i, t))), with H(t) = sum over s <= t of d(s) / Y(s)^2. Summing
    them per cluster g (a patient's episodes) and squaring gives the sandwich variance
    V(t) = sum_g (c_g(t) - m_g(t) H(t))^2, where c_g(t) sums d_i / Y(T_i) - H(T_i) over g's subjects with
    T_i <= t and m_g(t) counts g's subjects with T_i > t. Expanding the square, three running sums
    (sum c^2, sum c m, sum m^2) change only when a subject leaves the risk set, so V(t) at every time
    costs two sorts: O(n log n), not O(clusters x times) (numpy: _running_cluster_sums).
    """
    # Clusters as integers in the order of their keys (a dense rank), ranked once per distinct key rather than
    # once per row: the rows repeat each patient's episodes in every grouping (at 1M sessions, 1.4M rows for
    # some 95k patients; ranking the rows' strings took 2.9 of the band's 6.5 CPU seconds).
    codes = indexed.select("_cluster").unique().sort("_cluster").with_row_index("_code")
    subjects = indexed.join(codes, on="_cluster", how="left", maintain_order="left").select(
        "_group", "_time", "_event", pl.col("_code").cast(pl.Int64).alias("_cluster")
    ).collect()
    group = subjects["_group"].to_numpy()
    time = subjects["_time"].to_numpy()
    event = subjects["_event"].to_numpy()
    cluster = subjects["_cluster"].to_numpy()
    # Y(T_i) and H(T_i) per subject, from one sort by (group, time); within a time by (cluster, event), the
    # order the running cluster sums add their changes in.
    order = _packed_order(group, _dense_rank(time), cluster, event)
    g, t, d = group[order], time[order], event[order].astype(np.float64)
    n = len(t)
    group_end = np.r_[np.flatnonzero(g[1:] != g[:-1]) + 1, n] if n else np.zeros(0, dtype=np.int64)
    end_of_row = group_end[np.searchsorted(group_end, np.arange(n), side="right")] if n else group_end
    first_of_time = np.r_[True, (g[1:] != g[:-1]) | (t[1:] != t[:-1])] if n else np.zeros(0, dtype=bool)
    time_start = np.maximum.accumulate(np.where(first_of_time, np.arange(n), 0))
    at_risk = (end_of_row - time_start).astype(np.float64)
    time_id = np.cumsum(first_of_time) - 1
    deaths = np.bincount(time_id, weights=d)
    starts = np.flatnonzero(first_of_time)
    increments = deaths / at_risk[starts] ** 2
    big_h_per_time = np.empty(len(starts))
    group_of_time = g[starts]
    boundaries = np.r_[np.flatnonzero(group_of_time[1:] != group_of_time[:-1]) + 1, len(starts)] if n else []
    begin = 0
    for finish in boundaries:
        big_h_per_time[begin:finish] = np.cumsum(increments[begin:finish])
        begin = finish
    exit_term = d / at_risk - big_h_per_time[time_id]
    sums = _running_cluster_sums(g, t, event[order], cluster[order], exit_term)
    per_time = pl.DataFrame(
        {"_group": group_of_time, "_time": t[starts], "big_h": big_h_per_time},
        schema={"_group": pl.UInt32, "_time": pl.Float64, "big_h": pl.Float64},
    ).join(sums, on=["_group", "_time"], how="left")
    return (
        table.select("_group", "_time")
        .join(per_time.lazy(), on=["_group", "_time"], how="left", maintain_order="left")
        # Between exits the sums hold; at the origin (t = 0, no exit yet, H = 0) the variance is 0.
        .with_columns(pl.col("big_h", "sum_cc", "sum_cm", "sum_mm").fill_null(strategy="forward").over("_group"))
        .with_columns(
            log_variance=(
                pl.col("sum_cc") - 2 * pl.col("big_h") * pl.col("sum_cm") + pl.col("big_h") ** 2 * pl.col("sum_mm")
            ).clip(lower_bound=0.0).fill_null(0.0),
        )
        .select("_group", "_time", "log_variance")
    )


def _arg_sort(*keys: np.ndarray) -> np.ndarray:
    """The stable order of rows by `keys` (first key first); Polars' multithreaded sort, much faster than np.lexsort."""
    frame = pl.DataFrame({f"k{position}": key for position, key in enumerate(keys)})
    return frame.select(pl.arg_sort_by(frame.columns, maintain_order=True)).to_series().to_numpy()


def _dense_rank(values: np.ndarray) -> np.ndarray:
    """0, 1, 2 ... by value (equal values equal ranks): an order-preserving integer stand-in for a float key.

    Polars' dense rank (multithreaded): on 14M random durations numpy's unique took 8.7 s and Polars 1.8 s, the
    same ranks; the clinics' relief summaries of a 10M-session report (3.0M episodes) took 56.3 and 49.0 s with
    numpy, 49.0 and 46.3 s with Polars, in turns, identical (measured 2026-12-07). A NaN keeps numpy's ranks
    (Polars would rank it as a null)."""
    if not len(values):
        return np.zeros(0, dtype=np.int64)
    if values.dtype.kind == "f" and np.isnan(values).any():
        return np.unique(values, return_inverse=True)[1].reshape(-1)
    return pl.Series(values).rank("dense").to_numpy().astype(np.int64) - 1


def _packed_order(*keys: np.ndarray) -> np.ndarray:
    """The stable order of rows by non-negative integer `keys` (first key first), as _arg_sort gives it.

    The keys are packed into one int64 (each in as many bits as its largest value needs) and sorted once by
    numpy: at 1M sessions (1.4M stacked episodes) a quarter of the CPU time of Polars' four-key sort. Keys
    that need more than 63 bits together go to _arg_sort.
    """
    n = len(keys[0])
    if any(key.dtype.kind not in "iub" for key in keys):  # a null made a float column: Polars sorts those
        return _arg_sort(*keys)
    widths = [max(1, int(key.max()).bit_length()) if n else 1 for key in keys]
    if sum(widths) > 63:
        return _arg_sort(*keys)
    packed = np.zeros(n, dtype=np.int64)
    for key, width in zip(keys, widths):
        packed = (packed << width) | key.astype(np.int64)
    return np.argsort(packed, kind="stable")


def _running_cluster_sums(
    group: np.ndarray, time: np.ndarray, event: np.ndarray, cluster: np.ndarray, exit_term: np.ndarray
) -> pl.DataFrame:
    """sum c^2, sum c m and sum m^2 over the clusters of each group after the exits at each time (numpy, sorted).

    The rows come sorted by (group, time, cluster, event). Every order here is fixed (lexicographic sorts,
    sequential cumulative sums), so the result has the same bits on every run and whatever slices of patients
    the episodes were computed in.
    """
    # Rows of one cluster tied in time and event have the same exit term: their order cannot matter.
    order = _packed_order(group, cluster, _dense_rank(time), event)
    g, t, c, q = group[order], time[order], cluster[order], exit_term[order]
    n = len(q)
    new_segment = np.r_[True, (g[1:] != g[:-1]) | (c[1:] != c[:-1])] if n else np.zeros(0, dtype=bool)
    segment_start = np.maximum.accumulate(np.where(new_segment, np.arange(n), 0))
    segment_id = np.cumsum(new_segment) - 1
    members = np.bincount(segment_id)[segment_id].astype(np.float64)
    exited = (np.arange(n) - segment_start + 1).astype(np.float64)
    running = np.cumsum(q)
    before_segment = np.where(segment_start > 0, running[segment_start - 1], 0.0)
    c_after = running - before_segment
    c_before = c_after - q
    m_after, m_before = members - exited, members - exited + 1
    d_cc = c_after**2 - c_before**2
    d_cm = c_after * m_after - c_before * m_before
    d_mm = m_after**2 - m_before**2
    # Initial sum of m^2 per group: the squared cluster sizes.
    first_of_segment = np.flatnonzero(new_segment)
    start_mm = np.bincount(g[first_of_segment], weights=members[first_of_segment] ** 2) if n else np.zeros(0)

    # Back to the (group, time, cluster, event) order the rows came in: no second sort.
    by_time = np.empty_like(order)
    by_time[order] = np.arange(n)
    g, t = group, time
    d_cc, d_cm, d_mm = d_cc[by_time], d_cm[by_time], d_mm[by_time]
    group_starts = np.flatnonzero(np.r_[True, g[1:] != g[:-1]]) if n else np.zeros(0, dtype=np.int64)
    sum_cc, sum_cm, sum_mm = np.empty(n), np.empty(n), np.empty(n)
    for begin, finish in zip(group_starts, np.r_[group_starts[1:], n]):
        sum_cc[begin:finish] = np.cumsum(d_cc[begin:finish])
        sum_cm[begin:finish] = np.cumsum(d_cm[begin:finish])
        sum_mm[begin:finish] = start_mm[g[begin]] + np.cumsum(d_mm[begin:finish])
    last_of_time = np.r_[(g[1:] != g[:-1]) | (t[1:] != t[:-1]), True] if n else np.zeros(0, dtype=bool)
    return pl.DataFrame(
        {
            "_group": g[last_of_time],
            "_time": t[last_of_time],
            "sum_cc": sum_cc[last_of_time],
            "sum_cm": sum_cm[last_of_time],
            "sum_mm": sum_mm[last_of_time],
        },
        schema={"_group": pl.UInt32, "_time": pl.Float64, "sum_cc": pl.Float64, "sum_cm": pl.Float64, "sum_mm": pl.Float64},
    )


def kaplan_meier(
    episodes: pl.LazyFrame,
    by: Sequence[str],
    *,
    duration: str = "duration_hours",
    event: str = "relapsed",
    z: float = Z_95,
    cluster: str | None = None,
) -> pl.LazyFrame:
    """The Kaplan-Meier curve of every group: one row per group and distinct duration.

    Rows come ordered by the `by` columns, then hours.

    `episodes` has one row per subject with a non-null `duration` (float, >= 0)
    and a boolean `event` (true: the event happened at `duration`; false:
    censored there). With `cluster` (e.g. patient_key) the band uses the cluster-robust variance of
    log S (_clustered_log_variance: subjects of one cluster are not independent) instead of Greenwood's.
    Returns the `by` columns and
    hours (the time point; every group starts with a row at 0),
    at_risk (subjects with duration >= hours), events, censored,
    survival, ci_low, ci_high.
    """
    by = list(by)
    # Work on a small integer group index: sorting and windowing over string keys costs
    # several times more at a million rows. The index follows the sorted group keys.
    if by:
        groups = episodes.select(by).unique().sort(by).with_row_index("_group")
        indexed = episodes.join(groups, on=by, how="inner", nulls_equal=True)
    else:
        groups = None
        indexed = episodes.with_columns(_group=pl.lit(0, dtype=pl.UInt32))
    indexed = indexed.select(
        "_group",
        pl.col(duration).cast(pl.Float64).alias("_time"),
        pl.col(event).cast(pl.Int64).alias("_event"),
        *([pl.col(cluster).alias("_cluster")] if cluster is not None else []),
    )
    # Every curve starts at S(0) = 1, as lifelines' timeline does (births at 0).
    origin = indexed.select("_group").unique().with_columns(
        _time=pl.lit(0.0, dtype=pl.Float64), _event=pl.lit(0, dtype=pl.Int64), _removed=pl.lit(0, dtype=pl.Int64)
    )
    table = (
        pl.concat(
            [indexed.select("_group", "_time", "_event").with_columns(_removed=pl.lit(1, dtype=pl.Int64)), origin],
            how="vertical",
        )
        .group_by("_group", "_time")
        .agg(events=pl.col("_event").sum(), removed=pl.col("_removed").sum())
        .sort("_group", "_time")
    )

    def grouped(expr: pl.Expr) -> pl.Expr:
        return expr.over("_group")

    with_risk = table.with_columns(
        at_risk=grouped(pl.col("removed").sum()) - grouped(pl.col("removed").cum_sum()) + pl.col("removed"),
    ).with_columns(
        # log(1 - d/n) as lifelines computes it; -inf when everyone at risk has the event.
        log_step=_numpy(np.log, pl.col("at_risk") - pl.col("events")) - _numpy(np.log, pl.col("at_risk")),
        # Greenwood term d / (n (n - d)); lifelines sets it to 0 where n = d (S drops to 0).
        greenwood_step=pl.col("events").cast(pl.Float64)
        / (pl.col("at_risk") * (pl.col("at_risk") - pl.col("events"))).cast(pl.Float64),
    ).with_columns(
        greenwood_step=pl.when(pl.col("greenwood_step").is_infinite())
        .then(0.0)
        .otherwise(pl.col("greenwood_step")),
    ).with_columns(
        log_survival=grouped(pl.col("log_step").cum_sum()),
        greenwood=grouped(pl.col("greenwood_step").cum_sum()),
    )
    if cluster is not None:
        robust = _clustered_log_variance(indexed, table)
        with_risk = with_risk.join(robust, on=["_group", "_time"], how="left", maintain_order="left").with_columns(
            greenwood=pl.col("log_variance")
        )
    with_risk = with_risk.with_columns(
        survival=_numpy(np.exp, pl.col("log_survival")),
    ).with_columns(
        # Rows are in (_group, _time) order here, as the exact product needs them.
        survival=pl.struct("_group", "at_risk", "events", "survival").map_batches(
            _exact_near_half, return_dtype=pl.Float64
        ),
    ).with_columns(
        log_s=_numpy(np.log, pl.col("survival")),
        sqrt_greenwood=_numpy(np.sqrt, pl.col("greenwood")),
    )
    # Exponential Greenwood band: log(-log S) +- z * sqrt(var) / log S; undefined
    # (NaN) where S = 1, and lifelines then reports the bound as 1.
    log_minus_log = _numpy(np.log, -pl.col("log_s"))
    half_width = z * pl.col("sqrt_greenwood") / pl.col("log_s")
    with_band = with_risk.with_columns(
        low_inner=log_minus_log - half_width,
        high_inner=log_minus_log + half_width,
    ).with_columns(
        ci_low=_numpy(np.exp, -_numpy(np.exp, pl.col("low_inner"))),
        ci_high=_numpy(np.exp, -_numpy(np.exp, pl.col("high_inner"))),
    ).with_columns(
        pl.col("ci_low").fill_nan(1.0),
        pl.col("ci_high").fill_nan(1.0),
    )
    if groups is not None:
        with_band = with_band.join(groups, on="_group", how="left", maintain_order="left")
    return with_band.select(
        *by,
        pl.col("_time").alias("hours"),
        "at_risk",
        "events",
        censored=pl.col("removed") - pl.col("events"),
        survival="survival",
        ci_low="ci_low",
        ci_high="ci_high",
    )


def curve_summary(
    curves: pl.LazyFrame,
    by: Sequence[str],
    at_hours: Mapping[str, float],
    *,
    quantile: float = 0.5,
) -> pl.LazyFrame:
    """Median with its CI and survival at fixed times, one row per group of `curves`.

    `curves` is the output of kaplan_meier(). `at_hours` names the survival
    columns, e.g. {"in_relief_24h": 24.0}. Returns the `by` columns and
    median_hours, median_ci_low, median_ci_high, one column per at_hours entry, then its band's
    value there (<name>_ci_low, then <name>_ci_high for every entry).
    """
    by = list(by)

    def first_time_at_or_below(column: str) -> pl.Expr:
        return pl.col("hours").filter(pl.col(column) <= quantile).min()

    def survival_at(hours: float) -> pl.Expr:
        # S never rises, so its value at the last step <= hours is the least one up to there.
        return pl.col("survival").filter(pl.col("hours") <= hours).min()

    def band_at(column: str, hours: float) -> pl.Expr:
        # The band's value at the last curve point <= hours (rows come in time order; the band need not be monotone).
        return pl.col(column).filter(pl.col("hours") <= hours).last()

    aggregations = [
        first_time_at_or_below("survival").alias("median_hours"),
        first_time_at_or_below("ci_low").alias("median_ci_low"),
        first_time_at_or_below("ci_high").alias("median_ci_high"),
        *(survival_at(hours).alias(name) for name, hours in at_hours.items()),
        *(band_at("ci_low", hours).alias(f"{name}_ci_low") for name, hours in at_hours.items()),
        *(band_at("ci_high", hours).alias(f"{name}_ci_high") for name, hours in at_hours.items()),
    ]
    if not by:
        return curves.select(aggregations)
    return curves.group_by(*by, maintain_order=True).agg(aggregations)
