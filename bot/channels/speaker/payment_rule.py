"""The speaker's payment rule, applied by the payment form (``bot/forms/payment.py``).

A speaker is shared by everyone in the flat and by guests, so on the ``speaker``
channel a payment

* at or above the step-up amount (or past the daily limit, or flagged by risk)
  is **refused**: the speaker says "confirm it in Telegram" and the speaker
  channel pushes a step-up request to the resident's linked chat;
* below it needs the spoken confirmation ("Pay 51.25 yuan for water by wallet.
  Say yes to pay, or no.") **and** the resident's step-up PIN said as digits, even
  though the chat would not ask for a PIN at that amount. Face and voice
  verification are not offered on a speaker; a resident without a PIN is told to
  set one up in the chat.

The form calls :func:`confirm_reasons` when it is about to ask for confirmation
and :func:`begin_verification` instead of its own step-up start. Both do nothing
unless :func:`applies`.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

#: Channels the rule applies to.
SPEAKER_CHANNELS = frozenset({"speaker"})
#: The step-up reason recorded for a speaker payment below the step-up amount.
SPEAKER_REASON = "speaker"


def applies(turn: Any) -> bool:
    """Whether the turn came from a speaker."""
    return getattr(turn.message, "channel", None) in SPEAKER_CHANNELS


def confirm_reasons(
    turn: Any, amount: Decimal, money: Any, utility: str | None, method: str, reasons: list[str]
) -> list[str] | None:
    """The step-up reasons for a speaker payment, or ``None`` when it is refused.

    Args:
        turn: The turn (its state and replies are updated when refused).
        amount: The amount to pay.
        money: The amount as the replies show it (a ``Money``).
        utility: The utility being paid (``None``: the oldest bills first).
        method: The payment method.
        reasons: Why the chat would ask for step-up (empty: it would not).
    """
    if reasons:
        turn.state.clear_form()
        turn.state.slots["speaker_refused_payment"] = {
            "utility": utility,
            "amount": str(amount),
            "method": method,
        }
        turn.actions.append("speaker_payment_refused")
        turn.say("speaker_pay_in_chat", amount=money)
        return None
    return [SPEAKER_REASON]


async def begin_verification(form: Any, turn: Any) -> None:
    """Ask for the PIN (the only verification a speaker offers)."""
    from verification import VerificationKind

    service = form.policy.verification
    resident_id = str(turn.resident_id)
    kinds = await service.enrolled_kinds(resident_id)
    if VerificationKind.PIN not in kinds:
        turn.state.clear_form()
        turn.actions.append("speaker_no_pin")
        turn.say("speaker_pin_needed")
        return
    until = service.locked_until(resident_id, VerificationKind.PIN)
    if until is not None:
        form._locked(turn, until)
        return
    await form._start_challenge(turn, VerificationKind.PIN)
