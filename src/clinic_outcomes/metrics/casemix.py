"""R8: outcomes of clinics and clinicians adjusted for case mix (indirect standardisation).

Three models are fitted each night on the whole network, from case mix only (no clinic or clinician term):

- plan_achieved_mcid: logistic, over evaluated plans with an outcome (marts.plan_outcomes) whose baseline
  is at least the MCID;
- plan_change_points: ordinary least squares, over every plan of marts.plan_outcomes;
- session_meaningful_relief: logistic, over needling sessions (completed, therapies include dry_needling) with
  both pain ratings whose pain_before is at least the MCID (R3: the sessions that could show relief).

Terms: baseline pain (linear, 0-10; a plan's is R5's baseline, a session's its pain_before) and condition,
age band, sex and chronicity as categories. A plan's condition is marts.plan_outcomes' (its first session by
time that has one), its age band and sex its patient's (core.patients), its chronicity core.plans'; a
session's condition is its own, its chronicity its plan's. A null is the level 'not recorded'. Each term's
most common level is the reference (ties: the first by name). Coefficient standard errors are
cluster-robust with the patient as cluster (statsmodels' CRV1, with its small-sample correction).

A unit's observed value is the mean of its rows' outcomes, its expected value the mean of their fitted
values, the difference observed - expected; its 95% interval is difference +- 1.96 SE with the
cluster-robust SE of casemix.md section 4: sqrt(G/(G-1) * sum_g (sum_{i in g} (y_i - yhat_i))^2) / n over
the unit's G patients.

Where rules.md and the notes are silent, chosen here:
- Sparse levels. A level with fewer than MIN_LEVEL_ROWS rows or fewer than min_cell_patients patients, or (for
  a yes/no measure) whose rows all have the same outcome, cannot be estimated (its coefficient runs off to
  infinity: separation) and is collapsed into its term's reference level before fitting. It is still listed
  in marts.casemix_coefficients, estimate 0 and a note saying so. A coefficient that still exceeds
  SEPARATION_LIMIT in absolute value (quasi-separation through the other terms) is published with a note.
- Unseen levels cannot occur: the models predict the very rows they were fitted on, through the same level
  mapping (no formula, so no patsy level errors).
- A plan's clinician is the clinician of most of its completed sessions (ties: the one who saw it first,
  then the smaller id).
- Funnel. Units are placed on the difference scale, around 0 (the network's observed minus expected, which
  is exactly 0 for a model with an intercept); `network_value` is the network's observed value, so a plot
  may show network_value + difference around network_value. The limits for a unit are
  +- z * s, z = 1.959964 (95%) and 3.090232 (99.8%), with s the unit's SE under the model: sqrt(V * deff) / n,
  V = sum p(1-p) of its rows (yes/no) or n * sigma^2 (change points; sigma^2 the residual variance), and
  deff = 1 + rho * (sum_g m_g^2 / n - 1) the design effect of its m_g rows per patient, rho the network's
  within-patient correlation of standardised residuals (moment estimate, clipped to [0, 1]). Without the
  design effect a clinic whose patients have ten sessions each would leave the funnel by chance. A point
  exactly on a limit is inside. No over-dispersion adjustment (casemix.md section 3) is applied.
- Published units: at least min_cell_patients distinct patients among the measure's rows (R7: the patients
  of the denominator). A measure whose model cannot be fitted (no rows, no variation, fewer rows than terms)
  publishes nothing for that measure that night.

Cells and cost (issue 16: the models must fit the nightly budget). Every quantity above is a sum over rows,
and rows with the same patient, clinic, clinician and covariates share their fitted value, so DuckDB sums each
measure's rows into such cells (n, sum y, sum y^2; measure_cells, sorted so that later sums add in one order)
and everything after works on cells: the fit on covariate patterns, a patient's scores as a sparse
patient-by-pattern product, the within-patient correlation and the unit results. The marts equal the row
version's within 3e-15. The small fits run on one BLAS thread (threadpoolctl): OpenBLAS threads waiting for a
busy core cost seconds. Measured with casemix_marts on warehouses from the generator (90 days, seed 11), on
a machine shared with other jobs (load 6-11 on 2 cores: CPU seconds are the steadier figure):
- 84,012 sessions (47,177 session rows, 5,101 plans): 1.9-2.4 CPU s (4-14 s wall) before, 0.6-0.7 CPU s
  (1-3 s wall) now;
- 837,155 sessions (469,947 session rows in 335,948 cells, 50,652 plans): 7.6-8.8 CPU s (24-39 s wall) before,
  4.9-5.2 CPU s (20-22 s wall) now, of which DuckDB's row queries and cells 3.1 CPU s, the three fits 1.0 s,
  the unit results 0.7 s;
- 10M sessions, an estimate (not run): every step is linear in the rows (the patterns are bounded), so about
  12 x the 837k figure, some 60 CPU s.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass

import duckdb
import numpy as np
import polars as pl

from clinic_outcomes.metrics.frames import NOT_RECORDED
from clinic_outcomes.warehouse import sql_text

log = logging.getLogger(__name__)

CASEMIX_TABLES = ("casemix_coefficients", "adjusted_outcomes")
MEASURES = ("plan_achieved_mcid", "plan_change_points", "session_meaningful_relief")
BINARY_MEASURES = frozenset({"plan_achieved_mcid", "session_meaningful_relief"})
CATEGORICAL_TERMS = ("condition", "age_band", "sex", "chronicity")
LEVELS = ("clinic", "clinician")
MIN_LEVEL_ROWS = 30
SEPARATION_LIMIT = 10.0
Z_95 = 1.959963984540054  # normal quantile 0.975
Z_998 = 3.090232306167813  # normal quantile 0.999

COEFFICIENT_SCHEMA = {
    "measure": pl.String, "term": pl.String, "estimate": pl.Float64, "std_error": pl.Float64,
    "rows": pl.Int64, "note": pl.String,
}
ADJUSTED_SCHEMA = {
    "level": pl.String, "unit_id": pl.String, "measure": pl.String, "n": pl.Int64, "patients": pl.Int64,
    "observed": pl.Float64, "expected": pl.Float64, "difference": pl.Float64, "ci_low": pl.Float64,
    "ci_high": pl.Float64, "network_value": pl.Float64, "limit_95": pl.Float64, "limit_998": pl.Float64,
    "funnel": pl.String,
}

# A cell: rows of one measure with the same patient, clinic, clinician and covariates. Every quantity the fit
# and the unit results need is a sum over rows, so it is a sum over cells of their n, sum_y and sum_y2.
CELL_KEYS = ("patient_key", "clinic_id", "clinician_id", "baseline_pain", *CATEGORICAL_TERMS)
CELL_SCHEMA = {
    "patient_key": pl.String, "clinic_id": pl.String, "clinician_id": pl.String, "baseline_pain": pl.Float64,
    **{term: pl.String for term in CATEGORICAL_TERMS}, "n": pl.Int64, "sum_y": pl.Float64, "sum_y2": pl.Float64,
}
_OUTCOMES = {  # measure -> (row query, outcome expression, row filter)
    "plan_achieved_mcid": ("plans", "achieved_mcid::double", "baseline_pain >= {mcid!r}"),
    "plan_change_points": ("plans", "change_points", None),
    "session_meaningful_relief": ("sessions", "meaningful_relief::double", None),
}
_CELL_AGGREGATES = (  # (source, aggregate expressions): one pass over each row query
    ("plans", "count(*) as n, sum(change_points) as sum_change, sum(change_points * change_points) as sum_change2, "
              "sum(achieved_mcid::double) as sum_mcid"),
    ("sessions", "count(*) as n, sum(meaningful_relief::double) as sum_y, sum(meaningful_relief::double) as sum_y2"),
)


def _relations(con: duckdb.DuckDBPyConnection, mcid: float) -> dict[str, duckdb.DuckDBPyRelation]:
    return {
        "plans": con.sql(sql_text("metrics/casemix_plan_rows")),
        "sessions": con.sql(sql_text("metrics/casemix_session_rows"), params={"mcid": mcid}),
    }


def measure_rows(con: duckdb.DuckDBPyConnection, mcid: float) -> dict[str, pl.DataFrame]:
    """The rows each model is fitted on: row_id, patient_key, clinic_id, clinician_id, baseline_pain, terms, y."""
    relations, frames = _relations(con, float(mcid)), {}
    for measure, (source, outcome, where) in _OUTCOMES.items():
        relation = relations[source].filter(where.format(mcid=float(mcid))) if where else relations[source]
        frames[measure] = pl.from_arrow(relation.select(
            f"row_id, {', '.join(CELL_KEYS)}, ({outcome}) as y").order("row_id").to_arrow_table())
    return frames


def measure_cells(con: duckdb.DuckDBPyConnection, mcid: float) -> dict[str, pl.DataFrame]:
    """Each measure's rows (measure_rows) summed into cells by DuckDB: CELL_KEYS, n, sum_y, sum_y2, in key order.

    The outcomes are 0/1 or whole points, so the sums are exact whatever order DuckDB adds them in.
    """
    relations, keys = _relations(con, float(mcid)), ", ".join(CELL_KEYS)
    # Sorted by DuckDB (nulls last, as Polars sorts them), so every later sum adds in one fixed order.
    plans, sessions = (
        pl.from_arrow(relations[source].aggregate(f"{keys}, {aggregates}", keys).order(
            ", ".join(f"{key} nulls last" for key in CELL_KEYS)).to_arrow_table())
        for source, aggregates in _CELL_AGGREGATES
    )
    # baseline_pain is a cell key: the cells of plans whose baseline is at least the MCID are whole plan cells.
    return {
        "plan_achieved_mcid": _cell_columns(plans.filter(pl.col("baseline_pain") >= mcid).with_columns(
            sum_y=pl.col("sum_mcid"), sum_y2=pl.col("sum_mcid"))),
        "plan_change_points": _cell_columns(plans.with_columns(sum_y=pl.col("sum_change"), sum_y2=pl.col("sum_change2"))),
        "session_meaningful_relief": _cell_columns(sessions),
    }


def cells_of_rows(rows: pl.DataFrame) -> pl.DataFrame:
    """measure_rows' rows summed into cells (Polars), as measure_cells sums them in DuckDB."""
    cells = rows.group_by(CELL_KEYS).agg(
        pl.len().alias("n"), pl.col("y").sum().alias("sum_y"), (pl.col("y") ** 2).sum().alias("sum_y2"),
    )
    return _cell_columns(cells).sort(CELL_KEYS, nulls_last=True)


def _cell_columns(cells: pl.DataFrame) -> pl.DataFrame:
    return cells.cast(CELL_SCHEMA).select(list(CELL_SCHEMA))


@dataclass
class Fit:
    """One fitted measure: its coefficient rows and, per input cell, the fitted value (of each of its rows)."""
    coefficients: pl.DataFrame
    fitted: np.ndarray
    residual_variance: float | None  # OLS: the residual variance (scale); None for a yes/no measure


def _level_plan(values: pl.Series, cells: pl.DataFrame, binary: bool, min_patients: int):
    """(reference level, levels kept as columns, {collapsed level: reason}, rows per level) of one term."""
    frame = pl.DataFrame({"level": values, "n": cells["n"], "sum_y": cells["sum_y"], "patient": cells["patient_key"]})
    stats = frame.group_by("level").agg(
        pl.col("n").sum().alias("rows"),
        pl.col("patient").n_unique().alias("patients"),
        pl.col("sum_y").sum().alias("sum_y"),
    ).sort(["rows", "level"], descending=[True, False])
    reference = stats["level"][0]
    kept, collapsed = [], {}
    for row in stats.iter_rows(named=True):
        if row["level"] == reference:
            continue
        if row["rows"] < MIN_LEVEL_ROWS or row["patients"] < min_patients:
            collapsed[row["level"]] = (
                f"collapsed into the reference level: fewer than {MIN_LEVEL_ROWS} rows or {min_patients} patients"
            )
        elif binary and row["sum_y"] in (0, row["rows"]):
            collapsed[row["level"]] = "collapsed into the reference level: every row has the same outcome (separation)"
        else:
            kept.append(row["level"])
    return reference, sorted(kept), collapsed, dict(zip(stats["level"], stats["rows"]))


def fit_measure(measure: str, cells: pl.DataFrame, min_patients: int) -> Fit | None:
    """Fit one measure's model on its `cells` (see the module docstring); None when it cannot be fitted."""
    binary = measure in BINARY_MEASURES
    nobs, successes = int(cells["n"].sum()), float(cells["sum_y"].sum())
    if nobs == 0 or (binary and successes in (0.0, nobs)):
        return None
    if not binary and float(cells["sum_y2"].sum()) * nobs == successes**2:
        return None  # every row has the same change: nothing to explain
    names, dummies = ["intercept", "baseline_pain"], []
    coefficient_rows: list[dict] = []
    mapped = {}
    for term in CATEGORICAL_TERMS:
        values = cells[term].fill_null(NOT_RECORDED)
        reference, kept, collapsed, counts = _level_plan(values, cells, binary, min_patients)
        mapped[term] = values.replace(list(collapsed), [reference] * len(collapsed)) if collapsed else values
        coefficient_rows.append({"term": f"{term}[{reference}]", "rows": counts[reference], "note": "reference level"})
        names.extend(f"{term}[{level}]" for level in kept)
        dummies.extend((term, level) for level in kept)
        coefficient_rows.extend({"term": f"{term}[{level}]", "rows": counts[level], "note": None} for level in kept)
        for level, reason in sorted(collapsed.items()):
            coefficient_rows.append({"term": f"{term}[{level}]", "rows": counts[level], "note": reason})
    if nobs <= len(names):
        return None
    design = pl.DataFrame({
        "baseline_pain": cells["baseline_pain"], **mapped, "n": cells["n"], "sum_y": cells["sum_y"],
        "sum_y2": cells["sum_y2"], "patient": cells["patient_key"],
    })
    try:
        params, std_errors, fitted, scale = _fit_clustered(design, dummies, binary)
    except (np.linalg.LinAlgError, ValueError) as error:
        log.warning("R8 %s: the case-mix model could not be fitted (%s)", measure, error)
        return None
    estimates = dict(zip(names, params))
    errors = dict(zip(names, std_errors))
    published = [
        {"term": "intercept", "rows": nobs, "note": None},
        {"term": "baseline_pain", "rows": nobs, "note": None},
        *coefficient_rows,
    ]
    for row in published:
        fitted_term = row["term"] in estimates
        row["measure"] = measure
        row["estimate"] = float(estimates[row["term"]]) if fitted_term else 0.0
        row["std_error"] = float(errors[row["term"]]) if fitted_term else None
        if fitted_term and row["term"] != "intercept" and abs(row["estimate"]) > SEPARATION_LIMIT:
            row["note"] = f"possible separation: |estimate| > {SEPARATION_LIMIT:g}"
    return Fit(
        coefficients=pl.DataFrame(published, schema=COEFFICIENT_SCHEMA).select(list(COEFFICIENT_SCHEMA)),
        fitted=fitted,
        residual_variance=scale,
    )


def _fit_clustered(design: pl.DataFrame, dummies: list[tuple[str, str]], binary: bool):
    """(coefficients, cluster-robust SEs, fitted value per cell, residual variance or None) of one model.

    Every term is categorical apart from baseline pain (11 values), so the rows fall into a few thousand
    covariate patterns at most. statsmodels fits the model on the patterns (GLM binomial with the rows as
    variance weights, or WLS on pattern means): the same maximum-likelihood / least-squares estimates as on
    the rows, at a cost that no longer grows with them. The cluster-robust covariance is statsmodels' CRV1
    sandwich, written out: B M B * G/(G-1) * (N-1)/(N-K), B the inverse of the information (X'WX), M the
    sum over patients of the outer product of their summed scores x_i (y_i - yhat_i); a cell's rows share
    x_i and yhat_i, so a patient's score is the sum over its cells of x (sum_y - n yhat) (tests compare it
    with statsmodels fitted on the rows themselves).
    """
    import statsmodels.api as sm
    from scipy import sparse
    from threadpoolctl import threadpool_limits

    keys = ["baseline_pain", *CATEGORICAL_TERMS]
    patterns = design.group_by(keys).agg(pl.col("n", "sum_y", "sum_y2").sum()).sort(keys).with_row_index("pattern")

    def matrix(frame: pl.DataFrame) -> np.ndarray:
        columns = [np.ones(frame.height), frame["baseline_pain"].to_numpy().astype(float)]
        columns += [(frame[term] == level).to_numpy().astype(float) for term, level in dummies]
        return np.column_stack(columns)

    x = matrix(patterns)
    n = patterns["n"].to_numpy().astype(float)
    sum_y = patterns["sum_y"].to_numpy()
    mean_y = sum_y / n
    # One BLAS thread: the matrices are a few thousand patterns by a few dozen terms, and BLAS threads that
    # wait for a busy core cost seconds (measured: 7.0 s -> 0.9 s for R8 at 100k sessions on a loaded machine).
    with warnings.catch_warnings(), threadpool_limits(limits=1, user_api="blas"):
        warnings.simplefilter("ignore")  # separation is guarded before and flagged after
        if binary:
            result = sm.GLM(mean_y, x, family=sm.families.Binomial(), var_weights=n).fit()
        else:
            result = sm.WLS(mean_y, x, weights=n).fit()
        params = np.asarray(result.params, dtype=float)
        pattern_fit = np.asarray(result.predict(x), dtype=float)
        if not np.all(np.isfinite(params)):
            raise ValueError("non-finite coefficients")
        cell_pattern = design.join(patterns.select(*keys, "pattern"), on=keys, how="left",
                                   maintain_order="left")["pattern"].to_numpy()
        fitted = pattern_fit[cell_pattern]
        residual = design["sum_y"].to_numpy() - design["n"].to_numpy() * fitted  # per cell
        weight = n * pattern_fit * (1 - pattern_fit) if binary else n
        bread = np.linalg.inv(x.T @ (x * weight[:, None]))
        # A patient's score: the sum over its cells of x (sum_y - n yhat); cells -> (patient, pattern) sparse.
        patient = design["patient"].rank("dense").to_numpy().astype(np.int64) - 1
        by_pattern = sparse.csr_matrix((residual, (patient, cell_pattern)), shape=(int(patient.max()) + 1, len(x)))
        scores = by_pattern @ x
        meat = scores.T @ scores
    groups, nobs, k_params = scores.shape[0], int(n.sum()), x.shape[1]
    correction = groups / (groups - 1) * (nobs - 1) / (nobs - k_params) if groups > 1 else np.nan
    cov = correction * bread @ meat @ bread
    if binary:
        return params, np.sqrt(np.diag(cov)), fitted, None
    # Residual sum of squares by pattern: the spread within it plus its rows' distance from the fit.
    within = patterns["sum_y2"].to_numpy() - sum_y * mean_y
    rss = float(within.sum() + (n * (mean_y - pattern_fit) ** 2).sum())
    return params, np.sqrt(np.diag(cov)), fitted, rss / (nobs - k_params)


def within_patient_correlation(cells: pl.DataFrame) -> float:
    """Moment estimate of the correlation of two standardised residuals of one patient, clipped to [0, 1].

    `cells`: patient_key, n, residual (sum of y - yhat over the cell), squares (sum of (y - yhat)^2), variance
    (of one row). Per patient: (sum e)^2 - sum e^2 over the pairs m (m - 1) of its m rows, e = (y - yhat) / sd.
    """
    variance = pl.col("variance").clip(lower_bound=1e-12)
    frame = cells.group_by("patient_key").agg(
        (pl.col("residual") / variance.sqrt()).sum().alias("e"), (pl.col("squares") / variance).sum().alias("e2"),
        pl.col("n").sum().alias("m"),
    ).select((pl.col("e") ** 2 - pl.col("e2")).alias("cross"), (pl.col("m") * (pl.col("m") - 1)).alias("pairs"))
    pairs = frame["pairs"].sum()
    if not pairs:
        return 0.0
    return float(min(1.0, max(0.0, frame["cross"].sum() / pairs)))


def funnel_position(difference: float, limit_95: float, limit_998: float) -> str:
    """Where a unit's difference falls around 0; a point exactly on a limit is inside it."""
    if difference > limit_998:
        return "above_998"
    if difference < -limit_998:
        return "below_998"
    if difference > limit_95:
        return "above_95"
    if difference < -limit_95:
        return "below_95"
    return "inside"


def unit_results(measure: str, cells: pl.DataFrame, fit: Fit, min_patients: int) -> pl.DataFrame:
    """Observed, expected, difference, interval and funnel position per clinic and clinician of one measure."""
    n_rows = cells["n"].to_numpy().astype(float)
    sum_y = cells["sum_y"].to_numpy()
    variance = fit.fitted * (1 - fit.fitted) if fit.residual_variance is None else np.full(len(n_rows), fit.residual_variance)
    residual = sum_y - n_rows * fit.fitted
    # sum over the cell's rows of (y - yhat)^2 = sum y^2 - 2 yhat sum y + n yhat^2
    squares = np.maximum(cells["sum_y2"].to_numpy() - 2 * fit.fitted * sum_y + n_rows * fit.fitted**2, 0.0)
    frame = cells.select("patient_key", "clinic_id", "clinician_id", "n", "sum_y").with_columns(
        fitted_sum=pl.Series(n_rows * fit.fitted), residual=pl.Series(residual), squares=pl.Series(squares),
        variance=pl.Series(variance),
    )
    rho = within_patient_correlation(frame)
    network_value = float(sum_y.sum() / n_rows.sum())
    parts = []
    for level, column in (("clinic", "clinic_id"), ("clinician", "clinician_id")):
        known = frame.filter(pl.col(column).is_not_null())
        per_patient = known.group_by(column, "patient_key").agg(
            pl.col("n").sum().alias("m"), pl.col("residual").sum().alias("residual_sum"),
        )
        clustered = per_patient.group_by(column).agg(
            pl.len().alias("patients"),
            (pl.col("m") ** 2).sum().alias("m_squared"),
            (pl.col("residual_sum") ** 2).sum().alias("cluster_ss"),
        )
        sums = known.group_by(column).agg(
            pl.col("n").sum().alias("n"),
            pl.col("sum_y").sum().alias("sum_y"),
            pl.col("fitted_sum").sum().alias("fitted_sum"),
            (pl.col("variance") * pl.col("n")).sum().alias("v"),
        ).with_columns(observed=pl.col("sum_y") / pl.col("n"), expected=pl.col("fitted_sum") / pl.col("n"))
        units = sums.join(clustered, on=column).filter(pl.col("patients") >= min_patients)
        g, n = pl.col("patients").cast(pl.Float64), pl.col("n").cast(pl.Float64)
        deff = 1 + rho * (pl.col("m_squared") / n - 1)
        units = units.with_columns(
            difference=pl.col("observed") - pl.col("expected"),
            se=(g / (g - 1) * pl.col("cluster_ss")).sqrt() / n,
            model_se=(pl.col("v") * deff).sqrt() / n,
        ).with_columns(
            ci_low=pl.col("difference") - Z_95 * pl.col("se"),
            ci_high=pl.col("difference") + Z_95 * pl.col("se"),
            limit_95=Z_95 * pl.col("model_se"),
            limit_998=Z_998 * pl.col("model_se"),
        )
        units = units.with_columns(
            funnel=pl.struct("difference", "limit_95", "limit_998").map_elements(
                lambda r: funnel_position(r["difference"], r["limit_95"], r["limit_998"]), return_dtype=pl.String
            ),
            level=pl.lit(level),
            unit_id=pl.col(column),
            measure=pl.lit(measure),
            network_value=pl.lit(network_value),
        )
        parts.append(units.select(list(ADJUSTED_SCHEMA)))
    return pl.concat(parts).cast(ADJUSTED_SCHEMA).sort("level", "unit_id")


def casemix_marts(
    con: duckdb.DuckDBPyConnection, mcid: float, min_patients: int
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(marts.casemix_coefficients, marts.adjusted_outcomes) from core.* and marts.plan_outcomes on `con`."""
    coefficients = [pl.DataFrame(schema=COEFFICIENT_SCHEMA)]
    adjusted = [pl.DataFrame(schema=ADJUSTED_SCHEMA)]
    for measure, cells in measure_cells(con, mcid).items():
        fit = fit_measure(measure, cells, min_patients)
        if fit is None:
            continue
        coefficients.append(fit.coefficients)
        adjusted.append(unit_results(measure, cells, fit, min_patients))
    return pl.concat(coefficients), pl.concat(adjusted).sort("measure", "level", "unit_id")
