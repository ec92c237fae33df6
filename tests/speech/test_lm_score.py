"""The bill-domain language model as a scorer, and near-miss correction with it."""

from __future__ import annotations

import pytest


def test_phone_distance_counts_near_phones_as_half() -> None:
    from speech.lm_score import NEAR_COST, phone_distance

    assert phone_distance(["B", "IH", "L"], ["B", "IH", "L"]) == 0.0
    assert phone_distance(["B", "IH", "L"], ["B", "IY", "L"]) == NEAR_COST  # vowel for vowel
    assert phone_distance(["B", "IH", "L"], ["S", "IH", "L"]) == 1.0  # stop for fricative
    assert phone_distance(["B", "IH", "L"], ["B", "IH", "L", "Z"]) == 1.0  # one inserted


def test_the_domain_lm_prefers_a_bill_request_to_its_near_miss() -> None:
    from speech.lm_score import domain_lm

    lm = domain_lm()
    assert lm.per_word("check my bills please") > lm.per_word("check my rails please")
    # Figures are scored as a number word, not as unknown words.
    assert lm.per_word("pay 150 yuan for water") > lm.per_word("pay grumble yuan for water")


@pytest.mark.parametrize(
    ("heard", "corrected"),
    [
        ("check my rails please", "check my bills please"),
        ("check my wheels please", "check my bills please"),
        ("no maybe greater", "no maybe later"),
        ("what is my new gate for water", "what is my new date for water"),
    ],
)
def test_a_near_miss_is_corrected_into_the_domain_vocabulary(heard: str, corrected: str) -> None:
    from speech.lm_score import domain_lexicon

    assert domain_lexicon().correct(heard) == corrected


@pytest.mark.parametrize(
    "text",
    ["how much do i owe right now", "pay 150 yuan for water with alipay", "my pin is 480213", ""],
)
def test_known_words_and_figures_are_kept(text: str) -> None:
    from speech.lm_score import domain_lexicon

    assert domain_lexicon().correct(text) == text


def test_an_unknown_word_with_no_close_domain_word_is_kept() -> None:
    from speech.lm_score import domain_lexicon

    assert domain_lexicon().correct("pay the xylophone bill") == "pay the xylophone bill"


def test_a_state_lm_prefers_the_answers_of_its_state() -> None:
    """The rescoring reads an expected answer with the state's LM (the domain LM's
    sentences plus the state's answers): a confirmation's "no" is likelier there."""
    from speech.lm_score import domain_lm, state_lm

    yes_no = state_lm("yes_no")
    assert yes_no is state_lm("yes_no")  # read once
    assert yes_no.score(["no", "cancel", "it"]) > domain_lm().score(["no", "cancel", "it"])
    assert yes_no.score(["no", "cancel", "it"]) > yes_no.score(["no", "cancel", "bill"])
