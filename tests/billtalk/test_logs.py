"""Logging goes to the current stderr, even after stderr was swapped and closed."""

from __future__ import annotations

import io
import sys

import pytest

from billtalk.logs import configure_logging, get_logger


def test_logs_follow_the_current_stderr(monkeypatch: pytest.MonkeyPatch) -> None:
    first = io.StringIO()
    monkeypatch.setattr(sys, "stderr", first)
    configure_logging("INFO")
    log = get_logger("test")
    log.info("first_event")
    first.close()  # what a CLI test runner does after a command
    second = io.StringIO()
    monkeypatch.setattr(sys, "stderr", second)
    log.info("second_event", answer=42)
    assert "second_event" in second.getvalue() and "answer=42" in second.getvalue()
