"""Property tests: protect makes random networks of clinics safe for every attacker.

A network is 2-5 clinics, each a table of 2-5 rows x 2-4 columns with row and column margins, and the
network's table is the clinics' sum, cell by cell (margins included). Values are people counts (patients
= value) drawn so that about a third are under the minimum cell.

The integer test asks a MILP (exact integer bounds) rather than the LP auditor: in a three-way table
the LP can be wider than any integer completion (test_audit.test_integer_tables_round_bounds_inwards).

Mutants tried here (edited into suppression.py, test_protect_is_safe_for_everyone run, reverted): the
insider pass dropped, and `<=` for `<` in the primary rule: each makes it fail. More in test_suppression.py
and test_audit.py.
"""

from __future__ import annotations

import numpy as np
from disclosure_tables import assert_no_published_sum, network
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.optimize import Bounds, LinearConstraint, milp

from clinic_outcomes.disclosure import audit, protect

MIN_CELL = 11
values = st.one_of(st.just(0), st.integers(1, 10), st.integers(11, 60))


@st.composite
def networks(draw, max_clinics=5, max_rows=5, max_cols=4):
    n_clinics = draw(st.integers(2, max_clinics))
    n_rows, n_cols = draw(st.integers(2, max_rows)), draw(st.integers(2, max_cols))
    return network(
        {f"k{k}": [[draw(values) for _ in range(n_cols)] for _ in range(n_rows)] for k in range(n_clinics)}
    )


def attackers(groups):
    """The outsider (knows nothing) and each clinic's manager (knows her clinic's cells)."""
    yield ()
    for clinic in sorted(set(groups.values())):
        yield [k for k, g in groups.items() if g == clinic]


@settings(derandomize=True, max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(networks())
def test_protect_is_safe_for_everyone(case):
    cells, equations, groups = case
    marks = protect(cells, equations, MIN_CELL, groups)
    assert {k for k, m in marks.items() if m == "primary"} == {c.key for c in cells if 0 < c.patients < MIN_CELL}
    assert_no_published_sum(cells, equations, marks, MIN_CELL)
    for known in attackers(groups):
        assert audit(cells, equations, marks, MIN_CELL, known=known) == []


def integer_intervals(cells, equations, marks, known):
    """Exact integer bounds of each hidden cell (MILP, HiGHS): the attacker who also knows completions
    are whole numbers. The LP auditor rounds its bounds; in a three-way table that can still be wider."""
    keys = [c.key for c in cells]
    value = {c.key: c.value for c in cells}
    hidden = [k for k in keys if marks[k] and k not in set(known)]
    position = {k: j for j, k in enumerate(hidden)}
    rows, rhs = [], []
    for eq in equations:
        row = np.zeros(len(hidden))
        b = 0.0
        for k, sign in ((eq.total, -1.0), *((m, 1.0) for m in eq.members)):
            if k in position:
                row[position[k]] += sign
            else:
                b -= sign * value[k]
        if row.any():
            rows.append(row)
            rhs.append(b)
    if not hidden:
        return {}
    constraint = LinearConstraint(np.array(rows), rhs, rhs)
    cap = 10 * sum(abs(v) for v in value.values())
    out = {}
    for k, j in position.items():
        c = np.zeros(len(hidden))
        c[j] = 1.0
        bounds = []
        for sign in (1.0, -1.0):
            result = milp(sign * c, constraints=constraint, integrality=np.ones(len(hidden)), bounds=Bounds(0, cap))
            assert result.status == 0
            bounds.append(round(result.x[j]))
        out[k] = tuple(bounds)
    return out


@settings(derandomize=True, max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(networks(max_clinics=3, max_rows=3, max_cols=3))
def test_protect_is_safe_against_integer_attackers(case):
    cells, equations, groups = case
    marks = protect(cells, equations, MIN_CELL, groups)
    for known in attackers(groups):
        for key, (low, high) in integer_intervals(cells, equations, marks, known).items():
            assert high - low >= 1, (key, known)
            if marks[key] == "primary":
                assert high >= MIN_CELL, (key, known)
