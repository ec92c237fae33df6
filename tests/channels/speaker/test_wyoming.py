"""The Wyoming server driven by the ``wyoming`` package's own client, as Home Assistant does."""

from __future__ import annotations

import re
from typing import Any

from wyoming.audio import AudioChunk, AudioStart
from wyoming.info import Describe, Info
from wyoming.tts import Synthesize, SynthesizeVoice

from tests.channels.speaker.conftest import WyomingServer

AMOUNT = re.compile(r"\d+\.\d{2}")


async def test_describe_lists_installed_asr_handle_and_tts(wyoming_server: WyomingServer) -> None:
    events = await wyoming_server.request([Describe().event()], ("info",))
    info = Info.from_event(events[-1])
    assert [p.name for p in info.asr] == ["billtalk-asr"] and info.asr[0].installed
    assert [p.name for p in info.handle] == ["billtalk"] and info.handle[0].installed
    assert set(info.handle[0].models[0].languages) == {"en", "zh"}
    assert info.tts[0].installed
    assert {lang for v in info.tts[0].voices for lang in v.languages} == {"en", "zh"}


async def test_tts_streams_audio_in_english_and_chinese(wyoming_server: WyomingServer) -> None:
    for text, voice in (("You owe 51.25 yuan.", "en-us"), ("您共欠费51.25元。", "cmn")):
        events = await wyoming_server.request(
            [Synthesize(text=text, voice=SynthesizeVoice(name=voice)).event()], ("audio-stop",)
        )
        assert events[0].type == "audio-start"
        start = AudioStart.from_event(events[0])
        chunks = [AudioChunk.from_event(e) for e in events if e.type == "audio-chunk"]
        seconds = sum(len(c.audio) for c in chunks) / (start.rate * start.width)
        assert chunks and events[-1].type == "audio-stop"
        assert 0.8 < seconds < 10, seconds


async def test_asr_transcribes_real_speech(wyoming_server: WyomingServer, say: Any) -> None:
    event = await wyoming_server.transcribe(say("how much is my electricity bill"))
    assert event.type == "transcript"
    assert "electricity" in event.data["text"]


async def test_an_unpaired_speaker_never_tells_an_amount_and_says_how_to_pair(
    wyoming_server: WyomingServer,
) -> None:
    for text in ("how much do I owe?", "what's my electricity bill", "pay the water bill", "yes"):
        event = await wyoming_server.handle(text, device="unpaired-1")
        assert event.type == "not-handled"
        assert not AMOUNT.search(event.data["text"])
        assert "link code" in event.data["text"]


async def test_pairing_then_asking_the_balance(wyoming_server: WyomingServer, seeded: Any) -> None:
    payer = seeded.roles["payer"]
    code = payer["link_code"]
    event = await wyoming_server.handle(f"my link code is {code}")
    assert event.type == "handled", event.data
    assert "paired" in event.data["text"]
    event = await wyoming_server.handle("how much do I owe?")
    assert event.type == "handled"
    assert f"{payer['total']:.2f}" in event.data["text"], event.data["text"]
    assert "¥" not in event.data["text"]
    assert event.data["context"]["device_id"] == "kitchen-satellite"


async def test_what_the_dialogue_does_not_understand_is_not_handled(
    wyoming_server: WyomingServer, seeded: Any
) -> None:
    await wyoming_server.handle(f"my link code is {seeded.roles['payer']['link_code']}")
    event = await wyoming_server.handle("purple elephants dance quietly on tuesday")
    assert event.type == "not-handled", event.data
    assert "help with" in event.data["text"] or "didn't understand" in event.data["text"]


async def test_a_spoken_pin_is_decoded_with_the_digit_grammar(
    wyoming_server: WyomingServer, say: Any
) -> None:
    """Digits said alone (a PIN, a code) are decoded again, held to a digit string."""
    transcript = await wyoming_server.transcribe(say("four eight two nine one three"))
    assert transcript.data["text"] == "482913"
    assert transcript.data["context"]["billtalk_asr"] == "pocketsphinx"
    request = await wyoming_server.transcribe(say("how much do i owe"))
    assert request.data["text"] == "how much do i owe"


def test_only_a_bare_digit_string_counts_as_one() -> None:
    from bot.channels.speaker.wyoming_server import spoken_digit_count

    assert spoken_digit_count("four eight two nine one three") == 6
    assert spoken_digit_count("one two three") is None  # too short for a PIN or code
    assert spoken_digit_count("my link code is one two three four five six") is None
    assert spoken_digit_count("") is None
