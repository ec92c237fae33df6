"""Structured logging (structlog) to stderr, so stdout stays free for JSON output.

Both structlog and the standard library write to whatever ``sys.stderr`` is *at
the time of the call*, not at configuration time: test runners and CLIs swap
stderr, and a logger bound to a closed stream would fail later calls.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import structlog

_configured = False
_level = "INFO"


class _StderrLogger:
    """A structlog logger that prints to the current ``sys.stderr``."""

    def msg(self, message: str) -> None:
        stream = sys.stderr
        stream.write(message + "\n")
        stream.flush()

    log = debug = info = warn = warning = error = critical = exception = fatal = msg


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg, unused-ignore]
    """A logging handler that writes to the current ``sys.stderr``."""

    @property  # type: ignore[override, unused-ignore]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


def configure_logging(level: str = "INFO", json: bool = False) -> None:
    """Configure structlog and the standard library to write to stderr."""
    global _configured
    root = logging.getLogger()
    if not any(isinstance(h, _StderrHandler) for h in root.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        root.addHandler(handler)
    root.setLevel(level.upper())
    # Start-up stays quiet: alembic's plugin and "Running upgrade" lines only when debugging.
    logging.getLogger("alembic").setLevel(
        logging.DEBUG if level.upper() == "DEBUG" else logging.WARNING
    )
    global _level
    _level = level.upper()
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if json
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso"),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=lambda *_args: _StderrLogger(),
        cache_logger_on_first_use=False,
    )
    _configured = True


@contextmanager
def quieter(level: str = "WARNING") -> Iterator[None]:
    """Log only ``level`` and above inside the block (e.g. seeding: no line per payment)."""
    before = _level
    if logging.getLevelName(level.upper()) <= logging.getLevelName(before):
        yield
        return
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper()))
    )
    try:
        yield
    finally:
        structlog.configure(
            wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(before))
        )


def get_logger(name: str) -> Any:
    """Return a structlog logger bound to ``name``; configures defaults on first use."""
    if not _configured:
        configure_logging()
    return structlog.get_logger(name)
