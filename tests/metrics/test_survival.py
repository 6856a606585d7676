"""Kaplan-Meier (metrics/survival.py, marts.relief_summary) and the clustered Cox model (metrics/cox.py,
marts.relief_comparison) against lifelines.

lifelines is the reference: curves, confidence bands, medians with their CI,
survival at fixed times must agree to 1e-9
on random data, ties and censoring included. The median is the exception: R4
compares S with 0.5 exactly, so its reference is the first time the product of
fractions (Fraction) is <= 1/2; lifelines' float can miss an exact 1/2.

Mutants tried (survival.exact_side_of_half / curve_summary), each caught:
- no exact correction (the map_batches returns the float): test_median_when_survival_is_exactly_one_half_in_fractions,
  test_exact_median_on_random_all_relapse_data, and the hypothesis test against the Fraction reference;
- the exact 1/2 case dropped (`twice == denominator` never taken, 1/2 put above 0.5): the two tests above
  and test_median_when_survival_is_exactly_one_half;
- shares at 24h..14d: `duration_hours >= t` -> `> t` for patients still followed, and `>= min_cell_patients`
  -> `>`: test_share_is_withheld_below_min_cell_patients_still_followed (the first also the lifelines
  comparison per group, seed 2);
- Cox: residuals not summed per patient (one cluster per episode): test_cox_with_patient_clusters_matches_lifelines,
  test_cox_robust_variance_treats_copies_of_a_patients_episodes_as_one; tied events not all in the cumulative
  sums (`side="right"` -> `"left"` in fit_cox): test_cox_robust_variance_treats_copies_of_a_patients_episodes_as_one;
- clustered KM band: m_before off by one, and one cluster per episode instead of per patient:
  test_clustered_band_matches_the_subject_by_subject_sandwich, test_clustered_band_treats_copies_of_a_patients_episodes_as_one,
  test_relief_summary_matches_lifelines_per_group;
- clustered KM band, packed sorts (issue 16, cost): the subjects sorted by (group, cluster, time, event) instead
  of (group, time, ...), and a key packed one bit short (`<< width - 1`): test_relief_summary_matches_lifelines_per_group;
- relief_curves in batches of groupings (memory, 2026-12-07): the batches concatenated in reverse order, and a
  batch's first grouping skipped (`names[start + 1:start + per_batch]`):
  test_relief_curves_one_grouping_at_a_time_equal_one_estimate_over_all_groupings; Cox's risk sums by pairs of
  columns with the lower triangle of S2 left at zero: test_cox_with_patient_clusters_matches_lifelines;
- (equivalent, not caught: multiplying rows without events too, since (n - 0) / n = 1.)
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings, strategies as st
from lifelines import KaplanMeierFitter
from lifelines.utils import median_survival_times

from clinic_outcomes.metrics.frames import IN_RELIEF_AT, RELIEF_GROUPS, stack_groups
from clinic_outcomes.metrics import relief
from clinic_outcomes.metrics.relief import relief_comparison, relief_curves, relief_summary
from lifelines import CoxPHFitter

from clinic_outcomes.metrics.cox import fit_cox
from clinic_outcomes.metrics.survival import Z_95, curve_summary, kaplan_meier

TOLERANCE = 1e-9

# lifelines itself calls pandas in ways pandas 3 warns about; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:Starting with pandas version 4.0")


def as_null(value: float) -> float | None:
    return None if math.isinf(value) else float(value)


def close(ours: float | None, reference: float | None) -> bool:
    if ours is None or reference is None:
        return ours is None and reference is None
    return abs(ours - reference) <= TOLERANCE


def exact_median(durations, events) -> float | None:
    """The first time the product of (n - d) / n over event times is <= 1/2, in Fractions."""
    durations = [float(value) for value in durations]
    events = [bool(value) for value in events]
    survival = Fraction(1)
    for time in sorted(set(durations)):
        at_risk = sum(1 for value in durations if value >= time)
        deaths = sum(1 for value, event in zip(durations, events) if value == time and event)
        survival *= Fraction(at_risk - deaths, at_risk)
        if survival <= Fraction(1, 2):
            return time
    return None


def reference_fit(durations, events) -> KaplanMeierFitter:
    return KaplanMeierFitter().fit(np.asarray(durations, dtype=float), np.asarray(events, dtype=bool))


def test_hand_computed_curve():
    # Durations 1, 2+, 3, 3, 3+, 5: S(1) = 5/6, S(3) = 5/6 * 2/4 = 5/12, S(5) = 0.
    episodes = pl.LazyFrame({
        "duration_hours": [1.0, 2.0, 3.0, 3.0, 3.0, 5.0],
        "relapsed": [True, False, True, True, False, True],
    })
    curve = kaplan_meier(episodes, []).select("hours", "at_risk", "events", "censored", "survival").collect()
    assert curve.rows() == [
        (0.0, 6, 0, 0, 1.0),
        (1.0, 6, 1, 0, pytest.approx(5 / 6)),
        (2.0, 5, 0, 1, pytest.approx(5 / 6)),
        (3.0, 4, 2, 1, pytest.approx(5 / 12)),
        (5.0, 1, 1, 0, 0.0),
    ]
    summary = curve_summary(kaplan_meier(episodes, []), [], {"at_3h": 3.0, "at_2_9h": 2.9}).collect()
    # Median: first time S <= 0.5 is 3 h; at 3 h the relapses at 3 h already count.
    assert summary.select("median_hours", "at_3h", "at_2_9h").row(0) == (3.0, pytest.approx(5 / 12), pytest.approx(5 / 6))


def test_median_is_null_when_survival_never_reaches_one_half():
    episodes = pl.LazyFrame({"duration_hours": [1.0, 2.0, 3.0, 4.0], "relapsed": [True, False, False, False]})
    summary = curve_summary(kaplan_meier(episodes, []), [], {}).collect()
    # S stays at 3/4; its lower 95% bound (n = 4) falls below 1/2 at 1 h, the upper never does.
    assert summary.row(0) == (None, 1.0, None)


def test_median_when_survival_is_exactly_one_half():
    episodes = pl.LazyFrame({"duration_hours": [4.0, 9.0], "relapsed": [True, True]})
    summary = curve_summary(kaplan_meier(episodes, []), [], {}).collect()
    assert summary["median_hours"][0] == 4.0


def test_median_when_survival_is_exactly_one_half_in_fractions():
    # rules.md R4: S(2) = 5/6 x 3/5 = 1/2 exactly; exp(log 5/6 + log 3/5) = 0.5000000000000001 says 5 h.
    episodes = pl.LazyFrame({"duration_hours": [1.0, 2.0, 2.0, 5.0, 5.0, 5.0], "relapsed": [True] * 6})
    curve = kaplan_meier(episodes, [])
    assert curve.filter(pl.col("hours") == 2.0).collect()["survival"].item() == 0.5
    summary = curve_summary(curve, [], {"at_2h": 2.0}).collect()
    assert summary["median_hours"][0] == 2.0
    assert summary["at_2h"][0] == 0.5


@pytest.mark.parametrize("seed", range(4))
def test_exact_median_on_random_all_relapse_data(seed):
    # Many small samples with ties: several hit 1/2 exactly, where floats may land on either side.
    rng = np.random.default_rng(seed)
    hits = 0
    for _ in range(200):
        n = int(rng.integers(2, 13))
        durations = rng.integers(1, 6, n).astype(float)
        events = rng.random(n) < 0.8
        frame = pl.LazyFrame({"duration_hours": durations, "relapsed": events})
        ours = curve_summary(kaplan_meier(frame, []), [], {}).collect()["median_hours"][0]
        reference = exact_median(durations, events)
        assert ours == reference
        hits += kaplan_meier(frame, []).filter(pl.col("survival") == 0.5).collect().height > 0
    assert hits > 10


durations = st.lists(
    st.tuples(
        # few distinct values -> many ties; fractions of an hour as relief durations are
        st.integers(min_value=1, max_value=40).map(lambda h: h * 0.75),
        st.booleans(),
        st.sampled_from(["ice", "heat", "none"]),
    ),
    min_size=1,
    max_size=80,
)


@settings(max_examples=40, deadline=None)
@given(durations)
def test_curve_band_median_and_survival_match_lifelines(rows):
    frame = pl.DataFrame(rows, schema=["duration_hours", "relapsed", "aftercare"], orient="row")
    curves = kaplan_meier(frame.lazy(), ["aftercare"]).collect()
    checkpoints = {"at_6h": 6.0, "at_10_5h": 10.5, "at_30h": 30.0, "at_100h": 100.0}
    summary = curve_summary(curves.lazy(), ["aftercare"], checkpoints).collect()
    for group in frame["aftercare"].unique():
        subset = frame.filter(pl.col("aftercare") == group)
        kmf = reference_fit(subset["duration_hours"], subset["relapsed"])
        curve = curves.filter(pl.col("aftercare") == group)
        band = kmf.confidence_interval_
        np.testing.assert_array_equal(curve["hours"].to_numpy(), kmf.survival_function_.index.to_numpy())
        np.testing.assert_allclose(curve["survival"].to_numpy(), kmf.survival_function_.iloc[:, 0], rtol=0, atol=TOLERANCE)
        np.testing.assert_allclose(curve["ci_low"].to_numpy(), band.iloc[:, 0], rtol=0, atol=TOLERANCE)
        np.testing.assert_allclose(curve["ci_high"].to_numpy(), band.iloc[:, 1], rtol=0, atol=TOLERANCE)
        np.testing.assert_array_equal(curve["at_risk"].to_numpy(), kmf.event_table["at_risk"].to_numpy())

        row = summary.filter(pl.col("aftercare") == group).row(0, named=True)
        median_band = median_survival_times(band)
        assert close(row["median_hours"], exact_median(subset["duration_hours"], subset["relapsed"]))
        assert close(row["median_ci_low"], as_null(median_band.iloc[0, 0]))
        assert close(row["median_ci_high"], as_null(median_band.iloc[0, 1]))
        for name, hours in checkpoints.items():
            assert close(row[name], float(kmf.survival_function_at_times(hours).iloc[0]))


MIN_CELL = 11


def random_episodes(seed: int, n: int = 400) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    followed_up = rng.random(n) < 0.9
    return pl.DataFrame({
        "session_id": [f"s{i}" for i in range(n)],
        "patient_key": [f"p{i}" for i in rng.integers(0, 150, n)],
        "clinic_id": rng.choice(["clinic_a", "clinic_b", "clinic_c"], n),
        "clinician_role": rng.choice(["physical_therapist", "chiropractor", "nurse"], n),
        "condition": rng.choice(["low_back_pain", "neck_pain", ""], n),
        "aftercare": rng.choice(["ice", "heat", "none", ""], n),
        "followed_up": followed_up,
        "relapsed": rng.random(n) < 0.7,
        # exponential relief, rounded to the quarter hour so ties happen
        "duration_hours": np.round(rng.exponential(120.0, n) * 4) / 4 + 0.25,
    }).with_columns(
        pl.col("condition", "aftercare").replace("", None),
        # episodes without follow-up have neither a duration nor an outcome
        pl.when(pl.col("followed_up")).then(pl.col("relapsed", "duration_hours")),
    )


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_relief_summary_matches_lifelines_per_group(seed):
    episodes = random_episodes(seed)
    summary = relief_summary(episodes.lazy(), min_cell_patients=MIN_CELL).collect()
    columns = {"all": None, "condition": "condition", "clinic": "clinic_id", "aftercare": "aftercare"}
    checked, outcomes = 0, set()
    for group_by, column in columns.items():
        for row in summary.filter(pl.col("group_by") == group_by).iter_rows(named=True):
            members = episodes if column is None else episodes.filter(
                pl.col(column).fill_null("not recorded") == row["group_value"]
            )
            followed = members.filter(pl.col("followed_up"))
            assert (row["episodes"], row["no_followup"]) == (followed.height, members.height - followed.height)
            assert row["relapses"] == followed["relapsed"].sum()
            assert row["patients"] == followed["patient_key"].n_unique()
            kmf = reference_fit(followed["duration_hours"], followed["relapsed"])
            assert close(row["median_hours"], exact_median(followed["duration_hours"], followed["relapsed"]))
            # The band is patient-clustered (its sandwich variance is checked subject by subject above).
            times, low, high = brute_force_band(followed["duration_hours"], followed["relapsed"], followed["patient_key"])
            first_below = lambda band: next((float(t) for t, value in zip(times, band) if value <= 0.5), None)  # noqa: E731
            assert close(row["median_ci_low"], first_below(low))
            assert close(row["median_ci_high"], first_below(high))
            for name, hours in IN_RELIEF_AT.items():
                followed_then = followed.filter(pl.col("duration_hours") >= hours)["patient_key"].n_unique()
                shown = followed_then >= MIN_CELL
                reference = float(kmf.survival_function_at_times(hours).iloc[0]) if shown else None
                assert close(row[name], reference)
                last = int(np.searchsorted(times, hours, side="right")) - 1
                assert close(row[f"{name}_ci_low"], float(low[last]) if shown else None)
                assert close(row[f"{name}_ci_high"], float(high[last]) if shown else None)
                outcomes.add(shown)
            checked += 1
    assert outcomes == {True, False}  # both shown and withheld shares were checked
    assert checked == 1 + 3 + 3 + 4  # all; condition incl. not recorded; clinics; aftercare incl. not recorded


@pytest.mark.parametrize("batch_rows", [1, 800, relief.ROWS_PER_CURVE_BATCH])  # one, two, all groupings a batch
@pytest.mark.parametrize("seed", [1, 2])
def test_relief_curves_one_grouping_at_a_time_equal_one_estimate_over_all_groupings(seed, batch_rows, monkeypatch):
    """relief_curves estimates the groupings in batches of rows (memory); its rows are those of one kaplan_meier
    over every grouping stacked, in the groupings' order, then group value and hours."""
    monkeypatch.setattr(relief, "ROWS_PER_CURVE_BATCH", batch_rows)
    episodes = random_episodes(seed)
    curves = relief_curves(episodes.lazy()).collect()
    stacked = kaplan_meier(
        stack_groups(episodes.lazy().filter(pl.col("followed_up")), RELIEF_GROUPS),
        ["grouping_order", "group_by", "group_value"], duration="duration_hours", event="relapsed",
        cluster="patient_key",
    ).collect().drop("grouping_order")
    assert curves.columns == stacked.columns
    assert curves.drop("ci_low", "ci_high").equals(stacked.drop("ci_low", "ci_high"))  # same rows, same order
    for band in ("ci_low", "ci_high"):  # the band's running sums differ from the stacked one's by rounding only
        assert (curves[band] - stacked[band]).abs().max() < 1e-12
    assert curves["group_by"].unique(maintain_order=True).to_list() == list(RELIEF_GROUPS)


def test_share_is_withheld_below_min_cell_patients_still_followed():
    # 11 patients followed past 24 h (one of them twice), 10 past 72 h: the 24 h share shows, the 72 h does not.
    durations = [30.0] * 10 + [100.0] * 10 + [24.0, 24.0, 5.0]
    patients = [f"p{i}" for i in range(10)] + [f"p{i}" for i in range(10)] + ["p10", "p10", "p11"]
    episodes = pl.LazyFrame({
        "session_id": [f"s{i}" for i in range(len(durations))],
        "patient_key": patients,
        "clinic_id": "c1", "clinician_role": "nurse", "condition": "neck_pain", "aftercare": "ice",
        "followed_up": True,
        "relapsed": [True] * len(durations),
        "duration_hours": durations,
    })
    row = relief_summary(episodes, min_cell_patients=11).filter(pl.col("group_by") == "all").collect().row(0, named=True)
    # At 24 h: p0-p9 and p10 (relapsing at exactly 24 h still counts at 24 h) = 11 patients.
    assert row["in_relief_24h"] == pytest.approx(20 / 23)
    assert row["in_relief_72h"] is None and row["in_relief_7d"] is None and row["in_relief_14d"] is None
    loose = relief_summary(episodes, min_cell_patients=10).filter(pl.col("group_by") == "all").collect().row(0, named=True)
    assert loose["in_relief_72h"] == pytest.approx(10 / 23)
    assert loose["in_relief_7d"] is None  # nobody is followed at 168 h


def brute_force_band(durations, events, clusters, z: float = Z_95):
    """The log(-log) band with the cluster-robust variance of log S, subject by subject at every time."""
    durations, events, clusters = np.asarray(durations, float), np.asarray(events, bool), np.asarray(clusters)
    times = np.r_[0.0, np.unique(durations)]
    at_risk = np.array([(durations >= t).sum() for t in times])
    deaths = np.array([((durations == t) & events).sum() for t in times])
    survival = np.cumprod(np.where(at_risk > 0, 1 - deaths / np.maximum(at_risk, 1), 1.0))
    big_h = np.cumsum(deaths / np.maximum(at_risk, 1) ** 2)
    low, high = [], []
    for index, t in enumerate(times):
        h_at = {time: big_h[position] for position, time in enumerate(times)}
        y_at = {time: at_risk[position] for position, time in enumerate(times)}
        influence = np.array([
            -((event and duration <= t) / y_at[duration] - h_at[min(duration, t)]) for duration, event in zip(durations, events)
        ])
        per_cluster = {}
        for cluster, value in zip(clusters, influence):
            per_cluster[cluster] = per_cluster.get(cluster, 0.0) + value
        variance = sum(value ** 2 for value in per_cluster.values())
        s_t = survival[index]
        if s_t == 1.0:
            low.append(1.0), high.append(1.0)
            continue
        if s_t == 0.0:
            low.append(0.0), high.append(0.0)
            continue
        centre, half = math.log(-math.log(s_t)), z * math.sqrt(variance) / math.log(s_t)
        low.append(math.exp(-math.exp(centre - half))), high.append(math.exp(-math.exp(centre + half)))
    return times, np.array(low), np.array(high)


@pytest.mark.parametrize("seed", [4, 5, 6])
def test_clustered_band_matches_the_subject_by_subject_sandwich(seed):
    rng = np.random.default_rng(seed)
    n = 60
    frame = pl.DataFrame({
        "duration_hours": rng.integers(1, 15, n).astype(float),  # ties on purpose
        "relapsed": rng.random(n) < 0.7,
        "patient_key": rng.integers(0, 18, n),
    })
    curve = kaplan_meier(frame.lazy(), [], cluster="patient_key").collect()
    times, low, high = brute_force_band(frame["duration_hours"], frame["relapsed"], frame["patient_key"])
    np.testing.assert_array_equal(curve["hours"].to_numpy(), times)
    np.testing.assert_allclose(curve["ci_low"].to_numpy(), low, rtol=0, atol=1e-9)
    np.testing.assert_allclose(curve["ci_high"].to_numpy(), high, rtol=0, atol=1e-9)


def test_clustered_band_treats_copies_of_a_patients_episodes_as_one():
    # Three copies of every patient's episodes: Greenwood's band narrows (it counts 3x the patients), the
    # patient-clustered band stays as it was with one copy.
    rng = np.random.default_rng(9)
    once = pl.DataFrame({
        "duration_hours": rng.exponential(40.0, 80), "relapsed": rng.random(80) < 0.7, "patient_key": np.arange(80),
    })
    thrice = pl.concat([once, once, once])
    single = kaplan_meier(once.lazy(), [], cluster="patient_key").collect()
    copied = kaplan_meier(thrice.lazy(), [], cluster="patient_key").collect()
    np.testing.assert_allclose(copied["ci_low"].to_numpy(), single["ci_low"].to_numpy(), rtol=0, atol=1e-9)
    np.testing.assert_allclose(copied["ci_high"].to_numpy(), single["ci_high"].to_numpy(), rtol=0, atol=1e-9)
    naive = kaplan_meier(thrice.lazy(), []).collect()
    assert (naive["ci_high"] - naive["ci_low"]).sum() < 0.7 * (copied["ci_high"] - copied["ci_low"]).sum()


def lifelines_cox(frame: pl.DataFrame, column: str, reference: str) -> CoxPHFitter:
    others = sorted(set(frame[column]) - {reference})
    data = frame.select(
        "duration_hours", pl.col("relapsed").cast(pl.Int8), "patient_key",
        *((pl.col(column) == group).cast(pl.Float64).alias(f"is_{group}") for group in others),
    ).to_pandas()
    return CoxPHFitter().fit(data, "duration_hours", "relapsed", cluster_col="patient_key")


@pytest.mark.parametrize("seed", [1, 2])
def test_cox_with_patient_clusters_matches_lifelines(seed):
    # Continuous durations (no tied relapse times): Breslow's and lifelines' Efron's likelihoods coincide.
    rng = np.random.default_rng(seed)
    n = 500
    group = rng.integers(0, 3, n)
    durations = rng.exponential(100.0, n) * np.exp(0.4 * (group == 1))
    events = rng.random(n) < 0.7
    patients = rng.integers(0, 120, n)
    covariates = np.column_stack([group == 1, group == 2]).astype(float)
    ours = fit_cox(durations, events, covariates, patients)
    frame = pl.DataFrame({"duration_hours": durations, "relapsed": events, "patient_key": patients, "g": group.astype(str)})
    reference = lifelines_cox(frame, "g", "0")
    # lifelines stops its Newton steps earlier (its convergence tolerance): agreement to ~1e-5.
    np.testing.assert_allclose(ours.coefficients, reference.params_.to_numpy(), rtol=0, atol=1e-5)
    np.testing.assert_allclose(ours.robust_se, reference.standard_errors_.to_numpy(), rtol=1e-4)
    np.testing.assert_allclose(ours.coefficient_p(), reference.summary["p"].to_numpy(), rtol=1e-3, atol=1e-6)
    # The clusters matter: the model-based (naive) variance differs from the robust one.
    assert not np.allclose(np.sqrt(np.diag(ours.model_covariance)), ours.robust_se, rtol=1e-2)


def test_cox_robust_variance_treats_copies_of_a_patients_episodes_as_one():
    # Every patient's episode recorded three times over: naive standard errors shrink by sqrt(3), the
    # cluster-robust ones do not move (the patient is one cluster whatever its number of episodes).
    rng = np.random.default_rng(3)
    n = 300
    group = rng.integers(0, 2, n).astype(float)[:, None]
    durations, events, patients = rng.exponential(50.0, n), rng.random(n) < 0.8, np.arange(n)
    once = fit_cox(durations, events, group, patients)
    thrice = fit_cox(np.tile(durations, 3), np.tile(events, 3), np.tile(group, (3, 1)), np.tile(patients, 3))
    np.testing.assert_allclose(thrice.coefficients, once.coefficients, atol=1e-9)
    np.testing.assert_allclose(thrice.robust_se, once.robust_se, rtol=1e-9)
    np.testing.assert_allclose(np.sqrt(np.diag(thrice.model_covariance)) * math.sqrt(3),
                               np.sqrt(np.diag(once.model_covariance)), rtol=1e-9)


def test_relief_comparison_uses_cox_with_patient_clusters_and_skips_small_groups():
    episodes = random_episodes(7, n=600).with_columns(
        # continuous durations, so lifelines' Efron ties and our Breslow agree
        pl.col("duration_hours") + pl.Series(np.random.default_rng(8).random(600) / 1000),
    )
    comparison = relief_comparison(episodes.lazy(), min_cell_patients=11).collect()
    followed = episodes.filter(pl.col("followed_up"))

    aftercare = comparison.filter(pl.col("factor") == "aftercare")
    assert aftercare.select("group_value", "in_comparison", "is_reference").rows() == [
        ("heat", True, False), ("ice", True, False), ("none", True, True), ("not recorded", False, None),
    ]
    advised = followed.filter(pl.col("aftercare").is_not_null())
    reference = lifelines_cox(advised, "aftercare", "none")
    for group in ("heat", "ice"):
        row = aftercare.filter(pl.col("group_value") == group).row(0, named=True)
        beta, se = reference.params_[f"is_{group}"], reference.standard_errors_[f"is_{group}"]
        assert row["hazard_ratio"] == pytest.approx(math.exp(beta), rel=1e-5)
        assert row["hazard_ratio_ci_low"] == pytest.approx(math.exp(beta - Z_95 * se), rel=1e-5)
        assert row["hazard_ratio_ci_high"] == pytest.approx(math.exp(beta + Z_95 * se), rel=1e-5)
        assert row["hazard_ratio_p"] == pytest.approx(reference.summary.loc[f"is_{group}", "p"], rel=1e-4)
    assert aftercare["factor_p"].n_unique() == 1 and 0 < aftercare["factor_p"][0] < 1

    # Only one role reaches the minimum: nothing to compare, no hazard ratio, no p-value.
    patients_per_role = followed.group_by("clinician_role").agg(pl.col("patient_key").n_unique()).sort("patient_key")
    (second_most, _), (most, biggest_role) = patients_per_role.select("patient_key", "clinician_role").rows()[-2:]
    assert second_most < most
    strict = relief_comparison(episodes.lazy(), min_cell_patients=most).collect()
    roles = strict.filter(pl.col("factor") == "clinician_role")
    assert roles.filter(pl.col("in_comparison"))["group_value"].to_list() == [biggest_role]
    assert roles["hazard_ratio"].is_null().all() and roles["factor_p"].is_null().all()


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.sampled_from([0.0, -0.0, 1.5, 24.0, float("nan")]),
                          st.floats(min_value=0, max_value=1e6, allow_nan=False)), max_size=60))
def test_the_dense_rank_is_numpy_s_unique_inverse(values):
    # survival._dense_rank ranks by Polars (fast); numpy's unique is the oracle it replaced
    from clinic_outcomes.metrics.survival import _dense_rank

    array = np.array(values, dtype=np.float64)
    expected = np.unique(array, return_inverse=True)[1].reshape(-1) if len(array) else np.zeros(0, dtype=np.int64)
    assert _dense_rank(array).tolist() == expected.tolist()
