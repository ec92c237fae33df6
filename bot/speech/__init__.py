"""Moved: speech is the top-level package :mod:`speech` (this alias goes away)."""

import importlib
import sys

from speech import *  # noqa: F403

for _name in ("audio", "cli", "digit_verify", "grammar", "numbers", "recognize", "settings",
              "sphinx", "tts"):
    sys.modules[f"bot.speech.{_name}"] = importlib.import_module(f"speech.{_name}")
