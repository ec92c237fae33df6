"""Voice enrollment: five prompted digit strings become one encrypted template.

The resident is shown :func:`enrollment_prompts` (five random 6-digit strings)
and speaks each. Every recording must

- decode and hold at least ``min_enroll_voiced_s`` of voiced speech;
- say its prompted digits, checked exactly as a step-up challenge answer is
  (:func:`check_prompt`): by default the likelihood score of the prompt against
  the best free digit string must reach ``min_digit_score`` (calibrated on
  6-digit strings, so prompts need at least that many digits); with
  ``digit_check="recognise"`` the recognised digits must be within
  ``enroll_max_digit_errors`` of the prompt. This is what keeps a replayed or
  unrelated recording from being enrolled; staff importing recordings made
  elsewhere may skip it, which is recorded in the audit trail as the actor;
- sound like the same person as the others (each voiceprint's similarity to
  the mean of the others at least the model's ``enroll_consistency`` in
  :data:`biometrics.voice.models.PROFILES`), so two people cannot be enrolled
  as one.

The template is made with ``BILLTALK_VOICE_ENROLL_MODEL`` (CAM++ by default,
:mod:`biometrics.voice.models`): all recordings' prepared speech embedded as one
utterance. It is stored through :class:`biometrics.store.TemplateStore`
(AES-GCM, audited) with the model's name recorded beside it, so the verifier
scores it with the same model; it is never logged. Re-enrolling a resident whose
template is GE2E replaces it with a CAM++ one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from billtalk.logs import get_logger
from biometrics.store import TemplateStore
from biometrics.voice.audio import Audio, AudioError, VoiceAudioError, decode, voice_code
from biometrics.voice.challenge import (
    DigitCheck,
    DigitHearer,
    check_answer,
    hear_digits,
    only_digits,
    random_digits,
)
from biometrics.voice.embedding import make_template, similarity
from biometrics.voice.models import PROFILES, VoiceModel
from biometrics.voice.settings import SCORED_DIGITS, VoiceSettings, get_voice_settings
from biometrics.voice.voiceprint import Voiceprint, pooled_template, voiceprint_of

KIND = "voice"

log = get_logger(__name__)


class EnrollmentError(Exception):
    """An enrollment was refused; nothing was stored.

    Attributes:
        code: ``corrupt_audio``, ``silent``, ``audio_too_short``, ``audio_too_long``,
            ``wrong_digits``, ``inconsistent_speaker``, ``not_enough_samples``,
            ``missing_digits``, ``prompt_too_short``.
        message: A human-readable explanation.
        index: The 0-based recording the error is about, if one.
    """

    def __init__(self, code: str, message: str, index: int | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.index = index


@dataclass(frozen=True)
class EnrollmentSample:
    """One enrollment recording and the digits the resident was asked to say.

    Attributes:
        audio: The encoded recording, or a path to it.
        digits: The prompted digits (``None`` only for a staff import without
            the digit check).
    """

    audio: bytes | Path
    digits: str | None = None

    def __repr__(self) -> str:  # keep audio bytes out of logs
        kind = str(self.audio) if isinstance(self.audio, Path) else f"{len(self.audio)} bytes"
        return f"EnrollmentSample(audio={kind}, digits={self.digits!r})"


@dataclass(frozen=True)
class EnrollmentReport:
    """What was enrolled (no biometric data).

    Attributes:
        resident_id: Who was enrolled.
        samples: How many recordings make up the template.
        voiced_s: Voiced seconds of each recording.
        total_voiced_s: Voiced seconds of all recordings together (the
            template is embedded from all of it as one utterance).
        consistency: Each recording's similarity to the mean of the others.
        digits_checked: Whether the prompted digits were verified.
        digit_check: How they were verified (``likelihood`` or
            ``edit_distance``; empty when not checked).
        digit_scores: Each recording's likelihood score against its prompt,
            with the likelihood check.
        model: The speaker model of the template.
    """

    resident_id: str
    samples: int
    voiced_s: list[float] = field(default_factory=list)
    total_voiced_s: float = 0.0
    consistency: list[float] = field(default_factory=list)
    digits_checked: bool = True
    digit_check: str = ""
    digit_scores: list[float] = field(default_factory=list)
    model: VoiceModel = VoiceModel.CAMPPLUS


def enrollment_prompts(settings: VoiceSettings | None = None) -> list[str]:
    """Fresh random digit strings for the resident to speak, one per recording."""
    s = settings or get_voice_settings()
    return [random_digits(s.enroll_digits) for _ in range(s.enroll_utterances)]


def check_prompt(
    decoded: Audio,
    digits: str | None,
    index: int = 0,
    *,
    settings: VoiceSettings | None = None,
    hearer: DigitHearer = hear_digits,
) -> DigitCheck:
    """Check that one enrollment recording says its prompted digits.

    The same rule as a step-up challenge answer: with ``digit_check="likelihood"``
    (the default) the recording's likelihood score against the prompt must
    reach ``min_digit_score``; with ``"recognise"`` (or a hearer that gives no
    score) the recognised digits must be within ``enroll_max_digit_errors``.

    Args:
        decoded: The decoded recording (:func:`biometrics.voice.audio.decode`).
        digits: The prompted digits (non-digits such as spaces are ignored).
        index: The 0-based recording, for the error.
        settings: Voice settings (defaults to the environment's).
        hearer: The digit recogniser (the speech layer's by default).

    Returns:
        The passed check (its score and method are kept for the report).

    Raises:
        EnrollmentError: ``missing_digits`` (no prompt), ``prompt_too_short``
            (fewer than :data:`~biometrics.voice.settings.SCORED_DIGITS` digits
            with the likelihood check), ``wrong_digits`` (the recording does
            not say them).
    """
    s = settings or get_voice_settings()
    expected = only_digits(digits or "")
    if not expected:
        raise EnrollmentError(
            "missing_digits", f"recording {index + 1}: no prompted digits given", index
        )
    likelihood = s.digit_check == "likelihood"
    if likelihood and len(expected) < SCORED_DIGITS:
        raise EnrollmentError(
            "prompt_too_short",
            f"recording {index + 1}: the prompt has {len(expected)} digits; the digit check "
            f"needs at least {SCORED_DIGITS} (or BILLTALK_VOICE_DIGIT_CHECK=recognise)",
            index,
        )
    try:
        _, check = check_answer(
            decoded,
            expected,
            max_errors=s.enroll_max_digit_errors,
            min_score=s.min_digit_score if likelihood else None,
            hearer=hearer,
        )
    except (VoiceAudioError, AudioError) as exc:
        raise EnrollmentError(
            voice_code(exc.code), f"recording {index + 1}: {exc.message}", index
        ) from exc
    if not check.passed:
        how = (
            f"score {check.score:.2f} below {check.min_score}"
            if check.method == "likelihood"
            else f"{check.errors} differences"
        )
        raise EnrollmentError(
            "wrong_digits",
            f"recording {index + 1}: the prompted digits were not recognised ({how})",
            index,
        )
    return check


def build_template(
    samples: Sequence[EnrollmentSample],
    *,
    check_prompted_digits: bool = True,
    settings: VoiceSettings | None = None,
    hearer: DigitHearer = hear_digits,
) -> tuple[np.ndarray, EnrollmentReport]:
    """Check enrollment recordings and compute the template (nothing is stored).

    Args:
        samples: The recordings with their prompted digits.
        check_prompted_digits: Verify that each recording says its digits.
        settings: Voice settings (defaults to the environment's).
        hearer: The digit recogniser (the speech layer's by default).

    Returns:
        The ``(1, d)`` float32 template of ``settings.enroll_model`` (192 for
        CAM++) and a report (its ``model`` says which).

    Raises:
        EnrollmentError: A recording is unusable, says the wrong digits, or the
            voices do not agree.
    """
    s = settings or get_voice_settings()
    model = s.enroll_model
    if len(samples) < s.enroll_utterances:
        raise EnrollmentError(
            "not_enough_samples",
            f"{len(samples)} recordings given; enrollment needs {s.enroll_utterances}",
        )
    prints: list[Voiceprint] = []
    checks: list[DigitCheck] = []
    for index, sample in enumerate(samples):
        try:
            decoded = decode(sample.audio)
            vp = voiceprint_of(decoded, min_voiced_s=s.min_enroll_voiced_s, model=model)
        except VoiceAudioError as exc:
            raise EnrollmentError(exc.code, f"recording {index + 1}: {exc.message}", index) from exc
        if check_prompted_digits:
            checks.append(check_prompt(decoded, sample.digits, index, settings=s, hearer=hearer))
        prints.append(vp)
    vectors = [p.vector for p in prints]
    consistency: list[float] = []
    if len(vectors) > 1:
        for i, v in enumerate(vectors):
            others = make_template([w for j, w in enumerate(vectors) if j != i])
            consistency.append(round(similarity(others, v), 4))
    worst = int(np.argmin(consistency)) if consistency else 0
    if consistency and consistency[worst] < PROFILES[model].enroll_consistency:
        raise EnrollmentError(
            "inconsistent_speaker",
            f"recording {worst + 1} does not sound like the others",
            worst,
        )
    total_voiced = sum(p.voiced_s for p in prints)
    template = pooled_template(prints).reshape(1, -1)
    report = EnrollmentReport(
        resident_id="",
        samples=len(prints),
        voiced_s=[round(p.voiced_s, 2) for p in prints],
        total_voiced_s=round(total_voiced, 2),
        consistency=consistency,
        digits_checked=check_prompted_digits,
        digit_check=checks[0].method if checks else "",
        digit_scores=[c.score for c in checks if c.score is not None],
        model=model,
    )
    return template, report


def enroll(
    store: TemplateStore,
    resident_id: str,
    samples: Sequence[EnrollmentSample],
    *,
    actor: str,
    check_prompted_digits: bool = True,
    settings: VoiceSettings | None = None,
    hearer: DigitHearer = hear_digits,
) -> EnrollmentReport:
    """Enroll (or re-enroll) a resident's voice and store the encrypted template.

    Args:
        store: The template store.
        resident_id: The resident.
        samples: The prompted recordings (see :func:`enrollment_prompts`).
        actor: Who enrolls, for the audit trail (``resident:<id>``, ``staff:<name>``).
        check_prompted_digits: ``False`` only for a staff import of recordings
            whose prompts are not known.
        settings: Voice settings (defaults to the environment's).
        hearer: The digit recogniser (the speech layer's by default).

    Raises:
        EnrollmentError: Nothing was stored; ``code`` says why (``not_enough_speech``
            when all recordings together hold less than ``min_enroll_total_voiced_s``).
    """
    s = settings or get_voice_settings()
    template, report = build_template(
        samples, check_prompted_digits=check_prompted_digits, settings=s, hearer=hearer
    )
    # Checked on the whole enrollment only (one recording is checked alone on arrival).
    if report.total_voiced_s < s.min_enroll_total_voiced_s:
        raise EnrollmentError(
            "not_enough_speech",
            f"the recordings hold {report.total_voiced_s:.1f} s of speech in all; at least "
            f"{s.min_enroll_total_voiced_s:.1f} s is needed (speak each prompt in full)",
        )
    audit_actor = actor if check_prompted_digits else f"{actor} (no digit check)"
    store.save(resident_id, KIND, template, actor=audit_actor, model=report.model.value)
    log.info(
        "voice_enrolled",
        resident_id=resident_id,
        model=report.model.value,
        samples=report.samples,
        digits_checked=check_prompted_digits,
        min_consistency=min(report.consistency, default=None),
    )
    return EnrollmentReport(
        resident_id=resident_id,
        samples=report.samples,
        voiced_s=report.voiced_s,
        total_voiced_s=report.total_voiced_s,
        consistency=report.consistency,
        digits_checked=report.digits_checked,
        digit_check=report.digit_check,
        digit_scores=report.digit_scores,
        model=report.model,
    )
