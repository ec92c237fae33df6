"""Spoken digit challenges: issuing random digits and checking what was said.

A challenge is a fresh string of random digits from the operating system's
CSPRNG. Whether an utterance answers it is decided on the digits speech
recognition heard, with a small tolerance: the Levenshtein distance between the
expected and the heard digit strings (a substituted, missing or extra digit each
count one) must not exceed ``max_errors``. The tolerance absorbs recogniser
mistakes on real voices; the chance that a recording of some *other* random
challenge falls within it is tiny (about 5.5e-5 for 6 digits and one error, see
``docs/voice.md``), which is what makes replaying an old recording fail.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.speech.audio import Audio


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
        max_errors: The tolerance applied.
    """

    expected: str
    heard: str
    errors: int
    max_errors: int

    @property
    def passed(self) -> bool:
        """Whether the heard digits are close enough to the expected ones."""
        return bool(self.heard) and self.errors <= self.max_errors

    @property
    def correct_in_position(self) -> int:
        """How many expected digits were heard in the same position (for the log)."""
        return sum(1 for e, h in zip(self.expected, self.heard, strict=False) if e == h)


def check_digits(expected: str, heard: str, *, max_errors: int) -> DigitCheck:
    """Compare the expected digits with the heard ones (non-digits in either are ignored)."""
    expected, heard = only_digits(expected), only_digits(heard)
    return DigitCheck(expected, heard, digit_errors(expected, heard), max_errors)


@dataclass(frozen=True)
class HeardDigits:
    """What speech recognition heard when digits were expected.

    Attributes:
        digits: The recognised digits, e.g. ``"471902"`` (empty if none).
        confidence: The recogniser's confidence in ``[0, 1]``, when it gives one.
    """

    digits: str
    confidence: float | None = None


def hear_digits(audio: bytes | Path | Audio, *, expected_len: int | None) -> HeardDigits:
    """Recognise a spoken digit string with the speech layer's digit recogniser.

    Args:
        audio: The encoded recording, a path to it, or the decoded
            :class:`bot.speech.audio.Audio` (then it is not decoded again).
        expected_len: How many digits were asked for (lets the recogniser use a
            grammar of that length).

    Raises:
        bot.speech.audio.AudioError: The audio could not be decoded.
    """
    from bot.speech import recognize_digits

    transcript = recognize_digits(audio, expected_len=expected_len)
    digits = getattr(transcript, "digits", None) or only_digits(transcript.text)
    confidence = getattr(transcript, "confidence", None)
    return HeardDigits(only_digits(digits), None if confidence is None else float(confidence))
