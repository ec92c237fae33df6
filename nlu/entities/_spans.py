"""The span type every rule-based parser returns, and small text helpers."""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

#: Full-width digits and punctuation mapped to ASCII, one character for one,
#: so offsets into the translated text are offsets into the original.
_FULLWIDTH = str.maketrans(
    "０１２３４５６７８９．，＄￥",
    "0123456789.,$¥",
)


def fold(text: str) -> str:
    """Map full-width digits and symbols to ASCII without changing any offset."""
    return text.translate(_FULLWIDTH)


@dataclass(frozen=True, slots=True)
class Span:
    """One entity found in a message.

    Attributes:
        entity: The entity type (``amount``, ``utility``, ...).
        value: The normalised value (a string, or a ``{"start", "end"}`` dict for periods).
        start: Offset of the first character in the original message.
        end: Offset one past the last character in the original message.
        meta: Parser-private details (not part of the public result).
    """

    entity: str
    value: Any
    start: int
    end: int
    meta: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def overlaps(self, other: Span) -> bool:
        """Whether the two spans share at least one character."""
        return self.start < other.end and other.start < self.end

    def to_rasa(self) -> dict[str, Any]:
        """The Rasa ``/model/parse`` entity dict for this span."""
        return {
            "entity": self.entity,
            "start": self.start,
            "end": self.end,
            "value": self.value,
            "extractor": "billtalk_rules",
            "confidence_entity": 1.0,
        }


class SpanSet:
    """Non-overlapping spans kept sorted by start; adding and checking cost O(log n).

    Long hostile messages can hold thousands of entities, so a linear overlap check
    per candidate would make extraction quadratic.
    """

    def __init__(self, spans: Iterable[Span] = ()) -> None:
        self._starts: list[int] = []
        self._spans: list[Span] = []
        for span in spans:
            self.add(span)

    def is_free(self, start: int, end: int) -> bool:
        """Whether ``[start, end)`` overlaps no span in the set."""
        i = bisect.bisect_left(self._starts, start)
        if i < len(self._spans) and self._spans[i].start < end:
            return False
        return not (i > 0 and self._spans[i - 1].end > start)

    def add(self, span: Span) -> bool:
        """Add ``span`` if it overlaps nothing already in the set; return whether it was added."""
        if span.start >= span.end or not self.is_free(span.start, span.end):
            return False
        i = bisect.bisect_left(self._starts, span.start)
        self._starts.insert(i, span.start)
        self._spans.insert(i, span)
        return True

    def __iter__(self) -> Iterator[Span]:
        return iter(self._spans)

    def __len__(self) -> int:
        return len(self._spans)


def words_re(words: list[str]) -> str:
    """An alternation of ``words``, longest first, with spaces matching any whitespace."""
    ordered = sorted(set(words), key=len, reverse=True)
    return "|".join(re.escape(w).replace(r"\ ", r"\s+") for w in ordered)


def synonym_matchers(
    english: dict[str, list[str]], chinese: dict[str, str]
) -> tuple[re.Pattern[str], re.Pattern[str]]:
    """The English and Chinese matchers of a synonym table, one named group per value.

    ``english`` maps a value to its words and phrases (matched whole, case-insensitively,
    never inside a longer word); ``chinese`` maps a value to a ready regular expression.
    A match's ``lastgroup`` is the value it names.
    """
    en = re.compile(
        r"(?<![A-Za-z])(?:"
        + "|".join(f"(?P<{value}>{words_re(words)})" for value, words in english.items())
        + r")(?![A-Za-z])",
        re.I,
    )
    zh = re.compile("|".join(f"(?P<{value}>{rx})" for value, rx in chinese.items()))
    return en, zh
