"""The tasks' retry policy: only I/O that can fail for a moment is retried.

Mutant tried: the condition returning True for any exception (the key and settings cases fail).
"""

from __future__ import annotations

import duckdb
import pytest
from prefect.states import Failed

from clinic_outcomes.loading.keys import PatientKeyError
from clinic_outcomes.settings import SettingsError
from flows import tasks


@pytest.mark.parametrize(
    "error, retried",
    [
        (OSError("Stale file handle"), True),
        (FileNotFoundError("exports/2026-11-24/sessions.csv"), True),  # a drop share that blinked
        (duckdb.IOException("Could not read from file"), True),
        (PatientKeyError("key file is readable by others"), False),
        (SettingsError("setting rules.plan_weeks must be a whole number"), False),
        (duckdb.ConversionException("Could not convert"), False),
        (ZeroDivisionError(), False),
    ],
)
def test_only_transient_io_errors_are_retried(error, retried):
    assert tasks.transient_io_error(None, None, Failed(data=error)) is retried


def test_the_tasks_that_touch_shared_io_use_it():
    assert [t.name for t in (tasks.load_drops, tasks.render_report, tasks.publish_run)
            if t.retry_condition_fn is tasks.transient_io_error and t.retries > 0] == ["load_drops", "render_report", "publish"]


def test_timeouts_bound_the_tasks_that_run_in_the_flows_thread_and_the_flow():
    from flows.nightly import FLOW_TIMEOUT_SECONDS, nightly

    in_flow_thread = (tasks.load_drops, tasks.build_core, tasks.build_quality, tasks.render_report, tasks.publish_run)
    assert {t.name: t.timeout_seconds for t in in_flow_thread} == {t.name: tasks.TASK_TIMEOUT_SECONDS for t in in_flow_thread}
    # submitted to worker threads, where Prefect cannot interrupt them (and warns each night if asked to)
    assert (tasks.validate.timeout_seconds, tasks.compute_metrics.timeout_seconds) == (None, None)
    assert nightly.timeout_seconds == FLOW_TIMEOUT_SECONDS > tasks.TASK_TIMEOUT_SECONDS
