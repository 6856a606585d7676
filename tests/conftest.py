"""Shared test setup: offline Prefect with a home of its own, Hypothesis profiles, and how the tests are
shared between pytest-xdist's workers.

Hypothesis profiles (HYPOTHESIS_PROFILE selects one; `ci` is the default):
- `ci`: derandomized (the same examples on every run and every machine), no example database (nothing read
  from or written to .hypothesis/), no deadline (a shared 2-core machine makes timings meaningless), and
  100 examples for tests that do not set their own count.
- `deep`: for a local hunt, `HYPOTHESIS_PROFILE=deep uv run pytest tests/...`: random examples, 20x as many
  (hypothesis_profiles.scaled), the local example database so a failure found is replayed first.
Tests that set `max_examples` themselves keep that count under `ci`; those that use
hypothesis_profiles.scaled(n) get n under `ci` and 20 n under `deep`.

Workers (pyproject's addopts: `-n auto --dist loadfile`; `-n 0` runs everything in one process): every
worker is its own Python process, so everything session-scoped here (PREFECT_HOME, the Prefect harness,
flow_helpers' server, scratch folder and published sites) exists once per worker. So that the expensive
ones are built once, the scheduler below (ModuleOrServerScheduling) hands out whole test modules (a module's
fixtures are built once) and keeps every module that uses flow_helpers' `prefect_server` (the server, the
generated network and the published sites) on one worker as a single unit; units start longest first
(SLOW_FIRST, measured), so the last unit to finish is a short one.
"""

from __future__ import annotations

import atexit
import functools
import os
import re
import shutil
import tempfile
from pathlib import Path

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

# Test modules by measured wall time, longest first (docs/testing.md says how to measure them again). A
# module not listed runs after these, in collection order. SERVER_GROUP is the unit of every module that uses
# flow_helpers' server.
SERVER_GROUP = "prefect_server"
SLOW_FIRST = (
    SERVER_GROUP,
)
_USES_SERVER = re.compile(r"\bprefect_server\b")


@functools.cache
def work_unit(module: str) -> str:
    """The unit of work a test module belongs to: its own path, or SERVER_GROUP when it uses flow_helpers'
    server. Decided from the module's text, because the controller that hands out units does not collect
    (and xdist's own xdist_group marks do not reach it under pytest 9.2: xdist 3.8 renames nodes through
    `item._nodeid`, which pytest 9.2 no longer reads)."""
    path = Path(__file__).resolve().parent.parent / module
    if path.suffix == ".py" and path.is_file() and _USES_SERVER.search(path.read_text(encoding="utf-8")):
        return SERVER_GROUP
    return module


def pytest_collection_modifyitems(config, items):
    """The longest units first (SLOW_FIRST), the others in collection order; a unit's tests keep their order."""
    rank = {name: i for i, name in enumerate(SLOW_FIRST)}
    units = [work_unit(item.nodeid.split("::", 1)[0]) for item in items]
    first_seen = {}
    for index, unit in enumerate(units):
        first_seen.setdefault(unit, index)
    order = sorted(range(len(items)), key=lambda i: (rank.get(units[i], len(rank)), first_seen[units[i]], i))
    items[:] = [items[i] for i in order]


@pytest.hookimpl(optionalhook=True)  # the hook exists only while xdist is loaded (not under -p no:xdist)
def pytest_xdist_make_scheduler(config, log):
    """Units of work (work_unit) handed out in collection order (see the docstring above)."""
    from xdist.scheduler import LoadScopeScheduling

    class ModuleOrServerScheduling(LoadScopeScheduling):
        def __init__(self, config, log=None):
            super().__init__(config, log)
            config.option.loadscopereorder = False  # keep SLOW_FIRST's order, not the count of tests

        def _split_scope(self, nodeid: str) -> str:
            return work_unit(nodeid.split("::", 1)[0])

    return ModuleOrServerScheduling(config, log)


@pytest.fixture(scope="session")
def prefect_harness():
    """A temporary Prefect API for flow tests that need no published night (started once; ~8 s)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=90):
        yield
