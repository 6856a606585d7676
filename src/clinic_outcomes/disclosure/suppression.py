"""Disclosure control for published tables (R7): primary and complementary cell suppression, and its auditor.

The caller passes one `Cell` per additive figure (a count, or the numerator or denominator behind a share
or mean) and one `Equation` per additivity fact (a row, a column, network = sum of the clinics). `protect`
marks each cell 'primary', 'complementary' or None (shown); `audit` lists the hidden cells an attacker can
narrow further than the rule allows. docs/disclosure.md explains the method.

Choices where the spec is silent (also in docs/disclosure.md):
- "Zero may be shown" means a cell with 0 patients; it is never primary. A cell with 0 patients must have
  the value 0 (or None when it is in no equation), else the input is refused.
- Ties ("smallest first") are broken by the key order: keys are compared as values, with numbers before
  strings before tuples (compared element by element) so that mixed keys such as ('t', 'all', ...) and
  ('t', 7, ...) still order; the result does not depend on the order of the input.
- Complementary cells are picked, in this order: non-zero before zero, inner cells before cells that are
  the total of some equation, smallest |value|, key order. A zero is hidden only when no non-zero cell of
  the equations in question is left (never as a primary).
- Equations must add up on the values given (within 1e-9 relative): a non-additive margin (distinct
  patients across roles or clinics) is refused rather than audited wrongly.
- A cell that fails the audit is repaired with a cell the attacker does not know, taken (in the order
  above) from the equations her bound comes from (those with a non-zero multiplier in her LP): hiding a
  cell of any other equation could not move that bound.
- `protect` raises DisclosureError when it cannot make the tables safe (it never returns an unsafe pattern).
"""

from __future__ import annotations

from collections.abc import Collection, Hashable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from clinic_outcomes.disclosure.attack import Network, Rule, binding_equations, intervals

PRIMARY = "primary"
COMPLEMENTARY = "complementary"
_MARKS = {PRIMARY, COMPLEMENTARY, None}


class DisclosureError(RuntimeError):
    """The tables cannot be made safe by suppression. (A solver failure raises RuntimeError.)"""


@dataclass(frozen=True)
class Cell:
    key: Hashable  # unique id of the cell, e.g. (table_id, clinic_id, period, row_key, col_key, measure)
    value: float | None  # the additive figure (a count, or the numerator/denominator behind a share or mean)
    patients: int  # distinct patients behind it (R7); 0 patients with value 0 may be shown


@dataclass(frozen=True)
class Equation:
    total: Hashable  # key of the cell that is the sum
    members: tuple[Hashable, ...]  # keys of the cells that add up to it


def _order_key(key: object) -> tuple:
    """A total order over the keys callers use (numbers, strings, tuples of them, None)."""
    if key is None:
        return (0,)
    if isinstance(key, bool | int | float):
        return (1, key)
    if isinstance(key, str):
        return (2, key)
    if isinstance(key, tuple):
        return (3, tuple(_order_key(k) for k in key))
    return (4, type(key).__name__, repr(key))


class _Tables:
    """The validated input, indexed by cell position."""

    def __init__(self, cells: Sequence[Cell], equations: Sequence[Equation]):
        self.keys = [c.key for c in cells]
        self.position: dict[Hashable, int] = {}
        for i, key in enumerate(self.keys):
            if key in self.position:
                raise ValueError(f"duplicate cell key {key!r}")
            self.position[key] = i
        patients = np.asarray([c.patients for c in cells], dtype=np.int64)
        if (patients < 0).any():
            raise ValueError(f"negative patients for {self.keys[int(np.argmax(patients < 0))]!r}")
        for c in cells:
            if c.patients == 0 and c.value not in (0, None):
                raise ValueError(f"cell {c.key!r} has 0 patients but the value {c.value!r}")
        self.patients = patients
        eqs: list[tuple[int, tuple[int, ...]]] = []
        for eq in equations:
            for key in (eq.total, *eq.members):
                if key not in self.position:
                    raise ValueError(f"equation {eq!r} names the unknown cell {key!r}")
            total, members = self.position[eq.total], tuple(self.position[m] for m in eq.members)
            if not members or total in members or len(set(members)) != len(members):
                raise ValueError(f"equation {eq!r} must have distinct members other than its total")
            eqs.append((total, members))
        order = sorted(range(len(cells)), key=lambda i: _order_key(self.keys[i]))
        self.rank = np.empty(len(cells), dtype=np.int64)
        self.rank[order] = np.arange(len(cells))
        # Equations in key order (total, then members), so that the input's order does not matter.
        eqs.sort(key=lambda eq: (int(self.rank[eq[0]]), sorted(int(self.rank[m]) for m in eq[1])))
        in_equation = {i for total, members in eqs for i in (total, *members)}
        for i in in_equation:
            if cells[i].value is None:
                raise ValueError(f"cell {self.keys[i]!r} is in an equation but has no value")
        self.values = np.asarray([0.0 if c.value is None else float(c.value) for c in cells])
        scale = max(1.0, float(np.abs(self.values).max(initial=0.0)))
        for total, members in eqs:
            gap = self.values[list(members)].sum() - self.values[total]
            if abs(gap) > 1e-9 * scale:
                raise ValueError(
                    f"equation for {self.keys[total]!r} does not add up (members - total = {gap!r})"
                )
        cell_equations: list[list[int]] = [[] for _ in cells]
        for e, (total, members) in enumerate(eqs):
            for i in (total, *members):
                cell_equations[i].append(e)
        self.component = self._components(eqs, len(cells))
        cap = 10.0 * (float(np.abs(self.values).sum()) + 1.0)
        signed = np.unique(self.component[self.values < 0])
        self.network = Network(
            values=self.values,
            lower=np.where(np.isin(self.component, signed), -cap, 0.0),
            equations=tuple(eqs),
            cell_equations=tuple(tuple(e) for e in cell_equations),
            cap=cap,
            integral=bool(np.all(np.mod(self.values, 1.0) == 0.0)),
            tolerance=1e-7 * scale,
        )
        self.is_margin = np.zeros(len(cells), dtype=bool)
        for total, _ in eqs:
            self.is_margin[total] = True

    @staticmethod
    def _components(eqs: list[tuple[int, tuple[int, ...]]], n: int) -> np.ndarray:
        parent = list(range(n))

        def root(i: int) -> int:
            while parent[i] != i:
                parent[i] = parent[parent[i]]
                i = parent[i]
            return i

        for total, members in eqs:
            for m in members:
                a, b = root(total), root(m)
                if a != b:
                    parent[max(a, b)] = min(a, b)
        return np.asarray([root(i) for i in range(n)], dtype=np.int64)

    def preference(self, i: int, equation_total: int | None = None) -> tuple:
        """Sort key for a complementary candidate: non-zero, inner, small, first in key order."""
        return (
            self.values[i] == 0,
            i == equation_total,
            bool(self.is_margin[i]),
            abs(self.values[i]),
            int(self.rank[i]),
        )

    def rule(self, min_cell: int) -> Rule:
        return Rule(reach=float(min_cell))


def _check_min_cell(min_cell: int) -> None:
    if isinstance(min_cell, bool) or not isinstance(min_cell, int) or min_cell < 1:
        raise ValueError(f"min_cell must be a positive integer, not {min_cell!r}")


def audit(
    cells: Sequence[Cell],
    equations: Sequence[Equation],
    suppressed: Mapping[Hashable, str | None],
    min_cell: int,
    known: Collection[Hashable] = (),
) -> list[tuple[Hashable, float, float]]:
    """The suppressed cells an attacker who sees every shown cell (plus the cells in `known`) can narrow to
    an interval narrower than the rule allows: [(key, low, high), ...] in key order; empty when safe.

    The attacker's interval for a hidden cell is [min, max] of the cell over the completions that satisfy
    every equation, with shown and known cells fixed and x >= 0 (no lower bound in linked tables that hold a
    negative figure, whose sign the attacker cannot know), solved
    as LPs with HiGHS; for integer tables the bounds are rounded inwards. No upper bound is assumed beyond
    what the equations give: a hidden grand total is hidden from the attacker too (attack.py explains why
    "x <= grand total" is not used). A cell fails when
    - high - low < 1: its value can be derived (R7: "no suppressed value can be derived"); this holds for
      complementary cells too, since a derivable complementary cell is in effect published; or
    - it is primary and high < min_cell: the attacker proves it is a small cell and narrows it below the threshold, which R7's
      "fewer than 11" was meant to keep vague (the handbook's [3, 6] example fails here).
    Requiring only high - low >= 1 would pass [3, 6]; requiring a width in proportion to the value (as
    τ-ARGUS's protection levels do) needs a policy we do not have, so the threshold is the project rule.
    Cells absent from `suppressed` are shown; cells in `known` are neither audited nor hidden.
    """
    _check_min_cell(min_cell)
    tables = _Tables(cells, equations)
    marks = np.zeros(len(tables.keys), dtype=np.int8)  # 0 shown, 1 primary, 2 complementary
    for key, mark in suppressed.items():
        if key not in tables.position:
            raise ValueError(f"suppressed names the unknown cell {key!r}")
        if mark not in _MARKS:
            raise ValueError(f"unknown mark {mark!r} for {key!r}")
        marks[tables.position[key]] = 0 if mark is None else (1 if mark == PRIMARY else 2)
    known_mask = np.zeros(len(tables.keys), dtype=bool)
    for key in known:
        if key not in tables.position:
            raise ValueError(f"known names the unknown cell {key!r}")
        known_mask[tables.position[key]] = True
    hidden = (marks > 0) & ~known_mask
    failures, _, _ = intervals(
        tables.network, hidden, [int(i) for i in np.flatnonzero(hidden)], marks == 1, tables.rule(min_cell)
    )
    failures.sort(key=lambda f: int(tables.rank[f[0]]))
    return [(tables.keys[i], low, high) for i, low, high in failures]


class _Protection:
    """State of one `protect` run: the marks so far and, per attacker, the cells already proven safe."""

    def __init__(self, tables: _Tables, min_cell: int, groups: Mapping[Hashable, Hashable] | None):
        self.tables = tables
        self.min_cell = min_cell
        self.rule = tables.rule(min_cell)
        n = len(tables.keys)
        self.marks = np.zeros(n, dtype=np.int8)
        self.marks[(tables.patients > 0) & (tables.patients < min_cell)] = 1  # R7 primary suppression
        self.attackers: list[np.ndarray] = [np.zeros(n, dtype=bool)]  # the outsider knows nothing
        if groups:
            by_group: dict[Hashable, list[int]] = {}
            for key, group in groups.items():
                if key not in tables.position:
                    raise ValueError(f"groups names the unknown cell {key!r}")
                if group is not None:
                    by_group.setdefault(group, []).append(tables.position[key])
            for group in sorted(by_group, key=_order_key):
                known = np.zeros(n, dtype=bool)
                known[by_group[group]] = True
                self.attackers.append(known)
        self.certified: list[set[int]] = [set() for _ in self.attackers]
        self.lp_solves = 0

    def suppress(self, i: int) -> None:
        if self.marks[i]:
            raise AssertionError(f"cell {self.tables.keys[i]!r} is already suppressed")
        self.marks[i] = 2

    def line_rule(self) -> None:
        """No equation with exactly one hidden cell; no shown total whose hidden members sum to 1..min-1."""
        tables, marks = self.tables, self.marks
        changed = True
        while changed:
            changed = False
            for total, members in tables.network.equations:
                hidden = [i for i in (total, *members) if marks[i]]
                if not hidden:
                    continue
                hidden_sum = float(tables.values[[m for m in members if marks[m]]].sum())
                sum_fails = not marks[total] and 0 < hidden_sum < self.min_cell
                if len(hidden) != 1 and not sum_fails:
                    continue
                shown = [i for i in (total, *members) if not marks[i]]
                if not shown:
                    raise DisclosureError(f"cannot protect the equation for {tables.keys[total]!r}")
                self.suppress(min(shown, key=lambda i: tables.preference(i, total)))
                changed = True

    def _attack(self, a: int, check: list[int]) -> list[tuple[int, float, float]]:
        known = self.attackers[a]
        hidden = (self.marks > 0) & ~known
        failures, certified, solves = intervals(self.tables.network, hidden, check, self.marks == 1, self.rule)
        self.lp_solves += solves
        self.certified[a].update(certified)
        return failures

    def _candidates(self, cell: int, known: np.ndarray) -> list[int]:
        """Shown cells the attacker does not know that could widen `cell`: its equations' cells first, then
        those of its hidden partners, then anything in its component, each in order of preference."""
        tables, marks = self.tables, self.marks
        net = tables.network

        def shown_in(eqs) -> set[int]:
            found = set()
            for e in eqs:
                total, members = net.equations[e]
                found.update(i for i in (total, *members) if not marks[i] and not known[i])
            return found

        own = shown_in(net.cell_equations[cell])
        partners = {
            i
            for e in net.cell_equations[cell]
            for i in (net.equations[e][0], *net.equations[e][1])
            if marks[i] and i != cell
        }
        second = shown_in({e for p in partners for e in net.cell_equations[p]}) - own
        rest = {
            int(i)
            for i in np.flatnonzero((tables.component == tables.component[cell]) & (marks == 0) & ~known)
        } - own - second
        return [i for group in (own, second, rest) for i in sorted(group, key=tables.preference)]

    def _repair(self, a: int, cell: int) -> None:
        """Hide one more cell so that attacker `a` narrows `cell` less: the preferred shown cell (that she
        does not know) of the equations her bounds on `cell` come from; if there is none, of `cell`'s
        neighbourhood (see `_candidates`)."""
        known = self.attackers[a]
        hidden = (self.marks > 0) & ~known
        binding, solves = binding_equations(
            self.tables.network, hidden, cell, bool(self.marks[cell] == 1), self.rule
        )
        self.lp_solves += solves
        if binding is None:
            self.certified[a].add(cell)  # an earlier repair of this round already fixed it
            return
        net = self.tables.network
        shown = {
            i
            for e in binding
            for i in (net.equations[e][0], *net.equations[e][1])
            if not self.marks[i] and not known[i]
        }
        candidates = sorted(shown, key=self.tables.preference) or self._candidates(cell, known)
        if not candidates:
            raise DisclosureError(f"no cell left to protect {self.tables.keys[cell]!r}")
        self.suppress(candidates[0])

    def run(self) -> None:
        while True:
            self.line_rule()
            repaired = False
            for a, known in enumerate(self.attackers):
                relevant = self._relevant(known)
                hidden = (self.marks > 0) & ~known & relevant
                check = [int(i) for i in np.flatnonzero(hidden) if int(i) not in self.certified[a]]
                if not check:
                    continue
                failures = self._attack(a, check)
                for cell, _, _ in sorted(failures, key=lambda f: int(self.tables.rank[f[0]])):
                    self._repair(a, cell)
                    repaired = True
                if repaired:
                    break  # the line rule first, then every attacker again (proven cells stay proven)
            if not repaired:
                return

    def _relevant(self, known: np.ndarray) -> np.ndarray:
        """An insider differs from the outsider only in the components holding her cells."""
        if not known.any():
            return np.ones(len(known), dtype=bool)
        return np.isin(self.tables.component, np.unique(self.tables.component[known]))



def protect(
    cells: Sequence[Cell],
    equations: Sequence[Equation],
    min_cell: int,
    groups: Mapping[Hashable, Hashable] | None = None,
) -> dict[Hashable, str | None]:
    """'primary', 'complementary' or None for every cell key. `groups` maps a cell key to the clinic whose
    manager knows it (insider attack: that manager knows every cell of her own clinic); None = no insiders.

    1. Primary: every cell with 1 .. min_cell-1 patients (0 patients may be shown).
    2. Line rule, until stable: an equation with exactly one hidden cell, or a shown total whose hidden
       members sum to 1 .. min_cell-1, gets one more hidden cell (see the module docstring for which).
    3. Audit (see `audit`) for the outsider and for each insider group; each failing cell gets one more
       hidden partner; back to 2 until no attacker finds anything. Hiding more never narrows an interval,
       so a cell proven safe stays safe and is not audited again.
    Deterministic: the same cells and equations in any order give the same marks.
    """
    _check_min_cell(min_cell)
    tables = _Tables(cells, equations)
    run = _Protection(tables, min_cell, groups)
    run.run()
    names = {0: None, 1: PRIMARY, 2: COMPLEMENTARY}
    return {key: names[int(run.marks[i])] for i, key in enumerate(tables.keys)}
