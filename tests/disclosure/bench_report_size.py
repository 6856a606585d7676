"""Cost of protect on a report-sized network (not a test: run it by hand).

    uv run python tests/disclosure/bench_report_size.py [clinics] [periods] [rows] [cols] [method] [check]

method: `grid` (hypercube.protect_grid, the report's; default) or `lp` (suppression.protect);
check: 1 (default) runs the LP audit for the outsider and every manager afterwards, 0 skips it.

Defaults: 40 clinics x 6 rows x 6 columns with margins, 3 periods (independent: periods share no
equation), patients = the counts, drawn from a seeded Poisson model of clinics of uneven size.
Prints cells, primary and complementary counts, LPs solved and seconds, per period and in total.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from disclosure_tables import network  # noqa: E402

from clinic_outcomes.disclosure import Cell, Equation, audit, protect  # noqa: E402
from clinic_outcomes.disclosure.hypercube import protect_grid  # noqa: E402


def coordinates(cells):
    """(period, clinic, row, col) keys -> table per period, None for the totals ('all', 'total')."""
    return {
        c.key: (c.key[0], tuple(None if level in ("all", "total") else level for level in c.key[1:]))
        for c in cells
    }


def report_network(rng, n_clinics, n_rows, n_cols, period):
    size = rng.lognormal(mean=0.0, sigma=0.8, size=n_clinics)
    weights = rng.dirichlet(np.ones(n_rows * n_cols)).reshape(n_rows, n_cols) * n_rows * n_cols
    clinics = {
        f"clinic{k:02d}": rng.poisson(12.0 * size[k] * weights).tolist() for k in range(n_clinics)
    }
    cells, equations, groups = network(clinics)

    def tag(key):
        return (period, *key)

    cells = [Cell(tag(c.key), c.value, c.patients) for c in cells]
    equations = [Equation(tag(e.total), tuple(tag(m) for m in e.members)) for e in equations]
    groups = {tag(k): g for k, g in groups.items()}
    return cells, equations, groups


def main(n_clinics=40, n_periods=3, n_rows=6, n_cols=6, method="grid", check=1):
    rng = np.random.default_rng(20261207)
    all_cells, all_equations, all_groups = [], [], {}
    for p in range(n_periods):
        cells, equations, groups = report_network(rng, n_clinics, n_rows, n_cols, f"p{p}")
        all_cells += cells
        all_equations += equations
        all_groups.update(groups)
    start = time.perf_counter()
    if method == "grid":
        marks = protect_grid(all_cells, coordinates(all_cells), 11, all_groups)
    else:
        marks = protect(all_cells, all_equations, 11, all_groups)
    elapsed = time.perf_counter() - start
    primary = sum(m == "primary" for m in marks.values())
    complementary = sum(m == "complementary" for m in marks.values())
    print(
        f"{n_clinics} clinics x {n_rows}x{n_cols} x {n_periods} periods: {len(all_cells)} cells, "
        f"{primary} primary, {complementary} complementary, {method} {elapsed:.2f} s",
        flush=True,
    )
    if not check:
        return
    start = time.perf_counter()
    failures = audit(all_cells, all_equations, marks, 11)
    for clinic in sorted(set(all_groups.values())):
        known = [k for k, g in all_groups.items() if g == clinic]
        failures += audit(all_cells, all_equations, marks, 11, known=known)
    print(f"independent audit, outsider and {n_clinics} managers: {time.perf_counter() - start:.1f} s, "
          f"{len(failures)} failures", flush=True)


if __name__ == "__main__":
    main(*(int(a) if a.isdigit() else a for a in sys.argv[1:]))
