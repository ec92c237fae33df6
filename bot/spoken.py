"""The spoken rendering of a reply: what a voice channel says instead of the text.

The ear can't use list markup, currency symbols or buttons. Two entry points:

* :func:`speak_replies` renders the engine's :class:`~bot.responses.Reply` objects
  for the ear. A key with a spoken variant in ``bot/spoken.yml`` uses it (the
  payment confirmation becomes "Pay 51.25 yuan for water by wallet. Say yes to
  pay, or no."); any other key is spoken from its written template. Lists become
  one sentence, items joined by commas;
* :func:`speak` does the same from already rendered text (a pushed plain text).

Both then

* write amounts the way they are said: ``¥1,250.00`` -> ``1250.00 yuan``,
  ``1,250.00元`` -> ``1250.00元`` (two decimals kept; grouping commas go, a
  synthesiser reads them as pauses; :func:`speech.numbers.speakable` turns
  figures into words when the text is synthesised);
* say the choices aloud, as part of the question when the reply asks one
  ("Which bill would you like to pay: water, electricity or gas?"), else as
  "Say continue, or cancel."; Cancel is never listed (it always works);
* keep at most two sentences before the question (:data:`MAX_STATEMENTS`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

SPOKEN_FILE = Path(__file__).resolve().parent / "spoken.yml"
#: Statements kept before the closing question (or in all, without a question).
MAX_STATEMENTS = 2

_MONEY_EN = re.compile(r"¥\s?(\d{1,3}(?:,\d{3})*|\d+)(\.\d{2})")
_MONEY_ZH = re.compile(r"(\d{1,3}(?:,\d{3})+)(\.\d{2})元")
_BULLET = re.compile(r"^\s*(?:[-*•]|\d+[.)])\s+")
_SYMBOLS = re.compile(r"[*_`#>\[\]|•]")
_SENTENCE_EN = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"“])")
_SENTENCE_ZH = re.compile(r"(?<=[。！？])")
_CANCEL_WORDS = frozenset({"cancel", "取消"})


@lru_cache(maxsize=1)
def spoken_templates() -> dict[str, dict[str, Any]]:
    """The spoken variants from ``bot/spoken.yml``, by reply key."""
    data = yaml.safe_load(SPOKEN_FILE.read_text(encoding="utf-8")) or {}
    return dict(data.get("spoken") or {})


def _amounts(text: str) -> str:
    text = _MONEY_EN.sub(lambda m: f"{m.group(1).replace(',', '')}{m.group(2)} yuan", text)
    return _MONEY_ZH.sub(lambda m: f"{m.group(1).replace(',', '')}{m.group(2)}元", text)


def _end(language: str) -> str:
    return "。" if language == "zh" else "."


def _sentences(text: str, language: str) -> str:
    """List lines joined into one sentence; lines into running text."""
    joiner = "，" if language == "zh" else ", "
    parts: list[str] = []
    items: list[str] = []

    def flush() -> None:
        if items:
            parts.append(joiner.join(items) + _end(language))
            items.clear()

    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        if _BULLET.match(line):
            items.append(_BULLET.sub("", line).rstrip(".;。；"))
            continue
        flush()
        if line.endswith((":", "：")) and language != "zh":
            line = line[:-1] + ":"
        parts.append(line)
    flush()
    text = "".join(parts) if language == "zh" else " ".join(parts)
    # "in total: a, b." after a line ending with a colon reads on as one sentence.
    return text.replace(":。", "：").replace("：。", "：")


def split_sentences(text: str, language: str) -> list[str]:
    """``text`` cut into sentences (after . ! ? in English, 。！？ in Chinese)."""
    pattern = _SENTENCE_ZH if language == "zh" else _SENTENCE_EN
    return [s.strip() for s in pattern.split(text) if s and s.strip()]


def limit_sentences(text: str, language: str, limit: int = MAX_STATEMENTS) -> str:
    """At most ``limit`` statements, then the closing question (if the text ends with one)."""
    sentences = split_sentences(text, language)
    if not sentences:
        return ""
    question = None
    if sentences[-1].endswith(("?", "？")) or sentences[-1].startswith(("Say ", "请说")):
        question = sentences.pop()
    statements = [s for s in sentences if not s.endswith(("?", "？"))] if question else sentences
    kept = statements[:limit]
    if question is not None:
        kept.append(question)
    return ("" if language == "zh" else " ").join(kept)


def _join_choices(names: list[str], language: str) -> str:
    if language == "zh":
        return "，".join(names[:-1]) + ("，还是" if len(names) > 1 else "") + names[-1]
    if len(names) == 1:
        return names[0]
    return ", ".join(names[:-1]) + " or " + names[-1]


def choices_sentence(titles: Sequence[str], language: str) -> str:
    """The choices said aloud: ``Say continue, or cancel.`` / ``请说：继续，或者取消。``."""
    names = [_amounts(t).strip().rstrip("?？.。!！") for t in titles if t and t.strip()]
    if not names:
        return ""
    if language == "zh":
        return "请说：" + "，或者".join(names) + "。"
    if len(names) == 1:
        return f"Say {names[0].lower()}."
    return "Say " + ", ".join(n.lower() for n in names[:-1]) + f", or {names[-1].lower()}."


def _with_choices(text: str, titles: Sequence[str], language: str) -> str:
    """``text`` with the choices said aloud: in its question when it asks one."""
    names = [t for t in titles if t and t.strip().lower() not in _CANCEL_WORDS]
    if not names:
        return text
    stripped = text.rstrip()
    if stripped.endswith(("?", "？")) and len(names) > 1:
        spoken = [_amounts(n).strip().rstrip("?？.。!！") for n in names]
        if language == "zh":
            return f"{stripped[:-1]}：{_join_choices(spoken, language)}？"
        first, *rest = spoken
        spoken = [first[:1].lower() + first[1:], *(s[:1].lower() + s[1:] for s in rest)]
        return f"{stripped[:-1]}: {_join_choices(spoken, language)}?"
    choices = choices_sentence(names, language)
    return f"{stripped}{'' if language == 'zh' else ' '}{choices}"


def _tidy(text: str) -> str:
    text = _SYMBOLS.sub("", text)
    text = re.sub(r"\s+([,.;:!?])", r"\1", text)
    return re.sub(r"\s{2,}", " ", text).strip()


def speak(text: str, button_titles: Sequence[str] = (), language: str = "en") -> str:
    """Rendered ``text`` (with its buttons' titles) as something to say aloud."""
    spoken = _tidy(_sentences(_amounts(text), language))
    spoken = _with_choices(spoken, button_titles, language)
    return limit_sentences(_tidy(spoken), language)


class SpokenRenderer:
    """Renders :class:`~bot.responses.Reply` objects with the spoken variants.

    Args:
        responses: The written responses (templates for keys without a spoken
            variant, terms, money and date formatting).
        templates: Spoken variants by key (default: ``bot/spoken.yml``).
    """

    def __init__(self, responses: Any, templates: Mapping[str, Mapping[str, Any]] | None = None):
        self.responses = responses
        self.templates = spoken_templates() if templates is None else templates

    def template(self, key: str, language: str) -> str:
        """The spoken template of ``key`` (the written one if there is none)."""
        variant = self.templates.get(key)
        if variant:
            text = variant.get(language) or variant.get("en")
            if text:
                return str(text)
        return str(self.responses.template(key, language))

    def says_choices(self, key: str) -> bool:
        """Whether the reply's buttons are said aloud."""
        return bool((self.templates.get(key) or {}).get("choices", True))

    def value(self, value: Any, language: str) -> str:
        """One parameter, for the ear."""
        from bot.responses import Money, Reply, format_money

        if isinstance(value, Money):
            return _amounts(format_money(value.amount, language, value.currency))
        if isinstance(value, Reply):
            return self.render(value, language)
        if isinstance(value, list):
            joiner = "，" if language == "zh" else ", "
            items = [self.value(v, language).strip() for v in value]
            return joiner.join(_BULLET.sub("", i).rstrip(".;。；") for i in items if i)
        if isinstance(value, tuple):
            return ", ".join(self.value(v, language) for v in value)
        if isinstance(value, (date, datetime, Decimal)):
            return str(self.responses.format_value(value, language))
        return str(self.responses.format_value(value, language))

    def render(self, reply: Any, language: str) -> str:
        """One reply's spoken text (without its choices)."""
        values = {k: self.value(v, language) for k, v in reply.params.items()}
        try:
            return self.template(reply.key, language).format(**values)
        except (KeyError, IndexError):  # a spoken variant that needs a missing param
            return str(self.responses.render(reply, language))

    def button_title(self, spec: Any, language: str) -> str:
        """A button's title for the ear (``Water`` rather than ``Water ¥39.77``)."""
        from bot.responses import Reply

        return self.render(Reply(spec.key, spec.params), language)


def speak_replies(replies: Sequence[Any], language: str, responses: Any) -> str:
    """The engine's replies for one turn as one spoken text (see the module docstring)."""
    renderer = SpokenRenderer(responses)
    texts: list[str] = []
    titles: list[str] = []
    for reply in replies:
        texts.append(renderer.render(reply, language))
        if renderer.says_choices(reply.key):
            titles.extend(renderer.button_title(b, language) for b in reply.buttons)
    text = "\n".join(t for t in texts if t)
    spoken = _tidy(_sentences(_amounts(text), language))
    spoken = _with_choices(spoken, titles, language)
    return limit_sentences(_tidy(spoken), language)


__all__ = [
    "MAX_STATEMENTS",
    "SpokenRenderer",
    "choices_sentence",
    "limit_sentences",
    "speak",
    "speak_replies",
    "split_sentences",
]
