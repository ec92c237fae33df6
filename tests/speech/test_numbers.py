"""speech.numbers: spoken numbers to figures and back, exactly."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from speech.numbers import (
    amount_to_words,
    date_to_words,
    digits_to_words,
    int_to_words,
    normalize_transcript,
    speakable,
    spoken_digits,
    spoken_to_number,
)


@pytest.mark.parametrize(
    ("spoken", "value"),
    [
        ("one hundred twenty dollars and fifty cents", Decimal("120.50")),
        ("one hundred and twenty yuan and fifty fen", Decimal("120.50")),
        ("three hundred yuan", Decimal("300")),
        ("one hundred and fifty", Decimal("150")),
        ("a hundred", Decimal("100")),
        ("two thousand five hundred", Decimal("2500")),
        ("one thousand two hundred and fifty dollars", Decimal("1250")),
        ("fifty cents", Decimal("0.50")),
        ("twelve point five", Decimal("12.5")),
        ("forty-five yuan and five fen", Decimal("45.05")),
    ],
)
def test_spoken_amounts(spoken: str, value: Decimal) -> None:
    assert spoken_to_number(spoken) == value


@pytest.mark.parametrize(
    "spoken", ["", "pay my bill", "five six", "three twenty", "one hundred and", "fifty yuan cents"]
)
def test_not_an_amount(spoken: str) -> None:
    assert spoken_to_number(spoken) is None


def test_digit_strings() -> None:
    assert spoken_digits("four seven one nine") == "4719"
    assert spoken_digits("four seven oh nine zero two") == "470902"
    assert spoken_digits("4 7 1 9") == "4719"
    assert spoken_digits("four seven pay") is None


@pytest.mark.parametrize(
    ("words", "text"),
    [
        ("pay one hundred twenty yuan and fifty fen for water", "pay 120.50 yuan for water"),
        ("pay one hundred twenty dollars and fifty cents", "pay 120.50 dollars"),
        ("my code is four seven one nine", "my code is 4719"),
        ("pay a hundred yuan", "pay 100.00 yuan"),
        ("my meter reads twelve thousand three hundred", "my meter reads 12300"),
        ("is it a bill", "is it a bill"),
        ("i don't want to pay", "i don't want to pay"),
        # Figures with a minor unit (Whisper's spelling) read as the words are.
        ("pay 12 yuan and 40 fen for gas", "pay 12.40 yuan for gas"),
        ("pay 12 yuan 5 fen", "pay 12.05 yuan"),
        ("pay 12 yuan and forty fen", "pay 12.40 yuan"),
        ("pay 3 dollars and 5 cents", "pay 3.05 dollars"),
        ("pay 40 fen", "pay 0.40"),
        ("my meter reads 12 and 40", "my meter reads 12 and 40"),
    ],
)
def test_normalize_transcript(words: str, text: str) -> None:
    assert normalize_transcript(words) == text


def test_amount_wording_per_currency() -> None:
    assert amount_to_words(Decimal("120.50")) == "one hundred twenty yuan and fifty fen"
    assert amount_to_words("120.50", "USD") == "one hundred twenty dollars and fifty cents"
    assert amount_to_words("1.00", "USD") == "one dollar"
    assert amount_to_words("0.01", "USD") == "one cent"
    assert amount_to_words("0.05", "CNY") == "five fen"
    assert amount_to_words("7.50", "EUR") == "seven point five zero EUR"


def test_dates_and_digits() -> None:
    assert date_to_words(date(2026, 3, 5)) == "March fifth, twenty twenty-six"
    assert date_to_words(date(2009, 11, 23)) == "November twenty-third, two thousand nine"
    assert date_to_words(date(2026, 3, 21), with_year=False) == "March twenty-first"
    assert digits_to_words("4 7 1 9 0 2") == "four seven one nine zero two"


def test_speakable_reply_has_no_figures_left() -> None:
    reply = "Your water bill is ¥120.50, due 2026-03-05. Say 4 7 1 9 0 2. Receipt R20260305001."
    spoken = speakable(reply)
    assert "one hundred twenty yuan and fifty fen" in spoken
    assert "March fifth, twenty twenty-six" in spoken
    assert "four seven one nine zero two" in spoken
    assert "one two zero point five zero" not in spoken
    assert not any(ch.isdigit() for ch in spoken.replace("R", "")), spoken


def test_speakable_dollar_sign_uses_dollars() -> None:
    assert speakable("$5 left") == "five dollars left"


amounts = st.decimals(min_value=Decimal("0.01"), max_value=Decimal("999999.99"), places=2)


@given(amounts, st.sampled_from(["CNY", "USD"]))
def test_amount_round_trip(value: Decimal, currency: str) -> None:
    """What the synthesiser says, the recogniser's parser turns back into the same amount."""
    assert spoken_to_number(amount_to_words(value, currency)) == value


@given(st.integers(min_value=0, max_value=999_999))
def test_integer_round_trip(n: int) -> None:
    assert spoken_to_number(int_to_words(n)) == Decimal(n)


@given(st.text(alphabet="0123456789", min_size=1, max_size=12))
def test_digit_round_trip(digits: str) -> None:
    assert spoken_digits(digits_to_words(digits)) == digits
