"""Decoding an answer in the dialogue's expectation state (speech.expectation), on real
espeak-ng audio."""

from __future__ import annotations

import pytest

from speech.audio import load_audio
from speech.expectation import (
    carrier_phrases,
    decode_in_state,
    digit_run,
    state_sentences,
)
from speech.numbers import normalize_transcript
from speech.tts import synthesize


def test_state_answers_come_from_the_nlu_data() -> None:
    yes_no = {" ".join(s) for s in state_sentences("yes_no")}
    assert {"yes", "no", "never mind", "go ahead"} <= yes_no
    pin = carrier_phrases("pin")
    assert [] in pin and ["my", "pin", "is"] in pin
    assert all("code" not in p for p in pin)
    assert ["my", "link", "code", "is"] in carrier_phrases("link_code")
    utility = {" ".join(s) for s in state_sentences("utility")}
    assert {"the <utility> bill", "all of them", "cancel"} <= utility
    assert "with <method>" in {" ".join(s) for s in state_sentences("method")}
    with pytest.raises(ValueError, match="unknown expectation"):
        state_sentences("colour")


def test_digit_run() -> None:
    assert digit_run("my pin is four eight two nine one three") == 6
    assert digit_run("one two three") is None
    assert digit_run("four eight two nine one three pay") is None


@pytest.mark.parametrize(
    ("state", "said", "expected"),
    [
        ("pin", "my pin is two seven one eight two eight", "my pin is 271828"),
        ("pin", "three one four one five nine", "314159"),
        ("link_code", "my link code is five five two nine zero one", "my link code is 552901"),
        ("yes_no", "yes go ahead", "yes go ahead"),
        ("utility", "the electricity bill", "the electricity bill"),
        ("method", "from my wallet", "from my wallet"),
    ],
)
def test_an_expected_answer_is_decoded_in_its_state(state: str, said: str, expected: str) -> None:
    audio = load_audio(synthesize(said, voice="en-us", lang="en"))
    decoded = decode_in_state(audio, state)
    assert normalize_transcript(decoded.words) == expected
    assert decoded.confidence >= 0.5
    assert decoded.engine.startswith(f"pocketsphinx/state-{state}")
