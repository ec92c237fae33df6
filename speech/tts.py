"""Spoken replies with espeak-ng: WAV, and OGG/Opus for Telegram voice replies.

espeak-ng is the Debian package installed by ``scripts/setup.sh``; it runs
offline and starts in milliseconds. Figures in replies are rewritten first by
:func:`speech.numbers.speakable`, so "¥120.50 due 2026-03-05" is said as
"one hundred twenty yuan and fifty fen due March fifth, twenty twenty-six".
"""

from __future__ import annotations

import shutil
import subprocess
from typing import Literal

import numpy as np

from billtalk.logs import get_logger
from billtalk.settings import get_settings
from speech.audio import AudioError, encode_audio, load_audio
from speech.numbers import speakable
from speech.settings import get_speech_settings

log = get_logger("speech.tts")

#: espeak-ng voice per reply language.
VOICES = {"en": "en-us", "zh": "cmn"}
#: Longest text synthesised at once; replies are short, this bounds abuse.
MAX_CHARS = 2000


class SynthesisError(RuntimeError):
    """espeak-ng is missing or failed; ``code`` is ``tts_unavailable`` or ``tts_failed``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def synthesize(
    text: str,
    *,
    lang: Literal["en", "zh"] = "en",
    voice: str | None = None,
    fmt: Literal["wav", "ogg"] = "wav",
    speed: int = 165,
    currency: str | None = None,
) -> bytes:
    """Say ``text`` and return the encoded audio.

    Args:
        text: The reply. Amounts, dates and digit strings are spoken naturally
            (English replies); at most :data:`MAX_CHARS` characters.
        lang: ``"en"`` or ``"zh"`` (Mandarin).
        voice: An espeak-ng voice name, e.g. ``"en-us+f3"``; defaults by language.
        fmt: ``"wav"`` (16-bit PCM, espeak's 22.05 kHz) or ``"ogg"`` (Opus, 48 kHz,
            what Telegram's ``sendVoice`` expects).
        speed: Words per minute.
        currency: ISO code for amounts without a mark; defaults to the product's.

    Raises:
        ValueError: Empty text, text over :data:`MAX_CHARS`, or an unknown format.
        SynthesisError: espeak-ng is not installed or failed.
    """
    if not text or not text.strip():
        raise ValueError("nothing to say: the text is empty")
    if len(text) > MAX_CHARS:
        raise ValueError(f"text is {len(text)} characters; the limit is {MAX_CHARS}")
    if fmt not in ("wav", "ogg"):
        raise ValueError(f"unknown format {fmt!r}; use 'wav' or 'ogg'")
    if lang == "en":
        text = speakable(text, currency=currency or get_settings().currency)
    wav = _espeak(text, voice or VOICES.get(lang, "en-us"), speed)
    if fmt == "wav":
        return wav
    samples = _wav_samples(wav)
    return encode_audio(samples, "ogg", sample_rate=22_050)


def _espeak(text: str, voice: str, speed: int) -> bytes:
    binary = get_speech_settings().espeak_binary
    if shutil.which(binary) is None:
        raise SynthesisError(
            "tts_unavailable", f"{binary} is not installed (apt-get install espeak-ng)"
        )
    # Text goes through stdin, never the command line: no quoting or option injection.
    proc = subprocess.run(
        [binary, "--stdout", "-v", voice, "-s", str(speed), "--stdin"],
        input=text.encode("utf-8"),
        capture_output=True,
        timeout=60,
        check=False,
    )
    if proc.returncode != 0 or len(proc.stdout) <= 44:
        raise SynthesisError(
            "tts_failed", f"espeak-ng failed: {proc.stderr.decode(errors='replace')[:200]}"
        )
    log.debug("speech_synthesized", chars=len(text), voice=voice, bytes=len(proc.stdout))
    return _fix_wav_sizes(proc.stdout)


def _fix_wav_sizes(wav: bytes) -> bytes:
    """Write the real sizes into espeak's streamed WAV header (it leaves placeholders)."""
    if wav[:4] != b"RIFF" or wav[36:40] != b"data":
        return wav
    data_len = len(wav) - 44
    return (
        wav[:4]
        + (36 + data_len).to_bytes(4, "little")
        + wav[8:40]
        + data_len.to_bytes(4, "little")
        + wav[44:]
    )


def _wav_samples(wav: bytes) -> np.ndarray:
    """espeak's 22.05 kHz 16-bit mono PCM as float samples (no resampling)."""
    if wav[36:40] != b"data":
        try:
            return load_audio(wav, trim=False).samples
        except AudioError as exc:  # pragma: no cover - espeak always writes this header
            raise SynthesisError("tts_failed", exc.message) from exc
    return np.frombuffer(wav[44:], dtype="<i2").astype(np.float32) / 32768.0
