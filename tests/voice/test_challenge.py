"""Digit challenges: randomness, tolerance and the replay margin."""

from __future__ import annotations

from collections import Counter

import pytest

from biometrics.voice.challenge import (
    check_digits,
    digit_errors,
    only_digits,
    random_digits,
    spaced,
)


def test_random_digits_have_the_length_and_vary() -> None:
    draws = [random_digits(6) for _ in range(2000)]
    assert all(len(d) == 6 and d.isdigit() for d in draws)
    assert len(set(draws)) > 1990  # fresh every time
    counts = Counter("".join(draws))
    assert set(counts) == set("0123456789")
    assert max(counts.values()) / min(counts.values()) < 1.3  # roughly uniform


def test_random_digits_refuses_zero_length() -> None:
    with pytest.raises(ValueError):
        random_digits(0)


def test_spaced_and_only_digits_round_trip() -> None:
    assert spaced("471902") == "4 7 1 9 0 2"
    assert only_digits("4 7 1-9 0,2") == "471902"
    assert only_digits("٤٧") == ""  # only ASCII digits count


@pytest.mark.parametrize(
    ("expected", "heard", "errors"),
    [
        ("471902", "471902", 0),
        ("471902", "471802", 1),  # one substitution
        ("471902", "47902", 1),  # one digit missed
        ("471902", "4719002", 1),  # one extra digit
        ("471902", "741902", 2),  # two swapped digits
        ("471902", "", 6),
        ("471902", "123456", 6),
    ],
)
def test_digit_errors_is_edit_distance(expected: str, heard: str, errors: int) -> None:
    assert digit_errors(expected, heard) == errors


def test_check_digits_applies_the_tolerance() -> None:
    assert check_digits("4 7 1 9 0 2", "4 7 1 8 0 2", max_errors=1).passed
    assert not check_digits("471902", "471802", max_errors=0).passed
    assert not check_digits("471902", "741802", max_errors=1).passed
    assert not check_digits("471902", "", max_errors=6).passed  # nothing heard never passes
    assert check_digits("471902", "471802", max_errors=1).correct_in_position == 5


def test_an_old_challenge_rarely_falls_within_the_tolerance() -> None:
    # A replayed recording says the digits of another random challenge. With
    # one error tolerated, 1 + 6 * 9 of the 10**6 strings of the same length pass.
    trials = 20000
    passes = sum(
        check_digits(random_digits(6), random_digits(6), max_errors=1).passed for _ in range(trials)
    )
    assert passes / trials < 0.002
