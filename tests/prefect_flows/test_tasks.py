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
