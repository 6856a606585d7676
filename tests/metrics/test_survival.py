"""Kaplan-Meier and log-rank (flows/survival.py, marts.relief_summary) against lifelines.

lifelines is the reference: curves, confidence bands, medians with their CI,
survival at fixed times and the multivariate log-rank p-value must agree to 1e-9
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
from lifelines.statistics import multivariate_logrank_test
from lifelines.utils import median_survival_times

from clinic_outcomes.metrics.frames import IN_RELIEF_AT
from clinic_outcomes.metrics.relief import relief_comparison, relief_summary
from clinic_outcomes.metrics.survival import curve_summary, kaplan_meier, logrank_p_value

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


@settings(max_examples=60, deadline=None)
@given(durations)
def test_logrank_p_value_matches_lifelines(rows):
    duration, event, group = (np.asarray(column) for column in zip(*rows))
    ours = logrank_p_value(duration, event, group)
    if len(set(group)) < 2:
        assert ours is None
    else:
        reference = multivariate_logrank_test(duration, group, event).p_value
        assert close(ours, float(reference))


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
            median_band = median_survival_times(kmf.confidence_interval_)
            assert close(row["median_hours"], exact_median(followed["duration_hours"], followed["relapsed"]))
            assert close(row["median_ci_low"], as_null(median_band.iloc[0, 0]))
            assert close(row["median_ci_high"], as_null(median_band.iloc[0, 1]))
            for name, hours in IN_RELIEF_AT.items():
                followed_then = followed.filter(pl.col("duration_hours") >= hours)["patient_key"].n_unique()
                shown = followed_then >= MIN_CELL
                reference = float(kmf.survival_function_at_times(hours).iloc[0]) if shown else None
                assert close(row[name], reference)
                outcomes.add(shown)
            checked += 1
    assert outcomes == {True, False}  # both shown and withheld shares were checked
    assert checked == 1 + 3 + 3 + 4  # all; condition incl. not recorded; clinics; aftercare incl. not recorded


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


def test_relief_comparison_p_values_match_lifelines_and_skip_small_groups():
    episodes = random_episodes(7, n=600)
    comparison = relief_comparison(episodes.lazy(), min_cell_patients=11).collect()
    followed = episodes.filter(pl.col("followed_up"))

    aftercare = comparison.filter(pl.col("factor") == "aftercare")
    assert aftercare.select("group_value", "in_logrank").rows() == [
        ("heat", True), ("ice", True), ("none", True), ("not recorded", False),
    ]
    advised = followed.filter(pl.col("aftercare").is_not_null())
    reference = multivariate_logrank_test(advised["duration_hours"], advised["aftercare"], advised["relapsed"]).p_value
    assert aftercare["logrank_p"].n_unique() == 1 and close(aftercare["logrank_p"][0], float(reference))

    roles = comparison.filter(pl.col("factor") == "clinician_role")
    reference = multivariate_logrank_test(followed["duration_hours"], followed["clinician_role"], followed["relapsed"]).p_value
    assert roles["in_logrank"].all() and close(roles["logrank_p"][0], float(reference))

    # Only one role reaches the minimum: nothing to compare, no p-value.
    patients_per_role = followed.group_by("clinician_role").agg(pl.col("patient_key").n_unique()).sort("patient_key")
    (second_most, _), (most, biggest_role) = patients_per_role.select("patient_key", "clinician_role").rows()[-2:]
    assert second_most < most
    strict = relief_comparison(episodes.lazy(), min_cell_patients=most).collect()
    roles = strict.filter(pl.col("factor") == "clinician_role")
    assert roles.filter(pl.col("in_logrank"))["group_value"].to_list() == [biggest_role]
    assert roles["logrank_p"].is_null().all()
