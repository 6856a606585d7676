"""A failed night gets noticed: a failing flow run really fires the failure hook, which loads the notification
block named in CLINIC_OUTCOMES_NOTIFY_BLOCK from Prefect and sends through it.

The block is a NotificationBlock subclass of this test, saved in the test session's own Prefect (its
PREFECT_HOME and temporary API, tests/conftest.py); its notify() records each message in a file.

Mutants tried (each made a test here fail): the hook removed from on_failure; the subject built from the
flow's name instead of the run's.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from prefect.blocks.abstract import NotificationBlock

from flows import nightly

pytestmark = pytest.mark.slow


class RecordingNotifier(NotificationBlock):
    """Records every notification in a JSON-lines file instead of sending it."""

    _block_type_name = "Clinic outcomes test recorder"
    _block_type_slug = "clinic-outcomes-test-recorder"

    path: str

    def notify(self, body: str, subject: str | None = None) -> None:  # noqa: D401 - Prefect's signature
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps({"subject": subject, "body": body}) + "\n")


def _sent(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_a_failing_run_notifies_through_the_named_block(prefect_harness, tmp_path, monkeypatch):
    sent = tmp_path / "sent.jsonl"
    RecordingNotifier(path=str(sent)).save("night-watch", overwrite=True)
    monkeypatch.setenv("CLINIC_OUTCOMES_NOTIFY_BLOCK", "clinic-outcomes-test-recorder/night-watch")
    monkeypatch.setenv("CLINIC_OUTCOMES_KEY", "k" * 40)
    missing = tmp_path / "no-exports-here"

    with pytest.raises(FileNotFoundError):
        nightly.nightly(exports=str(missing), warehouse=str(tmp_path / "w.duckdb"), reports=str(tmp_path / "r"),
                        as_of=dt.date(2026, 11, 24))

    (message,) = _sent(sent)
    assert message["subject"] == "clinic-outcomes: nightly 2026-11-24 failed"
    assert message["body"].startswith("The nightly run nightly 2026-11-24 ended Failed: ")
    assert f"exports folder {missing} does not exist" in message["body"]
    assert message["body"].endswith("Nothing was published; the last good warehouse and report are unchanged.")


def test_a_failing_run_without_a_named_block_notifies_nobody(prefect_harness, tmp_path, monkeypatch):
    sent = tmp_path / "sent.jsonl"
    RecordingNotifier(path=str(sent)).save("night-watch", overwrite=True)
    monkeypatch.delenv("CLINIC_OUTCOMES_NOTIFY_BLOCK", raising=False)

    with pytest.raises(FileNotFoundError):
        nightly.nightly(exports=str(tmp_path / "none"), warehouse=str(tmp_path / "w.duckdb"),
                        reports=str(tmp_path / "r"), as_of=dt.date(2026, 11, 24))

    assert _sent(sent) == []


def test_the_flow_calls_the_hook_on_failure_and_on_crash():
    assert nightly.failed_run_hook in nightly.nightly.on_failure_hooks
    assert nightly.failed_run_hook in nightly.nightly.on_crashed_hooks
