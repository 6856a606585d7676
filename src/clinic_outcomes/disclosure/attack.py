"""The attacker's linear programmes: how far each hidden cell can be narrowed (the auditor behind R7).

An attacker sees every shown cell, knows every additivity equation (rows, columns, network = sum of the
clinics) and that a figure is never negative; an insider also knows her own clinic's cells. For a hidden
cell c the attacker can narrow c to [min x_c, max x_c] over every completion of the table that agrees with
what she knows. We solve the linear relaxation with HiGHS (scipy.optimize.linprog):

    min / max x_c   subject to   A x = b            (the equations, shown and known cells moved to b)
                                 lower <= x <= cap

`lower` is 0 (a count is never negative), except in a group of linked tables holding a negative figure
(a sum of pain changes): there no cell has a lower bound (-cap), since the attacker cannot know the sign.
The attacker knows no upper bound but what the equations give (a hidden grand total is not known): the
cap is far above any figure (10 x the sum of every |value|, plus the minimum cell) and only keeps the LP
bounded; an interval that reaches it is in truth unbounded. Bounding by the grand total instead would
credit the attacker with figures that are hidden, and makes a table that is hidden in full unprotectable
(two clinics, a 5 and a 20, every cell hidden: the 20's manager would "know" the network total <= 25).

When every value is an integer the attacker also knows the completions are integers, so the bounds are
rounded inwards (ceil of the minimum, floor of the maximum). The LP relaxation can still be wider than
the integer hull in a three-way table (clinic × row × column); the tests compare it with brute force on
tiny tables.

Two shortcuts keep the cost down without changing the answer:
- the problem splits into connected parts (hidden cells linked by an equation); each part is its own LP;
- every LP solution is a completion the attacker cannot exclude, so each one widens the observed range
  of *every* hidden cell in its part. A cell whose observed range already satisfies the rule is certified
  without an LP of its own; aggregate objectives (lift every uncertified cell to its goal at once, then
  push them all down) certify most cells in a few solves, and only the rest get their own two LPs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linprog
from scipy.sparse import csr_array, eye_array, hstack


@dataclass(frozen=True)
class Network:
    """Cells and equations by position: what the attacker's LPs are built from."""

    values: np.ndarray  # float, one per cell
    equations: tuple[tuple[int, tuple[int, ...]], ...]  # (total, members) by cell position
    cell_equations: tuple[tuple[int, ...], ...]  # for each cell, the equations it takes part in
    lower: np.ndarray  # each cell's lower bound: 0, or -cap where the figures can be negative
    cap: float  # the bound of every cell, far above any figure (see the module docstring)
    integral: bool  # every value is an integer: completions are integers too
    tolerance: float


@dataclass(frozen=True)
class Rule:
    """When a hidden cell is narrowed too far.

    Every hidden cell must keep an interval at least 1 wide (else its value is derived: R7's "no
    suppressed value can be derived"). A primary cell must also keep an upper bound of at least
    `reach` (the minimum cell): otherwise the attacker proves it is a small cell and pins
    it into a short range such as the handbook's [3, 6].
    """

    reach: float

    def passes(self, low: float, high: float, primary: bool, network: Network) -> bool:
        low, high = _rounded(low, high, network)
        if high - low < 1 - network.tolerance:
            return False
        return not primary or high >= self.reach - network.tolerance


def _rounded(low: float, high: float, network: Network) -> tuple[float, float]:
    if not network.integral:
        return low, high
    tol = network.tolerance
    return float(math.ceil(low - tol)), float(math.floor(high + tol))


def hidden_parts(network: Network, hidden: np.ndarray) -> list[list[int]]:
    """The hidden cells grouped into the connected parts of their equations (each part one LP)."""
    parent = {int(i): int(i) for i in np.flatnonzero(hidden)}

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for total, members in network.equations:
        cells = [c for c in (total, *members) if hidden[c]]
        for other in cells[1:]:
            a, b = root(cells[0]), root(other)
            if a != b:
                parent[max(a, b)] = min(a, b)
    parts: dict[int, list[int]] = {}
    for i in sorted(parent):
        parts.setdefault(root(i), []).append(i)
    return list(parts.values())


class _PartLP:
    """The attacker's LP over one connected part of hidden cells."""

    def __init__(self, network: Network, part: list[int], hidden: np.ndarray):
        self.network = network
        self.cells = part
        self.position = {c: j for j, c in enumerate(part)}
        eq_ids = sorted({e for c in part for e in network.cell_equations[c]})
        self.eq_ids = eq_ids
        rows, cols, data, rhs = [], [], [], []
        for r, e in enumerate(eq_ids):
            total, members = network.equations[e]
            known = 0.0
            for c, sign in ((total, -1.0), *((m, 1.0) for m in members)):
                if hidden[c]:
                    rows.append(r)
                    cols.append(self.position[c])
                    data.append(sign)
                else:
                    known += sign * network.values[c]
            rhs.append(-known)
        self.a_eq = csr_array((data, (rows, cols)), shape=(len(eq_ids), len(part)))
        self.b_eq = np.asarray(rhs, dtype=float)
        n = network.cap
        self.bounds = [(float(network.lower[c]), n) for c in part]
        values = network.values[part]
        self.low = values.copy()  # observed range over every completion found so far
        self.high = values.copy()
        self.solves = 0

    def solve(self, objective: np.ndarray):
        result = linprog(objective, A_eq=self.a_eq, b_eq=self.b_eq, bounds=self.bounds, method="highs")
        self.solves += 1
        if result.status != 0:
            raise RuntimeError(f"the attacker's LP did not solve: {result.message}")
        np.minimum(self.low, result.x, out=self.low)
        np.maximum(self.high, result.x, out=self.high)
        return result

    def lift(self, cells: list[int], goals: np.ndarray) -> None:
        """One completion that lifts as many `cells` as it can, each up to its goal and no further:
        maximise sum(t_c) with t_c <= x_c and t_c <= goal_c. Unlike maximising sum(x_c), no cell takes
        the slack of its equation beyond its goal, so the cells of one row can all be lifted together."""
        n, m = len(self.cells), len(cells)
        columns = np.asarray([self.position[c] for c in cells])
        a_eq = hstack([self.a_eq, csr_array((self.a_eq.shape[0], m))], format="csr")
        a_ub = hstack([csr_array((np.full(m, -1.0), (np.arange(m), columns)), shape=(m, n)), eye_array(m)])
        objective = np.concatenate([np.zeros(n), -np.ones(m)])
        bounds = self.bounds + [(self.bounds[j][0], float(g)) for j, g in zip(columns, goals)]
        result = linprog(
            objective, A_ub=a_ub.tocsr(), b_ub=np.zeros(m), A_eq=a_eq, b_eq=self.b_eq, bounds=bounds, method="highs"
        )
        self.solves += 1
        if result.status != 0:
            raise RuntimeError(f"the attacker's LP did not solve: {result.message}")
        x = result.x[:n]
        np.minimum(self.low, x, out=self.low)
        np.maximum(self.high, x, out=self.high)

    def binding(self, result) -> set[int]:
        """The equations whose multipliers are non-zero at this optimum: the ones the bound comes from."""
        marginals = result.eqlin.marginals
        tol = 1e-9 * max(1.0, float(np.abs(marginals).max(initial=0.0)))
        return {self.eq_ids[r] for r in np.flatnonzero(np.abs(marginals) > tol)}


def intervals(
    network: Network,
    hidden: np.ndarray,
    check: list[int],
    primary: np.ndarray,
    rule: Rule,
) -> tuple[list[tuple[int, float, float]], set[int], int]:
    """Audit the cells in `check` (all hidden) against `rule`.

    Returns the failing cells as (position, low, high) with their exact (rounded) bounds, the cells
    certified safe, and the number of LPs solved.
    """
    wanted = set(check)
    failures: list[tuple[int, float, float]] = []
    certified: set[int] = set()
    solves = 0
    for part in hidden_parts(network, hidden):
        targets = [c for c in part if c in wanted]
        if not targets:
            continue
        lp = _PartLP(network, part, hidden)

        def safe(c: int) -> bool:
            j = lp.position[c]
            return rule.passes(lp.low[j], lp.high[j], bool(primary[c]), network)

        pending = [c for c in targets if not safe(c)]
        # Aggregate objectives first: lift every uncertified cell to what it needs (the reach for a
        # primary cell, one above its value for any cell) in one completion, again while that certifies
        # more; then push them all down at once, for cells that cannot go up.
        reach = np.asarray([rule.reach if primary[c] else -np.inf for c in part])
        while pending:
            before = len(pending)
            goals = [max(reach[lp.position[c]], network.values[c] + 1) for c in pending]
            lp.lift(pending, np.asarray(goals))
            pending = [c for c in pending if not safe(c)]
            if len(pending) == before:
                break
        if pending:
            objective = np.zeros(len(part))
            objective[[lp.position[c] for c in pending]] = 1.0
            lp.solve(objective)
            pending = [c for c in pending if not safe(c)]
        for c in pending:
            if safe(c):
                continue
            j = lp.position[c]
            objective = np.zeros(len(part))
            objective[j] = -1.0
            lp.solve(objective)  # the exact maximum: lp.high[j] is now the attacker's upper bound
            if safe(c):
                continue
            objective[j] = 1.0
            lp.solve(objective)  # and the exact minimum
            if safe(c):
                continue
            low, high = _rounded(float(lp.low[j]), float(lp.high[j]), network)
            failures.append((c, low, high))
        certified.update(c for c in targets if safe(c))
        solves += lp.solves
    failures.sort()
    return failures, certified, solves


def binding_equations(
    network: Network, hidden: np.ndarray, cell: int, primary: bool, rule: Rule
) -> tuple[set[int] | None, int]:
    """The equations the attacker's bounds on `cell` come from (None when `cell` passes `rule`), and the
    number of LPs solved. An upper bound under the reach needs the maximum's equations; a too narrow
    interval needs both ends'. Hiding a shown cell of such an equation is what can widen the interval
    (a cell of any other equation leaves that optimum, and so the bound, where it is)."""
    part = next(p for p in hidden_parts(network, hidden) if cell in p)
    lp = _PartLP(network, part, hidden)
    j = lp.position[cell]
    objective = np.zeros(len(part))
    objective[j] = -1.0
    at_max = lp.solve(objective)
    objective[j] = 1.0
    at_min = lp.solve(objective)
    low, high = float(lp.low[j]), float(lp.high[j])
    if rule.passes(low, high, primary, network):
        return None, lp.solves
    low, high = _rounded(low, high, network)
    if high - low >= 1 - network.tolerance:  # wide enough: only the reach fails, the maximum is too low
        return lp.binding(at_max), lp.solves
    return lp.binding(at_max) | lp.binding(at_min), lp.solves
