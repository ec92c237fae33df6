"""speech.tts: espeak-ng replies as WAV and OGG/Opus, figures spoken naturally."""

from __future__ import annotations

import pytest

from speech import load_audio, synthesize, transcribe
from speech.recognize import _edit_distance
from speech.tts import MAX_CHARS


def test_wav_reply_decodes() -> None:
    wav = synthesize("Your balance is ¥120.50.")
    assert wav[:4] == b"RIFF" and wav[8:12] == b"WAVE"
    audio = load_audio(wav)
    assert audio.format == "wav"
    # "one hundred twenty yuan and fifty fen" takes far longer than "120.50" read as digits.
    assert audio.duration_s > 2.5


def test_ogg_opus_voice_reply() -> None:
    ogg = synthesize("Your water bill is paid.", fmt="ogg")
    assert ogg[:4] == b"OggS"
    assert b"OpusHead" in ogg[:200]
    audio = load_audio(ogg)
    assert audio.format == "ogg" and audio.duration_s > 1.0


def test_chinese_reply() -> None:
    audio = load_audio(synthesize("您的水费已经缴清", lang="zh"))
    assert audio.duration_s > 1.0


def test_amounts_are_spoken_as_money_and_recognised_back() -> None:
    """Synthesis and recognition agree on amounts: the round trip keeps the value."""
    result = transcribe(synthesize("¥45.50"), grammar="amount")
    assert result.text == "45.50 yuan"


def test_spoken_challenge_digits_round_trip() -> None:
    from speech import recognize_digits

    for digits in ("471902", "803527", "835011"):
        result = recognize_digits(synthesize(" ".join(digits)), expected_len=6)
        assert result.digits is not None and len(result.digits) == 6
        # The benchmark reports exact-string accuracy; here each string is at most
        # two edits (a dropped and an inserted digit) from what was said.
        assert _edit_distance(list(digits), list(result.digits)) <= 2, (digits, result.digits)


@pytest.mark.parametrize("text", ["", "   ", "x" * (MAX_CHARS + 1)])
def test_bad_text_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        synthesize(text)


def test_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError):
        synthesize("hello", fmt="mp4")  # type: ignore[arg-type]


def test_text_is_not_interpreted_as_options() -> None:
    # Text goes through stdin: a leading dash is spoken, not parsed as an espeak option.
    audio = load_audio(synthesize("--help -v de pay my bill"))
    assert audio.duration_s > 1.0


def test_missing_espeak_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from speech import settings as speech_settings
    from speech.tts import SynthesisError

    monkeypatch.setenv("BILLTALK_SPEECH_ESPEAK_BINARY", "/nonexistent/espeak-ng")
    speech_settings.get_speech_settings.cache_clear()
    try:
        with pytest.raises(SynthesisError) as info:
            synthesize("hello")
        assert info.value.code == "tts_unavailable"
    finally:
        monkeypatch.delenv("BILLTALK_SPEECH_ESPEAK_BINARY")
        speech_settings.get_speech_settings.cache_clear()
