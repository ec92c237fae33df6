"""Decoding voice evidence: one place that turns bytes or a file into 16 kHz samples.

Decoding itself (WAV, FLAC, OGG/Opus, MP3; resampling; duration limits; the
checks for empty, silent, corrupt and over-long audio) belongs to the speech
layer, :func:`speech.audio.load_audio`. This module only adapts its errors
to the reason codes of a voice verification.
"""

from __future__ import annotations

from pathlib import Path

from speech.audio import Audio, AudioError, load_audio

__all__ = ["Audio", "AudioError", "VoiceAudioError", "decode", "voice_code"]


class VoiceAudioError(Exception):
    """Audio that cannot be used for voice verification.

    Attributes:
        code: A stable reason code: ``corrupt_audio`` (not audio, truncated,
            unsupported format), ``not_found``, ``empty_audio``, ``silent``,
            ``no_speech`` (noise only), ``audio_too_short``, ``audio_too_long``.
        message: A human-readable explanation (never contains audio).
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


#: Speech-layer error codes mapped to the voice reason codes.
_CODES = {
    "empty": "empty_audio",
    "empty_audio": "empty_audio",
    "silent": "silent",
    "silence": "silent",
    "corrupt": "corrupt_audio",
    "corrupt_audio": "corrupt_audio",
    "truncated": "corrupt_audio",
    "unsupported": "corrupt_audio",
    "unsupported_format": "corrupt_audio",
    "too_long": "audio_too_long",
    "audio_too_long": "audio_too_long",
    "not_found": "not_found",
    "no_speech": "no_speech",
    "too_short": "audio_too_short",
    "audio_too_short": "audio_too_short",
}


def voice_code(speech_code: str) -> str:
    """The voice reason code for an error code of :class:`speech.audio.AudioError`."""
    return _CODES.get(speech_code, speech_code)


def decode(audio: bytes | Path | Audio) -> Audio:
    """Decode ``audio`` to float32 mono samples at 16 kHz.

    Args:
        audio: Encoded audio bytes (a Telegram voice note, a WAV upload...), a
            path, or an already decoded :class:`speech.audio.Audio`.

    Returns:
        The speech layer's :class:`~speech.audio.Audio` (``samples`` trimmed of
        leading and trailing silence, ``duration_s`` as received). Pass it on to
        the digit recogniser so the recording is decoded once.

    Raises:
        VoiceAudioError: The audio is empty, silent, corrupt, truncated or too long.
    """
    if isinstance(audio, Audio):
        return audio
    try:
        return load_audio(audio)
    except AudioError as exc:
        raise VoiceAudioError(voice_code(exc.code), exc.message) from exc
