"""Voice step-up verification: say a fresh random 6-digit challenge.

:class:`VoiceVerifier` implements :class:`verification.Verifier` for the
``voice`` kind. One attempt passes only if **both** hold:

- *liveness / anti-replay*: the recording says the challenge digits before the
  challenge expires (60 s): its likelihood score against the expected digits
  reaches ``min_digit_score`` (or, with ``digit_check="recognise"``, the
  recognised digits are within ``max_digit_errors``). A recording of an earlier
  challenge says other digits and fails;
- *identity*: the cosine similarity between the utterance's voiceprint and the
  enrolled template reaches the threshold of the template's model (calibrated
  for FAR <= 0.1%). The probe is embedded by the model recorded with the
  template (:mod:`biometrics.voice.models`): CAM++ templates (every enrollment
  since issue 18) at ``match_threshold``, GE2E templates enrolled before at
  ``ge2e_match_threshold``, until the resident re-enrolls. Callers never say
  which model: the stored template does.

There is no other anti-spoofing: a voice clone speaking the fresh digits in real
time would not be detected. The lockout after 5 failures (15 minutes, falling
back to the PIN and staff) is applied by the dialogue's verification service;
this class decides single attempts and returns scores and reason codes for the
conversation log, never audio or voiceprints.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from billtalk.logs import get_logger
from biometrics.crypto import TemplateDecryptionError
from biometrics.refresh import refreshed_voice
from biometrics.store import TemplateStore
from biometrics.voice.audio import AudioError, VoiceAudioError, decode, voice_code
from biometrics.voice.challenge import (
    HeardDigits,
    check_answer,
    hear_digits,
    random_digits,
    spaced,
)
from biometrics.voice.enrollment import KIND
from biometrics.voice.models import PROFILES, VoiceModel, recorded_model
from biometrics.voice.noise import estimate_snr_db
from biometrics.voice.settings import VoiceSettings, get_voice_settings
from biometrics.voice.voiceprint import score, voiceprint_of_samples
from verification import (
    Challenge,
    Decision,
    Evidence,
    VerificationKind,
    VerificationResult,
)

PROMPT_KEY = "verify_voice_prompt"
log = get_logger(__name__)


class VoiceVerifier:
    """Voice step-up verification with a spoken random-digit challenge.

    Args:
        store: Where enrolled voice templates are kept.
        settings: Thresholds and tolerances; defaults to ``BILLTALK_VOICE_*``.
        now: The clock (UTC), replaceable in tests.
        hearer: The digit recogniser; defaults to the speech layer's
            :func:`speech.recognize_digits`.
        digit_source: Makes the challenge digits (length -> digits); defaults to
            the CSPRNG. Replaceable only so tests can be deterministic.
    """

    kind = VerificationKind.VOICE

    def __init__(
        self,
        store: TemplateStore,
        *,
        settings: VoiceSettings | None = None,
        now: Callable[[], datetime] | None = None,
        hearer: Callable[..., HeardDigits] = hear_digits,
        digit_source: Callable[[int], str] = random_digits,
    ) -> None:
        self.store = store
        self.settings = settings or get_voice_settings()
        self._now = now or (lambda: datetime.now(UTC))
        self._hear = hearer
        self._digits = digit_source

    @classmethod
    def from_settings(cls) -> VoiceVerifier:
        """A verifier on the configured template store (``BILLTALK_*`` settings)."""
        return cls(TemplateStore.from_settings())

    async def is_enrolled(self, resident_id: str) -> bool:
        """Whether the resident has an enrolled voice template."""
        return await asyncio.to_thread(self.store.is_enrolled, resident_id, KIND)

    async def start(self, resident_id: str) -> Challenge:
        """Issue a fresh random digit challenge, valid for ``challenge_ttl_s`` seconds.

        The dialogue renders ``verify_voice_prompt`` with ``params["digits"]``
        (``"4 7 1 9 0 2"``) and waits for a voice note.
        """
        digits = self._digits(self.settings.challenge_digits)
        issued = self._now()
        return Challenge(
            kind=self.kind,
            challenge_id=secrets.token_urlsafe(12),
            prompt_key=PROMPT_KEY,
            issued_at=issued,
            expires_at=issued + timedelta(seconds=self.settings.challenge_ttl_s),
            accepts=("audio",),
            params={"digits": spaced(digits)},
            state={"digits": digits, "resident_id": resident_id},
        )

    async def verify(
        self, resident_id: str, challenge: Challenge, evidence: Evidence
    ) -> VerificationResult:
        """Decide one attempt: the challenge digits spoken, by the enrolled voice.

        Returns:
            ``accept``/``match`` when both checks pass. ``reject`` with
            ``expired``, ``wrong_challenge``, ``not_enrolled``,
            ``template_unavailable`` (it cannot be decrypted, or its recorded
            model is unknown or does not fit its size), ``wrong_digits`` or
            ``no_match``. ``retry`` when the audio cannot be judged:
            ``wrong_media``, ``corrupt_audio``, ``empty_audio``, ``silent``,
            ``audio_too_short``, ``audio_too_long``, ``no_speech``, ``too_noisy``
            (``details["snr_db"]``; too much background noise, with a hint).
        """
        if challenge.kind is not self.kind or challenge.state.get("resident_id") != resident_id:
            return self._result(Decision.REJECT, "wrong_challenge")
        if challenge.is_expired(self._now()):
            return self._result(Decision.REJECT, "expired")
        if evidence.media != "audio":
            return self._result(Decision.RETRY, "wrong_media")
        return await asyncio.to_thread(
            self._verify_audio, resident_id, str(challenge.state.get("digits", "")), evidence.data
        )

    def verify_recording(
        self, resident_id: str, expected_digits: str, audio: bytes | Path
    ) -> VerificationResult:
        """The synchronous core of :meth:`verify`, for an unexpired challenge.

        Exposed for benchmarks and batch checks; the dialogue uses :meth:`verify`.
        """
        return self._verify_audio(resident_id, expected_digits, audio)

    def _verify_audio(
        self, resident_id: str, expected: str, audio: bytes | Path
    ) -> VerificationResult:
        started = time.perf_counter()
        s = self.settings
        if not expected or not expected.isdigit():
            return self._result(Decision.REJECT, "wrong_challenge")
        try:
            stored = self.store.load_stored(resident_id, KIND)
        except TemplateDecryptionError:
            # A key problem is an operations issue; refuse, and say so in the log.
            log.error("voice_template_undecryptable", resident_id=resident_id)
            return self._result(Decision.REJECT, "template_unavailable")
        if stored is None:
            return self._result(Decision.REJECT, "not_enrolled")
        try:
            model = recorded_model(stored.model)
        except ValueError:
            log.error("voice_template_unknown_model", resident_id=resident_id)
            return self._result(Decision.REJECT, "template_unavailable")
        template = stored.vectors
        if template.shape[-1] != PROFILES[model].dims:
            log.error("voice_template_size_mismatch", resident_id=resident_id, model=model.value)
            return self._result(Decision.REJECT, "template_unavailable")
        threshold = s.threshold(model)
        try:
            decoded = decode(audio)
            snr_db = estimate_snr_db(decoded.samples)
            if snr_db < s.min_snr_db:
                return self._result(
                    Decision.RETRY,
                    "too_noisy",
                    details={
                        "snr_db": round(snr_db, 1),
                        "message": "there is too much background noise; move somewhere "
                        "quieter, hold the phone close and read the digits again",
                    },
                    threshold=threshold,
                )
            probe = voiceprint_of_samples(
                decoded.samples,
                min_voiced_s=s.min_voiced_s,
                duration_s=decoded.duration_s,
                model=model,
            )
        except VoiceAudioError as exc:
            return self._result(
                Decision.RETRY, exc.code, details={"message": exc.message}, threshold=threshold
            )
        similarity = round(score(template, probe), 4)
        try:
            heard, check = check_answer(
                decoded,
                expected,
                max_errors=s.max_digit_errors,
                min_score=s.min_digit_score if s.digit_check == "likelihood" else None,
                hearer=self._hear,
            )
        except (VoiceAudioError, AudioError) as exc:
            code = voice_code(exc.code)
            return self._result(
                Decision.RETRY, code, details={"message": exc.message}, threshold=threshold
            )
        details: dict[str, Any] = {
            "voice_model": model.value,
            "voiced_s": round(probe.voiced_s, 2),
            "duration_s": round(probe.duration_s, 2),
            "digit_check": check.method,
            "digit_score": check.score,
            "min_digit_score": check.min_score,
            "digit_errors": check.errors,
            "digits_heard": len(check.heard),
            "digits_correct_in_position": check.correct_in_position,
            "max_digit_errors": check.max_errors,
            "recognizer_confidence": heard.confidence,
            "elapsed_ms": round((time.perf_counter() - started) * 1000, 1),
        }
        voice_ok = similarity >= threshold
        if not check.heard:
            decision, reason = Decision.RETRY, "no_speech"
        elif not check.passed:
            decision, reason = Decision.REJECT, "wrong_digits"
        elif not voice_ok:
            decision, reason = Decision.REJECT, "no_match"
        else:
            decision, reason = Decision.ACCEPT, "match"
            details["voiceprint_refreshed"] = self._learn(
                resident_id, template, probe.vector, similarity, model
            )
        result = self._result(
            decision,
            reason,
            score=similarity,
            liveness=check.passed,
            details=details,
            threshold=threshold,
        )
        log.info("voice_verification", resident_id=resident_id, **result.to_log())
        return result

    def _learn(
        self, resident_id: str, template: Any, probe: Any, similarity: float, model: VoiceModel
    ) -> bool:
        """Refresh the template after a live pass with a wide margin; whether it was refreshed.

        Only an accepted answer to a fresh challenge gets here (digits said now,
        voice matched), so a replayed recording never moves a template. The step
        is bounded by :func:`biometrics.refresh.refreshed_voice`; the store keeps
        the previous version and audits the refresh. The bounds and threshold are
        the template's model's; the refreshed template keeps its model.
        """
        if not self.settings.learn_from_success:
            return False
        new = refreshed_voice(
            template,
            probe,
            similarity,
            self.settings.threshold(model),
            PROFILES[model].refresh,
        )
        if new is None:
            return False
        self.store.refresh(
            resident_id,
            KIND,
            new,
            actor="verifier:voice",
            detail={"score_milli": round(similarity * 1000)},
        )
        log.info("voice_template_refreshed", resident_id=resident_id)
        return True

    def _result(
        self,
        decision: Decision,
        reason: str,
        *,
        score: float | None = None,
        liveness: bool | None = None,
        details: dict[str, Any] | None = None,
        threshold: float | None = None,
    ) -> VerificationResult:
        return VerificationResult(
            kind=self.kind,
            decision=decision,
            reason=reason,
            score=score,
            threshold=self.settings.match_threshold if threshold is None else threshold,
            liveness=liveness,
            details=details or {},
        )
