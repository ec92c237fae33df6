"""PII masking of the conversation log."""

from __future__ import annotations

import pytest

from bot.masking import mask_pii


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("my card is 4242 4242 4242 4242.", "my card is **** 4242."),
        ("card 4000-0000-0000-0002", "card **** 0002"),
        ("call me on 13812345678", "call me on [phone]"),
        ("+86 138 1234 5678 please", "[phone] please"),
        ("office 021 6234 5678", "office [phone]"),
        ("pay 1,250.00 for water", "pay 1,250.00 for water"),
        ("meter reading 123456", "meter reading 123456"),
        ("", ""),
    ],
)
def test_mask(text: str, masked: str) -> None:
    assert mask_pii(text) == masked


def test_none_stays_none() -> None:
    assert mask_pii(None) is None


def test_ten_thousand_characters_are_masked_quickly() -> None:
    text = "4" * 10_000
    assert "4444" in (mask_pii(text) or "")
