"""The one rule for step-up factors, for every combination of enrolled and locked kinds."""

from __future__ import annotations

from itertools import chain, combinations

import pytest

from bot.stepup_factors import FACE, PIN, VOICE, after_accept, required_factors
from verification import VerificationKind

KINDS = (PIN, FACE, VOICE)


def _subsets(items: tuple[VerificationKind, ...]) -> list[frozenset[VerificationKind]]:
    return [frozenset(c) for c in chain.from_iterable(combinations(items, n) for n in range(4))]


CASES = [(e, lk) for e in _subsets(KINDS) for lk in _subsets(KINDS) if lk <= e]


def test_every_combination_is_covered() -> None:
    # 8 enrolled sets; each with every subset of itself locked: sum(2^|e|) = 27.
    assert len(CASES) == 27


@pytest.mark.parametrize(("enrolled", "locked"), CASES)
def test_required_factors(
    enrolled: frozenset[VerificationKind], locked: frozenset[VerificationKind]
) -> None:
    plan = required_factors(enrolled, locked)
    usable = enrolled - locked
    # Only what is enrolled and not locked is offered, PIN first, then face, then voice.
    assert set(plan.offer) == usable
    assert list(plan.offer) == [k for k in KINDS if k in usable]
    # Nothing enrolled: set up a PIN first (the payment waits), never a challenge.
    assert plan.setup_needed == (not enrolled)
    assert plan.locked == (bool(enrolled) and not usable)
    assert plan.can_verify == bool(usable)
    # A still selfie counts only together with a PIN the resident has and can use.
    assert plan.still_face_with_pin == (FACE in usable and PIN in usable)
    if FACE in usable:
        following = after_accept(plan, FACE, PIN, "")
        # Face enrolled without a usable PIN: never ask for a PIN that doesn't exist.
        assert following == ("pin" if PIN in usable else "need_live")
        assert after_accept(plan, FACE, None, "") == "passed"  # a live video note
    if PIN in usable:
        assert after_accept(plan, PIN, None, "face") == "passed"
    if VOICE in usable:
        assert after_accept(plan, VOICE, None, "") == "passed"


def test_face_only_still_selfie_asks_for_video_not_pin() -> None:
    plan = required_factors({FACE})
    assert plan.offer == (FACE,)
    assert not plan.still_face_with_pin
    assert after_accept(plan, FACE, PIN, "") == "need_live"


def test_still_selfie_then_pin_passes() -> None:
    plan = required_factors({PIN, FACE})
    assert after_accept(plan, FACE, PIN, "") == "pin"
    # the PIN after the still: the second factor the verifier asked for is done
    assert after_accept(plan, FACE, PIN, "pin") == "passed"
