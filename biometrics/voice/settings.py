"""Settings of voice verification (``BILLTALK_VOICE_*`` environment variables).

The shipped values were calibrated by ``bench/voice.py`` on the shared real
speakers (see ``docs/voice.md`` and the ``voice`` section of
``bench/RESULTS.md`` for the procedure and the measured FAR/FRR beside them).
``billtalk voice verify`` and the dialogue's step-up both read them from here,
so there is a single threshold in the product.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from biometrics.voice.models import PROFILES, VoiceModel

#: Cosine similarity (CAM++ voiceprint vs. CAM++ template) at or above which a voice
#: matches; how it was chosen is written beside :data:`biometrics.voice.models.PROFILES`.
DEFAULT_MATCH_THRESHOLD = PROFILES[VoiceModel.CAMPPLUS].match_threshold

#: Cosine similarity at or above which a probe matches a GE2E template (those enrolled
#: before CAM++; they keep verifying with GE2E until the resident re-enrolls); see
#: :data:`biometrics.voice.models.PROFILES`.
DEFAULT_GE2E_MATCH_THRESHOLD = PROFILES[VoiceModel.GE2E].match_threshold

#: Least voiced speech (seconds) a step-up answer must hold to be scored; a shorter one is
#: refused as ``audio_too_short`` (retry with a hint, not a rejection, not a lockout
#: failure). A complete answer to the 6-digit challenge holds more: 240 real 6-digit
#: strings of the six FSDD speakers (recordings 25-49) held 2.34 s or more, 3-digit ones
#: 0.9-1.8 s. Too little speech makes an unreliable voiceprint: on the held-out speakers
#: (bench/voice.py, issue 18) 4 of the 12 false rejects at the calibrated threshold were
#: probes under 1.5 s. Was 1.0.
DEFAULT_MIN_VOICED_S = 1.5

#: Likelihood score (expected digits vs. the best free digit string, per frame,
#: pocketsphinx log units) at or above which a challenge answer passes.
#: Calibrated on real FSDD voices; see docs/voice.md.
DEFAULT_MIN_DIGIT_SCORE = -4.5

#: Digit-string length ``min_digit_score`` was calibrated on. With the
#: likelihood check, challenges and enrollment prompts must be at least this
#: long: a shorter string differs from a replayed one in fewer digits, so the
#: calibrated threshold would let more replays through.
SCORED_DIGITS = 6


class VoiceSettings(BaseSettings):
    """Knobs of :mod:`biometrics.voice`.

    Attributes:
        match_threshold: Cosine similarity between the probe's CAM++ voiceprint
            and a CAM++ template at or above which the voice matches.
        ge2e_match_threshold: The same for a GE2E template (enrolled before CAM++).
        enroll_model: The speaker model a new enrollment's template is made with.
        challenge_digits: Length of the spoken verification challenge.
        challenge_ttl_s: Seconds after which a challenge can no longer be answered.
        digit_check: How a challenge answer is checked: ``"likelihood"`` scores
            the recording against the expected digits (``min_digit_score``);
            ``"recognise"`` recognises the digits and compares them
            (``max_digit_errors``), the only choice for engines without scores.
        min_digit_score: Likelihood score a challenge answer needs.
        max_digit_errors: Edit distance (substituted, missing or extra digits)
            tolerated between the challenge and what speech recognition heard,
            with ``digit_check="recognise"``.
        enroll_utterances: Prompted digit strings spoken at enrollment.
        enroll_digits: Digits per enrollment prompt. Each enrollment recording
            is checked the same way as a challenge answer (``digit_check``);
            with the likelihood check prompts need :data:`SCORED_DIGITS`.
        enroll_max_digit_errors: Tolerated edit distance for an enrollment
            prompt, with ``digit_check="recognise"``.
        min_voiced_s: Least voiced speech (seconds, after voice-activity detection)
            a verification probe must contain; shorter voiceprints are unreliable.
        min_enroll_voiced_s: Least voiced speech per enrollment utterance.
        min_enroll_total_voiced_s: Least voiced speech of all enrollment
            recordings together (five 6-digit prompts hold about 8-12 s).
        vad_mode: webrtcvad aggressiveness (0-3) used to measure voiced speech.
        learn_from_success: Whether a step-up passed with a wide margin refreshes
            the template (bounded, audited, reversible; :mod:`biometrics.refresh`).
        min_snr_db: A step-up recording whose speech stands less than this above
            its noise floor (:func:`biometrics.voice.noise.estimate_snr_db`) is
            refused as ``too_noisy`` with a retry hint instead of being scored.
            Every clean real probe of the benchmark (FSDD, LibriSpeech test-other)
            estimates at 9.6 dB or more; real speech with white noise added at
            0 dB estimates at 8.0 dB or less (bench/voice.py, issue 18).
    """

    model_config = SettingsConfigDict(env_prefix="BILLTALK_VOICE_", extra="ignore", frozen=True)

    match_threshold: float = Field(default=DEFAULT_MATCH_THRESHOLD, gt=0.0, lt=1.0)
    ge2e_match_threshold: float = Field(default=DEFAULT_GE2E_MATCH_THRESHOLD, gt=0.0, lt=1.0)
    enroll_model: VoiceModel = VoiceModel.CAMPPLUS
    challenge_digits: int = Field(default=6, ge=4, le=12)
    challenge_ttl_s: float = Field(default=60.0, gt=0)
    digit_check: Literal["likelihood", "recognise"] = "likelihood"
    min_digit_score: float = Field(default=DEFAULT_MIN_DIGIT_SCORE, le=0.0)
    max_digit_errors: int = Field(default=1, ge=0, le=3)
    enroll_utterances: int = Field(default=5, ge=1, le=20)
    enroll_digits: int = Field(default=SCORED_DIGITS, ge=4, le=12)
    enroll_max_digit_errors: int = Field(default=1, ge=0, le=3)
    min_voiced_s: float = Field(default=DEFAULT_MIN_VOICED_S, ge=0.1)
    min_enroll_voiced_s: float = Field(default=1.0, ge=0.1)
    min_enroll_total_voiced_s: float = Field(default=5.0, ge=0.0)
    vad_mode: int = Field(default=2, ge=0, le=3)
    learn_from_success: bool = True
    min_snr_db: float = Field(default=8.5, ge=0.0)

    def threshold(self, model: VoiceModel) -> float:
        """The match threshold for a template of ``model`` (its profile's setting)."""
        return float(getattr(self, PROFILES[model].threshold_setting))

    @model_validator(mode="after")
    def _scored_lengths(self) -> VoiceSettings:
        """Refuse digit lengths the likelihood threshold was not calibrated for."""
        if self.digit_check == "likelihood":
            for name in ("challenge_digits", "enroll_digits"):
                if getattr(self, name) < SCORED_DIGITS:
                    raise ValueError(
                        f"{name} must be at least {SCORED_DIGITS} with digit_check='likelihood' "
                        f"(min_digit_score is calibrated on {SCORED_DIGITS}-digit strings); "
                        "use digit_check='recognise' for shorter ones"
                    )
        return self


@lru_cache(maxsize=1)
def get_voice_settings() -> VoiceSettings:
    """Return the voice settings, read once from the environment."""
    return VoiceSettings()
