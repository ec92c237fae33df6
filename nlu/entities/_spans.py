"""The span type every rule-based parser returns, and small text helpers."""

from __future__ import annotations

import re
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


def is_free(start: int, end: int, taken: list[Span]) -> bool:
    """Whether ``[start, end)`` overlaps none of the spans in ``taken``."""
    return all(end <= s.start or start >= s.end for s in taken)


def words_re(words: list[str]) -> str:
    """An alternation of ``words``, longest first, with spaces matching any whitespace."""
    ordered = sorted(set(words), key=len, reverse=True)
    return "|".join(re.escape(w).replace(r"\ ", r"\s+") for w in ordered)
