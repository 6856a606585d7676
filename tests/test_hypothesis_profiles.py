"""The suite's property tests are deterministic by default (README: "offline, deterministic").

conftest.py loads the profile HYPOTHESIS_PROFILE names, `ci` by default: derandomized, no example
database, no deadline. `deep` is random, keeps the database and scales counts by DEEP_FACTOR.

Mutants tried: `derandomize=False` in the ci profile, `database=None` removed, DEFAULT_PROFILE "deep",
and conftest.py not loading any profile: each fails a test here.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

import hypothesis_profiles

REPO = Path(__file__).resolve().parents[1]
_DRAWN: list[int] = []


def test_the_ci_profile_is_active_when_none_is_named():
    if os.environ.get(hypothesis_profiles.PROFILE_ENV, hypothesis_profiles.DEFAULT_PROFILE) != "ci":
        pytest.skip("a deliberate `deep` run: the next test checks the default in a fresh process")
    active = settings()
    assert active.derandomize is True
    assert active.database is None
    assert active.deadline is None
    assert active.max_examples == hypothesis_profiles.CI_EXAMPLES
    assert hypothesis_profiles.scaled(7) == 7


def test_a_fresh_session_without_the_variable_uses_ci_and_deep_scales():
    env = {k: v for k, v in os.environ.items() if k != hypothesis_profiles.PROFILE_ENV}
    code = (
        "import sys; sys.path.insert(0, 'tests'); import conftest; from hypothesis import settings; "
        "import hypothesis_profiles as h; s = settings(); "
        "print(s.derandomize, s.database, s.deadline, s.max_examples, h.scaled(3))"
    )
    ci = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True, cwd=REPO)
    assert ci.stdout.split() == ["True", "None", "None", str(hypothesis_profiles.CI_EXAMPLES), "3"]
    deep = subprocess.run([sys.executable, "-c", code], env={**env, "HYPOTHESIS_PROFILE": "deep"},
                          capture_output=True, text=True, check=True, cwd=REPO)
    fields = deep.stdout.split()
    assert fields[0] == "False" and fields[1] != "None" and fields[2] == "None"
    assert fields[3:] == [str(hypothesis_profiles.CI_EXAMPLES * hypothesis_profiles.DEEP_FACTOR),
                          str(3 * hypothesis_profiles.DEEP_FACTOR)]


@given(st.integers())
def _draw(value):
    _DRAWN.append(value)


def test_two_runs_of_a_property_draw_the_same_examples():
    if settings().derandomize is not True:
        pytest.skip("random by design under `deep`")
    _DRAWN.clear()
    _draw()
    first = list(_DRAWN)
    _DRAWN.clear()
    _draw()
    assert _DRAWN == first and len(first) > 10
