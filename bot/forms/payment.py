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

from actions import pay_bill
from actions.base import METHODS, UTILITIES, ActionContext, method_term, utility_term
from actions.errors import BackendUnavailable, BillingError
from actions.manage_autopay import AUTOPAY_DEFAULT_LIMIT, enable_autopay
from actions.pay_bill import execute_payment
from bot import confirmation
from bot.channels.speaker import payment_rule as speaker_rule
from bot.confirmation import ConfirmationError, PaymentBinding
from bot.responses import ButtonSpec, Money, Reply, Term
from bot.stepup_factors import after_accept, required_factors
from bot.turn import Turn
from bot.verifiers.pin import WeakPinError, check_new_pin, hash_pin, pin_matches
from nlu.entities import unreadable_amount
from verification import Challenge, Decision, Evidence, VerificationKind

if TYPE_CHECKING:
    from bot.forms.host import FormHost

_CENT = Decimal("0.01")
_MAX_COMPLETED = 20
#: "pay everything", "pay the total", "pay all my bills", "全部交了", "一共欠的都交".
_PAY_ALL_RE = re.compile(
    r"\b(?:ev(?:e|a)?ry\s*th?in[g']?|every\s+bill|all\s+(?:of\s+)?(?:my|the|our)?\s*(?:bills?|debts?|"
    r"of\s+it|i\s+owe|that'?s\s+(?:due|owed|outstanding))|all\s+(?:at\s+once|together)|"
    r"(?:the|my)\s+(?:whole|total|entire|full)\s+(?:amount|balance|debt|bill|lot)?|"
    r"(?:the\s+)?total|whole\s+(?:thing|lot|balance|amount)|in\s+full\s+for\s+all|"
    r"all\s+(?:outstanding|overdue|due))\b|全部|所有|一共|总共|全都|都交|都缴|都付|一起交|一起缴|"
    r"一次性|总额|欠的都",
    re.I,
)
#: "pay it", "pay that one", "交这个": the utility being talked about.
_ANAPHOR_RE = re.compile(
    r"\b(?:it|that(?:\s+one)?|this(?:\s+one)?|the\s+same)\b|这个|那个|它|这笔|那笔", re.I
)
#: The utility slot value that means the whole debt (``utility: null`` to the API).
ALL = "all"


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

    def __init__(self, policy: FormHost) -> None:
        self.policy = policy

    # -- entry points -------------------------------------------------------------

    async def start(self, turn: Turn, entities: dict[str, Any], text: str = "") -> None:
        """Begin (or restart) a payment from a ``pay_bill`` message."""
        state = turn.state
        state.clear_form()
        state.interrupted = []
        state.slots.pop("locked_out", None)
        state.active_form = "payment"
        state.slots.pop("resume_offered", None)
        utility = entities.get("utility")
        if utility in UTILITIES:
            state.slots["pay_utility"] = utility
        elif _PAY_ALL_RE.search(text or ""):
            state.slots["pay_utility"] = ALL
        elif state.slots.get("context_utility") in UTILITIES and _ANAPHOR_RE.search(text or ""):
            # Only "pay it" refers to the bill being talked about; "pay my bills" doesn't.
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
        request = state.slots.get("autopay")
        if isinstance(request, dict):  # a new limit, utility or method for the autopay
            merged = {
                "utility": entities.get("utility") or request.get("utility"),
                "payment_method": entities.get("payment_method") or request.get("method"),
                "amount": entities.get("amount") or request.get("limit"),
            }
            await self.start_autopay(turn, merged, text if "amount" not in entities else "")
            return
        changed = False
        utility = entities.get("utility")
        if utility in UTILITIES and utility != state.slots.get("pay_utility"):
            state.slots["pay_utility"] = utility
            if "amount" not in entities:
                state.slots.pop("pay_amount", None)
            changed = True
        elif (
            utility is None
            and state.form_step != "amount"
            and state.slots.get("pay_utility") != ALL
            and _PAY_ALL_RE.search(text or "")
        ):
            state.slots["pay_utility"] = ALL
            if "amount" not in entities:
                state.slots.pop("pay_amount", None)
            changed = True
        if (
            "amount" in entities
            or state.form_step == "amount"
            or unreadable_amount(text or "", turn.today)
        ):
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
        request = turn.state.slots.get("autopay")
        if isinstance(request, dict) and step == "confirm":
            entities = {
                "utility": request.get("utility"),
                "payment_method": request.get("method"),
                "amount": request.get("limit"),
            }
            await self.start_autopay(turn, entities)
            return
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
        """Drop the payment; nothing is charged, and nothing of it is remembered."""
        had = turn.state.active_form == "payment"
        self.finish(turn)
        turn.actions.append("cancel_payment")
        turn.say("payment_cancelled" if had else "nothing_to_cancel")

    def finish(self, turn: Turn) -> None:
        """Forget a cancelled or finished payment: its slots, and the bill it was about.

        Only a payment still open may be resumed; the next "pay my bills" starts
        from scratch instead of offering the bill of a payment that is over.
        """
        state = turn.state
        utility = state.slots.get("pay_utility")
        if utility and state.slots.get("context_utility") == utility:
            state.slots.pop("context_utility", None)
        state.slots.pop("autopay", None)
        state.clear_form()
        state.interrupted = []
        state.slots.pop("resume_offered", None)

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
        elif unreadable_amount(text or "", turn.today):
            # An amount that can't be read ("-5", "1.234", "NaN", "¥abc"): ask, don't guess.
            # Unit numbers, dates, PINs and link codes are not amounts at all.
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
        balance = await pay_bill.amounts_due(ctx)
        due_by_utility = {u: Decimal(a) for u, a in balance.by_utility.items() if Decimal(a) > 0}
        total_due = sum(due_by_utility.values(), Decimal("0.00"))
        utility = state.slots.get("pay_utility")
        if utility is None:
            if not due_by_utility:
                self.finish(turn)
                turn.say("nothing_due")
                return
            if len(due_by_utility) == 1 and not state.slots.get("pay_amount"):
                utility = next(iter(due_by_utility))
                state.slots["pay_utility"] = utility
            else:
                self._ask_utility(turn, ctx, due_by_utility, total_due)
                return
        if utility != ALL:
            state.slots["context_utility"] = utility
        due = total_due if utility == ALL else due_by_utility.get(utility, Decimal("0.00"))
        if due <= 0:
            self.finish(turn)
            if utility == ALL:
                turn.say("nothing_due")
            else:
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
        await self._confirm(turn, ctx, None if utility == ALL else utility, amount, method)

    def _ask_utility(
        self,
        turn: Turn,
        ctx: ActionContext,
        due_by_utility: dict[str, Decimal],
        total_due: Decimal,
    ) -> None:
        """Which bill: everything at once (the whole debt, oldest first), or one of them."""
        state = turn.state
        state.form_step = "utility"
        amount = state.slots.get("pay_amount")
        everything = ButtonSpec(
            "button_pay_everything",
            self.policy.payload(turn, "choose_utility", utility=ALL),
            {"amount": ctx.money(Decimal(amount) if amount else total_due)},
        )
        bills = [
            ButtonSpec(
                "button_utility_amount",
                self.policy.payload(turn, "choose_utility", utility=u),
                {"utility": utility_term(u), "amount": ctx.money(a)},
            )
            for u, a in sorted(due_by_utility.items())
            if not amount or Decimal(amount) <= a
        ]
        turn.add(
            Reply(
                "ask_utility_amount" if amount else "ask_utility_all",
                {"amount": ctx.money(Decimal(amount)) if amount else ctx.money(total_due)},
                buttons=[
                    everything,
                    *bills,
                    ButtonSpec("button_cancel", self.policy.payload(turn, "cancel")),
                ],
            )
        )

    async def _confirm(
        self, turn: Turn, ctx: ActionContext, utility: str | None, amount: Decimal, method: str
    ) -> None:
        state = turn.state
        preview = await pay_bill.preview(
            ctx, amount=amount, utility=utility, method=method, channel=turn.message.channel
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
        if utility is None:
            # One payment of the whole debt (or part of it), oldest bills first:
            # the confirmation lists every bill it covers.
            period_lines = [
                Reply(
                    "period_range_utility",
                    {
                        "utility": utility_term(a.utility),
                        "start": a.period_start,
                        "end": a.period_end,
                        "amount": ctx.money(Decimal(a.amount)),
                    },
                )
                for a in preview.allocations
            ]
        else:
            period_lines = [
                Reply("period_range", {"start": a.period_start, "end": a.period_end})
                for a in preview.allocations
            ]
        key = "confirm_payment" if utility is not None else "confirm_payment_all"
        turn.add(
            Reply(
                f"{key}_stepup" if reasons else key,
                {
                    "amount": ctx.money(amount),
                    "utility": utility_term(utility or ALL),
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

    # -- autopay: a money decision, confirmed like a payment ------------------------------

    async def start_autopay(self, turn: Turn, entities: dict[str, Any], text: str = "") -> None:
        """Turning autopay on: say exactly what will happen, bound to a confirmation.

        "Up to ¥100.00 a month for gas, by Alipay, from the next bill": the limit
        (the one named, else the current or default one) is stored only when the
        resident confirms, and a limit at or above the step-up amount needs the
        same step-up as a payment of that size (the backend's step-up policy).
        """
        state = turn.state
        state.clear_form()
        state.interrupted = []
        state.slots.pop("resume_offered", None)
        ctx = await self.policy.context(turn)
        utility = str(entities.get("utility"))
        method = entities.get("payment_method") or ctx.resident.saved_method
        if utility not in UTILITIES:
            turn.say("reask_utility")
            return
        if method not in METHODS:
            turn.say("autopay_needs_method", utility=utility_term(utility))
            return
        raw = entities.get("amount")
        limit: Decimal | None = None
        if raw is not None:
            try:
                limit = Decimal(str(raw)).quantize(_CENT)
            except InvalidOperation:
                limit = None
            if limit is None or not limit.is_finite() or limit <= 0:
                turn.say("amount_invalid")
                return
        elif unreadable_amount(text or "", turn.today):
            turn.say("amount_invalid")
            return
        if limit is None:
            current = (await ctx.client.get_autopay(ctx.household_id)).get(utility)
            limit = Decimal(getattr(current, "max_amount", None) or AUTOPAY_DEFAULT_LIMIT)
        preview = await pay_bill.preview(
            ctx, amount=limit, utility=utility, method=method, channel=turn.message.channel
        )
        backend_reasons = self.policy.verification.step_up_reasons(preview)
        reasons = ["threshold"] if "threshold" in backend_reasons else []
        binding = PaymentBinding(ctx.household_id, utility, limit, method, ("autopay",))
        token = confirmation.issue(binding, turn.now)
        state.active_form = "payment"
        state.form_step = "confirm"
        state.slots["autopay"] = {"utility": utility, "method": method, "limit": str(limit)}
        state.pending_confirmation = {
            "token": token,
            "kind": "autopay",
            "household_id": ctx.household_id,
            "utility": utility,
            "amount": str(limit),
            "method": method,
            "periods": ["autopay"],
            "step_up": reasons,
        }
        turn.actions.append("autopay_confirm")
        turn.add(
            Reply(
                "confirm_autopay_stepup" if reasons else "confirm_autopay",
                {
                    "utility": utility_term(utility),
                    "limit": ctx.money(limit),
                    "method": method_term(method),
                },
                buttons=[
                    ButtonSpec(
                        "button_autopay_confirm",
                        self.policy.payload(turn, "confirm_payment", t=token),
                        {"utility": utility_term(utility)},
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
        locked = [k for k in kinds if service.locked_until(resident_id, k) is not None]
        plan = required_factors(kinds, locked)
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
        if plan.setup_needed:
            # Never set a PIN inside a payment: whoever holds the chat would get both
            # factors at once. The payment waits until a PIN is set the safe way.
            self.wait_for_factor(turn)
            return
        if plan.locked:
            until = max(service.locked_until(resident_id, k) for k in kinds)  # type: ignore[type-var]
            self._locked(turn, until)
            return
        available = list(plan.offer)
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

    def wait_for_factor(self, turn: Turn) -> None:
        """No PIN and no biometrics: say how to set a PIN up; the payment waits.

        The payment's values are kept (``waiting_payment``) and offered again once
        a PIN is set; nothing is charged, no confirmation stays open.
        """
        state = turn.state
        pending = state.pending_confirmation or {}
        utility = state.slots.get("pay_utility")
        state.slots["waiting_payment"] = {
            "utility": pending.get("utility") if pending.get("kind") else utility,
            "amount": pending.get("amount") or state.slots.get("pay_amount"),
            "method": pending.get("method") or state.slots.get("pay_method"),
            "kind": pending.get("kind") or "payment",
        }
        state.slots.pop("autopay", None)
        state.active_form = None
        state.form_step = None
        state.pending_confirmation = None
        state.verification = None
        state.verified_token = None
        turn.actions.append("stepup_needs_setup")
        turn.say("stepup_no_factor")

    async def resume_waiting(self, turn: Turn) -> bool:
        """Offer the payment that waited for a PIN (after the PIN is set); whether there was one."""
        waiting = turn.state.slots.pop("waiting_payment", None)
        if not isinstance(waiting, dict):
            return False
        entities: dict[str, Any] = {}
        if waiting.get("utility") in UTILITIES:
            entities["utility"] = waiting["utility"]
        if waiting.get("amount"):
            entities["amount"] = waiting["amount"]
        if waiting.get("method") in METHODS:
            entities["payment_method"] = waiting["method"]
        if waiting.get("kind") == "autopay":
            await self.start_autopay(turn, entities)
            return True
        text = "everything" if waiting.get("utility") == ALL else ""
        await self.start(turn, entities, text)
        return True

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
        self.finish(turn)
        turn.state.slots["locked_out"] = True
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
            service = self.policy.verification
            resident_id = str(turn.resident_id)
            kinds = await service.enrolled_kinds(resident_id)
            plan = required_factors(
                kinds, [k for k in kinds if service.locked_until(resident_id, k) is not None]
            )
            following = after_accept(
                plan, result.kind, result.requires_also, str(state.slots.get("factor_done") or "")
            )
            if following == "pin":
                state.slots["factor_done"] = str(result.kind)
                await self._start_challenge(turn, VerificationKind.PIN)
                return
            if following == "need_live":
                # A still selfie never counts alone; with no PIN to add, ask for the video.
                turn.say("verify_need_live")
                await self._start_challenge(turn, result.kind)
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
        waiting = state.slots.get("waiting_payment")
        state.clear_form()
        if waiting:
            state.slots["waiting_payment"] = waiting

    async def _execute(self, turn: Turn) -> None:
        state = turn.state
        pending = state.pending_confirmation
        assert pending is not None
        token = pending["token"]
        ctx = await self.policy.context(turn)
        if pending.get("kind") == "autopay":
            outcome = await enable_autopay(ctx, pending)
            turn.apply("manage_autopay", outcome)
            if outcome.slots.get("autopay_set"):
                turn.state.slots.pop("autopay_set", None)
                state.completed[token] = "autopay"
            self.finish(turn)
            return
        result = await execute_payment(ctx, pending, confirmation.idempotency_key(token))
        turn.apply("pay_bill", result)
        if result.payment_ids:
            state.completed[token] = result.payment_ids[0]
            while len(state.completed) > _MAX_COMPLETED:
                state.completed.pop(next(iter(state.completed)))
            self.finish(turn)
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
            self.finish(turn)

    # -- questions from buttons ----------------------------------------------------------

    async def choose_utility(self, turn: Turn, utility: str) -> None:
        """A utility button was pressed (``all``: the whole debt as one payment)."""
        if utility == ALL and turn.state.active_form == "payment":
            turn.state.slots["pay_utility"] = ALL
            await self.advance(turn)
            return
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
