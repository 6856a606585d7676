"""Builders for the disclosure tests: two-way tables with margins, and networks of clinics."""

from __future__ import annotations

from clinic_outcomes.disclosure import Cell, Equation

TOTAL = "total"


def two_way(name, inner, patients=None, rows=None, cols=None):
    """Cells and equations of a table with row and column margins: keys (name, row, col).

    `inner` is a list of rows of values; `patients` (same shape, default: the values) gives the patients
    behind each inner cell; margins get the sum of the values and, by default, of the patients.
    """
    rows = rows or [f"r{i}" for i in range(len(inner))]
    cols = cols or [f"c{j}" for j in range(len(inner[0]))]
    patients = patients or inner
    grid = {(r, c): (inner[i][j], patients[i][j]) for i, r in enumerate(rows) for j, c in enumerate(cols)}
    for r in rows:
        grid[(r, TOTAL)] = tuple(sum(grid[(r, c)][k] for c in cols) for k in (0, 1))
    for c in [*cols, TOTAL]:
        grid[(TOTAL, c)] = tuple(sum(grid[(r, c)][k] for r in rows) for k in (0, 1))
    cells = [Cell((name, r, c), v, p) for (r, c), (v, p) in grid.items()]
    equations = [Equation((name, r, TOTAL), tuple((name, r, c) for c in cols)) for r in [*rows, TOTAL]]
    equations += [Equation((name, TOTAL, c), tuple((name, r, c) for r in rows)) for c in [*cols, TOTAL]]
    return cells, equations


def network(clinics):
    """Each clinic's table (a dict clinic -> inner values, patients = values), the network table ('all')
    that is their cell-by-cell sum, and the equations linking them. Returns cells, equations, groups."""
    cells, equations, groups = [], [], {}
    summed = None
    for clinic, inner in clinics.items():
        clinic_cells, clinic_equations = two_way(clinic, inner)
        cells += clinic_cells
        equations += clinic_equations
        groups.update({c.key: clinic for c in clinic_cells})
        summed = inner if summed is None else [[a + b for a, b in zip(x, y)] for x, y in zip(summed, inner)]
    network_cells, network_equations = two_way("all", summed)
    cells += network_cells
    equations += network_equations
    for c in network_cells:
        _, r, col = c.key
        equations.append(Equation(c.key, tuple((clinic, r, col) for clinic in clinics)))
    return cells, equations, groups


def hidden_marks(marks):
    """The keys a pattern hides."""
    return {k for k, m in marks.items() if m}


def assert_no_published_sum(cells, equations, marks, min_cell):
    """No shown total whose hidden members add up to 1 .. min_cell - 1 (R7's sum test)."""
    value = {c.key: c.value for c in cells}
    for eq in equations:
        if not marks[eq.total]:
            hidden_sum = sum(value[m] for m in eq.members if marks[m])
            assert not 0 < hidden_sum < min_cell, eq
