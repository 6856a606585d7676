"""The report's period medians: the network's and the clinics' Kaplan-Meier estimates, made one scope at a time,
equal one estimate over both scopes stacked (how they were made before, at twice the memory)."""

from __future__ import annotations

import random

import polars as pl

from clinic_outcomes.report.estimates import period_medians
from clinic_outcomes.metrics.survival import curve_summary, kaplan_meier


def _stacked(episodes: pl.DataFrame) -> dict[tuple, tuple]:
    long = episodes.select("clinic_id", "patient_key", "duration_hours", "relapsed", "buckets").explode("buckets")
    long = long.filter(pl.col("buckets").is_not_null()).rename({"buckets": "bucket"})
    both = pl.concat([long.with_columns(clinic_id=pl.lit(None, dtype=pl.String)), long]).with_columns(
        scope=pl.col("clinic_id").fill_null("\x00network")
    )
    medians = curve_summary(kaplan_meier(both.lazy(), ["scope", "bucket"]), ["scope", "bucket"], {}).collect()
    patients = both.group_by("scope", "bucket").agg(patients=pl.col("patient_key").n_unique())
    return {
        (None if row["scope"] == "\x00network" else row["scope"], row["bucket"]):
            (row["median_hours"], row["median_ci_low"], row["median_ci_high"], row["patients"])
        for row in medians.join(patients, on=["scope", "bucket"], how="left").to_dicts()
    }


def _episodes(seed: int, rows: int) -> pl.DataFrame:
    rng = random.Random(seed)
    buckets = [["2026-10"], ["2026-11", "current"], ["2026-10", "previous"], [], ["2026-11"]]
    return pl.DataFrame(
        {
            "clinic_id": [rng.choice(["a", "b", "c"]) for _ in range(rows)],
            "condition": [rng.choice(["neck_pain", None]) for _ in range(rows)],
            "aftercare": [rng.choice(["ice", "heat", None]) for _ in range(rows)],
            # ties on purpose: durations on a half-hour grid
            "duration_hours": [rng.randrange(0, 400) / 2 for _ in range(rows)],
            "relapsed": [rng.random() < 0.6 for _ in range(rows)],
            "patient_key": [rng.randrange(rows // 3 + 1) for _ in range(rows)],
            "buckets": [rng.choice(buckets) for _ in range(rows)],
        },
        schema_overrides={"patient_key": pl.UInt32},
    )


def test_period_medians_one_scope_at_a_time_equal_the_stacked_estimate():
    for seed, rows in ((1, 40), (2, 400), (3, 5000)):
        episodes = _episodes(seed, rows)
        medians = period_medians(episodes)
        got = {key: (r["median_hours"], r["median_ci_low"], r["median_ci_high"], r["patients"]) for key, r in medians.items()}
        assert got == _stacked(episodes), seed
        assert {clinic for clinic, _ in got} == {None, "a", "b", "c"}


def test_period_medians_of_no_episodes():
    assert period_medians(_episodes(4, 0)) == {}
