"""From evidence audio to a checked voiceprint, and what a probe scores against a template.

This is the one place that decides whether audio is usable for voice biometrics
(decodable, not silent, enough voiced speech) and turns it into a voiceprint of a
given speaker model (:class:`~biometrics.voice.models.VoiceModel`; CAM++ unless
told otherwise). Enrollment, the step-up verifier and ``billtalk voice verify``
all go through it; the same prepared speech (level raised, long pauses cut)
feeds either model.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from biometrics.voice import campplus
from biometrics.voice.audio import Audio, VoiceAudioError, decode
from biometrics.voice.embedding import SAMPLE_RATE, PreparedSpeech, embed, prepare, similarity
from biometrics.voice.models import VoiceModel

if TYPE_CHECKING:
    import numpy.typing as npt


@dataclass(frozen=True)
class Voiceprint:
    """The voiceprint of one utterance, with what was measured on the way.

    Attributes:
        vector: The L2-normalised speaker embedding. Biometric data: never log it.
        model: The speaker model that computed it.
        voiced_s: Seconds of voiced speech in the utterance.
        duration_s: Duration of the decoded audio.
        embed_ms: Time spent computing the embedding.
        speech: The prepared speech the vector was computed from (level raised,
            long pauses cut), kept so that enrollment can embed all of its
            recordings as one utterance (:func:`pooled_template`). Never stored.
    """

    vector: npt.NDArray[np.float32]
    voiced_s: float
    duration_s: float
    embed_ms: float
    speech: npt.NDArray[np.float32] | None = None
    model: VoiceModel = VoiceModel.CAMPPLUS

    def __repr__(self) -> str:  # keep the vector out of logs and tracebacks
        return (
            f"Voiceprint(model={self.model.value}, voiced_s={self.voiced_s:.2f}, "
            f"duration_s={self.duration_s:.2f})"
        )


def embed_prepared(prepared: PreparedSpeech, model: VoiceModel) -> npt.NDArray[np.float32]:
    """The unit-length voiceprint of prepared speech by ``model``.

    Raises:
        ValueError: The speech holds nothing to embed.
    """
    if model is VoiceModel.GE2E:
        return embed(prepared)
    if prepared.voiced_s == 0 or len(prepared.wav) == 0:
        raise ValueError("no voiced speech to embed")
    return campplus.embed(prepared.wav)


def voiceprint_of_samples(
    wav: npt.NDArray[np.float32],
    *,
    min_voiced_s: float,
    duration_s: float | None = None,
    model: VoiceModel = VoiceModel.CAMPPLUS,
) -> Voiceprint:
    """The voiceprint of decoded 16 kHz samples by ``model``.

    Raises:
        VoiceAudioError: ``silent`` when no voiced speech is found, ``audio_too_short``
            when there is less than ``min_voiced_s`` of it.
    """
    prepared = prepare(wav)
    duration = prepared.duration_s if duration_s is None else duration_s
    if prepared.voiced_s == 0:
        raise VoiceAudioError("silent", "no speech was heard in the recording")
    if prepared.voiced_s < min_voiced_s:
        raise VoiceAudioError(
            "audio_too_short",
            f"only {prepared.voiced_s:.1f} s of speech; at least {min_voiced_s:.1f} s is needed",
        )
    started = time.perf_counter()
    vector = embed_prepared(prepared, model)
    return Voiceprint(
        vector,
        prepared.voiced_s,
        duration,
        (time.perf_counter() - started) * 1000,
        prepared.wav,
        model,
    )


def voiceprint_of(
    audio: bytes | Path | Audio, *, min_voiced_s: float, model: VoiceModel = VoiceModel.CAMPPLUS
) -> Voiceprint:
    """Decode ``audio`` and compute its voiceprint by ``model``.

    Args:
        audio: Encoded audio (bytes of a WAV/FLAC/OGG/MP3), a path to a file, or
            audio already decoded by :func:`biometrics.voice.audio.decode`.
        min_voiced_s: Least voiced speech accepted, in seconds.
        model: The speaker model.

    Raises:
        VoiceAudioError: The audio is corrupt, empty, too long, silent or too short;
            ``code`` says which.
    """
    decoded = decode(audio)
    return voiceprint_of_samples(
        decoded.samples, min_voiced_s=min_voiced_s, duration_s=decoded.duration_s, model=model
    )


#: Silence put between enrollment recordings when they are embedded as one utterance.
_JOIN_GAP_S = 0.15


def pooled_template(prints: Sequence[Voiceprint]) -> npt.NDArray[np.float32]:
    """A speaker template from several recordings, embedded as one utterance.

    The recordings' model embeds them (all must share it; 192-d CAM++, 256-d
    GE2E). For GE2E this was measured to matter: the encoder averages its 1.6-s
    windows over an utterance. Joining the enrollment recordings' prepared
    speech (with short pauses) and embedding it once uses every window of
    every recording, including windows that span
    two short recordings; averaging per-recording vectors instead weighs a
    0.5-s recording (padded to a whole window) like a 3-s one. On real FSDD
    voices with five single-digit enrollment recordings this cut FRR at FAR
    0.1 % from 77 % to 24 %, and with five 6-digit prompts from 5.1 % to 3.6 %
    (side experiment described in ``docs/voice.md``).

    Raises:
        ValueError: No recording kept its prepared speech, or they are of two models.
    """
    models = {p.model for p in prints}
    if len(models) != 1:
        raise ValueError("a pooled template needs recordings of one speaker model")
    gap = np.zeros(int(_JOIN_GAP_S * SAMPLE_RATE), np.float32)
    parts: list[npt.NDArray[np.float32]] = []
    for p in prints:
        if p.speech is None or len(p.speech) == 0:
            raise ValueError("a pooled template needs the prepared speech of each recording")
        parts += [p.speech, gap]
    joined = np.concatenate(parts[:-1]).astype(np.float32)
    joined_speech = PreparedSpeech(
        joined, sum(p.voiced_s for p in prints), len(joined) / SAMPLE_RATE
    )
    return embed_prepared(joined_speech, models.pop())


def score(template: npt.NDArray[np.float32], probe: Voiceprint) -> float:
    """Cosine similarity between a stored template (1 x d or d) and a probe of its model."""
    return similarity(np.asarray(template, dtype=np.float32).reshape(-1), probe.vector)
