"""A Wyoming server for Home Assistant Assist: ``asr``, ``handle`` and ``tts`` programs.

Home Assistant opens one connection per request (``describe``, one transcription,
one ``transcript`` to handle, one synthesis) and this server answers each:

* ``describe`` -> ``info`` listing the three installed programs;
* **asr**: ``transcribe``, ``audio-start``, ``audio-chunk``..., ``audio-stop`` ->
  one ``transcript``. Audio in any rate, width and channel count is converted to
  16 kHz 16-bit mono; a stream longer than ``max_audio_s`` (60 s) is cut there
  and the rest dropped. The recogniser (``asr_engine``, default ``auto``) is
  billtalk's offline pocketsphinx with the bill-domain language model
  (:mod:`speech`) for English and Whisper base for Chinese (``transcribe``
  with ``language="zh"``); the transcript's context names it
  (``billtalk_asr``). Silence, noise and
  over-long audio give an empty transcript; its ``context`` says why
  (``billtalk_error``), and an unsure result is flagged ``billtalk_weak`` (also
  remembered for a minute, for clients that drop the context);
* **handle**: ``transcript`` (``text``, ``language``, ``context`` with
  ``conversation_id``, ``device_id``, ``satellite_id``) -> ``handled`` or
  ``not-handled`` whose ``text`` is what the speaker says, through
  :class:`~bot.channels.speaker.channel.SpeakerChannel`. The device id (else the
  satellite id, else the conversation id) is the channel user, so the
  conversation continues across requests;
* **tts**: ``synthesize`` -> ``audio-start``, ``audio-chunk``..., ``audio-stop``
  (espeak-ng, voices ``en-us`` and ``cmn``).

A malformed event (not JSON, no type, bad lengths) is logged at warning level
and ends that connection with an ``error`` event; a well-framed event with bad
content gets an ``error`` event and the connection stays open; a client that
disconnects mid-stream is logged at warning level. No audio, transcript of a
PIN or secret is logged. The server keeps running through all of these.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import re
import time
import wave
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any, Literal
from urllib.parse import urlsplit

from wyoming.asr import Transcribe, Transcript
from wyoming.audio import AudioChunk, AudioChunkConverter, AudioStart, AudioStop
from wyoming.error import Error
from wyoming.event import Event, async_write_event
from wyoming.handle import Handled, NotHandled
from wyoming.info import (
    AsrModel,
    AsrProgram,
    Attribution,
    Describe,
    HandleModel,
    HandleProgram,
    Info,
    TtsProgram,
    TtsVoice,
)
from wyoming.server import AsyncEventHandler
from wyoming.tts import Synthesize

from billtalk.logs import get_logger
from bot.channels.speaker import whisper_asr
from bot.channels.speaker.channel import SpeakerChannel, phrase
from bot.channels.speaker.settings import SpeakerSettings, get_speaker_settings

log = get_logger("bot.channels.speaker.wyoming")

RATE, WIDTH, CHANNELS = 16_000, 2, 1
#: Largest JSON header line, data block and payload accepted in one event.
MAX_LINE = 64 * 1024
MAX_DATA = 256 * 1024
MAX_PAYLOAD = 1024 * 1024
VERSION = "1.0"
_ATTRIBUTION = Attribution(name="billtalk", url="https://github.com/")


class MalformedEvent(ValueError):
    """The byte stream does not hold a Wyoming event; the connection can't continue."""


class ClientGone(ConnectionError):
    """The client closed the connection in the middle of an event."""


async def read_event(reader: asyncio.StreamReader) -> Event | None:
    """Read one event strictly: ``None`` at a clean end of stream.

    Raises:
        MalformedEvent: The header is not a JSON object with a ``type``, or its
            lengths are missing, negative or too large.
        ClientGone: The stream ended inside an event.
    """
    try:
        line = await reader.readuntil(b"\n")
    except asyncio.IncompleteReadError as exc:
        if not exc.partial:
            return None
        raise ClientGone("the stream ended inside an event header") from exc
    except asyncio.LimitOverrunError as exc:
        raise MalformedEvent("event header line too long") from exc
    except ConnectionError as exc:
        raise ClientGone(str(exc)) from exc
    if len(line) > MAX_LINE:
        raise MalformedEvent("event header line too long")
    try:
        header = json.loads(line)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedEvent("event header is not JSON") from exc
    if not isinstance(header, dict) or not isinstance(header.get("type"), str):
        raise MalformedEvent("event header has no type")
    data = header.get("data") or {}
    if not isinstance(data, dict):
        raise MalformedEvent("event data is not an object")
    data_length = _length(header, "data_length", MAX_DATA)
    payload_length = _length(header, "payload_length", MAX_PAYLOAD)
    try:
        if data_length:
            extra = json.loads(await reader.readexactly(data_length))
            if not isinstance(extra, dict):
                raise MalformedEvent("event data is not an object")
            data.update(extra)
        payload = await reader.readexactly(payload_length) if payload_length else None
    except asyncio.IncompleteReadError as exc:
        raise ClientGone("the stream ended inside an event") from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedEvent("event data is not JSON") from exc
    return Event(type=header["type"], data=data, payload=payload)


def _length(header: dict[str, Any], key: str, limit: int) -> int:
    value = header.get(key)
    if value is None:
        return 0
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= limit:
        raise MalformedEvent(f"bad {key}")
    return value


def _whisper_model(languages: list[str]) -> AsrModel:
    return AsrModel(
        name="whisper-base-int8",
        attribution=Attribution(name="OpenAI", url="https://github.com/openai/whisper"),
        installed=True,
        description="Whisper base (CTranslate2, int8) with a bill-domain prompt",
        version=VERSION,
        languages=languages,
    )


def _sphinx_model() -> AsrModel:
    return AsrModel(
        name="pocketsphinx-bills-en",
        attribution=Attribution(name="CMU Sphinx", url="https://cmusphinx.github.io"),
        installed=True,
        description="en-US acoustic model with billtalk's domain language model",
        version=VERSION,
        languages=["en"],
    )


def asr_engine_for(settings: SpeakerSettings, language: str | None) -> str:
    """The engine that decodes a request in ``language``: ``pocketsphinx`` or
    ``faster_whisper`` (``auto``: Chinese to Whisper when installed, else pocketsphinx)."""
    if settings.asr_engine != "auto":
        return settings.asr_engine
    chinese = (language or "").lower().startswith(("zh", "cmn"))
    if chinese and _whisper_available(settings.whisper_model_dir):
        return "faster_whisper"
    return "pocketsphinx"


def _whisper_available(model_dir: str) -> bool:
    from bot.channels.speaker.whisper_asr import available

    return available(model_dir)


def _asr_models(settings: SpeakerSettings) -> list[AsrModel]:
    if settings.asr_engine == "faster_whisper":
        return [_whisper_model(["en", "zh"])]
    if settings.asr_engine == "auto" and _whisper_available(settings.whisper_model_dir):
        return [_sphinx_model(), _whisper_model(["zh"])]
    return [_sphinx_model()]


def describe_info(settings: SpeakerSettings) -> Info:
    """The ``info`` event: the asr, handle and tts programs."""
    return Info(
        asr=[
            AsrProgram(
                name="billtalk-asr",
                attribution=_ATTRIBUTION,
                installed=True,
                description="billtalk's offline recogniser (pocketsphinx with the bill-domain"
                " model; Whisper base for Chinese when installed)",
                version=VERSION,
                models=_asr_models(settings),
            )
        ],
        handle=[
            HandleProgram(
                name="billtalk",
                attribution=_ATTRIBUTION,
                installed=True,
                description="billtalk's bill-payment dialogue (balances, usage, payments)",
                version=VERSION,
                models=[
                    HandleModel(
                        name="billtalk-dialogue",
                        attribution=_ATTRIBUTION,
                        installed=True,
                        description="the billtalk dialogue engine",
                        version=VERSION,
                        languages=["en", "zh"],
                    )
                ],
            )
        ],
        tts=[
            TtsProgram(
                name="billtalk-tts",
                attribution=_ATTRIBUTION,
                installed=True,
                description="espeak-ng voices for English and Chinese replies",
                version=VERSION,
                voices=[
                    TtsVoice(
                        name=settings.voice_en,
                        attribution=Attribution(
                            name="espeak-ng", url="https://github.com/espeak-ng"
                        ),
                        installed=True,
                        description="English (espeak-ng)",
                        version=None,
                        languages=["en"],
                    ),
                    TtsVoice(
                        name=settings.voice_zh,
                        attribution=Attribution(
                            name="espeak-ng", url="https://github.com/espeak-ng"
                        ),
                        installed=True,
                        description="Mandarin Chinese (espeak-ng)",
                        version=None,
                        languages=["zh"],
                    ),
                ],
            )
        ],
    )


@dataclass
class HeardUtterance:
    """The result of one asr stream."""

    text: str
    weak: bool = False
    confidence: float = 0.0
    error: str | None = None
    duration_s: float = 0.0
    engine: str = ""
    #: The dialogue's expectation the audio was decoded with (``pin``, ``yes_no``,
    #: ``link_code``, ``utility``, ``method``), or None for a free request.
    expect: str | None = None


@dataclass
class _Stream:
    converter: AudioChunkConverter = field(
        default_factory=lambda: AudioChunkConverter(rate=RATE, width=WIDTH, channels=CHANNELS)
    )
    pcm: bytearray = field(default_factory=bytearray)
    cut: bool = False
    language: str | None = None


def pcm_to_wav(pcm: bytes, rate: int = RATE) -> bytes:
    """16-bit mono PCM wrapped as a WAV file."""
    out = io.BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(pcm)
    return out.getvalue()


def recognise(
    pcm: bytes,
    *,
    cut: bool = False,
    settings: SpeakerSettings | None = None,
    language: str | None = None,
    expect: str | None = None,
) -> HeardUtterance:
    """Transcribe 16 kHz 16-bit mono PCM with the speaker's recogniser (blocking).

    ``expect`` is what the dialogue asked for (:data:`speech.expectation.EXPECTATIONS`:
    ``pin``, ``yes_no``, ``link_code``, ``utility``, ``method``; see
    :meth:`SpeakerChannel.expectation`). With
    pocketsphinx the answer is first decoded in that state (:func:`_recognise_in_state`),
    and decoded freely (:func:`_recognise_free`) only when that is weak; Whisper gets
    the state's prompt.

    The engine is :func:`asr_engine_for` the request's ``language``: pocketsphinx
    with the bill-domain model (:mod:`speech`, English only), or Whisper base
    (:mod:`bot.channels.speaker.whisper_asr`), told the ``language`` of the
    ``transcribe`` request (``zh``: Chinese, else English).
    Both refuse silence, noise only and over-long audio the same way
    (:func:`speech.load_audio`).
    """
    from speech import AudioError
    from speech.audio import audio_from_pcm16
    from speech.expectation import EXPECTATIONS

    settings = settings or get_speaker_settings()
    duration = len(pcm) / (RATE * WIDTH)
    if cut:
        return HeardUtterance("", error="too_long", duration_s=duration)
    chinese = (language or "").lower().startswith(("zh", "cmn"))
    engine = asr_engine_for(settings, language)
    if chinese and engine == "pocketsphinx":
        return HeardUtterance("", error="language_unsupported", duration_s=duration)
    if not pcm:
        return HeardUtterance("", error="empty")
    expect = expect if settings.expectations and expect in EXPECTATIONS and not chinese else None
    try:
        if engine == "faster_whisper":
            audio = audio_from_pcm16(pcm, max_seconds=settings.max_audio_s)
            said = _Utterance(audio, settings, None, duration, expect)
            return said.by_whisper("zh" if chinese else "en")
        from speech.settings import get_speech_settings

        speech_settings = get_speech_settings().model_copy(
            update={"general_fallback": settings.general_fallback}
        )
        audio = audio_from_pcm16(
            pcm,
            max_seconds=speech_settings.max_seconds,
            vad_aggressiveness=speech_settings.vad_aggressiveness,
        )
        early = _early_beam(audio.samples, settings, expect)
        said = _Utterance(audio, settings, speech_settings, duration, expect, early)
        try:
            heard = _recognise_in_state(said) if expect is not None else None
            return heard or _recognise_free(said)
        finally:
            if early is not None:
                early.cancel()  # not needed (a digit string): not started, or let finish
    except AudioError as exc:
        return HeardUtterance("", error=exc.code, duration_s=duration, expect=expect)


@dataclass(frozen=True)
class _Utterance:
    """One utterance on its way through the speaker's recognisers."""

    audio: Any  # speech.audio.Audio, 16 kHz
    settings: SpeakerSettings
    speech_settings: Any  # speech.settings.SpeechSettings (None for Whisper alone)
    duration: float
    expect: str | None
    #: Whisper's beam for the rescoring, started while pocketsphinx decodes
    #: (:func:`_early_beam`), or None.
    early: Future[Any] | None = None

    def heard(
        self, text: str, confidence: float, engine: str, *, weak: bool = False
    ) -> HeardUtterance:
        """The :class:`HeardUtterance` of this audio."""
        return HeardUtterance(
            text,
            weak=weak,
            confidence=confidence,
            duration_s=self.duration,
            engine=engine,
            expect=self.expect,
        )

    def by_whisper(self, language: str = "en") -> HeardUtterance:
        """Whisper's transcript of this audio (with the state's prompt, if any)."""
        text, confidence, weak = _whisper(self.audio.samples, language, self.settings, self.expect)
        return self.heard(text, confidence, "faster_whisper", weak=weak)


def _recognise_in_state(said: _Utterance) -> HeardUtterance | None:
    """The answer decoded with what the dialogue expects (:func:`decode_in_state`);
    None when that decode is weak (the caller then decodes it freely)."""
    from speech.expectation import decode_in_state
    from speech.numbers import normalize_transcript

    assert said.expect is not None
    state = decode_in_state(said.audio, said.expect, said.speech_settings)
    bare = spoken_digit_count(state.words)
    if bare is not None:
        return _digits_alone(said, bare)
    if state.words and state.confidence >= said.speech_settings.min_confidence:
        text = normalize_transcript(state.words)
        if _rescoring(said.settings) and not said.settings.rescore_only_unsure:
            return _rescored(said, text, state.confidence, weak=False)
        return said.heard(text, state.confidence, "pocketsphinx")
    return None


CODE_LENGTH = whisper_asr.CODE_LENGTH


def _digits_alone(said: _Utterance, heard: int) -> HeardUtterance | None:
    """Digits said alone after a PIN or link-code prompt (``heard`` of them in the state
    decode): Whisper with the state's prompt first (``whisper_reads_digits``), kept when
    sure and of :data:`CODE_LENGTH` or the heard length; else the bare digit grammar
    (also held to the length Whisper heard); None when that is weak too."""
    lengths = {heard, CODE_LENGTH}
    if said.settings.whisper_reads_digits and _second_opinion(said.settings):
        whisper = said.by_whisper()
        figures = whisper.text.replace(" ", "")
        if not whisper.weak and re.fullmatch(r"\d{4,8}", figures):
            if len(figures) in lengths:
                return replace(whisper, text=figures)
            lengths.add(len(figures))
    digits = _digit_string(said.audio, lengths, said.speech_settings)
    if digits is None or digits.weak:
        return None
    return said.heard(digits.text, digits.confidence, "pocketsphinx")


def _recognise_free(said: _Utterance) -> HeardUtterance:
    """A free request: pocketsphinx with the domain model; said digits re-read by the
    digit grammar; an unsure decode goes to Whisper too (``auto``), whose sure text wins."""
    from speech import transcribe

    result = transcribe(said.audio, settings=said.speech_settings)
    count = spoken_digit_count(result.words)
    if count is not None:
        digits = _digit_string(said.audio, {count, CODE_LENGTH}, said.speech_settings)
        if digits is not None:
            result = digits
    elif _rescoring(said.settings) and (result.weak or not said.settings.rescore_only_unsure):
        return _rescored(said, result.text, result.confidence, weak=result.weak)
    elif result.weak and _second_opinion(said.settings):
        whisper = said.by_whisper()
        if not whisper.weak:
            return whisper
    return said.heard(result.text, result.confidence, "pocketsphinx", weak=result.weak)


def _rescoring(settings: SpeakerSettings) -> bool:
    """Whether English transcripts are chosen by N-best rescoring (``whisper_rescore``)."""
    return settings.whisper_rescore and _second_opinion(settings)


def _beam_options(settings: SpeakerSettings) -> dict[str, Any]:
    """Whisper's beam settings for the rescoring (:func:`whisper_asr.nbest`), one place for
    the early beam and the one run after pocketsphinx."""
    return {
        "model_dir": settings.whisper_model_dir,
        "threads": settings.whisper_threads,
        "beam_size": settings.whisper_beam_size,
        "hypotheses": settings.whisper_hypotheses,
        "prompt": settings.whisper_prompt,
        "compute_type": settings.whisper_compute_type,
    }


@lru_cache(maxsize=1)
def _beam_pool() -> ThreadPoolExecutor:
    """The worker threads that run Whisper's beam beside pocketsphinx, once per process."""
    return ThreadPoolExecutor(max_workers=2, thread_name_prefix="speaker-beam")


def _early_beam(samples: Any, settings: SpeakerSettings, expect: str | None) -> Future[Any] | None:
    """Whisper's beam for the rescoring (:func:`whisper_asr.nbest`), started in a worker
    thread now, while pocketsphinx decodes, when the rescoring will most likely need it:
    English under ``auto`` with every transcript rescored (``rescore_in_parallel``); not
    after a PIN or link-code prompt, where digits said alone go to Whisper's own decode."""
    if not (
        settings.rescore_in_parallel
        and not settings.rescore_only_unsure
        and expect not in whisper_asr.CODE_STATES
        and _rescoring(settings)
    ):
        return None
    options = _beam_options(settings)
    return _beam_pool().submit(whisper_asr.nbest, samples, expect=expect, **options)


def _rescored(said: _Utterance, text: str, confidence: float, *, weak: bool) -> HeardUtterance:
    """pocketsphinx's ``text`` and Whisper's best transcripts of the same audio, scored
    together (:func:`bot.channels.speaker.whisper_asr.candidates`); the best is heard.
    Weak only when both engines are unsure, as without rescoring. Whisper's beam is the
    one started early (:func:`_early_beam`) when there is one."""
    from bot.channels.speaker.whisper_asr import candidates, choose

    settings = said.settings
    found, (_, whisper_confidence, whisper_weak) = candidates(
        said.audio.samples,
        {"pocketsphinx": text},
        expect=said.expect,
        state_lm=settings.rescore_state_lm,
        beam=said.early.result() if said.early is not None else None,
        **_beam_options(settings),
    )
    both_weak = weak and whisper_weak
    if not found:
        return said.heard(text, confidence, "pocketsphinx", weak=both_weak)
    weight = settings.rescore_lm_weight if said.expect else settings.rescore_idle_lm_weight
    best = choose(found, weight, settings.rescore_word_bonus, said.expect)
    if best.source == "pocketsphinx":
        return said.heard(best.text, confidence, "pocketsphinx", weak=both_weak)
    return said.heard(best.text, whisper_confidence, "faster_whisper", weak=both_weak)


def _whisper(
    samples: Any, language: str, settings: SpeakerSettings, expect: str | None = None
) -> tuple[str, float, bool]:
    """Whisper's ``(text, confidence, weak)`` for ``samples``, as the settings configure it
    (with the prompt of what the dialogue expects, if anything)."""
    from bot.channels.speaker.whisper_asr import transcribe_samples

    return transcribe_samples(
        samples,
        language=language,
        model_dir=settings.whisper_model_dir,
        threads=settings.whisper_threads,
        beam_size=settings.whisper_beam_size,
        prompt=settings.whisper_prompt,
        short_window=settings.whisper_short_window,
        expect=expect,
        lexicon=settings.whisper_lexicon,
        compute_type=settings.whisper_compute_type,
    )


def _second_opinion(settings: SpeakerSettings) -> bool:
    """Whether an unsure pocketsphinx decode goes to Whisper too (``auto``, installed)."""
    return (
        settings.asr_engine == "auto"
        and settings.whisper_second_opinion
        and _whisper_available(settings.whisper_model_dir)
    )


#: Digit strings the speaker re-decodes with a digit grammar (PINs, link codes).
DIGIT_STRING_LENGTHS = range(4, 9)


def spoken_digit_count(words: str) -> int | None:
    """How many digits ``words`` says, when it says nothing but 4-8 digits (a PIN or code)."""
    from speech.numbers import DIGIT_WORDS

    tokens = words.split()
    if tokens and all(t in DIGIT_WORDS for t in tokens) and len(tokens) in DIGIT_STRING_LENGTHS:
        return len(tokens)
    return None


def _digit_string(audio: Any, lengths: set[int], speech_settings: Any) -> Any:
    """A spoken PIN or code decoded again with the digit grammar, the best-scored of
    ``lengths`` (the heard length and 6, the PIN's and link code's): on espeak-voiced
    6-digit PINs the free decode got 40 % exactly right, the grammar 85 %
    (bench/speaker_engines.py)."""
    from speech.recognize import recognize_digits

    best = None
    for length in sorted(n for n in lengths if n in DIGIT_STRING_LENGTHS):
        candidate = recognize_digits(audio, expected_len=length, settings=speech_settings)
        if best is None or candidate.confidence > best.confidence:
            best = candidate
    if best is None or not best.digits:
        return None
    return replace(best, text=best.digits)


def warm_up(settings: SpeakerSettings | None = None) -> None:
    """Load the recognisers the settings use now, once, instead of on the first request
    (pocketsphinx's decoders; Whisper when ``faster_whisper``, or ``auto`` with it installed;
    the rescoring's language models with ``whisper_rescore``)."""
    from speech.recognize import warm_up as warm_up_sphinx

    settings = settings or get_speaker_settings()
    warm_up_sphinx()
    if settings.expectations:
        from speech.expectation import EXPECTATIONS
        from speech.expectation import warm_up as warm_up_states

        warm_up_states()
        if _rescoring(settings) and settings.rescore_state_lm:
            from speech.lm_score import state_lm

            for state in EXPECTATIONS:
                state_lm(state)
    if _rescoring(settings):
        from speech.lm_score import domain_lm

        domain_lm()
    if asr_engine_for(settings, "zh") == "faster_whisper":
        from bot.channels.speaker.whisper_asr import get_model

        get_model(
            settings.whisper_model_dir, settings.whisper_threads, settings.whisper_compute_type
        )


def synthesize_pcm(text: str, language: str, settings: SpeakerSettings) -> tuple[bytes, int]:
    """Say ``text`` with espeak-ng; 16-bit mono PCM and its rate (blocking)."""
    from speech import synthesize

    lang: Literal["en", "zh"] = "zh" if language == "zh" else "en"
    voice = settings.voice_zh if lang == "zh" else settings.voice_en
    wav = synthesize(text[:2000], lang=lang, voice=voice, speed=settings.speed_wpm)
    with wave.open(io.BytesIO(wav), "rb") as reader:
        return reader.readframes(reader.getnframes()), reader.getframerate()


class SpeakerService:
    """What the Wyoming handlers share: the channel, settings and recent weak transcripts."""

    def __init__(self, channel: SpeakerChannel, settings: SpeakerSettings | None = None) -> None:
        self.channel = channel
        self.settings = settings or get_speaker_settings()
        self.info_event = describe_info(self.settings).event()
        self._weak: dict[str, float] = {}

    def remember_weak(self, text: str) -> None:
        """A weak transcript, so that handling it re-asks even without its context."""
        now = time.monotonic()
        self._weak = {t: until for t, until in self._weak.items() if until > now}
        self._weak[text] = now + 60.0

    def was_weak(self, text: str) -> bool:
        """Whether ``text`` was a weak transcript in the last minute (forgotten once asked)."""
        until = self._weak.pop(text, None)
        return until is not None and until > time.monotonic()

    def handler(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> BilltalkHandler:
        """A handler for one connection (the server's handler factory)."""
        return BilltalkHandler(reader, writer, self)


class BilltalkHandler(AsyncEventHandler):
    """One Wyoming connection."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, service: SpeakerService
    ) -> None:
        super().__init__(reader, writer)
        self.service = service
        self.settings = service.settings
        self._stream: _Stream | None = None
        self._transcribe: Transcribe | None = None
        peer = writer.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else "local"

    async def run(self) -> None:
        """Read events until the client closes; survive anything it sends."""
        try:
            while True:
                try:
                    event = await read_event(self.reader)
                except MalformedEvent as exc:
                    log.warning("wyoming_malformed_event", peer=self.peer, reason=str(exc))
                    await self._try_write(Error(text=str(exc), code="malformed_event").event())
                    break
                except ClientGone as exc:
                    log.warning(
                        "wyoming_client_disconnected_mid_event", peer=self.peer, reason=str(exc)
                    )
                    break
                if event is None:
                    if self._stream is not None:
                        log.warning(
                            "wyoming_client_disconnected_mid_stream",
                            peer=self.peer,
                            received_s=round(len(self._stream.pcm) / (RATE * WIDTH), 2),
                        )
                    break
                try:
                    keep = await self.handle_event(event)
                except (ConnectionError, asyncio.IncompleteReadError):
                    log.warning(
                        "wyoming_client_disconnected", peer=self.peer, event_type=event.type
                    )
                    break
                except (KeyError, TypeError, ValueError) as exc:
                    log.warning(
                        "wyoming_bad_event",
                        peer=self.peer,
                        event_type=event.type,
                        error=type(exc).__name__,
                    )
                    await self._try_write(
                        Error(text=f"bad {event.type} event", code="bad_event").event()
                    )
                    continue
                except Exception:
                    log.exception("wyoming_handler_failed", peer=self.peer, event_type=event.type)
                    await self._try_write(Error(text="internal error", code="internal").event())
                    continue
                if not keep:
                    break
        finally:
            self.writer.close()

    async def _try_write(self, event: Event) -> None:
        with contextlib.suppress(ConnectionError, RuntimeError):
            await async_write_event(event, self.writer)

    async def handle_event(self, event: Event) -> bool:
        """Answer one event; whether to keep the connection open."""
        if Describe.is_type(event.type):
            await self.write_event(self.service.info_event)
            return True
        if Transcribe.is_type(event.type):
            self._transcribe = Transcribe.from_event(event)
            return True
        if AudioStart.is_type(event.type):
            AudioStart.from_event(event)  # validates rate/width/channels
            self._stream = _Stream(language=self._transcribe.language if self._transcribe else None)
            return True
        if AudioChunk.is_type(event.type):
            self._chunk(AudioChunk.from_event(event))
            return True
        if AudioStop.is_type(event.type):
            await self._finish_stream()
            return True
        if Transcript.is_type(event.type):
            await self._handle_transcript(Transcript.from_event(event))
            return True
        if Synthesize.is_type(event.type):
            await self._synthesize(Synthesize.from_event(event))
            return True
        log.info("wyoming_event_ignored", peer=self.peer, event_type=event.type)
        return True

    # -- asr ----------------------------------------------------------------------------

    def _chunk(self, chunk: AudioChunk) -> None:
        if self._stream is None:  # audio without audio-start: start one implicitly
            self._stream = _Stream()
        stream = self._stream
        if stream.cut:
            return
        if chunk.rate <= 0 or chunk.width not in (1, 2, 3, 4) or chunk.channels <= 0:
            raise ValueError("bad audio format")
        if len(chunk.audio) % (chunk.width * chunk.channels):
            raise ValueError("audio chunk is not whole frames")
        pcm = stream.converter.convert(chunk).audio
        limit = int(self.settings.max_audio_s * RATE) * WIDTH
        room = limit - len(stream.pcm)
        if len(pcm) > room:
            stream.pcm.extend(pcm[: max(room, 0)])
            stream.cut = True
            log.warning("wyoming_audio_cut", peer=self.peer, limit_s=self.settings.max_audio_s)
            return
        stream.pcm.extend(pcm)

    async def _finish_stream(self) -> None:
        stream = self._stream or _Stream()
        self._stream = None
        context: dict[str, Any] = dict((self._transcribe.context or {}) if self._transcribe else {})
        expect = await self._expectation(context) if stream.pcm and not stream.cut else None
        heard = await asyncio.to_thread(
            recognise,
            bytes(stream.pcm),
            cut=stream.cut,
            settings=self.settings,
            language=stream.language,
            expect=expect,
        )
        if heard.error:
            log.warning(
                "wyoming_audio_unusable",
                peer=self.peer,
                code=heard.error,
                duration_s=round(heard.duration_s, 2),
            )
            context["billtalk_error"] = heard.error
        if heard.weak and heard.text:
            self.service.remember_weak(heard.text)
            context["billtalk_weak"] = True
        if heard.text:
            context["billtalk_confidence"] = round(heard.confidence, 3)
        if heard.engine:
            context["billtalk_asr"] = heard.engine
        if heard.expect:
            context["billtalk_expect"] = heard.expect
        await self.write_event(
            Transcript(text=heard.text, language=stream.language or "en", context=context).event()
        )

    async def _expectation(self, context: dict[str, Any]) -> str | None:
        """What the dialogue waits for from the device the ``transcribe`` context names
        (``device_id``, else ``satellite_id``, else ``conversation_id``, as for handle);
        None when it names none or expectations are off."""
        device = (
            context.get("device_id")
            or context.get("satellite_id")
            or context.get("conversation_id")
        )
        if not device or not self.settings.expectations:
            return None
        try:
            return await self.service.channel.expectation(str(device)[:128])
        except Exception:  # the transcript must not fail because of the hint
            log.warning("wyoming_expectation_failed", peer=self.peer)
            return None

    # -- handle -------------------------------------------------------------------------

    async def _handle_transcript(self, transcript: Transcript) -> None:
        context = transcript.context or {}
        if not isinstance(context, dict):
            raise TypeError("context is not an object")
        device = str(
            context.get("device_id")
            or context.get("satellite_id")
            or context.get("conversation_id")
            or "wyoming-anonymous"
        )[:128]
        text = str(transcript.text or "")
        error = context.get("billtalk_error")
        language = transcript.language
        if not text.strip() and error:
            key = {"too_long": "too_long", "language_unsupported": "language_unsupported"}.get(
                str(error), "nothing_heard"
            )
            lang = "zh" if (language or "").startswith("zh") else "en"
            reply_text, handled = phrase(key, lang), False
        else:
            weak = bool(context.get("billtalk_weak")) or self.service.was_weak(text)
            reply = await self.service.channel.ask(
                device,
                text,
                language=language,
                weak=weak,
                source="wyoming",
                label=str(context.get("satellite_id") or "") or None,
            )
            reply_text, handled = reply.text, reply.handled
        out_context: dict[str, Any] = {
            k: context[k] for k in ("conversation_id", "device_id", "satellite_id") if k in context
        }
        if handled:
            await self.write_event(Handled(text=reply_text, context=out_context).event())
        else:
            await self.write_event(NotHandled(text=reply_text, context=out_context).event())

    # -- tts ----------------------------------------------------------------------------

    async def _synthesize(self, request: Synthesize) -> None:
        language = None
        if request.voice is not None:
            if request.voice.name in (self.settings.voice_zh, "zh", "cmn"):
                language = "zh"
            elif request.voice.language:
                wanted = request.voice.language.lower()
                language = "zh" if wanted.startswith(("zh", "cmn")) else "en"
        if language is None:
            language = "zh" if any("\u4e00" <= c <= "\u9fff" for c in request.text) else "en"
        if not request.text.strip():
            raise ValueError("nothing to synthesize")
        pcm, rate = await asyncio.to_thread(synthesize_pcm, request.text, language, self.settings)
        await self.write_event(AudioStart(rate=rate, width=2, channels=1).event())
        step = self.settings.samples_per_chunk * 2
        for start in range(0, len(pcm), step):
            await self.write_event(
                AudioChunk(rate=rate, width=2, channels=1, audio=pcm[start : start + step]).event()
            )
        await self.write_event(AudioStop().event())


async def start_server(host: str, port: int, service: SpeakerService) -> asyncio.Server:
    """Listen on ``host:port`` (0: any free port); every connection gets a handler."""

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await service.handler(reader, writer).run()

    return await asyncio.start_server(on_connect, host=host, port=port, limit=MAX_LINE)


def parse_uri(uri: str) -> tuple[str, int]:
    """``tcp://HOST:PORT`` as ``(host, port)``.

    Raises:
        ValueError: Another scheme, or no port.
    """
    parts = urlsplit(uri)
    if parts.scheme != "tcp" or not parts.hostname or parts.port is None:
        raise ValueError(f"expected tcp://HOST:PORT, got {uri!r}")
    return parts.hostname, parts.port


async def serve(uri: str, service: SpeakerService) -> None:
    """Run the Wyoming server at ``uri`` (``tcp://HOST:PORT``) until cancelled."""
    host, port = parse_uri(uri)
    server = await start_server(host, port, service)
    log.info("wyoming_server_started", uri=uri)
    async with server:
        await server.serve_forever()
