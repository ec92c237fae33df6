"""Which factors a resident must present for a step-up: the one rule, in one place.

A step-up (a payment at or above the threshold, past the daily limit, flagged
as risky, or an autopay limit at or above the threshold) is passed by *any one*
of the ways below that the resident is enrolled in and that is not locked:

* the PIN;
* a voice note reading the prompted digits;
* a face video note answering the movement challenge (liveness);
* a still selfie **together with the PIN**: a still only proves someone has a
  photo of the resident, so it never counts alone.

Enrolment is what decides. A resident with a face but no PIN is offered the
face check, and a still selfie from them is answered by asking for the video
note, never for a PIN that does not exist (and nothing is counted towards a
lockout for it). A resident with nothing enrolled is not asked anything: the
payment waits while they set up a PIN (only with a link code or a staff-issued
one-time code, never inside the payment).

:func:`required_factors` is that rule; the payment form, autopay and
enrollment ask it, and ``tests/bot/test_stepup_factors.py`` checks it for every
combination of enrolled and locked factors.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from verification import VerificationKind

PIN = VerificationKind.PIN
FACE = VerificationKind.FACE
VOICE = VerificationKind.VOICE

#: Kinds in the order they are offered.
_ORDER = (PIN, FACE, VOICE)


@dataclass(frozen=True)
class FactorPlan:
    """What a resident may present to pass a step-up.

    Attributes:
        offer: The kinds to offer, in order (enrolled and not locked).
        still_face_with_pin: Whether a still selfie counts (then the PIN is asked
            next): only when the PIN is enrolled and not locked.
        setup_needed: Nothing is enrolled: the resident must set up a PIN first
            (the payment waits).
        locked: Something is enrolled but every enrolled kind is locked.
    """

    offer: tuple[VerificationKind, ...]
    still_face_with_pin: bool
    setup_needed: bool
    locked: bool

    @property
    def can_verify(self) -> bool:
        """Whether a challenge can be started now."""
        return bool(self.offer)


def required_factors(
    enrolled: Iterable[VerificationKind], locked: Iterable[VerificationKind] = ()
) -> FactorPlan:
    """The ways to pass a step-up, given what the resident enrolled and what is locked.

    Args:
        enrolled: The kinds the resident is enrolled in.
        locked: The kinds locked after too many failures.

    Returns:
        The :class:`FactorPlan`.
    """
    have = set(enrolled)
    blocked = set(locked)
    usable = [k for k in _ORDER if k in have and k not in blocked]
    return FactorPlan(
        offer=tuple(usable),
        still_face_with_pin=FACE in usable and PIN in usable,
        setup_needed=not have,
        locked=bool(have) and not usable,
    )


def after_accept(
    plan: FactorPlan, kind: VerificationKind, requires_also: VerificationKind | None, done: str
) -> str:
    """What follows an accepted attempt of ``kind``.

    Args:
        plan: The resident's :func:`required_factors`.
        kind: The kind just accepted.
        requires_also: The verifier's demand for a second factor (a still selfie
            needs the PIN), if any.
        done: The kind already passed in this step-up ("" if none).

    Returns:
        ``"passed"``; ``"pin"`` to ask for the PIN next; or ``"need_live"`` when a
        still selfie cannot count (no usable PIN): ask for the video note instead.
    """
    if requires_also is None or done == str(requires_also):
        return "passed"
    if requires_also is PIN and kind is FACE and plan.still_face_with_pin:
        return "pin"
    return "need_live"


__all__ = ["FactorPlan", "after_accept", "required_factors"]
