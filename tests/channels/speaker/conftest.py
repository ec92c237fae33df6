"""Fixtures for the speaker tests: a seeded community, the real engine, a live Wyoming server.

The Wyoming server listens on a free loopback port and is driven with the
``wyoming`` package's own client, one connection per request, as Home Assistant
does. Speech is real: espeak-ng synthesises what the "resident" says.
"""

from __future__ import annotations

import asyncio
import io
import wave
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from wyoming.asr import Transcribe, Transcript
from wyoming.audio import AudioChunk, AudioStart, AudioStop, wav_to_chunks
from wyoming.client import AsyncTcpClient
from wyoming.event import Event

from tests.conversations import conftest as _conversations
from tests.conversations.conftest import Clock

# The conversation tests' fixtures: the seeded community, the real NLU, the clock.
seeded = _conversations.seeded
nlu_model = _conversations.nlu_model
community_db = _conversations.community_db
clock = _conversations.clock


@dataclass
class WyomingServer:
    """A running server and the objects behind it."""

    host: str
    port: int
    service: Any
    engine: Any

    async def request(
        self, events: list[Event], until: tuple[str, ...], timeout: float = 120.0
    ) -> list[Event]:
        """Open one connection, send ``events``, read until an event of type ``until``."""
        out: list[Event] = []
        async with AsyncTcpClient(self.host, self.port) as client:
            for event in events:
                await client.write_event(event)
            while True:
                event = await asyncio.wait_for(client.read_event(), timeout)
                if event is None:
                    break
                out.append(event)
                if event.type in until:
                    break
        return out

    async def handle(
        self,
        text: str,
        *,
        device: str = "kitchen-satellite",
        language: str = "en",
        context: dict[str, Any] | None = None,
    ) -> Event:
        """A ``transcript`` to the handle program; the ``handled``/``not-handled`` answer."""
        ctx = {"conversation_id": "ha-conv-1", "device_id": device, "satellite_id": "sat-kitchen"}
        ctx.update(context or {})
        events = await self.request(
            [Transcript(text=text, language=language, context=ctx).event()],
            ("handled", "not-handled", "error"),
        )
        return events[-1]

    async def transcribe(self, wav: bytes, *, language: str = "en", chunk: int = 1024) -> Event:
        """Stream a WAV file to the asr program; the ``transcript`` answer."""
        with wave.open(io.BytesIO(wav), "rb") as reader:
            chunks = [
                c.event() for c in wav_to_chunks(reader, chunk, start_event=True, stop_event=True)
            ]
        events = await self.request(
            [Transcribe(language=language).event(), *chunks], ("transcript", "error")
        )
        return events[-1]


def pcm_chunks(pcm: bytes, rate: int, width: int, channels: int, size: int = 4096) -> list[Event]:
    """Raw PCM as audio-start, audio-chunk..., audio-stop events."""
    events = [AudioStart(rate=rate, width=width, channels=channels).event()]
    for i in range(0, len(pcm), size):
        events.append(
            AudioChunk(rate=rate, width=width, channels=channels, audio=pcm[i : i + size]).event()
        )
    events.append(AudioStop().event())
    return events


@pytest.fixture(scope="session")
def say() -> Callable[..., bytes]:
    """espeak-ng speech as a WAV file (22.05 kHz, 16-bit mono), cached per text and voice."""
    from speech import synthesize

    cache: dict[tuple[str, str], bytes] = {}

    def _say(text: str, voice: str = "en-us") -> bytes:
        if (text, voice) not in cache:
            cache[(text, voice)] = synthesize(text, voice=voice, lang="en")
        return cache[(text, voice)]

    return _say


@pytest.fixture
async def wyoming_server(
    community_db: str,
    nlu_model: Any,
    clock: Clock,
) -> AsyncIterator[WyomingServer]:
    """The Wyoming server on the seeded community, listening on a free loopback port."""
    from backend.client import BillingClient
    from billtalk.db import make_engine as make_db
    from bot.channels.speaker.channel import SpeakerChannel
    from bot.channels.speaker.devices import ensure_schema
    from bot.channels.speaker.settings import SpeakerSettings
    from bot.channels.speaker.wyoming_server import SpeakerService, start_server
    from bot.engine import DialogueEngine
    from bot.settings import DialogueSettings
    from bot.store import ConversationStore

    ensure_schema(community_db)
    store = ConversationStore(make_db(community_db))
    billing = BillingClient.embedded(community_db)
    engine = DialogueEngine(store, billing, nlu_model, settings=DialogueSettings(), clock=clock)
    settings = SpeakerSettings(pairing_max_failures=3, max_audio_s=60.0)
    service = SpeakerService(SpeakerChannel(engine, settings=settings), settings)
    server = await start_server("127.0.0.1", 0, service)
    port = server.sockets[0].getsockname()[1]
    try:
        yield WyomingServer("127.0.0.1", port, service, engine)
    finally:
        server.close()
        await server.wait_closed()
        await billing.aclose()
        store.engine.dispose()
