"""Cost of the R8 case-mix fitting alone, on in-memory synthetic rows (not the whole pipeline).

    uv run python benchmarks/casemix_fit.py 1000000 [10000000]

For N sessions: the session model (logistic) on the ~85% of them that could show relief, and the two plan
models on N / 10 plans, each followed by the per-clinic and per-clinician results. Prints seconds and the
process's peak resident memory.
"""

from __future__ import annotations

import resource
import sys
import time

import numpy as np
import polars as pl

from clinic_outcomes.metrics import casemix


def rows(n: int, seed: int, binary: bool) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    patients = max(n // 10, 1)
    patient = rng.integers(0, patients, n)
    clinic = patient % 7
    baseline = rng.integers(2, 11, n).astype(float)
    chronic = rng.random(n) < 0.4
    eta = -0.8 + 0.15 * baseline - 0.9 * chronic + 0.3 * (clinic == 3)
    y = (rng.random(n) < 1 / (1 + np.exp(-eta))).astype(float) if binary else eta * 2 + rng.normal(0, 1.5, n)
    pick = lambda values: pl.Series(values, dtype=pl.String).gather(rng.integers(0, len(values), n))  # noqa: E731
    return pl.DataFrame({
        "row_id": np.arange(n),
        "patient_key": pl.Series(patient).cast(pl.String),
        "clinic_id": pl.Series(clinic).cast(pl.String),
        "clinician_id": pl.Series(patient % 300).cast(pl.String),
        "baseline_pain": baseline,
        "condition": pick(["low_back_pain", "neck_pain", "shoulder_pain", "other", None]),
        "age_band": pick(["18-29", "30-39", "40-49", "50-59", "60-69", "70-79", None]),
        "sex": pick(["female", "male", "other", None]),
        "chronicity": pl.Series(np.where(chronic, "chronic", "acute")),
        "y": y,
    })


def main(sizes: list[int]) -> None:
    for n in sizes:
        for measure, count in (("session_meaningful_relief", int(n * 0.85)), ("plan_achieved_mcid", n // 10),
                               ("plan_change_points", n // 10)):
            frame = rows(count, 1, measure in casemix.BINARY_MEASURES)
            t0 = time.perf_counter()
            frame = casemix.cells_of_rows(frame)  # the nightly run sums rows into cells in DuckDB
            fit = casemix.fit_measure(measure, frame, 11)
            t1 = time.perf_counter()
            units = casemix.unit_results(measure, frame, fit, 11)
            t2 = time.perf_counter()
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
            print(f"{n:>10,} sessions  {measure:<26} rows {count:>10,}  fit {t1 - t0:7.1f} s  "
                  f"units {t2 - t1:6.1f} s  ({units.height} units)  peak RSS {peak:.1f} GiB", flush=True)
            del frame, fit, units


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [1_000_000])
