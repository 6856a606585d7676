"""The Hypothesis profiles of the suite (registered and selected by conftest.py).

`ci` (the default) makes every property test deterministic: derandomize=True draws the same examples on
every run and machine, database=None keeps no state between runs. `deep` (HYPOTHESIS_PROFILE=deep) is for
a local hunt: random, with the example database, and DEEP_FACTOR times as many examples.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings
from hypothesis.database import DirectoryBasedExampleDatabase

PROFILE_ENV = "HYPOTHESIS_PROFILE"
DEFAULT_PROFILE = "ci"
CI_EXAMPLES = 100
DEEP_FACTOR = 20

settings.register_profile(
    "ci",
    derandomize=True,
    database=None,
    max_examples=CI_EXAMPLES,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "deep",
    derandomize=False,
    database=DirectoryBasedExampleDatabase(".hypothesis/examples"),
    max_examples=CI_EXAMPLES * DEEP_FACTOR,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)


def profile_name() -> str:
    return os.environ.get(PROFILE_ENV, DEFAULT_PROFILE)


def load_from_environment() -> str:
    """Select the profile HYPOTHESIS_PROFILE names (default `ci`); an unknown name is an error."""
    name = profile_name()
    settings.load_profile(name)  # raises InvalidArgument for an unknown profile
    return name


def scaled(examples: int) -> int:
    """A test's example count under the active profile: `examples` under ci, DEEP_FACTOR times it under deep."""
    return examples * DEEP_FACTOR if profile_name() == "deep" else examples
