"""The responses file: complete in both languages, and every key used in code exists."""

from __future__ import annotations

import re
import string
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from bot.responses import Money, Reply, ResponseError, Term, default_responses, format_money

ROOT = Path(__file__).resolve().parents[2]
SOURCES = [
    *ROOT.joinpath("bot").glob("*.py"),
    *ROOT.joinpath("bot/forms").glob("*.py"),
    *ROOT.joinpath("actions").glob("*.py"),
]
KEY_RE = re.compile(r'(?:Reply|ButtonSpec|say)\(\s*"([a-z_]+)"')


def _fields(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def test_every_response_has_english_and_chinese_with_the_same_placeholders() -> None:
    responses = default_responses()
    for key in responses.keys:
        en, zh = responses.template(key, "en"), responses._templates[key].get("zh")
        assert zh, f"{key} has no zh variant"
        assert _fields(en) == _fields(zh), key


def test_every_key_used_in_code_exists() -> None:
    keys = default_responses().keys
    used = set()
    for path in SOURCES:
        used |= set(KEY_RE.findall(path.read_text(encoding="utf-8")))
    assert used, "the scan found no keys"
    missing = sorted(k for k in used if k not in keys)
    assert not missing, missing


def test_no_reply_strings_in_code() -> None:
    for path in SOURCES:
        source = path.read_text(encoding="utf-8")
        assert "Please confirm" not in source and "请确认" not in source, path


@pytest.mark.parametrize(
    ("amount", "language", "text"),
    [
        ("1250", "en", "¥1,250.00"),
        ("120.5", "zh", "120.50元"),
        ("-3.10", "en", "-¥3.10"),
        ("0", "zh", "0.00元"),
    ],
)
def test_money_per_locale(amount: str, language: str, text: str) -> None:
    assert format_money(Decimal(amount), language) == text


def test_other_currencies_use_the_code() -> None:
    assert format_money(Decimal("5"), "en", "USD") == "USD 5.00"
    assert format_money(Decimal("5"), "zh", "USD") == "5.00 USD"


def test_floats_are_refused() -> None:
    with pytest.raises(TypeError):
        format_money(1.5, "en")  # type: ignore[arg-type]


def test_render_localises_terms_dates_and_money() -> None:
    responses = default_responses()
    reply = Reply(
        "due_line",
        {
            "utility": Term("utility", "property_fee"),
            "amount": Money(Decimal("256.1")),
            "due_date": date(2026, 11, 16),
        },
    )
    assert responses.render(reply, "en") == "- property fee: ¥256.10 due by 16 Nov 2026"
    assert responses.render(reply, "zh") == "- 物业费：256.10元，请于2026年11月16日前缴纳"


def test_missing_placeholders_and_keys_raise() -> None:
    responses = default_responses()
    with pytest.raises(ResponseError):
        responses.render(Reply("due_line", {}), "en")
    with pytest.raises(ResponseError):
        responses.render(Reply("no_such_key"), "en")
