"""protect: primary and complementary suppression (R7), on small tables whose answer is known.

Mutants tried (each edited into suppression.py, this module run, then reverted; 2026-12-07):
- `<=` for `<` in the primary rule (patients <= min_cell): test_primary_rule_boundary fails.
- the sum test dropped from the line rule: test_sum_test_covers_complementary_cells fails. (Where a
  primary cell is among the hidden members, the LP audit catches the published sum anyway, so
  test_sum_test_hides_a_third_cell_of_the_row alone did not kill this mutant.)
- the insider pass dropped (only the outsider attacks): test_insider_with_two_clinics fails.
- complementary cells chosen largest first: test_sdctable_line_rule_is_not_enough fails.
- zeros preferred to non-zero partners: test_zeros_are_shown_and_never_chosen fails.
- the audit loop dropped (line rule only): test_sdctable_line_rule_is_not_enough fails.
"""

from __future__ import annotations

import random

import pytest
from disclosure_tables import TOTAL, assert_no_published_sum, hidden_marks, network, two_way

from clinic_outcomes.disclosure import Cell, DisclosureError, Equation, audit, protect

SDC_INNER = [[30, 47, 64, 89], [90, 124, 5, 31], [92, 100, 59, 85], [800, 991, 651, 685]]
# The nine cells sdcTable's fixture marks as primary ("u"): rows w x y z = r0..r3, columns a b c d = c0..c3.
SDC_PRIMARY = {(0, 0), (0, 1), (0, 2), (1, 0), (1, 2), (2, 1), (2, 3), (3, 1), (3, 3)}


def sdc_table():
    """sdcTable's 4x4 fixture: values as given, the nine primary cells with 5 patients each (a count of
    sessions from few patients), every other cell with as many patients as sessions."""
    patients = [[5 if (i, j) in SDC_PRIMARY else v for j, v in enumerate(row)] for i, row in enumerate(SDC_INNER)]
    return two_way("t", SDC_INNER, patients)


def test_sdctable_line_rule_is_not_enough():
    cells, equations = sdc_table()
    pattern = {("t", f"r{i}", f"c{j}"): "primary" for i, j in SDC_PRIMARY}
    # Every row and column has at least two hidden cells whose sum is at least 11 ...
    for eq in equations:
        hidden = [m for m in eq.members if m in pattern]
        assert len(hidden) != 1
    # ... yet rows w+x minus columns a+c give w|b exactly.
    assert audit(cells, equations, pattern, 11) == [(("t", "r0", "c1"), 47.0, 47.0)]

    marks = protect(cells, equations, 11)
    assert {k for k, m in marks.items() if m == "primary"} == set(pattern)
    complementary = {k for k, m in marks.items() if m == "complementary"}
    # One more cell, as in sdcTable (which hides x|b, 124): ours is x|d (31), the smallest shown cell of
    # the equations the derivation uses (rows w and x, columns a and c).
    assert complementary == {("t", "r1", "c3")}
    assert audit(cells, equations, marks, 11) == []


def test_primary_rule_boundary():
    # 10 patients is under the minimum cell of 11; 11 is not; 0 may be shown.
    cells = [Cell("ten", 10, 10), Cell("eleven", 11, 11), Cell("zero", 0, 0), Cell("one", 40, 1)]
    assert protect(cells, [], 11) == {"ten": "primary", "eleven": None, "zero": None, "one": "primary"}


def test_no_primary_cells_nothing_suppressed():
    cells, equations = two_way("t", [[11, 0, 25], [40, 12, 0]])
    assert set(protect(cells, equations, 11).values()) == {None}


def test_zeros_are_shown_and_never_chosen():
    # The 5 needs a partner in its row: the 0 would be cheapest to hide, but a zero is shown.
    cells, equations = two_way("t", [[5, 0, 30], [20, 0, 40]])
    marks = protect(cells, equations, 11)
    assert marks[("t", "r0", "c1")] is None and marks[("t", "r1", "c1")] is None
    assert hidden_marks(marks) == {("t", "r0", "c0"), ("t", "r0", "c2"), ("t", "r1", "c0"), ("t", "r1", "c2")}
    assert audit(cells, equations, marks, 11) == []


def test_smallest_partner_first():
    cells, equations = two_way("t", [[5, 30, 20], [25, 60, 50]])
    marks = protect(cells, equations, 11)
    assert hidden_marks(marks) == {("t", "r0", "c0"), ("t", "r0", "c2"), ("t", "r1", "c0"), ("t", "r1", "c2")}


def test_sum_test_hides_a_third_cell_of_the_row():
    # 3 and 4 alone in a row whose total (117) is shown would publish their sum, 7: the row's smallest
    # other cell (50) is hidden, and the 12 below it to keep column c2 safe.
    cells, equations = two_way("t", [[3, 4, 50, 60], [20, 30, 12, 15]])
    marks = protect(cells, equations, 11)
    assert hidden_marks(marks) == {
        ("t", "r0", "c0"), ("t", "r0", "c1"), ("t", "r0", "c2"),
        ("t", "r1", "c0"), ("t", "r1", "c1"), ("t", "r1", "c2"),
    }  # fmt: skip
    assert audit(cells, equations, marks, 11) == []


def test_sum_test_covers_complementary_cells():
    # Only p (5 patients) is primary. a (3 sessions) and b (4 sessions) come from 30 patients each, so
    # the audit does not protect them, but hidden together under the shown column total 7 they would
    # publish their sum: the sum test hides more.
    cells, equations = two_way(
        "t", [[5, 3, 50], [20, 4, 60]], patients=[[5, 30, 50], [20, 30, 60]]
    )
    marks = protect(cells, equations, 11)
    assert marks[("t", "r0", "c1")] == "complementary" and marks[("t", "r1", "c1")] == "complementary"
    assert_no_published_sum(cells, equations, marks, 11)
    assert audit(cells, equations, marks, 11) == []


def test_margins_suppressed_when_needed():
    # The row total 7 is itself primary; the column of row totals then needs a second hidden cell.
    cells, equations = two_way("t", [[3, 4], [20, 30]])
    marks = protect(cells, equations, 11)
    assert marks[("t", "r0", TOTAL)] == "primary"
    assert marks[("t", "r1", TOTAL)] == "complementary"
    assert audit(cells, equations, marks, 11) == []


def two_clinics():
    return network({"a": [[5, 20], [30, 40]], "b": [[25, 30], [35, 50]]})


def test_insider_with_two_clinics():
    cells, equations, groups = two_clinics()
    own_b = [k for k, g in groups.items() if g == "b"]
    # Against an outsider, hiding both clinics' tables is enough; but b's manager subtracts her own
    # cells from the network's and reads a's 5.
    outsider_only = protect(cells, equations, 11)
    assert audit(cells, equations, outsider_only, 11) == []
    assert (("a", "r0", "c0"), 5.0, 5.0) in audit(cells, equations, outsider_only, 11, known=own_b)

    marks = protect(cells, equations, 11, groups)
    assert audit(cells, equations, marks, 11) == []
    for clinic in ("a", "b"):
        known = [k for k, g in groups.items() if g == clinic]
        assert audit(cells, equations, marks, 11, known=known) == []
    # Only network cells can protect a from b: some are hidden (margins of the clinic equations).
    assert any(marks[k] for k in marks if k[0] == "all")


def test_primary_cells_stay_primary_and_marks_cover_every_cell():
    cells, equations, groups = two_clinics()
    marks = protect(cells, equations, 11, groups)
    assert set(marks) == {c.key for c in cells}
    assert {k for k, m in marks.items() if m == "primary"} == {c.key for c in cells if 0 < c.patients < 11}


def test_same_answer_whatever_the_input_order():
    cells, equations, groups = network(
        {"a": [[5, 20, 0], [30, 40, 8]], "b": [[25, 3, 12], [35, 50, 0]], "c": [[9, 14, 70], [2, 0, 33]]}
    )
    expected = protect(cells, equations, 11, groups)
    rng = random.Random(7)
    for _ in range(3):
        shuffled_cells, shuffled_equations = cells[:], equations[:]
        rng.shuffle(shuffled_cells)
        rng.shuffle(shuffled_equations)
        assert protect(shuffled_cells, shuffled_equations, 11, groups) == expected


def test_mixed_key_types_order():
    # Network keys mix 'all' with integer clinic ids: still a total order, still deterministic.
    cells = [Cell(("t", 1, "x"), 5, 5), Cell(("t", "all", "x"), 25, 25), Cell(("t", 2, "x"), 20, 20)]
    equations = [Equation(("t", "all", "x"), (("t", 1, "x"), ("t", 2, "x")))]
    marks = protect(cells, equations, 11, {("t", 1, "x"): 1, ("t", 2, "x"): 2})
    assert marks[("t", 1, "x")] == "primary"
    assert marks[("t", "all", "x")] == "complementary"  # 2's manager would read 1's cell otherwise


@pytest.mark.parametrize(
    ("cells", "equations", "message"),
    [
        ([Cell("a", 1, 1), Cell("a", 2, 2)], [], "duplicate"),
        ([Cell("a", 3, 0)], [], "0 patients"),
        ([Cell("a", 3, -1)], [], "negative"),
        ([Cell("t", 5, 5), Cell("a", 2, 2)], [Equation("t", ("a",))], "does not add up"),
        ([Cell("t", 5, 5), Cell("a", None, 2)], [Equation("t", ("a",))], "no value"),
        ([Cell("t", 5, 5)], [Equation("t", ("b",))], "unknown cell"),
        ([Cell("t", 5, 5)], [Equation("t", ("t",))], "distinct members"),
    ],
)
def test_bad_input_is_refused(cells, equations, message):
    with pytest.raises(ValueError, match=message):
        protect(cells, equations, 11)


def test_min_cell_must_be_a_positive_integer():
    with pytest.raises(ValueError, match="min_cell"):
        protect([Cell("a", 1, 1)], [], 0)


def test_single_member_equation_hides_its_total():
    # A total with one member equals it: both go.
    cells = [Cell("t", 5, 5), Cell("a", 5, 5), Cell("u", 50, 50), Cell("b", 50, 50)]
    marks = protect(cells, [Equation("t", ("a",)), Equation("u", ("b",))], 11)
    assert marks == {"t": "primary", "a": "primary", "u": None, "b": None}


def test_disclosure_error_is_a_runtime_error():
    assert issubclass(DisclosureError, RuntimeError)
