"""Complementary suppression for tables with margins, by hypercubes (R7): fast, and safe by construction.

`protect` in suppression.py works on any set of equations and proves each pattern with linear programmes:
right, but about 0.5-2 s per hundred hidden cells through scipy's linprog (96 s at 40 clinics x 6 x 6 x 3
periods). The report's tables have a structure it does not use: each is a grid of up to three dimensions
(clinic, row, column), every dimension with a total level ('all' for the clinics, 'total' for rows and
columns), and every equation is a line of the grid: a total equals the sum of the inner cells of its line.
`protect_grid` uses it.

The certificate. Pick, in each dimension that has equations, the cell's own level a and one other level b.
The 2^m cells on those levels (the corners of a hypercube) carry a direction d: in a dimension, +1 on a and
-1 on b when both are inner levels, +1 on both when one of them is the total. The product of these signs
over the dimensions gives each corner its sign. Every line of the grid either misses the cube or meets it
in two corners whose signs cancel (inner levels) or repeat in member and total (a total level), so every
equation still holds after adding t * d, for any t. When every corner is hidden, the attacker (who sees the
shown cells and the equations) cannot tell the true table from the table moved by t * d, as long as no cell
goes negative: -t_down <= t <= t_up, with t_up the smallest value among the -1 corners and t_down the
smallest among the +1 corners (the cell's own among them). The cell's feasibility interval therefore holds
[v - t_down, v + t_up], and the cell is safe when

- t_down + t_up >= 1 (its value cannot be derived: R7, for primary and complementary cells alike), and
- for a primary cell, v + t_up >= min_cell (the attacker cannot rule out that it is not small at all),

the two failure rules of suppression.audit. t is a whole number, so the proof holds against an attacker
who also uses that counts are integers (the LP audit and the MILP oracle in the tests agree).

Insiders: the manager of a clinic knows her clinic's cells (`groups`). A cube is a proof against her only
if none of its corners is hers (her cells are fixed; the direction must leave them alone). Each hidden cell
needs a proof against the outsider and against every manager who does not know it: the cheapest cube first,
then, for each manager who knows one of its corners, the cheapest cube without her cells, and so on.

The search (the hypercube method of tau-ARGUS's GHMITER, Repsilber 1994, with the insider condition): the
hidden cells in a work list, primary cells first in key order; for each cell and attacker the cube with the
lowest cost, the cost being the sum over its corners that are still shown of (value + 1), so that a cube of
cells already hidden costs nothing, fewer and smaller new cells are preferred (R7: "smallest first") and a
zero is hidden only when it is cheapest. The new corners are hidden ('complementary') and join the work list.
Hiding more never undoes a proof (a direction over hidden cells stays one), so one pass over the work list
is enough. When no cube is safe for some cell (a grid too small or too sparse), `protect_grid` raises
DisclosureError and the caller falls back to suppression.protect.

The proof is sufficient, not necessary: the method hides more than the optimum (tau-ARGUS says the same of
GHMITER), and every line with a hidden cell holds at least two. It never leaves a hidden cell that the
LP audit can narrow (tests/disclosure/test_hypercube.py runs suppression.audit and a MILP attacker on
random networks).

Measured (tests/disclosure/bench_report_size.py, 2 shared cores): 40 clinics x 6 x 6 with margins x 3
periods, 6 027 cells, 2 153 primary: suppression.protect 96 s (earlier measurement, load 2-8);
protect_grid: see docs/disclosure.md, section "Cost".
"""

from __future__ import annotations

import itertools
from collections.abc import Collection, Hashable, Mapping, Sequence

import numpy as np

from clinic_outcomes.disclosure.suppression import COMPLEMENTARY, PRIMARY, Cell, DisclosureError, _order_key

TOTAL = None  # the total level of a dimension in `coordinates`


class _Grid:
    """One table: dense arrays over its levels (index 0 of every dimension is its total)."""

    def __init__(self, items: list[tuple[Cell, tuple]], group_of: Mapping[Hashable, Hashable]):
        n_dims = len(items[0][1])
        if any(len(levels) != n_dims for _, levels in items):
            raise ValueError("cells of one table must have the same number of dimensions")
        self.levels = []
        for d in range(n_dims):
            inner = sorted({levels[d] for _, levels in items if levels[d] is not TOTAL}, key=_order_key)
            self.levels.append([TOTAL, *inner])
        index = [{level: i for i, level in enumerate(levels)} for levels in self.levels]
        shape = tuple(len(levels) for levels in self.levels)
        self.value = np.zeros(shape)
        self.present = np.zeros(shape, dtype=bool)
        self.group = np.full(shape, -1, dtype=np.int64)
        self.keys = np.empty(shape, dtype=object)
        self.groups = sorted({group_of[c.key] for c, _ in items if group_of.get(c.key) is not None}, key=_order_key)
        group_index = {g: i for i, g in enumerate(self.groups)}
        for cell, levels in items:
            at = tuple(index[d][level] for d, level in enumerate(levels))
            if self.present[at]:
                raise ValueError(f"two cells at the same coordinates: {self.keys[at]!r} and {cell.key!r}")
            if cell.value is None or cell.value < 0:
                raise ValueError(f"cell {cell.key!r} needs a value of 0 or more, not {cell.value!r}")
            self.present[at] = True
            self.value[at] = float(cell.value)
            self.keys[at] = cell.key
            group = group_of.get(cell.key)
            self.group[at] = -1 if group is None else group_index[group]
        self.nan_value = np.where(self.present, self.value, np.nan)
        self._patterns: dict[tuple[bool, ...], list] = {}
        # A dimension with one level (its total only) has no equation; the others are the cube's axes.
        self.axes = [d for d in range(n_dims) if shape[d] > 1]
        self._check_additive()

    def _check_additive(self) -> None:
        scale = max(1.0, float(self.value.max(initial=0.0)))
        for d in self.axes:
            inner = np.take(self.value, range(1, self.value.shape[d]), axis=d).sum(axis=d)
            total = np.take(self.value, 0, axis=d)
            total_present = np.take(self.present, 0, axis=d)
            any_inner = np.take(self.present, range(1, self.value.shape[d]), axis=d).any(axis=d)
            if (any_inner & ~total_present).any():
                raise ValueError("a line of inner cells has no total")
            if (np.abs(inner - total)[total_present] > 1e-9 * scale).any():
                raise ValueError("a total is not the sum of its line")

    def corners(self, at: tuple[int, ...]) -> list[tuple[tuple, tuple[int, ...], np.ndarray]]:
        """The cubes through `at`, one entry per corner pattern (which cube axes take the other level):
        the index that selects that corner for every choice of the other levels (a view: the cell's own
        level where the pattern keeps it, every level where it moves), the shape that view broadcasts to
        over the cube axes, and whether the corner's sign is -1 (an odd number of moves from an inner
        level to another inner level), broadcast the same way."""
        signature = tuple(at[d] != 0 for d in self.axes)
        if signature not in self._patterns:
            self._patterns[signature] = self._corner_patterns(signature)
        out = []
        for moved, view_shape, negative in self._patterns[signature]:
            index = list(at)
            for d in moved:
                index[d] = slice(None)
            out.append((tuple(index), view_shape, negative))
        return out

    def _corner_patterns(self, inner: tuple[bool, ...]) -> list[tuple[tuple[int, ...], tuple[int, ...], np.ndarray]]:
        """Per corner pattern: the dimensions it moves, its view's shape, its sign mask (see corners)."""
        axes = self.axes
        shape = tuple(self.value.shape[d] for d in axes)
        flips = [
            ((np.arange(shape[k]) != 0) & inner[k]).reshape([-1 if j == k else 1 for j in range(len(axes))])
            for k in range(len(axes))
        ]
        out = []
        for pattern in itertools.product((False, True), repeat=len(axes)):
            negative = np.zeros([1] * len(axes), dtype=bool)
            for k in range(len(axes)):
                if pattern[k]:
                    negative = negative ^ flips[k]
            moved = tuple(d for k, d in enumerate(axes) if pattern[k])
            view_shape = tuple(shape[k] if pattern[k] else 1 for k in range(len(axes)))
            out.append((moved, view_shape, negative))
        return out


def protect_grid(
    cells: Sequence[Cell],
    coordinates: Mapping[Hashable, tuple[Hashable, tuple]],
    min_cell: int,
    groups: Mapping[Hashable, Hashable] | None = None,
    unpublished: Collection[Hashable] = (),
) -> dict[Hashable, str | None]:
    """'primary', 'complementary' or None for every cell, as suppression.protect, for tables with margins.

    `unpublished`: keys of cells no report shows (a cross-tabulation of which only margins are published).
    They are hidden from every reader from the start, need no proof and cost nothing as corners; a manager
    still knows her own (`groups`). They are left out of the result.

    `coordinates[key] = (table, levels)`: the table the cell belongs to (tables share no equation) and its
    level in each of the table's dimensions, TOTAL (None) for the total. The equations are implied: along
    every dimension, each line's total is the sum of its inner cells (checked on the values). `groups` as
    in suppression.protect: the clinic whose manager knows the cell.
    """
    if isinstance(min_cell, bool) or not isinstance(min_cell, int) or min_cell < 1:
        raise ValueError(f"min_cell must be a positive integer, not {min_cell!r}")
    groups = groups or {}
    tables: dict[Hashable, list[tuple[Cell, tuple]]] = {}
    seen = set()
    for cell in cells:
        if cell.key in seen:
            raise ValueError(f"duplicate cell key {cell.key!r}")
        seen.add(cell.key)
        if cell.patients < 0 or (cell.patients == 0 and cell.value not in (0, None)):
            raise ValueError(f"cell {cell.key!r} has {cell.patients} patients and the value {cell.value!r}")
        table, levels = coordinates[cell.key]
        tables.setdefault(table, []).append((cell, tuple(levels)))
    hidden = set(unpublished)  # once: a set per lookup made this quadratic (16.6 s at 40 clinics, 100k sessions)
    marks: dict[Hashable, str | None] = {}
    for table in sorted(tables, key=_order_key):
        marks.update(_protect_one(_Grid(tables[table], groups), tables[table], min_cell, hidden))
    return {key: mark for key, mark in marks.items() if key not in hidden}


def _protect_one(grid: _Grid, items: list[tuple[Cell, tuple]], min_cell: int,
                 unpublished: set[Hashable]) -> dict[Hashable, str | None]:
    patients = {cell.key: cell.patients for cell, _ in items}
    mark = np.zeros(grid.value.shape, dtype=np.int8)  # 0 shown, 1 primary, 2 complementary, 3 unpublished
    for at in zip(*np.nonzero(grid.present)):
        if grid.keys[at] in unpublished:
            mark[at] = 3
        elif 0 < patients[grid.keys[at]] < min_cell:
            mark[at] = 1
    cost_of = np.where(mark > 0, 0.0, grid.value + 1.0)
    queue = sorted(zip(*np.nonzero(mark == 1)), key=lambda at: _order_key(grid.keys[at]))
    done = 0
    while done < len(queue):
        at = tuple(int(i) for i in queue[done])
        done += 1
        if not grid.axes:
            continue  # a cell in no equation: hiding it is enough
        owner = int(grid.group[at])
        pending = {-1, *(g for g in range(len(grid.groups)) if g != owner)}
        cubes = grid.corners(at)
        while pending:
            attacker = -1 if -1 in pending else min(pending)
            best = _best_cube(grid, cost_of, cubes, at, attacker, bool(mark[at] == 1), min_cell)
            if best is None:
                who = "an outsider" if attacker == -1 else f"the manager of {grid.groups[attacker]!r}"
                raise DisclosureError(f"no hypercube protects {grid.keys[at]!r} from {who}")
            positions = [
                tuple(int(best[grid.axes.index(d)]) if isinstance(i, slice) else i for d, i in enumerate(index))
                for index, _, _ in cubes
            ]
            for p in positions:
                if not mark[p]:
                    mark[p] = 2
                    cost_of[p] = 0.0
                    queue.append(p)
            owners = {int(grid.group[p]) for p in positions}
            pending = {g for g in pending if g != -1 and g in owners}  # who knows a corner needs another
    names = {0: None, 1: PRIMARY, 2: COMPLEMENTARY, 3: None}
    return {grid.keys[at]: names[int(mark[at])] for at in zip(*np.nonzero(grid.present))}


def _best_cube(grid: _Grid, cost_of: np.ndarray, cubes, at: tuple[int, ...], attacker: int, primary: bool,
               min_cell: int):
    """Index (over the cube axes: the other level of each) of the cheapest cube through `at` that proves
    it safe against `attacker` (-1: the outsider), or None. `cost_of`: 0 for a hidden cell, value + 1 for a
    shown one. Absent cells have the value NaN in grid.nan_value, which fails every comparison."""
    shape = tuple(grid.value.shape[d] for d in grid.axes)
    up = np.full(shape, np.inf)
    down = np.full(shape, float(grid.value[at]))
    cost = np.zeros(shape)
    for index, view_shape, negative in cubes[1:]:  # cubes[0] is the cell itself
        value = grid.nan_value[index].reshape(view_shape)
        if negative.any():
            np.minimum(up, np.where(negative, value, np.inf), out=up)
            np.minimum(down, np.where(negative, np.inf, value), out=down)
        else:
            np.minimum(down, value, out=down)
        cost += cost_of[index].reshape(view_shape)
        if attacker != -1:
            cost[np.broadcast_to(grid.group[index].reshape(view_shape) == attacker, shape)] = np.nan
    ok = up + down >= 1  # False where a corner is absent (NaN)
    if primary:
        ok &= grid.value[at] + up >= min_cell
    for k, d in enumerate(grid.axes):  # the other level must differ from the cell's own
        ok[(slice(None),) * k + (at[d],)] = False
    ok &= ~np.isnan(cost)
    if not ok.any():
        return None
    cost[~ok] = np.inf
    return np.unravel_index(int(np.argmin(cost)), shape)
