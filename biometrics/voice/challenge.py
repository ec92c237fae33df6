"""Spoken digit challenges: issuing random digits and checking what was said.

A challenge is a fresh string of random digits from the operating system's
CSPRNG. Whether an utterance answers it is decided in one of two ways:

* **likelihood check** (the default for the step-up, ``digit_check="likelihood"``):
  the recording is scored against the *expected* digits, as the acoustic
  model's log-likelihood ratio between the expected digits and the best free
  digit string of the same length, per frame
  (:func:`speech.digit_verify.score_expected_digits`); it passes when the
  score reaches ``min_score``. The recogniser does not have to get every digit
  right, only to find the expected ones about as likely as anything else;
* **recognise then compare** (``digit_check="recognise"``, and whenever no score
  is available): the Levenshtein distance between the expected and the heard
  digit strings (a substituted, missing or extra digit each count one) must not
  exceed ``max_errors``.

Either way a recording of some *other* random challenge (a replay) must fail;
the measured and computed rates are in ``docs/voice.md``.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from speech.audio import Audio


def random_digits(length: int) -> str:
    """``length`` random decimal digits from a cryptographically secure source."""
    if length < 1:
        raise ValueError("a challenge needs at least one digit")
    return "".join(str(secrets.randbelow(10)) for _ in range(length))


def spaced(digits: str) -> str:
    """Digits separated by spaces, the way they are shown and read out: ``"4 7 1 9"``."""
    return " ".join(digits)


def only_digits(text: str) -> str:
    """The decimal digits in ``text``, in order (``"4 7 1-9"`` -> ``"4719"``)."""
    return "".join(ch for ch in text if ch.isdigit() and ch.isascii())


def digit_errors(expected: str, heard: str) -> int:
    """Edit distance between two digit strings (substitutions, insertions, deletions)."""
    previous = list(range(len(heard) + 1))
    for i, e in enumerate(expected, start=1):
        current = [i]
        for j, h in enumerate(heard, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (e != h)))
        previous = current
    return previous[-1]


@dataclass(frozen=True)
class DigitCheck:
    """The outcome of checking spoken digits against the expected ones.

    Attributes:
        expected: The digits that were asked for.
        heard: The digits speech recognition returned.
        errors: Their edit distance.
        max_errors: The edit-distance tolerance (used when there is no score).
        score: The likelihood score of the recording against ``expected``
            (see :func:`speech.digit_verify.score_expected_digits`), if measured.
        min_score: The score needed to pass, if the likelihood check applies.
    """

    expected: str
    heard: str
    errors: int
    max_errors: int
    score: float | None = None
    min_score: float | None = None

    @property
    def method(self) -> str:
        """``"likelihood"`` when the score decides, else ``"edit_distance"``."""
        decided_by_score = self.score is not None and self.min_score is not None
        return "likelihood" if decided_by_score else "edit_distance"

    @property
    def passed(self) -> bool:
        """Whether the recording answers the expected digits."""
        if not self.heard:
            return False
        if self.score is not None and self.min_score is not None:
            return self.score >= self.min_score
        return self.errors <= self.max_errors

    @property
    def correct_in_position(self) -> int:
        """How many expected digits were heard in the same position (for the log)."""
        return sum(1 for e, h in zip(self.expected, self.heard, strict=False) if e == h)


def check_digits(
    expected: str,
    heard: str,
    *,
    max_errors: int,
    score: float | None = None,
    min_score: float | None = None,
) -> DigitCheck:
    """Decide whether an answer says the expected digits (non-digits are ignored).

    With both ``score`` and ``min_score`` the likelihood score decides;
    otherwise the edit distance between ``expected`` and ``heard`` must be at
    most ``max_errors``. Nothing heard never passes.
    """
    expected, heard = only_digits(expected), only_digits(heard)
    return DigitCheck(expected, heard, digit_errors(expected, heard), max_errors, score, min_score)


@dataclass(frozen=True)
class HeardDigits:
    """What speech recognition heard when digits were expected.

    Attributes:
        digits: The recognised digits, e.g. ``"471902"`` (empty if none).
        confidence: The recogniser's confidence in ``[0, 1]``, when it gives one.
        score: The likelihood score against the expected digits, when they
            were given (see :func:`speech.digit_verify.score_expected_digits`).
    """

    digits: str
    confidence: float | None = None
    score: float | None = None


def hear_digits(
    audio: bytes | Path | Audio, *, expected_len: int | None, expected: str | None = None
) -> HeardDigits:
    """Recognise a spoken digit string with the speech layer's digit recogniser.

    Args:
        audio: The encoded recording, a path to it, or the decoded
            :class:`speech.audio.Audio` (then it is not decoded again).
        expected_len: How many digits were asked for (lets the recogniser use a
            grammar of that length).
        expected: The digits that were asked for. When given, the recording is
            also scored against them (``score``), and ``digits`` is the free
            decode of the same length from the same (comparable) search.

    Raises:
        speech.audio.AudioError: The audio could not be decoded.
        ValueError: ``expected`` is not a string of ASCII digits.
    """
    if expected is not None:
        from speech.digit_verify import score_expected_digits

        result = score_expected_digits(audio, only_digits(expected) or expected)
        return HeardDigits(result.heard, None, round(result.score, 4))
    from speech import recognize_digits

    transcript = recognize_digits(audio, expected_len=expected_len)
    digits = getattr(transcript, "digits", None) or only_digits(transcript.text)
    confidence = getattr(transcript, "confidence", None)
    return HeardDigits(only_digits(digits), None if confidence is None else float(confidence))


#: A digit recogniser with :func:`hear_digits`' signature (tests may pass their own).
DigitHearer = Callable[..., HeardDigits]


def check_answer(
    audio: bytes | Path | Audio,
    expected: str,
    *,
    max_errors: int,
    min_score: float | None,
    hearer: DigitHearer = hear_digits,
) -> tuple[HeardDigits, DigitCheck]:
    """Hear a spoken answer to ``expected`` and decide whether it says those digits.

    With ``min_score`` the likelihood check decides (the recording is scored
    against ``expected``); without it, the edit distance of the recognised
    digits must be at most ``max_errors``. The one rule for step-up answers and
    enrollment recordings.

    Raises:
        speech.audio.AudioError: The audio could not be decoded.
    """
    if min_score is None:
        heard = hearer(audio, expected_len=len(expected))
        return heard, check_digits(expected, heard.digits, max_errors=max_errors)
    heard = hearer(audio, expected_len=len(expected), expected=expected)
    check = check_digits(
        expected, heard.digits, max_errors=max_errors, score=heard.score, min_score=min_score
    )
    return heard, check
