"""A failed night gets noticed: the flow's failure hook notifies through the named Prefect block."""

from __future__ import annotations

from types import SimpleNamespace

from flows import nightly


class RecordingBlock:
    def __init__(self):
        self.sent: list[dict] = []

    def notify(self, body, subject=None):
        self.sent.append({"subject": subject, "body": body})


def _failed_state():
    return SimpleNamespace(name="Failed", message="CriticalChecksFailed: 1 critical expectation(s) failed")


def test_the_hook_sends_through_the_named_block(monkeypatch):
    block = RecordingBlock()
    loaded: list[str] = []
    monkeypatch.setenv("CLINIC_OUTCOMES_NOTIFY_BLOCK", "slack-webhook/night-watch")
    monkeypatch.setattr("prefect.blocks.core.Block.load", classmethod(lambda cls, name: loaded.append(name) or block))

    nightly.failed_run_hook(nightly.nightly, SimpleNamespace(name="nightly 2026-11-24"), _failed_state())

    assert loaded == ["slack-webhook/night-watch"]
    (sent,) = block.sent
    assert sent["subject"] == "clinic-outcomes: nightly 2026-11-24 failed"
    assert "CriticalChecksFailed" in sent["body"] and "Nothing was published" in sent["body"]


def test_without_a_configured_block_the_hook_does_nothing(monkeypatch):
    monkeypatch.delenv("CLINIC_OUTCOMES_NOTIFY_BLOCK", raising=False)
    monkeypatch.setattr(
        "prefect.blocks.core.Block.load", classmethod(lambda cls, name: (_ for _ in ()).throw(AssertionError(name)))
    )
    nightly.failed_run_hook(nightly.nightly, SimpleNamespace(name="nightly 2026-11-24"), _failed_state())


def test_the_flow_calls_the_hook_on_failure_and_on_crash():
    assert nightly.failed_run_hook in nightly.nightly.on_failure_hooks
    assert nightly.failed_run_hook in nightly.nightly.on_crashed_hooks
