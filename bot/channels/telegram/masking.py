"""The bot token never reaches a log line, an error message or a traceback.

The token is part of every Bot API URL (``.../bot<token>/sendMessage``), and
httpx logs every request URL at INFO; python-telegram-bot logs parameters at
DEBUG. :func:`install_token_masking` replaces the token with ``<token>`` in every
log record (message, arguments and formatted traceback) of every logger, and
:func:`mask_token` does the same for text printed by the CLI.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

MASK = "<token>"
_lock = threading.Lock()
_secrets: set[str] = set()
_installed = False


def mask_token(text: str) -> str:
    """``text`` with every registered secret (bot token, webhook secret) as ``<token>``."""
    for secret in _secrets:
        if secret and secret in text:
            text = text.replace(secret, MASK)
    return text


def _has_secret(value: object) -> bool:
    text = str(value)
    return any(secret and secret in text for secret in _secrets)


def _masked_arg(value: object) -> object:
    """A log argument with secrets masked; other arguments keep their type (``%d`` works)."""
    if isinstance(value, str):
        return mask_token(value)
    if isinstance(value, (int, float, bool)) or value is None:
        return value
    return mask_token(str(value)) if _has_secret(value) else value


class TokenMaskingFilter(logging.Filter):
    """A logging filter that masks registered secrets in a record before it is formatted."""

    _formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        """Mask the record in place; always keep it."""
        if not _secrets:
            return True
        if isinstance(record.msg, str):
            record.msg = mask_token(record.msg)
        elif _has_secret(record.msg):
            record.msg = mask_token(str(record.msg))
        if isinstance(record.args, dict):
            record.args = {k: _masked_arg(v) for k, v in record.args.items()}
        elif isinstance(record.args, tuple):
            record.args = tuple(_masked_arg(a) for a in record.args)
        if record.exc_info and not record.exc_text:
            record.exc_text = self._formatter.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask_token(record.exc_text)
        if record.stack_info:
            record.stack_info = mask_token(record.stack_info)
        return True


_filter = TokenMaskingFilter()
_LOGGERS = (
    "httpx",
    "httpcore",
    "telegram",
    "telegram.ext",
    "telegram.Bot",
    "telegram.ext.Updater",
    "telegram.ext.Application",
    "telegram.ext.ExtBot",
    "uvicorn",
    "uvicorn.error",
    "uvicorn.access",
)


def install_token_masking(*secrets: str) -> None:
    """Mask ``secrets`` in every log record from now on.

    The filter sits on the httpx and telegram loggers and on every handler of the
    root logger, and a log record factory masks records of any other logger too
    (a filter on a logger does not see its children's records).
    """
    global _installed
    with _lock:
        _secrets.update(s for s in secrets if s)
        if _installed:
            return
        _installed = True
    for name in _LOGGERS:
        logging.getLogger(name).addFilter(_filter)
    for handler in logging.getLogger().handlers:
        handler.addFilter(_filter)
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        _filter.filter(record)
        return record

    logging.setLogRecordFactory(factory)
