"""Tests for serving.server.polling: the poll thread keeps calling after a failure and stops when told."""

from __future__ import annotations

import logging
import threading

from serving.server.polling import Poller


def test_a_failing_call_is_logged_and_polling_goes_on_until_stopped(caplog):
    calls = []
    third = threading.Event()

    def step() -> None:
        calls.append(len(calls))
        if len(calls) == 1:
            raise OSError("flaky mount")
        if len(calls) == 3:
            third.set()

    poller = Poller("test-poller", 0.01, step, "test poll failed; will retry")
    with caplog.at_level(logging.ERROR, logger="serving.server.polling"):
        poller.start()
        assert third.wait(10)
        poller.stop()
    stopped_at = len(calls)
    assert stopped_at >= 3
    assert [r.getMessage() for r in caplog.records] == ["test poll failed; will retry"]
    assert "OSError: flaky mount" in caplog.text
    assert not any(t.name == "test-poller" for t in threading.enumerate())
    third.wait(0.05)
    assert len(calls) == stopped_at  # nothing called after stop()


def test_stop_before_start_is_harmless_and_a_poller_restarts():
    calls = threading.Event()
    poller = Poller("test-poller", 0.01, calls.set, "unused")
    poller.stop()
    poller.start()
    assert calls.wait(10)
    poller.stop()
