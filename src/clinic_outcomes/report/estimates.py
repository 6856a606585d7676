"""Kaplan-Meier estimates the report needs beside the R4 marts: medians per clinic and period or month, and
each clinic's curves by condition and aftercare (the marts carry the network's), with
clinic_outcomes.metrics.survival, the module the marts use."""

from __future__ import annotations

from typing import Any

import polars as pl

from clinic_outcomes.metrics.survival import curve_summary, kaplan_meier
from clinic_outcomes.report.wording import RELIEF_AT_HOURS, label_of

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
    """Every clinic's Kaplan-Meier curves and summaries, by nothing, condition or aftercare (estimated once)."""

    def __init__(self, episodes: pl.DataFrame):
        self.episodes = episodes
        self._km_cache: dict[str | None, dict[str, pl.DataFrame]] = {}

    def clinic(self, clinic_id: str, group_column: str | None) -> dict[str, Any]:
        """One clinic's Kaplan-Meier curves, summary rows and patients per group (None: all its episodes)."""
        every = self.every_clinic(group_column)
        by = [group_column or "group"]

        def mine(frame: pl.DataFrame) -> pl.DataFrame:
            return frame.filter(pl.col("clinic_id") == clinic_id).drop("clinic_id") if frame.height else frame

        curves, summary, counts = mine(every["curves"]), mine(every["summary"]), mine(every["counts"])
        rows = []
        if summary.height:
            joined = summary.join(counts, on=by, how="left", nulls_equal=True)
            for row in joined.sort(by, nulls_last=True).to_dicts():
                label = "All needling sessions" if not group_column else label_of(row[group_column])
                rows.append({**row, "label": label})
        patients = {row[by[0]]: row["patients"] for row in counts.to_dicts()}
        return {"curves": curves, "patients": patients, "rows": rows}

    def every_clinic(self, group_column: str | None) -> dict[str, pl.DataFrame]:
        """Kaplan-Meier of every clinic at once (curves are estimated per group, so each clinic's are its own)."""
        if group_column not in self._km_cache:
            frame = self.episodes if group_column else self.episodes.with_columns(group=pl.lit("all"))
            by = ["clinic_id", group_column or "group"]
            if frame.height:
                curves = kaplan_meier(frame.lazy(), by).collect()
                summary = curve_summary(curves.lazy(), by, RELIEF_AT_HOURS).collect()
            else:
                curves = summary = pl.DataFrame()
            counts = frame.group_by(by).agg(episodes=pl.len(), patients=pl.col("patient_key").n_unique(),
                                            relapses=pl.col("relapsed").sum())
            self._km_cache[group_column] = {"curves": curves, "summary": summary, "counts": counts}
        return self._km_cache[group_column]
