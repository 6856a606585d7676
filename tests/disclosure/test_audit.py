"""audit: the attacker's intervals, on the published examples and against brute force.

Mutants tried (edited into attack.py / suppression.py, this module run, reverted; 2026-12-07):
- the reach rule dropped (only high - low < 1 fails): test_handbook_interval_example fails.
- `<=` for `<` in the width rule: test_a_width_of_exactly_one_is_enough fails (the brute-force test
  alone did not kill it).
- bounds not rounded inwards for integer tables: test_integer_tables_round_bounds_inwards fails (two-way
  tables have integer LP vertices, so brute force on them cannot see it).
- known cells not fixed for an insider: test_known_cells_are_fixed fails.
"""

from __future__ import annotations

import numpy as np
from disclosure_tables import TOTAL, network, two_way
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clinic_outcomes.disclosure import Cell, Equation, audit


def handbook_table():
    """The SDC handbook's feasibility-interval example (Geurts 1992): the four inner cells of rows 1 and
    2 hidden, row 3 and every margin shown. The true values are ours; the bounds do not depend on them."""
    return two_way("h", [[4, 3], [2, 1], [3, 3]], [[20, 20], [20, 20], [20, 20]])


HANDBOOK_HIDDEN = [("h", "r0", "c0"), ("h", "r0", "c1"), ("h", "r1", "c0"), ("h", "r1", "c1")]


def test_handbook_interval_example():
    cells, equations = handbook_table()
    pattern = dict.fromkeys(HANDBOOK_HIDDEN, "primary")
    # X11 in [3, 6]: never exact, but a primary cell provably under 11 in a range of four values.
    assert audit(cells, equations, pattern, 11) == [
        (("h", "r0", "c0"), 3.0, 6.0),
        (("h", "r0", "c1"), 1.0, 4.0),
        (("h", "r1", "c0"), 0.0, 3.0),
        (("h", "r1", "c1"), 0.0, 3.0),
    ]


def test_complementary_cells_need_only_width():
    # The same pattern with the cells complementary: no exact value, so nothing fails ...
    cells, equations = handbook_table()
    assert audit(cells, equations, dict.fromkeys(HANDBOOK_HIDDEN, "complementary"), 11) == []
    # ... as primaries they fail when their maximum is under the minimum cell: all four at 7 ...
    assert [k for k, _, _ in audit(cells, equations, dict.fromkeys(HANDBOOK_HIDDEN, "primary"), 7)] == [
        ("h", "r0", "c0"),
        ("h", "r0", "c1"),
        ("h", "r1", "c0"),
        ("h", "r1", "c1"),
    ]
    # ... only those reaching 3 at a minimum cell of 4.
    assert audit(cells, equations, dict.fromkeys(HANDBOOK_HIDDEN, "primary"), 4) == [
        (("h", "r1", "c0"), 0.0, 3.0),
        (("h", "r1", "c1"), 0.0, 3.0),
    ]


def test_single_hidden_cell_in_a_row_is_exact():
    cells, equations = two_way("t", [[5, 30], [25, 40]])
    assert audit(cells, equations, {("t", "r0", "c0"): "primary"}, 11) == [(("t", "r0", "c0"), 5.0, 5.0)]


def test_hidden_grand_total_leaves_the_attacker_unbounded():
    # Everything hidden: no equation bounds anything, so nothing fails (no "x <= grand total").
    cells, equations = two_way("t", [[5, 3], [2, 4]])
    assert audit(cells, equations, {c.key: "primary" for c in cells}, 11) == []


def test_known_cells_are_fixed():
    cells = [Cell("all", 25, 25), Cell("a", 5, 5), Cell("b", 20, 20)]
    equations = [Equation("all", ("a", "b"))]
    pattern = {"a": "primary", "b": "complementary"}
    assert audit(cells, equations, pattern, 11) == []
    assert audit(cells, equations, pattern, 11, known=["b"]) == [("a", 5.0, 5.0)]


def test_non_integer_figures_are_not_rounded():
    cells = [Cell("all", 7.5, 30), Cell("a", 2.25, 5), Cell("b", 5.25, 25)]
    equations = [Equation("all", ("a", "b"))]
    # a is in [0, 7.5] (a primary under 11: fails); b in [0, 7.5] is wide enough for a complementary cell.
    assert audit(cells, equations, {"a": "primary", "b": "complementary"}, 11) == [("a", 0.0, 7.5)]


def test_negative_figures_have_no_lower_bound():
    # A sum of pain changes can be negative: the attacker cannot assume x >= 0.
    cells = [Cell("all", 4, 30), Cell("a", -3, 5), Cell("b", 7, 25)]
    equations = [Equation("all", ("a", "b"))]
    assert audit(cells, equations, {"a": "primary", "b": "complementary"}, 11) == []


def test_a_width_of_exactly_one_is_enough():
    # a is 0 or 1: not derivable, and a complementary cell needs nothing more.
    cells = [Cell("t", 1, 30), Cell("a", 1, 30), Cell("b", 0, 0)]
    pattern = {"a": "complementary", "b": "complementary"}
    assert audit(cells, [Equation("t", ("a", "b"))], pattern, 11) == []


def test_integer_tables_round_bounds_inwards():
    # Three clinics and their network (a three-way table): here the LP's maximum of k0|r1|c1 is 4.5,
    # which no integer completion reaches; the attacker who knows counts are whole reads 4.
    clinics = {
        "k0": [[3, 3, 1], [3, 0, 2], [2, 4, 3]],
        "k1": [[3, 2, 0], [3, 4, 3], [0, 2, 3]],
        "k2": [[4, 4, 3], [1, 1, 2], [2, 3, 4]],
    }
    cells, equations, _ = network(clinics)
    shown = {
        ("k0", "r0", "c2"), ("k0", "r1", "c2"), ("k0", "r2", "total"), ("k0", "total", "c0"),
        ("k0", "total", "c1"), ("k0", "total", "c2"), ("k1", "r0", "total"), ("k1", "r2", "c2"),
        ("k1", "r2", "total"), ("k1", "total", "total"), ("k2", "r0", "c0"), ("k2", "r1", "c1"),
        ("k2", "r2", "c2"), ("k2", "total", "c2"), ("k2", "total", "total"), ("all", "r0", "c0"),
        ("all", "r0", "c1"), ("all", "r1", "total"), ("all", "r2", "c1"), ("all", "total", "total"),
    }  # fmt: skip
    pattern = {c.key: "complementary" for c in cells if c.key not in shown}
    pattern[("k0", "r1", "c1")] = "primary"
    assert (("k0", "r1", "c1"), 0.0, 4.0) in audit(cells, equations, pattern, 11)


# Brute force: every integer completion of a small two-way table, against the LP auditor.

CAP = 25  # above any grand total the strategy makes (2 x 3 cells of at most 4): reaching it = unbounded


def brute_intervals(cells, equations, hidden):
    """Integer min and max of every hidden cell over the completions with each hidden inner cell in
    0..CAP that reproduce every shown cell (margins follow from the inner cells)."""
    values = {c.key: c.value for c in cells}
    inner = [k for k in values if TOTAL not in k[1:]]
    free = [k for k in inner if k in hidden]
    grids = np.indices([CAP + 1] * len(free)).reshape(len(free), -1) if free else np.zeros((0, 1), int)
    completion = {k: np.full(grids.shape[1], values[k]) for k in inner}
    completion.update({k: grids[i] for i, k in enumerate(free)})
    pending = list(equations)
    while pending:  # margins of margins come after their members
        eq = pending.pop(0)
        if all(m in completion for m in eq.members):
            completion[eq.total] = sum(completion[m] for m in eq.members)
        else:
            pending.append(eq)
    feasible = np.ones(grids.shape[1], dtype=bool)
    for k, v in completion.items():
        if k not in hidden:
            feasible &= v == values[k]
    return {k: (int(completion[k][feasible].min()), int(completion[k][feasible].max())) for k in hidden}


@st.composite
def patterns(draw):
    n_rows, n_cols = draw(st.sampled_from([(2, 2), (2, 3), (3, 2)]))
    inner = [[draw(st.integers(0, 4)) for _ in range(n_cols)] for _ in range(n_rows)]
    cells, equations = two_way("t", inner, [[20] * n_cols] * n_rows)
    keys = [c.key for c in cells]
    inner_keys = [k for k in keys if TOTAL not in k[1:]]
    hidden_inner = draw(st.lists(st.sampled_from(inner_keys), unique=True, max_size=4))
    hidden_margins = draw(st.lists(st.sampled_from([k for k in keys if k not in inner_keys]), unique=True))
    pattern = {k: draw(st.sampled_from(["primary", "complementary"])) for k in hidden_inner + hidden_margins}
    return cells, equations, pattern, draw(st.integers(2, 6))


@settings(derandomize=True, max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(patterns())
def test_audit_equals_brute_force(case):
    cells, equations, pattern, min_cell = case
    exact = brute_intervals(cells, equations, set(pattern))
    expected = []
    for key, (low, high) in exact.items():
        unbounded = high >= CAP
        fails = (high - low < 1) or (pattern[key] == "primary" and high < min_cell and not unbounded)
        if fails:
            expected.append((key, float(low), float(high)))
    found = audit(cells, equations, pattern, min_cell)
    assert sorted(found) == sorted(expected)


def test_brute_force_helper_sees_the_handbook_bounds():
    cells, equations = handbook_table()
    assert brute_intervals(cells, equations, set(HANDBOOK_HIDDEN))[("h", "r0", "c0")] == (3, 6)

