"""Settings of the speech layer (``BILLTALK_SPEECH_*`` environment variables)."""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

EngineName = Literal["pocketsphinx", "vosk", "whisper", "faster_whisper"]


class SpeechSettings(BaseSettings):
    """Knobs of :mod:`speech`.

    Attributes:
        engine: Recognition engine. ``"pocketsphinx"`` (the default, and the only one
            whose model ships offline) uses billtalk's domain-adapted decoders; the
            others are reached through SpeechRecognition and need their models
            installed by the deployer (``vosk_model_path``, whisper model names).
        vosk_model_path: Folder of a Vosk model, for ``engine="vosk"``.
        whisper_model: Model name for ``engine="whisper"``/``"faster_whisper"``.
        max_seconds: Longest accepted audio; longer input is refused (``too_long``).
        min_confidence: Constrained results below this confidence fall back to the
            general model; final results below it are marked ``weak`` (re-ask).
        vad_aggressiveness: webrtcvad mode 0-3 used to trim leading/trailing silence.
        dither_db: Level of the noise floor added before decoding, relative to the
            speech RMS. Exact digital silence hurts pocketsphinx; -30 dB measured
            best (domain-LM WER 33% at -60, 14% at -40, 8% at -30, 14% at -20 on 64
            clean synthesised requests in 4 voices).
        telephone_mode: How 8 kHz input is decoded: ``"upsample"`` to 16 kHz with the
            wideband model (chosen by measurement, see docs/speech.md) or ``"narrowband"``
            (8 kHz front end with the filter bank capped at 4 kHz).
        general_fallback: Try the general en-US model when both domain decoders are
            weak (it costs about 1 s per utterance and a few seconds to load once).
        espeak_binary: The espeak-ng executable used for synthesis.
    """

    model_config = SettingsConfigDict(env_prefix="BILLTALK_SPEECH_", extra="ignore", frozen=True)

    engine: EngineName = "pocketsphinx"
    vosk_model_path: str = ""
    whisper_model: str = "base"
    max_seconds: float = Field(default=30.0, gt=0)
    min_confidence: float = Field(default=0.5, ge=0.0, le=1.0)
    vad_aggressiveness: int = Field(default=2, ge=0, le=3)
    dither_db: float = -30.0
    telephone_mode: Literal["upsample", "narrowband"] = "upsample"
    general_fallback: bool = True
    espeak_binary: str = "espeak-ng"


@lru_cache(maxsize=1)
def get_speech_settings() -> SpeechSettings:
    """Return the speech settings, read once from the environment."""
    return SpeechSettings()
