"""PII masking for the conversation log.

The log keeps the raw text (for staff with access to it) and a masked copy for
everyone else and for exports: card-like numbers keep only their last four
digits, phone numbers are replaced entirely. PIN answers never get this far:
the engine replaces them with :data:`SECRET_MASK` in both copies.
"""

from __future__ import annotations

import re

SECRET_MASK = "******"

_MOBILE = re.compile(r"(?<!\d)(?:\+?86[ -]?)?1[3-9]\d[ -]?\d{4}[ -]?\d{4}(?!\d)")
_CARD = re.compile(r"(?<![\d.])(?:\d[ -]?){12,18}\d(?![\d]|\.\d)")
_PHONE = re.compile(
    r"(?<![\d.])(?:\+\d{1,3}[ -]?)?\(?\d{2,4}\)?[ -]\d{3,4}[ -]\d{3,4}(?![\d]|\.\d)"
)


def _mask_card(match: re.Match[str]) -> str:
    digits = re.sub(r"\D", "", match.group(0))
    return "**** " + digits[-4:]


def mask_pii(text: str | None) -> str | None:
    """``text`` with card-like numbers and phone numbers masked.

    >>> mask_pii("card 4242 4242 4242 4242, call 13812345678")
    'card **** 4242, call [phone]'
    """
    if text is None:
        return None
    masked = _MOBILE.sub("[phone]", text)
    masked = _CARD.sub(_mask_card, masked)
    return _PHONE.sub("[phone]", masked)
