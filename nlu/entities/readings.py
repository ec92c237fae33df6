"""Meter readings and account-link codes, told apart from money by the words around them.

* A **meter reading** is a number near "meter", "reading", "reads", "kWh", "读数",
  "电表" ...; its value is the number as written without separators
  ("4,521.7" -> "4521.7").
* A **link code** is 6 to 8 digits near "code", "link", "connect", "绑定码" ...; it may be
  written in groups ("482-913", "482 913") and its value is the digits ("482913").
  The backend issues 6-digit zero-padded codes; up to 8 digits are accepted so it
  can lengthen them without an NLU change.
"""

from __future__ import annotations

import re

from nlu.entities._spans import Span, SpanSet

__all__ = [
    "LINK_CODE_DIGITS",
    "find_link_codes",
    "link_cue_near",
    "reading_cue_near",
]

#: Accepted link-code lengths.
LINK_CODE_DIGITS = (6, 8)

_READING_CUE = re.compile(
    r"\b(?:meters?|metre|readings?|reads|read|says|shows|showing|display(?:s|ing)?|"
    r"odometer|counter|index|dial|gauge|submit(?:ting)?)\b|"
    r"读数|读表|抄表|表上|表显示|表数|显示|电表|水表|气表|燃气表|表读|度数|止码|底数|指数|读",
    re.I,
)
_LINK_CUE = re.compile(
    r"\b(?:code|codes|link(?:ing)?|connect(?:ing)?|bind(?:ing)?|pair(?:ing)?|activation|"
    r"activate|invite|invitation|register|registration|verification|pin)\b|"
    r"绑定码|绑定|关联码|关联|邀请码|激活码|验证码|链接码|代码|码",
    re.I,
)
_GROUPED_CODE = re.compile(r"(?<![\d.,-])(\d{3,4})[-\s](\d{3,4})(?![\d.,-])")
_PLAIN_CODE = re.compile(r"(?<![\d.,])(\d{6,8})(?![\d.,])")


def _near(
    cue: re.Pattern[str], text: str, start: int, end: int, before: int, after: int
) -> int | None:
    """Distance from ``[start, end)`` to the nearest cue within the window, or None."""
    best: int | None = None
    for m in cue.finditer(text, max(0, start - before), min(len(text), end + after)):
        if m.end() <= start:
            d = start - m.end()
        elif m.start() >= end:
            d = m.start() - end
        else:
            continue
        best = d if best is None else min(best, d)
    return best


def reading_cue_near(text: str, start: int, end: int) -> int | None:
    """Distance to the nearest meter-reading cue word around ``[start, end)``, or None."""
    return _near(_READING_CUE, text, start, end, 40, 12)


def link_cue_near(text: str, start: int, end: int) -> int | None:
    """Distance to the nearest link-code cue word around ``[start, end)``, or None."""
    return _near(_LINK_CUE, text, start, end, 40, 12)


def find_link_codes(text: str, *, require_cue: bool = True) -> list[Span]:
    """Link codes in ``text``: 6-8 digits, possibly grouped, near a link cue word.

    Args:
        text: The message.
        require_cue: When False, any 6-8 digit group counts (for a message that
            answers "what is your link code?").
    """
    spans = SpanSet()
    for pattern in (_GROUPED_CODE, _PLAIN_CODE):
        for m in pattern.finditer(text):
            digits = "".join(g for g in m.groups() if g)
            if not LINK_CODE_DIGITS[0] <= len(digits) <= LINK_CODE_DIGITS[1]:
                continue
            if not spans.is_free(m.start(), m.end()):
                continue
            if require_cue and link_cue_near(text, m.start(), m.end()) is None:
                continue
            spans.add(Span("link_code", digits, m.start(), m.end()))
    return list(spans)
