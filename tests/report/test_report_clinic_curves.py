"""A clinic's relief curves (the charts of its report) and its relief table (marts.report_cells) rest on one
Kaplan-Meier estimate with patient-clustered intervals (rules.md R4: a patient's episodes are one cluster).

- A clinic's curves are the ones metrics.relief.relief_curves gives over its episodes alone (the estimator of
  the network's marts.relief_curves), bands included: patient-clustered, not Greenwood's.
- The clinic rows of the relief table, summarised from those curves (figure_cells.clinic_summaries with the
  report's ClinicSurvival), equal the rows estimated again from the relief episodes, which is how they were
  made before: the curves are reused, not changed. The report numbers patients (integers) where the episodes
  carry their 64-character keys, so the figures agree to rounding.

Mutants tried (each applied, this module run, reverted; every one killed):
- ClinicSurvival.every_clinic without `cluster="patient_key"` (Greenwood's bands): killed by
  test_a_clinic_s_curves_are_its_own_relief_curves_with_patient_clustered_bands.
- clinic_curves keyed by the clinic id instead of its key (the clinic "all" then takes no curve): killed by
  test_the_clinic_table_summarised_from_the_chart_curves_equals_a_new_estimate.
- clinic_curves' groups of a null condition left null instead of 'not_recorded': killed by the same test.
"""

from __future__ import annotations

import random

import polars as pl
import pytest

from clinic_outcomes.metrics.frames import NOT_RECORDED
from clinic_outcomes.metrics.relief import relief_curves
from clinic_outcomes.report.cells import clinic_key
from clinic_outcomes.report.estimates import ClinicSurvival
from clinic_outcomes.report.figure_cells import clinic_summaries

CLINICS = ["north", "all", "clinic:x"]  # 'all' and 'clinic:' are escaped in the cells' clinic keys


def _relief_episodes(seed: int, rows: int) -> pl.DataFrame:
    """figure_cells.relief_episodes' frame: every episode, some without follow-up, patients by their keys."""
    rng = random.Random(seed)
    patients = [f"{rng.getrandbits(256):064x}" for _ in range(rows // 4)]
    frame = pl.DataFrame(
        {
            "clinic_id": [rng.choice(CLINICS) for _ in range(rows)],
            "condition": [rng.choice(["neck_pain", "low_back_pain", None]) for _ in range(rows)],
            "aftercare": [rng.choice(["ice", "none", None]) for _ in range(rows)],
            "clinician_role": [rng.choice(["physical_therapist", "nurse"]) for _ in range(rows)],
            "patient_key": [rng.choice(patients) for _ in range(rows)],
            "followed_up": [rng.random() < 0.85 for _ in range(rows)],
            "relapsed": [rng.random() < 0.6 for _ in range(rows)],
            # ties on purpose: durations on a half-hour grid
            "duration_hours": [rng.randrange(0, 600) / 2 for _ in range(rows)],
        }
    )
    return frame.with_columns(
        duration_hours=pl.when(pl.col("followed_up")).then(pl.col("duration_hours")),
        relapsed=pl.col("relapsed") & pl.col("followed_up"),
        clinic_key=pl.col("clinic_id").map_elements(clinic_key, return_dtype=pl.String),
    )


def _report_episodes(relief: pl.DataFrame) -> pl.DataFrame:
    """sql/report/episodes.sql's frame: the followed-up episodes, patients as numbers."""
    numbers = {key: n for n, key in enumerate(sorted(set(relief["patient_key"])), start=1)}
    return relief.filter(pl.col("followed_up")).select(
        "clinic_id", "condition", "aftercare", "duration_hours", "relapsed",
        patient_key=pl.col("patient_key").replace_strict(numbers, return_dtype=pl.UInt32),
    )


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_clinic_s_curves_are_its_own_relief_curves_with_patient_clustered_bands(seed):
    relief = _relief_episodes(seed, 600)
    survival = ClinicSurvival(_report_episodes(relief))
    for clinic in CLINICS:
        for column in ("condition", "aftercare"):
            expected = relief_curves(relief.filter(pl.col("clinic_id") == clinic).lazy(), {column: column}).collect()
            expected = expected.with_columns(
                group_value=pl.when(pl.col("group_value") != NOT_RECORDED).then(pl.col("group_value"))
            ).sort("group_value", "hours", nulls_last=True)
            found = survival.clinic(clinic, column).sort(column, "hours", nulls_last=True)
            assert found[column].to_list() == expected["group_value"].to_list()
            for measure in ("hours", "at_risk", "events", "censored"):
                assert found[measure].to_list() == expected[measure].to_list(), (clinic, column, measure)
            for measure in ("survival", "ci_low", "ci_high"):
                assert found[measure].to_list() == pytest.approx(expected[measure].to_list(), abs=1e-12, nan_ok=True)


@pytest.mark.parametrize("seed", [4, 5])
def test_the_clinic_table_summarised_from_the_chart_curves_equals_a_new_estimate(seed):
    relief = _relief_episodes(seed, 800)
    estimated = clinic_summaries(relief, 5)
    reused = clinic_summaries(relief, 5, ClinicSurvival(_report_episodes(relief)))
    assert set(reused) == set(estimated)
    assert {key[0] for key in reused} == {"north", "clinic:all", "clinic:clinic:x"}
    assert any(row["median_hours"] is not None for row in reused.values())
    for key, row in estimated.items():
        assert reused[key].keys() == row.keys()
        for measure, value in row.items():
            if isinstance(value, float):
                assert reused[key][measure] == pytest.approx(value, abs=1e-12), (key, measure)
            else:
                assert reused[key][measure] == value, (key, measure)
