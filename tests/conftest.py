"""Shared test setup: offline Prefect with a home of its own, and Hypothesis profiles.

Hypothesis profiles (HYPOTHESIS_PROFILE selects one; `ci` is the default):
- `ci`: derandomized (the same examples on every run and every machine), no example database (nothing read
  from or written to .hypothesis/), no deadline (a shared 2-core machine makes timings meaningless), and
  100 examples for tests that do not set their own count.
- `deep`: for a local hunt, `HYPOTHESIS_PROFILE=deep uv run pytest tests/...`: random examples, 20x as many
  (hypothesis_profiles.scaled), the local example database so a failure found is replayed first.
Tests that set `max_examples` themselves keep that count under `ci`; those that use
hypothesis_profiles.scaled(n) get n under `ci` and 20 n under `deep`.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

# Before anything imports Prefect: no telemetry, nothing in the user's ~/.prefect.
_PREFECT_HOME = tempfile.mkdtemp(prefix="clinic-outcomes-prefect-")
atexit.register(shutil.rmtree, _PREFECT_HOME, ignore_errors=True)  # one per test session, not left behind
os.environ["PREFECT_HOME"] = _PREFECT_HOME
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ["DO_NOT_TRACK"] = "1"
os.environ["GX_ANALYTICS_ENABLED"] = "false"
os.environ.pop("PREFECT_API_URL", None)
os.environ.pop("CLINIC_OUTCOMES_KEY", None)

import hypothesis_profiles  # noqa: E402

hypothesis_profiles.load_from_environment()

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def prefect_harness():
    """A temporary Prefect API for flow tests that need no published night (started once; ~8 s)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=90):
        yield
