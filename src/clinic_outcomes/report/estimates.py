"""Kaplan-Meier estimates the report needs beside the R4 marts: medians per clinic and period or month, and
each clinic's curves, overall and by condition and aftercare (the marts carry the network's), with
clinic_outcomes.metrics.survival, the module the marts use."""

from __future__ import annotations

from typing import Any

import polars as pl

from clinic_outcomes.metrics.survival import curve_summary, kaplan_meier

def period_medians(episodes: pl.DataFrame) -> dict[tuple, dict[str, Any]]:
    """Kaplan-Meier median relief per (clinic or network, period/month), with the patients behind it.

    The network's estimates, then every clinic's: each group's curve is its own, so estimating them one after
    the other gives the same figures as one call over both (which stacked a network copy of every episode onto
    the clinics' rows: at 10M sessions 1.8 GB at once instead of about half).
    """
    long = episodes.select("clinic_id", "patient_key", "duration_hours", "relapsed", "buckets").explode("buckets")
    long = long.filter(pl.col("buckets").is_not_null()).rename({"buckets": "bucket"})
    result = {}
    for by in (["bucket"], ["clinic_id", "bucket"]):
        scoped = long if len(by) == 1 else long.filter(pl.col("clinic_id").is_not_null())
        medians = curve_summary(kaplan_meier(scoped.lazy(), by), by, {})
        patients = scoped.group_by(by).agg(patients=pl.col("patient_key").n_unique())
        joined = medians.collect().join(patients, on=by, how="left")
        for row in joined.to_dicts():
            result[(row.get("clinic_id"), row["bucket"])] = row
    return result



class ClinicSurvival:
    """Every clinic's Kaplan-Meier curves, by nothing, condition or aftercare (each estimated once), with
    patient-clustered 95% bands (rules.md R4: a patient's episodes are one cluster), as the network's curves in
    marts.relief_curves. The clinic's charts draw them, and marts.report_cells' clinic rows are summarised from
    them (figure_cells.clinic_summaries), so a chart and its table rest on one estimate."""

    def __init__(self, episodes: pl.DataFrame):
        self.episodes = episodes
        self._km_cache: dict[str | None, pl.DataFrame] = {}

    def clinic(self, clinic_id: str, group_column: str | None) -> pl.DataFrame:
        """One clinic's curves per group of `group_column` (None: one curve of all its episodes)."""
        every = self.every_clinic(group_column)
        return every.filter(pl.col("clinic_id") == clinic_id).drop("clinic_id") if every.height else every

    def every_clinic(self, group_column: str | None) -> pl.DataFrame:
        """Kaplan-Meier of every clinic at once: clinic_id, the group column (`group` = 'all' for None), hours,
        at_risk, events, censored, survival, ci_low, ci_high (curves are estimated per group, so each clinic's
        are its own)."""
        if group_column not in self._km_cache:
            frame = self.episodes if group_column else self.episodes.with_columns(group=pl.lit("all"))
            by = ["clinic_id", group_column or "group"]
            if frame.height:
                curves = kaplan_meier(frame.lazy(), by, cluster="patient_key").collect()
            else:
                curves = pl.DataFrame()
            self._km_cache[group_column] = curves
        return self._km_cache[group_column]
