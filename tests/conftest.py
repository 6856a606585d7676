"""Shared test setup: offline Prefect with a home of its own, one test harness per session."""

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

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def prefect_harness():
    """A temporary Prefect API for flow tests (started once; ~8 s)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=90):
        yield
