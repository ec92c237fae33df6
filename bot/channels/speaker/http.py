"""The speaker's web endpoints, mounted on the product app (``app.web.WEB_MODULES``).

* ``POST /api/v1/speaker/ask``: plain HTTP audio for any device (a DIY speaker,
  an app). The device sends its key (``Authorization: Bearer spk_...`` or
  ``X-Device-Key``, issued by ``billtalk speaker key --device ID``) and a WAV or
  OGG body; the answer is ``{"transcript", "reply_text", "audio_url", "language",
  "handled", "end_session"}`` and the reply is spoken as a WAV file at
  ``audio_url`` (``GET /api/v1/speaker/audio/{id}.wav``, an unguessable id that
  expires after ``http_audio_ttl_s``). Audio that holds no speech or is too long
  gets a spoken "please say it again" (200); a body that is not audio gets 422.
* ``POST /speaker/alexa``: the Alexa-style skill endpoint (:mod:`.alexa`), with
  Amazon's request verification.

The dialogue engine behind them is built on the first request (the product's
database, the default NLU model), or given to :func:`mount` (tests).
"""

from __future__ import annotations

import asyncio
import secrets
import time
from dataclasses import dataclass, field
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from billtalk.logs import get_logger
from bot.channels.speaker.alexa import answer as alexa_answer
from bot.channels.speaker.alexa_verify import AlexaVerificationError, AlexaVerifier
from bot.channels.speaker.channel import SpeakerChannel, SpokenReply, phrase
from bot.channels.speaker.settings import SpeakerSettings, get_speaker_settings

log = get_logger("bot.channels.speaker.http")

ASK_PATH = "/api/v1/speaker/ask"
AUDIO_PATH = "/api/v1/speaker/audio/{audio_id}.wav"
ALEXA_PATH = "/speaker/alexa"


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


@dataclass
class SpeakerWeb:
    """What the endpoints share: the channel, the Alexa verifier, reply audio for a while."""

    settings: SpeakerSettings
    channel: SpeakerChannel | None = None
    verifier: AlexaVerifier | None = None
    _audio: dict[str, tuple[float, bytes]] = field(default_factory=dict)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def get_channel(self) -> SpeakerChannel:
        """The speaker channel (the engine is built on first use)."""
        if self.channel is None:
            async with self._lock:
                if self.channel is None:
                    from bot.channels.speaker.devices import ensure_schema
                    from bot.engine import DialogueEngine

                    engine = await DialogueEngine.embedded()
                    await asyncio.to_thread(ensure_schema, str(engine.store.engine.url))
                    self.channel = SpeakerChannel(engine, settings=self.settings)
        return self.channel

    def get_verifier(self) -> AlexaVerifier:
        """The Alexa verifier (built on first use: it loads the trust store)."""
        if self.verifier is None:
            self.verifier = AlexaVerifier(self.settings)
        return self.verifier

    def keep_audio(self, wav: bytes) -> str:
        """Keep a reply's WAV for ``http_audio_ttl_s``; its id."""
        now = time.monotonic()
        self._audio = {k: v for k, v in self._audio.items() if v[0] > now}
        audio_id = secrets.token_urlsafe(18)
        self._audio[audio_id] = (now + self.settings.http_audio_ttl_s, wav)
        return audio_id

    def audio(self, audio_id: str) -> bytes | None:
        """A kept reply's WAV, if it has not expired."""
        kept = self._audio.get(audio_id)
        if kept is None or kept[0] < time.monotonic():
            return None
        return kept[1]


async def _read_body(request: Request, limit: int) -> bytes | None:
    """The body, or ``None`` when it is larger than ``limit``."""
    body = bytearray()
    async for part in request.stream():
        body.extend(part)
        if len(body) > limit:
            return None
    return bytes(body)


def _device_key(request: Request) -> str:
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    return request.headers.get("x-device-key", "").strip()


def _transcribe(
    audio: bytes, settings: SpeakerSettings, language: str | None = None, expect: str | None = None
) -> tuple[str, bool, str | None]:
    """(text, weak, error code) for an uploaded recording in ``language``, decoded with what
    the dialogue expects from the device (blocking)."""
    from bot.channels.speaker.wyoming_server import RATE, recognise
    from speech import AudioError, load_audio
    from speech.audio import to_pcm16

    try:
        loaded = load_audio(audio, max_seconds=settings.max_audio_s, trim=False)
    except AudioError as exc:
        return "", False, exc.code
    if loaded.sample_rate != RATE:  # pragma: no cover - load_audio always gives 16 kHz
        return "", False, "unsupported_format"
    heard = recognise(to_pcm16(loaded.samples), settings=settings, language=language, expect=expect)
    return heard.text, heard.weak, heard.error


def _speak(reply: SpokenReply, settings: SpeakerSettings) -> bytes:
    from speech import synthesize

    lang: Literal["en", "zh"] = "zh" if reply.language == "zh" else "en"
    voice = settings.voice_zh if lang == "zh" else settings.voice_en
    return synthesize(reply.text[:2000], lang=lang, voice=voice, speed=settings.speed_wpm)


def mount(
    app: FastAPI,
    *,
    channel: SpeakerChannel | None = None,
    verifier: AlexaVerifier | None = None,
    settings: SpeakerSettings | None = None,
) -> None:
    """Add the speaker endpoints to ``app``.

    Args:
        app: The product app.
        channel: The speaker channel (default: built on the first request).
        verifier: The Alexa verifier (default: from the settings).
        settings: Speaker settings (default: from the environment).
    """
    web = SpeakerWeb(settings or get_speaker_settings(), channel, verifier)
    app.state.speaker_web = web

    @app.post(ASK_PATH, tags=["speaker"], include_in_schema=True)
    async def speaker_ask(request: Request) -> Response:
        """Ask by voice: a WAV or OGG body in, the transcript, reply text and reply audio out."""
        key = _device_key(request)
        channel = await web.get_channel()
        device = await asyncio.to_thread(channel.devices.device_for_key, key)
        if device is None:
            log.warning("speaker_http_bad_key")
            return _error(401, "unauthorized", "A valid device key is required.")
        body = await _read_body(request, web.settings.http_max_body_bytes)
        if body is None:
            log.warning("speaker_http_body_too_large", device=device)
            return _error(413, "too_large", "The recording is too large.")
        lang_hint = request.query_params.get("lang")
        expect = await channel.expectation(device) if web.settings.expectations else None
        text, weak, error = await asyncio.to_thread(
            _transcribe, body, web.settings, lang_hint, expect
        )
        if error in ("corrupt", "unsupported_format", "truncated", "empty"):
            log.warning("speaker_http_bad_audio", device=device, code=error)
            return _error(422, error, "The body is not a usable WAV or OGG recording.")
        if error is not None:
            log.warning("speaker_http_audio_unusable", device=device, code=error)
            lang = "zh" if lang_hint == "zh" else "en"
            key_phrase = "too_long" if error == "too_long" else "nothing_heard"
            reply = SpokenReply(phrase(key_phrase, lang), lang, handled=False)
        else:
            reply = await channel.ask(device, text, language=lang_hint, weak=weak, source="http")
        audio_url = None
        if reply.text:
            wav = await asyncio.to_thread(_speak, reply, web.settings)
            audio_url = AUDIO_PATH.format(audio_id=web.keep_audio(wav))
        return JSONResponse(
            {
                "transcript": text,
                "reply_text": reply.text,
                "audio_url": audio_url,
                "language": reply.language,
                "handled": reply.handled,
                "end_session": reply.end_session,
            }
        )

    @app.get(AUDIO_PATH, tags=["speaker"])
    async def speaker_audio(audio_id: str) -> Response:
        """A reply's audio (WAV), while it is kept."""
        wav = web.audio(audio_id)
        if wav is None:
            return _error(404, "not_found", "No such reply audio (it may have expired).")
        return Response(wav, media_type="audio/wav")

    @app.post(ALEXA_PATH, tags=["speaker"])
    async def speaker_alexa(request: Request) -> Response:
        """The Alexa custom-skill endpoint (verified as Amazon requires)."""
        body = await _read_body(request, web.settings.alexa_max_body_bytes)
        if body is None:
            log.warning("alexa_request_refused", code="too_large")
            return _error(400, "too_large", "The request is too large.")
        try:
            verified: dict[str, Any] = await web.get_verifier().verify(dict(request.headers), body)
        except AlexaVerificationError as exc:
            log.warning("alexa_request_refused", code=exc.code, reason=exc.message)
            return _error(400, exc.code, "The request could not be verified.")
        channel = await web.get_channel()
        return JSONResponse(await alexa_answer(channel, verified))
