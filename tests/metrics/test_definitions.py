"""The report's texts (metrics/definitions.py) state the thresholds the code computes with.

Mutants tried, each caught by test_texts_follow_the_settings: the MCID written as a literal "2 points" in
the meaningful-relief text; the minimum cell written as a literal 11 in the suppressed label.
"""

from __future__ import annotations

import pytest

from clinic_outcomes.metrics.definitions import INTERVALS, definitions
from clinic_outcomes.metrics.frames import IN_RELIEF_AT, MODERATE_CHANGE, SUBSTANTIAL_CHANGE
from clinic_outcomes.metrics.relief import session_relief
from clinic_outcomes.settings import Rules
from metrics_fixtures import session, sessions_frame


def test_every_text_is_one_label_one_sentence_and_a_method():
    for key, text in definitions().items():
        assert text.label and text.method, key
        assert text.definition.endswith(".") and text.definition.count(". ") == 0, key


def test_default_texts_state_the_default_thresholds():
    texts = definitions()
    assert "at least 2 points (the MCID)" in texts["meaningful_relief_share"].definition
    assert "below 2 points" in texts["too_little_pain_sessions"].definition
    assert "minus 2 points" in texts["median_hours"].definition
    assert "at most 42 days" in texts["median_hours"].method
    assert "cluster-robust" in texts["median_hours"].method and "one cluster" in texts["median_hours"].method
    assert "association" in texts["hazard_ratio"].definition and "11 patients" in texts["hazard_ratio"].method
    assert texts["suppressed"].label == "fewer than 11"
    assert "6 weeks" in texts["plans_complete_share"].method
    assert "less than 72 hours" in texts["retreatment_flags"].definition


@pytest.mark.parametrize("mcid, cell, days, weeks", [(3.0, 5, 30, 8), (1.5, 20, 14, 4)])
def test_texts_follow_the_settings(mcid, cell, days, weeks):
    rules = Rules(mcid_points=mcid, min_cell_patients=cell, relief_followup_days=days, plan_weeks=weeks)
    texts = definitions(rules)
    points = f"{mcid:g} points"
    assert f"at least {points} (the MCID)" in texts["meaningful_relief_share"].definition
    assert f"minus {points}" in texts["median_hours"].definition
    assert f"at least {points}" in texts["plan_achieved_mcid_share"].definition
    assert f"at most {days} days" in texts["median_hours"].method
    assert f"{weeks} weeks" in texts["plans_complete_share"].method
    assert texts["suppressed"].label == f"fewer than {cell}"
    assert f"fewer than {cell} patients" in texts["in_relief_72h"].method
    assert "2 points" not in " ".join(t.definition + t.method for t in texts.values())
    # The words and the computation agree: a session starting exactly at the stated floor could show relief.
    relief = session_relief(sessions_frame(session("a", 0, pain_before=3, pain_after=0)), mcid).collect()
    assert relief["could_show_relief"][0] == (3 >= mcid)


def test_in_relief_texts_follow_the_times_the_code_uses():
    texts = definitions()
    assert [texts[share].label for share in IN_RELIEF_AT] == [
        "Still in relief at 24 hours", "Still in relief at 72 hours", "Still in relief at 7 days",
        "Still in relief at 14 days",
    ]
    assert IN_RELIEF_AT == {"in_relief_24h": 24.0, "in_relief_72h": 72.0, "in_relief_7d": 168.0, "in_relief_14d": 336.0}
    assert f"{MODERATE_CHANGE * 100:g}%" in texts["moderate_share"].definition == (
        "Share of plans whose pain fell by at least 30% of its baseline."
    )
    assert f"{SUBSTANTIAL_CHANGE * 100:g}%" in texts["substantial_share"].definition


def test_interval_text_says_what_it_means_and_does_not():
    assert "one cluster" in INTERVALS and "association" in INTERVALS and "not" in INTERVALS
