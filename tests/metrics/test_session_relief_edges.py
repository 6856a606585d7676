"""R3 at the smallest pain ratings: relief_pct is relief_points / pain_before for every pain_before above 0.

Mutants tried (src/clinic_outcomes/metrics/relief.py; applied, tests run, reverted):
- `relief_pct` when `pain_before != 0` as `pain_before > 1`: survived tests/metrics/test_session_relief.py
  (no session there starts at 1); killed by test_relief_pct_at_pain_before_1_and_2.
- `meaningful_relief = relief_points >= mcid` as `>`: killed by test_session_relief.py's
  test_relief_points_pct_and_meaningful and by test_relief_pct_at_pain_before_1_and_2.
"""

from __future__ import annotations

import pytest

from clinic_outcomes.metrics.relief import session_relief
from metrics_fixtures import session, sessions_frame


def test_relief_pct_at_pain_before_1_and_2():
    relief = session_relief(
        sessions_frame(
            session("one_to_zero", 0, pain_before=1, pain_after=0),
            session("one_to_two", 1, pain_before=1, pain_after=2),
            session("two_to_zero", 2, pain_before=2, pain_after=0),
            session("zero_to_one", 3, pain_before=0, pain_after=1),
        ),
        2.0,
    )
    assert relief.select("session_id", "relief_points", "relief_pct", "meaningful_relief").sort(
        "session_id").collect().rows() == [
        # Below the MCID floor (pain_before < 2) a session cannot show meaningful relief: null, not false (R3).
        ("one_to_two", -1, pytest.approx(-1.0), None),
        ("one_to_zero", 1, pytest.approx(1.0), None),
        ("two_to_zero", 2, pytest.approx(1.0), True),  # exactly the MCID
        ("zero_to_one", -1, None, None),
    ]
