"""The spoken rendering of a reply: what a voice channel says instead of the text.

The ear can't use list markup, currency symbols or buttons. :func:`speak` turns a
rendered reply into plain sentences:

* ``¥1,250.00`` becomes ``1250.00 yuan`` (``1250.00元`` in Chinese): the amount
  keeps its two decimals, the grouping commas go (a speech engine reads them
  as pauses);
* list lines (``- electricity: ...``) become one sentence, items joined by commas;
* the choices are said aloud at the end ("Say pay 51.25 yuan, or cancel.").
"""

from __future__ import annotations

import re
from collections.abc import Sequence

_MONEY_EN = re.compile(r"¥\s?(\d{1,3}(?:,\d{3})*|\d+)(\.\d{2})")
_MONEY_ZH = re.compile(r"(\d{1,3}(?:,\d{3})+)(\.\d{2})元")
_BULLET = re.compile(r"^\s*(?:[-*•]|\d+[.)])\s+")
_SYMBOLS = re.compile(r"[*_`#>\[\]|]")


def _amounts(text: str) -> str:
    text = _MONEY_EN.sub(lambda m: f"{m.group(1).replace(',', '')}{m.group(2)} yuan", text)
    return _MONEY_ZH.sub(lambda m: f"{m.group(1).replace(',', '')}{m.group(2)}元", text)


def _sentences(text: str, language: str) -> str:
    joiner = "，" if language == "zh" else ", "
    parts: list[str] = []
    items: list[str] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        if _BULLET.match(line):
            items.append(_BULLET.sub("", line))
            continue
        if items:
            parts.append(joiner.join(items) + ("。" if language == "zh" else "."))
            items = []
        parts.append(line)
    if items:
        parts.append(joiner.join(items) + ("。" if language == "zh" else "."))
    return " ".join(parts) if language != "zh" else "".join(parts)


def choices_sentence(titles: Sequence[str], language: str) -> str:
    """The choices said aloud: ``Say pay 51.25 yuan, or cancel.`` / ``请说：付款，或者取消。``."""
    names = [_amounts(t) for t in titles if t]
    if not names:
        return ""
    if language == "zh":
        return "请说：" + "，或者".join(names) + "。"
    if len(names) == 1:
        return f"Say {names[0].lower()}."
    return "Say " + ", ".join(n.lower() for n in names[:-1]) + f", or {names[-1].lower()}."


def speak(text: str, button_titles: Sequence[str] = (), language: str = "en") -> str:
    """``text`` (with its buttons' titles) as something to say aloud."""
    spoken = _SYMBOLS.sub("", _sentences(_amounts(text), language))
    choices = choices_sentence(button_titles, language)
    if choices:
        spoken = f"{spoken} {choices}" if language != "zh" else f"{spoken}{choices}"
    return re.sub(r"\s{2,}", " ", spoken).strip()
