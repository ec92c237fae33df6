"""The WER scoring normaliser treats both engines' spellings alike."""

from __future__ import annotations

import pytest

from speech.scoring import scored_wer, scoring_text


@pytest.mark.parametrize(
    ("written", "heard"),
    [
        ("pay one hundred fifty yuan for water", "Pay 150 yuan for water."),
        ("pay one hundred fifty yuan for water", "pay 150.00 yuan for water"),
        ("pay one hundred fifty yuan for water", "Pay ¥150 for water"),
        ("pay thirty yuan and fifty fen for water", "Pay 30.50 yuan for water"),
        ("pay twelve yuan and forty fen for gas", "Pay 12 yuan and 40 fen for gas."),
        ("what's my balance today", "What is my balance today?"),
        ("my link code is four seven one nine two six", "My link code is 4 7 1 9 2 6."),
        ("five two nine one eight zero", "529180"),
        ("the code is eight three five zero one two", "The code is 835 012."),
        ("turn on autopay", "Turn on auto-pay."),
        ("okay pay it now", "OK, pay it now."),
    ],
)
def test_same_words_score_zero(written: str, heard: str) -> None:
    assert scoring_text(written) == scoring_text(heard)
    assert scored_wer(written, heard) == 0.0


def test_a_wrong_word_still_counts() -> None:
    assert scored_wer("pay my water bill", "pay my water real") == pytest.approx(0.25)
    assert scored_wer("pay sixty yuan for water", "pay 16 yuan for water") == pytest.approx(0.2)
