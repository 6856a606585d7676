"""protect_grid (hypercube method, disclosure/hypercube.py): every pattern it returns is checked by two
attackers that do not share its reasoning: suppression.audit (LP feasibility intervals) and a MILP attacker
that uses integrality (test_properties.integer_intervals), for the outsider and every clinic's manager.

Mutants tried (each edited into hypercube.py, this module run, then reverted; 2026-12-07, /tmp/mutants.sh):
- a corner's sign never flipped (+1 on two inner levels, directions that break the equations): killed by
  test_grid_is_safe_for_everyone, ..._against_integer_attackers, test_grid_rarely_gives_up,
  test_primary_needs_room_to_reach_the_minimum, test_zeros_are_hidden_only_when_cheapest.
- the primary condition `v + up >= min_cell` dropped: killed by the same five.
- the insider loop dropped (only the outsider's cube): killed by test_two_clinics_need_two_partners and the
  property tests.
- `<=` for `<` in the primary rule: killed by test_primary_rule_boundary_on_the_grid and
  test_grid_is_safe_for_everyone.
- `up + down >= 0` for `>= 1` (a derivable cell accepted): killed by test_grid_is_safe_for_everyone and
  test_grid_rarely_gives_up.
- cost without the `+ 1` per new cell (zeros free): SURVIVED. It changes which safe pattern is chosen, not
  its safety; no test here pins the choice between equal-cost cubes.
- (not run) unpublished cells taken as shown: it would hide more, not less; the MILP test treats them as hidden.
"""

from __future__ import annotations

import numpy as np
import pytest
from disclosure_tables import TOTAL, network, two_way
from hypothesis import HealthCheck, Phase, given, settings
from test_properties import attackers, integer_intervals, networks

from clinic_outcomes.disclosure import Cell, DisclosureError, audit
from clinic_outcomes.disclosure.hypercube import protect_grid

MIN_CELL = 11


def grid_coordinates(cells):
    """Keys (clinic, row, col) of disclosure_tables -> one table, levels with None for 'all' and 'total'."""
    out = {}
    for c in cells:
        clinic, row, col = c.key
        out[c.key] = ("t", (None if clinic == "all" else clinic, None if row == TOTAL else row,
                            None if col == TOTAL else col))
    return out


def two_way_coordinates(cells):
    return {c.key: (c.key[0], (None if c.key[1] == TOTAL else c.key[1], None if c.key[2] == TOTAL else c.key[2]))
            for c in cells}


def assert_safe(cells, equations, groups, marks):
    assert {k for k, m in marks.items() if m == "primary"} == {c.key for c in cells if 0 < c.patients < MIN_CELL}
    for known in attackers(groups):
        assert audit(cells, equations, marks, MIN_CELL, known=known) == [], known


# No shrinking (NO_SHRINK): a failing network is reported as drawn; shrinking re-runs the LP audit for minutes.
NO_SHRINK = [Phase.explicit, Phase.reuse, Phase.generate]


@settings(derandomize=True, max_examples=25, deadline=None, phases=NO_SHRINK,
          suppress_health_check=[HealthCheck.too_slow])
@given(networks())
def test_grid_is_safe_for_everyone(case):
    cells, equations, groups = case
    try:
        marks = protect_grid(cells, grid_coordinates(cells), MIN_CELL, groups)
    except DisclosureError:
        return  # the caller falls back to suppression.protect; test_grid_rarely_gives_up bounds how often
    assert_safe(cells, equations, groups, marks)


@settings(derandomize=True, max_examples=8, deadline=None, phases=NO_SHRINK,
          suppress_health_check=[HealthCheck.too_slow])
@given(networks(max_clinics=3, max_rows=3, max_cols=3))
def test_grid_is_safe_against_integer_attackers(case):
    cells, equations, groups = case
    try:
        marks = protect_grid(cells, grid_coordinates(cells), MIN_CELL, groups)
    except DisclosureError:
        return
    for known in attackers(groups):
        for key, (low, high) in integer_intervals(cells, equations, marks, known).items():
            assert high - low >= 1, (key, known)  # a width under 1 is a disclosure (counts are integers)
            if marks[key] == "primary":
                assert high >= MIN_CELL, (key, known)


def test_grid_rarely_gives_up():
    rng = np.random.default_rng(7)
    gave_up = 0
    for _ in range(30):
        clinics = {f"k{k}": rng.choice([0, 3, 7, 15, 30], size=(4, 3)).tolist() for k in range(4)}
        cells, equations, groups = network(clinics)
        try:
            assert_safe(cells, equations, groups, protect_grid(cells, grid_coordinates(cells), MIN_CELL, groups))
        except DisclosureError:
            gave_up += 1
    assert gave_up <= 3


def test_primary_rule_boundary_on_the_grid():
    cells, _ = two_way("t", [[10, 40], [11, 40]], [[10, 40], [11, 40]])
    marks = protect_grid(cells, two_way_coordinates(cells), MIN_CELL)
    assert marks[("t", "r0", "c0")] == "primary"
    assert marks[("t", "r1", "c0")] != "primary"


def test_primary_needs_room_to_reach_the_minimum():
    # r0|c0 (3 patients) can swap only with r0|c1 and r1|c0 = 2 and r1|c1: the 2s bound its rise to 5 < 11,
    # so the cube must reach the larger cells: the pattern hides r0|c2 or r2|c0 rather than the 2s alone.
    inner = [[3, 2, 40], [2, 50, 40], [40, 40, 40]]
    cells, equations = two_way("t", inner, [[3, 12, 40], [12, 50, 40], [40, 40, 40]])
    marks = protect_grid(cells, two_way_coordinates(cells), MIN_CELL)
    assert audit(cells, equations, marks, MIN_CELL) == []
    assert {("t", "r0", "c1"), ("t", "r1", "c0")} - {k for k, m in marks.items() if m} != set() or any(
        marks[k] for k in [("t", "r0", "c2"), ("t", "r2", "c0")])


def test_two_clinics_need_two_partners():
    # Two clinics: a manager subtracts her cell from the network's. Each hidden clinic cell needs a
    # cube that avoids the other clinic, i.e. one through the network's table.
    clinics = {"k0": [[5, 30], [30, 30]], "k1": [[30, 30], [30, 30]]}
    cells, equations, groups = network(clinics)
    marks = protect_grid(cells, grid_coordinates(cells), MIN_CELL, groups)
    assert_safe(cells, equations, groups, marks)
    assert any(marks[k] for k in marks if k[0] == "all")


def test_zeros_are_hidden_only_when_cheapest():
    cells, equations = two_way("t", [[5, 0, 40], [30, 0, 40], [30, 40, 40]], [[5, 0, 40], [30, 0, 40], [30, 40, 40]])
    marks = protect_grid(cells, two_way_coordinates(cells), MIN_CELL)
    assert audit(cells, equations, marks, MIN_CELL) == []
    # a cube through the zeros cannot lift r0|c0 to 11 (the -1 corner r0|c1 is 0): they stay shown
    assert marks[("t", "r0", "c1")] is None and marks[("t", "r1", "c1")] is None


def test_cells_in_no_equation_are_only_primary():
    cells = [Cell("a", 4, 4), Cell("b", 40, 40)]
    marks = protect_grid(cells, {"a": ("x", (None,)), "b": ("y", (None,))}, MIN_CELL)
    assert marks == {"a": "primary", "b": None}


@pytest.mark.parametrize(
    "cells, coordinates, message",
    [
        ([Cell("a", 1, 1), Cell("a", 2, 2)], {"a": ("t", (None,))}, "duplicate"),
        ([Cell("a", 3, 0)], {"a": ("t", (None,))}, "0 patients"),
        ([Cell("a", 3, 3), Cell("b", 1, 1)], {"a": ("t", (None,)), "b": ("t", ("x",))}, "not the sum"),
        ([Cell("b", 1, 1)], {"b": ("t", ("x",))}, "no total"),
    ],
)
def test_bad_input_is_refused(cells, coordinates, message):
    with pytest.raises(ValueError, match=message):
        protect_grid(cells, coordinates, MIN_CELL)


def _margins_only(clinics):
    """A network whose inner cells (clinic x row x column) no report shows: only each clinic's and the
    network's row and column margins are published (as the relief table shows conditions and advice)."""
    cells, equations, groups = network(clinics)
    hidden = {c.key for c in cells if TOTAL not in c.key[1:]}
    return cells, equations, groups, hidden


@settings(derandomize=True, max_examples=6, deadline=None, phases=NO_SHRINK,
          suppress_health_check=[HealthCheck.too_slow])
@given(networks(max_clinics=3, max_rows=3, max_cols=3))
def test_unpublished_cells_protect_the_margins_against_integer_attackers(case):
    cells, equations, groups = case
    unpublished = {c.key for c in cells if TOTAL not in c.key[1:]}
    try:
        marks = protect_grid(cells, grid_coordinates(cells), MIN_CELL, groups, unpublished=unpublished)
    except DisclosureError:
        return
    assert set(marks) == {c.key for c in cells} - unpublished  # unpublished cells are not in the result
    full = {**marks, **{k: "complementary" for k in unpublished}}
    for known in attackers(groups):
        for key, (low, high) in integer_intervals(cells, equations, full, known).items():
            if key in unpublished:
                continue
            assert high - low >= 1, (key, known)
            if marks[key] == "primary":
                assert high >= MIN_CELL, (key, known)


def test_unpublished_cells_need_no_proof():
    # Every inner cell is under the minimum but unpublished: nothing published is small, so nothing is hidden.
    cells, _, groups, unpublished = _margins_only({"k0": [[3, 4], [5, 6]], "k1": [[6, 5], [4, 3]]})
    cells = [c if c.key in unpublished else Cell(c.key, c.value, max(c.patients, MIN_CELL)) for c in cells]
    marks = protect_grid(cells, grid_coordinates(cells), MIN_CELL, groups, unpublished=unpublished)
    assert set(marks.values()) == {None}
