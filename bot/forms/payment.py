"""The payment form: utility, amount and method; a bound confirmation; step-up; payment.

Steps (``state.form_step``):

``utility``
    More than one utility has something due and the resident did not say which:
    buttons with each amount due.
``amount``
    The amount was malformed, zero, or more than is due: explained and asked
    again. (The default amount is the full amount due, so this step is skipped
    when the resident names no amount.)
``method``
    No method named and no saved method: buttons with the methods.
``confirm``
    The confirmation (amount, utility, bill periods, method) with Pay / Cancel
    buttons, bound to a token (``bot.confirmation``). A new amount or utility
    at this step invalidates it and shows a new one.
``verify_choice`` / ``verify``
    Step-up verification (``bot.verification_service``) when the amount, the
    daily total or the backend's risk flag requires it.
``pin_new`` / ``pin_repeat``
    Setting a PIN first, when step-up is needed and the resident has none.

Two failed answers to the same question make the form explain what it needs and
offer to cancel. Money decisions here are rules, never a model's guess.
"""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from actions.base import METHODS, UTILITIES, ActionContext, method_term, utility_term
from actions.errors import BackendUnavailable, BillingError
from actions.pay_bill import execute_payment
from bot import confirmation
from bot.channels.speaker import payment_rule as speaker_rule
from bot.confirmation import ConfirmationError, PaymentBinding
from bot.responses import ButtonSpec, Money, Reply, Term
from bot.turn import Turn
from bot.verifiers.pin import WeakPinError, check_new_pin, hash_pin, pin_matches
from verification import Challenge, Decision, Evidence, VerificationKind

if TYPE_CHECKING:
    from bot.policy import Policy

_CENT = Decimal("0.01")
_MAX_COMPLETED = 20


def parse_amount_text(text: str) -> Decimal | None:
    """An amount typed on its own ("50", "¥1,250.50", "三百块"), or ``None``."""
    try:
        from nlu.entities.amounts import parse_amount

        value = parse_amount(text)
    except ImportError:  # pragma: no cover - nlu is part of the product
        value = None
    if value is not None:
        return value
    cleaned = re.sub(r"[¥$,\s元块]|rmb|cny|yuan", "", text.strip().lower())
    try:
        value = Decimal(cleaned)
    except InvalidOperation:
        return None
    if not value.is_finite() or value <= 0 or value != value.quantize(_CENT):
        return None
    return value.quantize(_CENT)


def prompt_params(challenge: Challenge) -> dict[str, Any]:
    """A challenge's prompt values, with movement codes turned into localised words."""
    params: dict[str, Any] = dict(challenge.params)
    if "motion" in params:
        params["motion"] = tuple(Term("motion", m) for m in str(params["motion"]).split(",") if m)
    return params


class PaymentForm:
    """Runs the payment form's steps for the policy."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy

    # -- entry points -------------------------------------------------------------

    async def start(self, turn: Turn, entities: dict[str, Any], text: str = "") -> None:
        """Begin (or restart) a payment from a ``pay_bill`` message."""
        state = turn.state
        state.clear_form()
        state.interrupted = []
        state.active_form = "payment"
        state.slots.pop("resume_offered", None)
        utility = entities.get("utility")
        if utility in UTILITIES:
            state.slots["pay_utility"] = utility
        elif state.slots.get("context_utility") in UTILITIES:
            state.slots["pay_utility"] = state.slots["context_utility"]
        turn.actions.append("payment_form")
        if not self._take_amount(turn, entities, text):
            return
        method = entities.get("payment_method")
        if method in METHODS:
            state.slots["pay_method"] = method
        await self.advance(turn)

    async def update(self, turn: Turn, entities: dict[str, Any], text: str = "") -> None:
        """New values while the form is active (a new amount, utility or method)."""
        state = turn.state
        changed = False
        utility = entities.get("utility")
        if utility in UTILITIES and utility != state.slots.get("pay_utility"):
            state.slots["pay_utility"] = utility
            if "amount" not in entities:
                state.slots.pop("pay_amount", None)
            changed = True
        if "amount" in entities or state.form_step == "amount":
            before = state.slots.get("pay_amount")
            if not self._take_amount(turn, entities, text):
                return
            changed = changed or state.slots.get("pay_amount") != before
        method = entities.get("payment_method")
        if method in METHODS and method != state.slots.get("pay_method"):
            state.slots["pay_method"] = method
            changed = True
        if changed and state.pending_confirmation is not None:
            state.pending_confirmation = None
            state.verified_token = None
            turn.say("confirmation_changed")
        if not changed and state.form_step == "confirm":
            await self.reprompt(turn)
            return
        if not changed and state.form_step in ("utility", "method"):
            self._failure(turn)
            return
        await self.advance(turn)

    async def reprompt(self, turn: Turn) -> None:
        """Ask the current question again (after an interruption)."""
        turn.state.slots.pop("resume_offered", None)
        step = turn.state.form_step
        if step in ("pin_new", "pin_repeat"):
            turn.say("pin_new" if step == "pin_new" else "pin_repeat")
            return
        if step == "verify" and turn.state.verification:
            challenge = Challenge.from_dict(turn.state.verification)
            if challenge.is_expired(turn.now):
                await self._start_challenge(turn, challenge.kind)
            else:
                turn.add(Reply(challenge.prompt_key, prompt_params(challenge)))
            return
        turn.state.pending_confirmation = None
        await self.advance(turn)

    def cancel(self, turn: Turn) -> None:
        """Drop the payment; nothing is charged."""
        had = turn.state.active_form == "payment"
        turn.state.clear_form()
        turn.state.interrupted = []
        turn.state.slots.pop("resume_offered", None)
        turn.actions.append("cancel_payment")
        turn.say("payment_cancelled" if had else "nothing_to_cancel")

    # -- slots ----------------------------------------------------------------------

    def _take_amount(self, turn: Turn, entities: dict[str, Any], text: str) -> bool:
        """Read the amount from the entities (or the bare text at the amount step)."""
        state = turn.state
        raw = entities.get("amount")
        value: Decimal | None = None
        if raw is not None:
            try:
                value = Decimal(str(raw))
            except InvalidOperation:
                value = None
        elif state.form_step == "amount" and text:
            value = parse_amount_text(text)
            if value is None and re.search(
                r"\b(all|full|everything|whole)\b|全部|全额|都", text, re.I
            ):
                state.slots.pop("pay_amount", None)
                state.slots["pay_full"] = True
                return True
        elif re.search(r"\d", text or "") and not entities.get("period"):
            # A number that is not an acceptable amount ("-5", "1.234"): ask, don't guess.
            state.form_step = "amount"
            self._failure(turn, "amount_invalid")
            return False
        else:
            return True
        if value is None or not value.is_finite() or value <= 0 or value != value.quantize(_CENT):
            state.form_step = "amount"
            self._failure(turn, "amount_invalid")
            return False
        state.slots["pay_amount"] = str(value.quantize(_CENT))
        state.slots.pop("pay_full", None)
        return True

    def _failure(self, turn: Turn, key: str | None = None) -> None:
        """A failed answer: re-ask, or after too many explain and offer to cancel."""
        state = turn.state
        state.slot_failures += 1
        step = state.form_step or "utility"
        if state.slot_failures >= self.policy.settings.max_slot_failures:
            turn.add(
                Reply(
                    "form_failures",
                    {"question": Term("question", step)},
                    buttons=[ButtonSpec("button_cancel", self.policy.payload(turn, "cancel"))],
                )
            )
            return
        turn.say(key or f"reask_{step}")
        if step != "amount":
            turn.state.pending_confirmation = None

    # -- the form's progression -------------------------------------------------------

    async def advance(self, turn: Turn) -> None:
        """Ask for the next missing slot, or show the bound confirmation."""
        state = turn.state
        ctx = await self.policy.context(turn)
        balance = await ctx.client.get_balance(ctx.household_id)
        due_by_utility = {u: Decimal(a) for u, a in balance.by_utility.items() if Decimal(a) > 0}
        utility = state.slots.get("pay_utility")
        if utility is None:
            if not due_by_utility:
                state.clear_form()
                turn.say("nothing_due")
                return
            if len(due_by_utility) == 1:
                utility = next(iter(due_by_utility))
                state.slots["pay_utility"] = utility
            else:
                state.form_step = "utility"
                turn.add(
                    Reply(
                        "ask_utility",
                        buttons=[
                            *[
                                ButtonSpec(
                                    "button_utility_amount",
                                    self.policy.payload(turn, "choose_utility", utility=u),
                                    {"utility": utility_term(u), "amount": ctx.money(a)},
                                )
                                for u, a in sorted(due_by_utility.items())
                            ],
                            ButtonSpec("button_cancel", self.policy.payload(turn, "cancel")),
                        ],
                    )
                )
                return
        state.slots["context_utility"] = utility
        due = due_by_utility.get(utility, Decimal("0.00"))
        if due <= 0:
            state.clear_form()
            turn.say("nothing_due_utility", utility=utility_term(utility))
            return
        amount = Decimal(state.slots["pay_amount"]) if state.slots.get("pay_amount") else due
        if amount > due:
            state.form_step = "amount"
            state.slots.pop("pay_amount", None)
            turn.add(
                Reply(
                    "amount_over_due",
                    {
                        "amount": ctx.money(amount),
                        "due": ctx.money(due),
                        "utility": utility_term(utility),
                    },
                    buttons=[
                        ButtonSpec(
                            "button_pay_amount",
                            self.policy.payload(turn, "pay_amount", amount=str(due)),
                            {"amount": ctx.money(due)},
                        ),
                        ButtonSpec("button_cancel", self.policy.payload(turn, "cancel")),
                    ],
                )
            )
            return
        method = state.slots.get("pay_method") or ctx.resident.saved_method
        if method not in METHODS:
            state.form_step = "method"
            turn.add(
                Reply(
                    "ask_method",
                    buttons=[
                        *[
                            ButtonSpec(
                                "button_method",
                                self.policy.payload(turn, "choose_method", method=m),
                                {"method": method_term(m)},
                            )
                            for m in METHODS
                        ],
                        ButtonSpec("button_cancel", self.policy.payload(turn, "cancel")),
                    ],
                )
            )
            return
        await self._confirm(turn, ctx, utility, amount, method)

    async def _confirm(
        self, turn: Turn, ctx: ActionContext, utility: str, amount: Decimal, method: str
    ) -> None:
        state = turn.state
        preview = await ctx.client.preview_payment(
            ctx.household_id,
            amount=amount,
            utility=utility,
            method=method,
            channel=turn.message.channel,
        )
        periods = confirmation.periods_of(preview.allocations)
        binding = PaymentBinding(ctx.household_id, utility, amount, method, periods)
        token = confirmation.issue(binding, turn.now)
        # The backend's step-up policy decides (threshold, daily limit, risk).
        reasons = self.policy.verification.step_up_reasons(preview)
        if speaker_rule.applies(turn):  # the speaker's own rule: refuse, or always a PIN
            speaker_reasons = speaker_rule.confirm_reasons(
                turn, amount, ctx.money(amount), utility, method, reasons
            )
            if speaker_reasons is None:
                return
            reasons = speaker_reasons
        state.pending_confirmation = {
            "token": token,
            "household_id": ctx.household_id,
            "utility": utility,
            "amount": str(amount),
            "method": method,
            "periods": list(periods),
            "step_up": reasons,
            "channel": turn.message.channel,
        }
        state.verified_token = None
        state.form_step = "confirm"
        state.slot_failures = 0
        period_lines = [
            Reply("period_range", {"start": a.period_start, "end": a.period_end})
            for a in preview.allocations
        ]
        turn.add(
            Reply(
                "confirm_payment_stepup" if reasons else "confirm_payment",
                {
                    "amount": ctx.money(amount),
                    "utility": utility_term(utility),
                    "method": method_term(method),
                    "periods": period_lines,
                },
                buttons=[
                    ButtonSpec(
                        "button_pay",
                        self.policy.payload(turn, "confirm_payment", t=token),
                        {"amount": ctx.money(amount)},
                    ),
                    ButtonSpec("button_cancel", self.policy.payload(turn, "cancel")),
                ],
            )
        )

    # -- confirmation, verification, execution ----------------------------------------

    async def confirm(self, turn: Turn, token: str | None) -> None:
        """The resident pressed Pay (``token`` from the button, or ``None`` for "yes")."""
        state = turn.state
        pending = state.pending_confirmation
        if token and token in state.completed:
            turn.actions.append("replayed_confirmation")
            turn.say("already_paid")
            return
        if pending is None:
            turn.say("confirmation_stale")
            if state.active_form == "payment":
                await self.advance(turn)
            return
        token = token or pending["token"]
        if token != pending["token"]:
            turn.say("confirmation_changed")
            await self.reprompt(turn)
            return
        binding = PaymentBinding(
            pending["household_id"],
            pending["utility"],
            Decimal(pending["amount"]),
            pending["method"],
            tuple(pending["periods"]),
        )
        try:
            confirmation.check(
                token,
                binding,
                turn.now,
                timedelta(seconds=self.policy.settings.confirmation_ttl_s),
            )
        except ConfirmationError as exc:
            turn.actions.append(f"confirmation_refused:{exc.reason}")
            turn.say("confirmation_expired" if exc.reason == "expired" else "confirmation_changed")
            state.pending_confirmation = None
            await self.advance(turn)
            return
        if pending["step_up"] and state.verified_token != token:
            await self._begin_step_up(turn)
            return
        await self._execute(turn)

    async def _begin_step_up(self, turn: Turn) -> None:
        if speaker_rule.applies(turn):  # a speaker verifies by spoken PIN only
            await speaker_rule.begin_verification(self, turn)
            return
        state = turn.state
        service = self.policy.verification
        resident_id = str(turn.resident_id)
        kinds = await service.enrolled_kinds(resident_id)
        reasons = (state.pending_confirmation or {}).get("step_up", [])
        turn.add(
            Reply(
                "stepup_required",
                {
                    "reasons": [
                        Reply("stepup_reason", {"reason": Term("stepup", r)}) for r in reasons
                    ]
                },
            )
        )
        if not kinds:
            state.form_step = "pin_new"
            state.pin_setup = {"for": "payment"}
            turn.say("stepup_setup_pin")
            return
        available = [k for k in kinds if service.locked_until(resident_id, k) is None]
        if not available:
            until = max(service.locked_until(resident_id, k) for k in kinds)  # type: ignore[type-var]
            self._locked(turn, until)
            return
        if len(available) == 1:
            await self._start_challenge(turn, available[0])
            return
        state.form_step = "verify_choice"
        turn.add(
            Reply(
                "verify_choose",
                buttons=[
                    ButtonSpec(
                        "button_verify_with",
                        self.policy.payload(turn, "verify_with", kind=str(k)),
                        {"kind": Term("verify_kind", str(k))},
                    )
                    for k in available
                ]
                + [ButtonSpec("button_cancel", self.policy.payload(turn, "cancel"))],
            )
        )

    async def choose_kind(self, turn: Turn, kind: str) -> None:
        """The resident chose how to verify."""
        state = turn.state
        if state.form_step not in ("verify_choice", "verify") or state.pending_confirmation is None:
            turn.say("confirmation_stale")
            return
        try:
            chosen = VerificationKind(kind)
        except ValueError:
            turn.say("verify_unknown_kind")
            return
        service = self.policy.verification
        if chosen not in await service.enrolled_kinds(str(turn.resident_id)):
            turn.say("verify_unknown_kind")
            return
        until = service.locked_until(str(turn.resident_id), chosen)
        if until is not None:
            self._locked(turn, until)
            return
        await self._start_challenge(turn, chosen)

    async def _start_challenge(self, turn: Turn, kind: VerificationKind) -> None:
        challenge = await self.policy.verification.start(str(turn.resident_id), kind)
        turn.state.verification = challenge.to_dict()
        turn.state.form_step = "verify"
        turn.actions.append(f"verify_start:{kind}")
        turn.add(Reply(challenge.prompt_key, prompt_params(challenge)))

    def _locked(self, turn: Turn, until: Any) -> None:
        turn.state.clear_form()
        turn.flag("verification_lockout")
        turn.actions.append("verification_locked")
        turn.say("verification_locked", until=until)

    async def evidence(self, turn: Turn, evidence: Evidence) -> None:
        """An answer to the open challenge (a PIN, a selfie, a voice note)."""
        state = turn.state
        if state.verification is None or state.pending_confirmation is None:
            turn.say("confirmation_stale")
            state.clear_form()
            return
        challenge = Challenge.from_dict(state.verification)
        outcome = await self.policy.verification.verify(
            str(turn.resident_id),
            challenge,
            evidence,
            payment=state.pending_confirmation,
            channel=turn.message.channel,
        )
        turn.verification.append(outcome.to_log())
        result = outcome.result
        if result.decision is Decision.ACCEPT:
            if result.requires_also is not None and state.slots.get("factor_done") != str(
                result.requires_also
            ):
                state.slots["factor_done"] = str(result.kind)
                await self._start_challenge(turn, result.requires_also)
                return
            state.slots.pop("factor_done", None)
            # The backend's single-use proof for exactly this payment; the API needs it.
            state.pending_confirmation["step_up_proof"] = outcome.proof
            state.verified_token = state.pending_confirmation["token"]
            state.verification = None
            turn.say("verify_ok")
            await self.confirm(turn, state.verified_token)
            return
        if result.decision is Decision.RETRY:
            if result.reason == "expired":
                turn.say("verify_expired")
                await self._start_challenge(turn, challenge.kind)
            else:
                turn.say("verify_retry", reason=Term("verify_reason", result.reason))
            return
        if outcome.locked_until is not None or result.reason == "locked":
            self._locked(turn, outcome.locked_until or turn.now)
            return
        left = max(self.policy.settings.lockout_failures - outcome.failures, 0)
        turn.say("verify_failed", left=left)
        if challenge.kind is not VerificationKind.PIN:
            await self._start_challenge(turn, challenge.kind)

    async def pin_entry(self, turn: Turn, text: str) -> None:
        """A PIN typed while setting one up (``pin_new`` / ``pin_repeat`` steps)."""
        state = turn.state
        setup = state.pin_setup or {}
        if state.form_step == "pin_new":
            try:
                pin = check_new_pin(text)
            except WeakPinError as exc:
                turn.say("pin_weak" if exc.reason == "weak" else "pin_format")
                return
            state.pin_setup = {**setup, "hash": hash_pin(pin)}
            state.form_step = "pin_repeat"
            turn.say("pin_repeat")
            return
        pin = text.replace(" ", "").strip()
        if not setup.get("hash") or not pin_matches(setup["hash"], pin):
            state.pin_setup = {k: v for k, v in setup.items() if k != "hash"}
            state.form_step = "pin_new"
            turn.say("pin_mismatch")
            return
        self.policy.store.set_pin_hash(str(turn.resident_id), setup["hash"], turn.now)
        turn.actions.append("pin_set")
        turn.say("pin_set")
        state.pin_setup = None
        if setup.get("for") == "payment" and state.pending_confirmation is not None:
            await self._start_challenge(turn, VerificationKind.PIN)
        else:
            state.clear_form()

    async def _execute(self, turn: Turn) -> None:
        state = turn.state
        pending = state.pending_confirmation
        assert pending is not None
        token = pending["token"]
        ctx = await self.policy.context(turn)
        result = await execute_payment(ctx, pending, confirmation.idempotency_key(token))
        turn.apply("pay_bill", result)
        if result.payment_ids:
            state.completed[token] = result.payment_ids[0]
            while len(state.completed) > _MAX_COMPLETED:
                state.completed.pop(next(iter(state.completed)))
            state.clear_form()
            state.interrupted = []
        elif result.replies and result.replies[0].key == "pay_backend_down":
            # Nothing is known to have happened: the same Pay button retries with the same key.
            turn.state.verified_token = token if pending["step_up"] else None
            turn.add(
                Reply(
                    "retry_payment",
                    buttons=[
                        ButtonSpec(
                            "button_pay",
                            self.policy.payload(turn, "confirm_payment", t=token),
                            {"amount": ctx.money(Decimal(pending["amount"]))},
                        ),
                        ButtonSpec("button_cancel", self.policy.payload(turn, "cancel")),
                    ],
                )
            )
        else:
            state.clear_form()

    # -- questions from buttons ----------------------------------------------------------

    async def choose_utility(self, turn: Turn, utility: str) -> None:
        """A utility button was pressed."""
        if utility not in UTILITIES:
            turn.say("reask_utility")
            return
        if turn.state.active_form != "payment":
            await self.start(turn, {"utility": utility})
            return
        await self.update(turn, {"utility": utility})

    async def choose_method(self, turn: Turn, method: str) -> None:
        """A method button was pressed."""
        if turn.state.active_form != "payment" or method not in METHODS:
            turn.say("confirmation_stale")
            return
        turn.state.slots["pay_method"] = method
        await self.advance(turn)

    async def choose_amount(self, turn: Turn, amount: str) -> None:
        """An amount button was pressed ("Pay ¥120.00 instead")."""
        if turn.state.active_form != "payment":
            turn.say("confirmation_stale")
            return
        await self.update(turn, {"amount": amount})


__all__ = ["BackendUnavailable", "BillingError", "Money", "PaymentForm", "parse_amount_text"]
