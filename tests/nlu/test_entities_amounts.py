"""Money amounts: ``nlu.entities.amounts.parse_amount`` and amount spans."""

from __future__ import annotations

from decimal import Decimal

import pytest

from nlu.entities import extract_entities
from nlu.entities.amounts import MAX_AMOUNT, cn_int, find_numbers, format_amount, parse_amount

PARSED = [
    # digits and separators
    ("45.50", "45.50"),
    ("60", "60.00"),
    ("1,250", "1250.00"),
    ("$1,250", "1250.00"),
    ("$ 1,250.75", "1250.75"),
    ("12,345,678", None),  # above MAX_AMOUNT
    ("0.5", "0.50"),
    ("9.9", "9.90"),
    ("２００元", "200.00"),  # full-width digits
    # currency symbols and words
    ("¥88", "88.00"),
    ("￥88", "88.00"),
    ("RMB 300", "300.00"),
    ("CNY300", "300.00"),
    ("300 yuan", "300.00"),
    ("300 dollars", "300.00"),
    ("30 bucks", "30.00"),
    ("300元", "300.00"),
    ("300块", "300.00"),
    ("300块钱", "300.00"),
    ("2k", "2000.00"),
    ("1.5k", "1500.00"),
    ("3.5万", "35000.00"),
    ("2千", "2000.00"),
    # English number words
    ("one hundred and fifty", "150.00"),
    ("one hundred fifty", "150.00"),
    ("a hundred", "100.00"),
    ("a thousand", "1000.00"),
    ("two grand", "2000.00"),
    ("twenty-five dollars", "25.00"),
    ("ninety nine", "99.00"),
    ("one thousand two hundred and fifty", "1250.00"),
    ("one hundred twenty dollars and fifty cents", "120.50"),
    ("fifty cents", "0.50"),
    ("75 cents", "0.75"),
    ("Three Hundred", "300.00"),
    # Chinese numerals
    ("三百块", "300.00"),
    ("三百", "300.00"),
    ("两千五", "2500.00"),
    ("两千五百", "2500.00"),
    ("一千二百五十元", "1250.00"),
    ("一千零五十元", "1050.00"),
    ("三百五", "350.00"),
    ("十五块", "15.00"),
    ("二十", "20.00"),
    ("一万五", "15000.00"),
    ("五十块五", "50.50"),
    ("五十块五毛", "50.50"),
    ("两块五毛", "2.50"),
    ("三块二角五分", "3.25"),
    ("五毛", "0.50"),
    ("三点五元", "3.50"),
    ("壹佰元", "100.00"),
    # rejected
    ("-50", None),
    ("−50", None),
    ("$-50", None),
    ("minus", None),
    ("NaN", None),
    ("nan dollars", None),
    ("inf", None),
    ("Infinity", None),
    ("0", None),
    ("0.00元", None),
    ("45.555", None),
    ("1,25", None),
    ("12,34,567", None),
    ("1e5", None),
    ("twenty five fifty", None),  # ambiguous spoken price: ask again
    ("one fifty", None),
    ("", None),
    ("   ", None),
    ("no number here", None),
    ("pay 50 or 60", None),  # two different amounts
    ("9999999999999999999999", None),
]


@pytest.mark.parametrize(("text", "expected"), PARSED)
def test_parse_amount(text: str, expected: str | None) -> None:
    result = parse_amount(text)
    if expected is None:
        assert result is None
    else:
        assert result == Decimal(expected)
        assert str(result) == expected, "exactly two places"


def test_parse_amount_never_uses_float() -> None:
    # 0.1 + 0.2 style errors would show here.
    assert parse_amount("0.10") + parse_amount("0.20") == Decimal("0.30")  # type: ignore[operator]
    assert parse_amount("1,000,000.00") == MAX_AMOUNT
    assert parse_amount("1,000,000.01") is None


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("一", 1), ("十", 10), ("十一", 11), ("二十一", 21), ("一百零一", 101),
        ("两千五", 2500), ("三万", 30000), ("一万零五百", 10500), ("二零二五", 2025),
        ("一千二百五十", 1250),
    ],
)  # fmt: skip
def test_chinese_integers(text: str, value: int) -> None:
    assert cn_int(text) == value


def test_format_amount() -> None:
    assert format_amount(Decimal("150")) == "150.00"
    assert format_amount(Decimal("0.5")) == "0.50"


SPANS = [
    ("put 60 on the water account", "60", "60.00"),
    ("pay $1,250 please", "$1,250", "1250.00"),
    ("交300元燃气费", "300元", "300.00"),
    ("交三百块水费", "三百块", "300.00"),
    ("pay one hundred and fifty dollars for gas", "one hundred and fifty dollars", "150.00"),
    ("pay one hundred and fifty on gas", "one hundred and fifty", "150.00"),
    ("微信支付两千五", "两千五", "2500.00"),
    ("电费交五十块五", "五十块五", "50.50"),
    ("pay ¥ 88 now", "¥ 88", "88.00"),
    ("pay 45.50 with alipay", "45.50", "45.50"),
    ("充100块电费", "100块", "100.00"),
]


@pytest.mark.parametrize(("text", "span", "value"), SPANS)
def test_amount_spans_point_into_the_original_text(text: str, span: str, value: str) -> None:
    amounts = [e for e in extract_entities(text, "en") if e["entity"] == "amount"]
    assert len(amounts) == 1, amounts
    assert text[amounts[0]["start"] : amounts[0]["end"]] == span
    assert amounts[0]["value"] == value


def test_find_numbers_reports_units_and_currency() -> None:
    tokens = find_numbers("I used 300 kwh and paid ¥120 for 2 months")
    assert [(t.digits, t.currency, t.unit) for t in tokens] == [
        ("300", False, "kwh"),
        ("120", True, None),
        ("2", False, "months"),
    ]
