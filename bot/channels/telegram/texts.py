"""The Telegram channel's own texts (``texts.yml``), in English and Chinese."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

_PATH = Path(__file__).with_name("texts.yml")
LANGUAGES = ("en", "zh")


@lru_cache(maxsize=1)
def _data() -> dict[str, Any]:
    with _PATH.open(encoding="utf-8") as fh:
        return dict(yaml.safe_load(fh))


def language_of(code: str | None) -> str:
    """``zh`` for a Telegram ``language_code`` starting with ``zh``, else ``en``."""
    return "zh" if (code or "").lower().startswith("zh") else "en"


def say(key: str, language: str, **values: Any) -> str:
    """The text ``key`` in ``language`` (English when unknown), formatted with ``values``."""
    table = _data()["zh" if language == "zh" else "en"]
    return str(table[key]).format(**values)


def commands(language: str) -> list[tuple[str, str]]:
    """``(command, description)`` pairs for ``setMyCommands`` in ``language``."""
    return [(k, str(v)) for k, v in _data()["commands"][language].items()]


def command_text(command: str, language: str) -> str | None:
    """What ``/command`` means, as a message the engine understands (``None``: not mapped)."""
    value = _data()["command_text"]["zh" if language == "zh" else "en"].get(command)
    return None if value is None else str(value)
