"""Per-message language detection: English or Simplified Chinese.

The product speaks two languages, so a script-ratio rule is enough and fully
predictable: a message is Chinese when its CJK ideographs, each weighted as
:data:`CJK_WEIGHT` Latin letters (an English word has about 4.5 letters, a Chinese
word about 1.5 characters), outweigh its Latin letters. Digits, punctuation and
emoji are ignored; a message without letters is English.
"""

from __future__ import annotations

from typing import Literal

Language = Literal["en", "zh"]

#: How many Latin letters one CJK ideograph counts for.
CJK_WEIGHT = 3


def is_cjk(char: str) -> bool:
    """Whether ``char`` is a CJK ideograph (incl. extension A and compatibility forms)."""
    code = ord(char)
    return (
        0x4E00 <= code <= 0x9FFF
        or 0x3400 <= code <= 0x4DBF
        or 0xF900 <= code <= 0xFAFF
        or 0x20000 <= code <= 0x2FA1F
    )


def has_letters(text: str) -> bool:
    """Whether ``text`` has anything to tell its language by (a CJK ideograph or a Latin letter).

    A PIN, an amount or a link code has not: the conversation's language stands.

    Examples:
        >>> has_letters("482913"), has_letters("51.25"), has_letters("交"), has_letters("yes")
        (False, False, True, True)
    """
    return any(is_cjk(char) or (char.isascii() and char.isalpha()) for char in text)


def detect_language(text: str) -> Language:
    """Return ``"zh"`` or ``"en"`` for ``text``.

    Examples:
        >>> detect_language("how much is my bill")
        'en'
        >>> detect_language("交300元燃气费")
        'zh'
        >>> detect_language("我的 electricity 账单")
        'zh'
    """
    cjk = latin = 0
    for char in text:
        if is_cjk(char):
            cjk += 1
        elif char.isascii() and char.isalpha():
            latin += 1
    return "zh" if cjk and cjk * CJK_WEIGHT >= latin else "en"
