"""Bad input on the Wyoming server: each is answered clearly, logged at warning, survived."""

from __future__ import annotations

import asyncio
import io
import json
import wave
from typing import Any

import numpy as np
import pytest
from wyoming.asr import Transcribe
from wyoming.audio import AudioChunk, AudioStart
from wyoming.info import Describe

from tests.channels.speaker.conftest import WyomingServer, pcm_chunks


def _pcm(wav: bytes) -> tuple[np.ndarray, int]:
    with wave.open(io.BytesIO(wav), "rb") as reader:
        data = reader.readframes(reader.getnframes())
        return np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0, reader.getframerate()


def _resample(samples: np.ndarray, src: int, dst: int) -> np.ndarray:
    import soxr

    return soxr.resample(samples, src, dst).astype(np.float32)


async def _still_alive(server: WyomingServer) -> None:
    events = await server.request([Describe().event()], ("info",))
    assert events[-1].type == "info"


async def _asr(server: WyomingServer, events: list[Any]) -> Any:
    out = await server.request([Transcribe(language="en").event(), *events], ("transcript",))
    return out[-1]


async def test_silence_gives_an_empty_transcript_and_a_clear_reply(
    wyoming_server: WyomingServer, capsys: pytest.CaptureFixture[str]
) -> None:
    silence = np.zeros(16_000 * 2, dtype="<i2").tobytes()
    transcript = await _asr(wyoming_server, pcm_chunks(silence, 16_000, 2, 1))
    assert transcript.data["text"] == ""
    assert transcript.data["context"]["billtalk_error"] == "silent"
    reply = await wyoming_server.handle("", context=transcript.data["context"])
    assert reply.type == "not-handled"
    assert "didn't hear anything" in reply.data["text"]
    assert "wyoming_audio_unusable" in capsys.readouterr().err


async def test_noise_only_is_not_acted_on(wyoming_server: WyomingServer) -> None:
    rng = np.random.default_rng(3)
    noise = (rng.normal(0, 0.2, 16_000 * 3).clip(-1, 1) * 32767).astype("<i2").tobytes()
    transcript = await _asr(wyoming_server, pcm_chunks(noise, 16_000, 2, 1))
    context = transcript.data.get("context") or {}
    assert transcript.data["text"] == "" or context.get("billtalk_weak"), transcript.data
    reply = await wyoming_server.handle(transcript.data["text"], context=context)
    assert reply.type == "not-handled"


async def test_sixty_seconds_are_cut_with_a_clear_reply(
    wyoming_server: WyomingServer, say: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    samples, rate = _pcm(say("how much do I owe"))
    long = np.tile(samples, int(70 * rate / samples.size) + 1)[: 70 * rate]
    assert long.size / rate >= 70
    pcm = (long * 32767).astype("<i2").tobytes()
    transcript = await _asr(wyoming_server, pcm_chunks(pcm, rate, 2, 1, size=rate * 2))
    assert transcript.data["text"] == ""
    assert transcript.data["context"]["billtalk_error"] == "too_long"
    reply = await wyoming_server.handle("", context=transcript.data["context"])
    assert "too long" in reply.data["text"]
    err = capsys.readouterr().err
    assert "wyoming_audio_cut" in err and "warning" in err
    await _still_alive(wyoming_server)


@pytest.mark.parametrize(
    ("rate", "width", "channels"), [(8_000, 2, 1), (44_100, 2, 2), (48_000, 4, 1), (22_050, 1, 1)]
)
async def test_other_rates_widths_and_channels_are_resampled(
    wyoming_server: WyomingServer, say: Any, rate: int, width: int, channels: int
) -> None:
    samples, src = _pcm(say("how much is my electricity bill"))
    audio = _resample(samples, src, rate)
    if width == 1:
        pcm = ((audio * 127) + 128).clip(0, 255).astype(np.uint8).tobytes()
    else:
        scale = 2 ** (8 * width - 1) - 1
        pcm = (audio.astype(np.float64) * scale).astype(f"<i{width}").tobytes()
    if channels == 2:
        frame = np.frombuffer(pcm, dtype=f"<i{width}")
        pcm = np.repeat(frame, 2).tobytes()
    transcript = await _asr(wyoming_server, pcm_chunks(pcm, rate, width, channels))
    # 8 kHz keeps only the telephone band: "electric" is what survives reliably there.
    assert "how much is my electric" in transcript.data["text"], transcript.data


async def test_a_malformed_event_is_logged_and_the_server_keeps_running(
    wyoming_server: WyomingServer, capsys: pytest.CaptureFixture[str]
) -> None:
    for garbage in (
        b"this is not json\n",
        b'{"no_type": 1}\n',
        b'{"type": "x", "data_length": -5}\n',
    ):
        reader, writer = await asyncio.open_connection(wyoming_server.host, wyoming_server.port)
        writer.write(garbage)
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), 10)
        header = json.loads(line)
        assert header["type"] == "error"
        assert await asyncio.wait_for(reader.read(), 10) is not None  # closed by the server
        writer.close()
    assert capsys.readouterr().err.count("wyoming_malformed_event") == 3
    await _still_alive(wyoming_server)


async def test_a_well_framed_bad_event_gets_an_error_and_the_connection_stays(
    wyoming_server: WyomingServer,
) -> None:
    events = await wyoming_server.request(
        [
            AudioChunk(rate=16_000, width=2, channels=1, audio=b"\x00").event(),  # half a frame
            Describe().event(),
        ],
        ("info",),
    )
    assert [e.type for e in events] == ["error", "info"]
    from wyoming.event import Event

    events = await wyoming_server.request(
        [Event(type="transcript", data={"language": "en"}), Describe().event()], ("info",)
    )
    assert [e.type for e in events] == ["error", "info"]


async def test_a_client_that_disconnects_mid_stream(
    wyoming_server: WyomingServer, say: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from wyoming.client import AsyncTcpClient

    samples, rate = _pcm(say("pay the water bill"))
    pcm = (samples * 32767).astype("<i2").tobytes()
    async with AsyncTcpClient(wyoming_server.host, wyoming_server.port) as client:
        await client.write_event(Transcribe(language="en").event())
        await client.write_event(AudioStart(rate=rate, width=2, channels=1).event())
        await client.write_event(
            AudioChunk(rate=rate, width=2, channels=1, audio=pcm[: (len(pcm) // 4) * 2]).event()
        )
    # And one that leaves in the middle of an event's payload.
    _reader, writer = await asyncio.open_connection(wyoming_server.host, wyoming_server.port)
    writer.write(
        b'{"type": "audio-chunk", "data": {"rate": 16000, "width": 2, "channels": 1}, '
        b'"payload_length": 32000}\n' + b"\x00" * 1000
    )
    await writer.drain()
    writer.close()
    await asyncio.sleep(0.5)
    await _still_alive(wyoming_server)
    err = capsys.readouterr().err
    assert "wyoming_client_disconnected_mid_stream" in err
    assert "wyoming_client_disconnected_mid_event" in err


async def test_a_weak_transcript_is_repeated_back_then_the_chat_is_suggested(
    wyoming_server: WyomingServer, seeded: Any
) -> None:
    payer = seeded.roles["payer"]
    await wyoming_server.handle(f"my link code is {payer['link_code']}")
    first = await wyoming_server.handle("pay the water bill", context={"billtalk_weak": True})
    assert first.type == "not-handled"
    assert "I heard: pay the water bill" in first.data["text"]
    second = await wyoming_server.handle("pay the gas bill", context={"billtalk_weak": True})
    assert "Telegram chat" in second.data["text"]
    # Nothing was started: "yes" pays nothing.
    reply = await wyoming_server.handle("yes")
    assert "Pay" not in reply.data["text"]


async def test_chinese_audio_to_the_english_recogniser_gets_a_clear_reply(
    wyoming_server: WyomingServer,
) -> None:
    from bot.channels.speaker.settings import SpeakerSettings
    from speech import synthesize

    # English-only recognition (without Whisper, ``auto`` behaves the same way).
    wyoming_server.service.settings = SpeakerSettings(asr_engine="pocketsphinx")
    samples, rate = _pcm(synthesize("我欠多少钱", lang="zh"))
    pcm = (samples * 32767).astype("<i2").tobytes()
    out = await wyoming_server.request(
        [Transcribe(language="zh").event(), *pcm_chunks(pcm, rate, 2, 1)], ("transcript",)
    )
    transcript = out[-1]
    assert transcript.data["text"] == ""
    assert transcript.data["context"]["billtalk_error"] == "language_unsupported"
    reply = await wyoming_server.handle("", language="zh", context=transcript.data["context"])
    assert reply.type == "not-handled"
    assert "只支持英语" in reply.data["text"]
