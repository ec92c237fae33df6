"""The policy: which action answers a message, given the conversation so far.

Rules, in order (money decisions are always rules, never a model's guess):

1. A pressed button (a payload, or a number naming one of the last buttons) is
   handled as such; a button from an earlier session is refused as stale.
2. Empty and over-long messages get a plain reply without being parsed.
3. While a PIN is being set or asked for, digits are the secret answer (masked
   in the log) and never reach the NLU.
4. ``cancel`` works anywhere.
5. With a payment in progress, payment values (utility, amount, method, yes/no)
   go to the form; another request is an interruption: it is answered and the
   resident is asked whether to continue the payment.
6. A follow-up naming only a utility ("and water?") repeats the last request
   for that utility; "pay it" pays the utility being talked about.
7. Low confidence is a misunderstanding (two in a row offer a human); two
   close top intents are offered as buttons.
8. Otherwise the intent's action runs.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

from actions import payloads
from actions.base import UTILITIES, ActionContext, ActionResult
from actions.check_balance import check_balance
from actions.due_date import due_date
from actions.errors import BackendUnavailable, BillingError
from actions.explain_bill import explain_bill
from actions.human_handoff import human_handoff
from actions.manage_autopay import manage_autopay, wanted_state
from actions.pay_bill import payment_status_update
from actions.payment_history import payment_history
from actions.report_problem import report_problem
from actions.request_receipt import request_receipt
from actions.small_talk import goodbye, greet, help_, out_of_scope, thank
from actions.submit_meter_reading import submit_meter_reading
from actions.usage import usage
from bot.channels.speaker import chat_commands as speaker_chat
from bot.channels.speaker import payment_rule as speaker_rule
from bot.forms.enrollment import EnrollmentForm
from bot.forms.payment import _PAY_ALL_RE, PaymentForm
from bot.responses import ButtonSpec, Reply, Term
from bot.settings import DialogueSettings
from bot.store import ConversationStore
from bot.turn import Turn
from bot.verification_service import VerificationService
from bot.verifiers.pin import PinVerifier
from nlu.entities import unreadable_amount
from verification import Evidence, VerificationKind

#: Intents answered by one action each.
ACTIONS: dict[str, Callable[[ActionContext], Awaitable[ActionResult]]] = {
    "check_balance": check_balance,
    "due_date": due_date,
    "explain_bill": explain_bill,
    "usage": usage,
    "payment_history": payment_history,
    "request_receipt": request_receipt,
    "submit_meter_reading": submit_meter_reading,
    "manage_autopay": manage_autopay,
    "report_problem": report_problem,
    "human_handoff": human_handoff,
    "greet": greet,
    "thank": thank,
    "goodbye": goodbye,
    "help": help_,
    "out_of_scope": out_of_scope,
}

#: Requests about one utility, which "and water?" can repeat for another.
UTILITY_INTENTS = frozenset({"check_balance", "due_date", "explain_bill", "usage"})
#: Requests that interrupt a payment in progress (answered, then "shall we continue?").
DOMAIN_INTENTS = frozenset(ACTIONS) - {"greet", "thank", "goodbye", "help", "out_of_scope"} | {
    "pay_bill",
    "enroll_biometrics",
    "link_account",
}
#: Steps where a bare number is an answer, not a button press.
_NUMBER_STEPS = frozenset({"verify", "pin_new", "pin_repeat", "enroll_pin", "pin_code"})
_PIN_WORDS_RE = re.compile(r"\bpin\b|pin\s*code|passcode|密码|口令", re.I)
_BIOMETRIC_WORDS_RE = re.compile(
    r"\b(?:face|selfie|voice|biometric\w*)\b|人脸|刷脸|声纹|生物", re.I
)
#: A unit (flat) number: "B-0203", "b0203", "unit 1203", "1203室", "B座0203".
_UNIT_MENTION_RE = re.compile(
    r"(?<![A-Za-z0-9])[A-Za-z][-‐–]?\d{3,4}(?![\d.])|(?:\bunit|\bapt\.?|\bapartment|\bflat|"
    r"\broom)\s*#?\s*[A-Za-z]?[-‐–]?\d{3,4}(?!\d)|[A-Za-z]?座?\d{3,4}(?:室|号房)",
    re.I,
)


def _unit_key(text: str) -> str:
    """A unit number reduced for comparison: "B-0203", "unit b0203" and "B0203" agree."""
    match = re.search(r"([A-Za-z])?\s*座?[-‐–]?\s*(\d{3,4})", text.split()[-1] if text else "")
    if match is None:
        match = re.search(r"([A-Za-z])?\s*座?[-‐–]?\s*(\d{3,4})", text)
    if match is None:
        return ""
    letter = (match.group(1) or "").upper()
    return f"{letter}{int(match.group(2)):04d}"


_BILL_WORDS_RE = re.compile(
    r"\b(?:owe[sd]?|bills?|balance|pay|due|arrears)\b|欠|账单|费|缴|交|多少钱", re.I
)
#: Failed one-time codes before the PIN set-up is abandoned.
_MAX_CODE_FAILURES = 3
_CARRY_OVER_RE = re.compile(r"^\s*(and|what about|how about|also)\b|^\s*(那|还有|那么)", re.I)


def parse_payload(payload: str) -> tuple[str, dict[str, Any]] | None:
    """Split a button payload ``/name{json}`` into its name and data."""
    return payloads.decode(payload)


def first_entities(entities: list[dict[str, Any]]) -> dict[str, Any]:
    """The first value of each entity name."""
    out: dict[str, Any] = {}
    for entity in entities:
        out.setdefault(str(entity.get("entity")), entity.get("value"))
    return out


class Policy:
    """Decides and runs what each turn does.

    Args:
        settings: The dialogue settings.
        store: The dialogue store (PINs, links).
        verification: The step-up verification service.
        context: Builds the action context (resident-scoped client) for a turn.
        parse: The NLU, async: ``await parse(text, reference_date=...)`` -> Rasa parse dict.
    """

    def __init__(
        self,
        settings: DialogueSettings,
        store: ConversationStore,
        verification: VerificationService,
        context: Callable[[Turn], Awaitable[ActionContext]],
        parse: Callable[..., Awaitable[dict[str, Any]]],
    ) -> None:
        self.settings = settings
        self.store = store
        self.verification = verification
        self.context = context
        self.parse = parse
        self.form: PaymentForm = PaymentForm(self)
        self.enrollment: EnrollmentForm = EnrollmentForm(self)
        #: Claims the outbox notice of a settled pending payment for this turn
        #: (``await claim_notice(turn, ctx, payment_id) -> bool``); set by the engine.
        self.claim_notice: Callable[[Turn, ActionContext, str], Awaitable[bool]] | None = None
        #: The service billing client (set by the engine; else the context's owner's).
        self.service_client: Any = None

    def payload(self, turn: Turn, name: str, **data: Any) -> str:
        """A button payload stamped with the session."""
        return payloads.encode(name, turn.state.session_id[:8], **data)

    # -- the turn -------------------------------------------------------------------

    async def respond(self, turn: Turn) -> None:
        """Handle the turn's message."""
        await self._pending_payment_update(turn)
        message = turn.message
        text = (message.text or "").strip()
        state = turn.state
        payload = message.button_payload
        if (
            payload is None
            and re.fullmatch(r"\d{1,2}", text)
            and state.form_step not in _NUMBER_STEPS
        ):
            number = int(text)
            if 1 <= number <= len(state.buttons):
                payload = state.buttons[number - 1]["payload"]
            elif state.buttons or number <= 9:
                turn.actions.append("no_such_button")
                turn.add(
                    Reply(
                        "no_such_button" if state.buttons else "no_buttons",
                        {"number": number, "count": len(state.buttons)},
                        buttons=[
                            ButtonSpec("button_raw", b["payload"], {"title": b["title"]})
                            for b in state.buttons
                        ],
                    )
                )
                return
        if payload is not None:
            await self.on_payload(turn, payload)
            return
        if message.attachments and (
            state.active_form == "enrollment"
            or (
                state.active_form == "pin_setup"
                and (state.pin_setup or {}).get("for") == "biometrics"
            )
        ):
            await self.enrollment.attachments(turn)
            return
        if message.attachments and state.form_step == "verify" and state.verification:
            attachment = message.attachments[0]
            media = (
                "image"
                if attachment.kind == "image"
                else "video"
                if attachment.kind == "video"
                else "audio"
            )
            await self.form.evidence(turn, Evidence(media, attachment.data, attachment.mime_type))  # type: ignore[arg-type]
            return
        if not text and message.attachments:
            # A photo or recording outside a verification or enrollment step: say what
            # photos and voice notes are for (audio was already transcribed by the
            # engine if it could be); nothing is kept.
            turn.keep_buttons = True
            turn.actions.append("media_outside_verification")
            turn.say("media_outside_verification")
            return
        if not text:
            turn.keep_buttons = True
            turn.say("empty_message")
            return
        if len(text) > self.settings.max_message_chars:
            turn.keep_buttons = True
            turn.actions.append("refused_too_long")
            turn.say("too_long", limit=self.settings.max_message_chars)
            return
        if state.form_step == "pin_code" and re.fullmatch(r"[\d\s-]{1,16}", text):
            turn.secret = True
            await self.pin_code(turn, text)
            return
        if state.form_step in ("pin_new", "pin_repeat") and re.fullmatch(r"[\d\s]{1,12}", text):
            turn.secret = True
            for_enrollment = (state.pin_setup or {}).get("for") == "biometrics"
            await self.form.pin_entry(turn, text)
            if for_enrollment and "pin_set" in turn.actions:
                await self.enrollment.after_pin_setup(turn)
            elif "pin_set" in turn.actions:
                await self.form.resume_waiting(turn)
            return
        if (
            state.slots.get("locked_out")
            and state.form_step not in _NUMBER_STEPS
            and re.fullmatch(r"[\d\s-]{4,16}", text)
            and await self.locked_digits(turn)
        ):
            # Digits right after a verification lockout are a PIN guess, not a link
            # code or an amount: nothing is done with them.
            return
        if state.form_step == "enroll_pin" and re.fullmatch(r"[\d\s]{1,12}", text):
            turn.secret = True
            await self.enrollment.pin(turn, text)
            return
        if state.active_form == "enrollment" and await self.enrollment.text(turn, text):
            return
        if (
            state.form_step == "verify"
            and state.verification
            and state.verification.get("kind") == str(VerificationKind.PIN)
            and re.fullmatch(r"[\d\s]{1,12}", text)
        ):
            turn.secret = True
            await self.form.evidence(turn, Evidence("text", text.encode()))
            return
        await self.on_text(turn, text)

    async def _pending_payment_update(self, turn: Turn) -> None:
        payment_id = turn.state.slots.get("pending_payment_id")
        if not payment_id:
            return
        ctx = await self.context(turn)
        result = await payment_status_update(ctx, str(payment_id))
        if result is None:
            return
        if self.claim_notice is not None and not await self.claim_notice(
            turn, ctx, str(payment_id)
        ):
            # Its notice was delivered (or is being delivered) by a poller: say nothing.
            turn.state.slots.pop("pending_payment_id", None)
            turn.actions.append("payment_status_delivered_as_notice")
            return
        turn.apply("payment_status_update", result)

    async def on_text(self, turn: Turn, text: str) -> None:
        """A text message: parse it and route it."""
        parse = await self.parse(text, reference_date=turn.today)
        turn.read(text, parse)
        intent = str((parse.get("intent") or {}).get("name") or "nlu_fallback")
        confidence = float((parse.get("intent") or {}).get("confidence") or 0.0)
        entities = first_entities(parse.get("entities") or [])
        turn.intent, turn.confidence, turn.entities = intent, confidence, entities
        if await speaker_chat.remove_speaker(self, turn, text):  # "remove the kitchen speaker"
            return
        state = turn.state
        threshold = self.settings.fallback_threshold
        understood = confidence >= threshold and intent not in ("nlu_fallback",)

        if await self._answers_open_question(turn, intent, understood, entities, text):
            return

        # "and water?" -> the last utility request, for water.
        last = state.slots.get("last_intent")
        if (
            entities.get("utility") in UTILITIES
            and last in UTILITY_INTENTS
            and state.active_form is None
            and (not understood or intent not in DOMAIN_INTENTS or _CARRY_OVER_RE.search(text))
            and intent != "pay_bill"
        ):
            turn.actions.append("carry_over")
            intent, understood = str(last), True
            turn.intent = intent

        if intent == "cancel" and understood:
            await self.cancel(turn)
            return

        if state.active_form == "payment":
            if await self._in_payment(turn, intent, understood, entities, text):
                return
        elif state.active_form == "enrollment" and intent not in DOMAIN_INTENTS:
            await self.enrollment.reprompt(turn)
            return
        elif state.active_form == "pin_setup" and intent not in DOMAIN_INTENTS:
            step = state.form_step or "pin_new"
            turn.say("pin_code_ask" if step == "pin_code" else step)
            return
        elif state.active_form == "pin_setup" and understood:
            # Another request drops the PIN set-up: later digits must not be taken
            # for a code or a PIN the resident no longer means to send.
            waiting = state.slots.get("waiting_payment")
            if (state.pin_setup or {}).get("for") == "biometrics":
                self.enrollment.discard_early(turn)
            state.clear_form()
            if waiting:
                state.slots["waiting_payment"] = waiting

        if not understood:
            await self.misunderstood(turn)
            return
        if intent == "out_of_scope":
            # Out of scope twice in a row is treated like not understanding twice.
            if state.misunderstandings + 1 >= self.settings.max_misunderstandings:
                await self.misunderstood(turn)
                return
            state.misunderstandings += 1
            await self.dispatch(turn, intent, entities, text)
            return
        state.misunderstandings = 0
        ranking = parse.get("intent_ranking") or []
        if len(ranking) >= 2 and not turn.actions:
            second = ranking[1]
            if (
                intent in DOMAIN_INTENTS
                and second.get("name") in DOMAIN_INTENTS
                and confidence - float(second.get("confidence") or 0)
                < self.settings.ambiguity_margin
            ):
                await self.clarify(turn, intent, str(second["name"]), entities)
                return
        await self.dispatch(turn, intent, entities, text)

    async def _answers_open_question(
        self, turn: Turn, intent: str, understood: bool, entities: dict[str, Any], text: str
    ) -> bool:
        """Answers that belong to the question just asked, or that must not reach an action.

        * ``help`` inside a form is help (then the form's question again), never an
          amount or a PIN;
        * "submit a meter reading" -> "gas" (or "12345") answers the reading
          question, instead of asking the gas balance;
        * a unit number that is not the resident's own ("what does unit B0203
          owe") is refused: only the resident's household is ever shown.
        """
        state = turn.state
        if intent == "help" and understood and state.active_form is not None:
            turn.actions.append("help_in_form")
            await self.dispatch(turn, "help", {}, text)
            if state.active_form == "payment":
                self.offer_resume(turn)
            elif state.active_form == "pin_setup":
                step = state.form_step or "pin_new"
                turn.say("pin_code_ask" if step == "pin_code" else step)
            elif state.active_form == "enrollment":
                await self.enrollment.reprompt(turn)
            return True
        awaiting = state.slots.get("awaiting_reading")
        if isinstance(awaiting, dict) and state.active_form is None:
            words = len(text.split())
            number = re.fullmatch(r"\s*(\d[\d,]*(?:\.\d+)?)\s*(?:kwh|度|m3|m³|方)?\s*", text, re.I)
            utility = entities.get("utility")
            if (utility in UTILITIES and (words <= 3 or intent == "submit_meter_reading")) or (
                number is not None
            ):
                turn.actions.append("reading_answer")
                merged: dict[str, Any] = {"utility": utility or awaiting.get("utility")}
                numbers = re.findall(r"\d[\d,]*(?:\.\d+)?", text)
                if number is not None:
                    merged["meter_reading"] = number.group(1).replace(",", "")
                elif entities.get("meter_reading") is not None:
                    merged["meter_reading"] = entities["meter_reading"]
                elif len(numbers) == 1:
                    merged["meter_reading"] = numbers[0].replace(",", "")
                turn.intent = "submit_meter_reading"
                await self.dispatch(turn, "submit_meter_reading", merged, text)
                return True
            if understood and intent != "submit_meter_reading":
                state.slots.pop("awaiting_reading", None)
        if _UNIT_MENTION_RE.search(text) and (
            (understood and intent in DOMAIN_INTENTS) or _BILL_WORDS_RE.search(text)
        ):
            ctx = await self.context(turn)
            own = _unit_key(str(getattr(ctx.resident, "unit", "") or ""))
            mentioned = {_unit_key(m.group(0)) for m in _UNIT_MENTION_RE.finditer(text)}
            # "0103室" (no building letter) is the resident's own A-0103: digits decide then.
            if own and any(
                m
                and m not in (own, own[1:] if own[:1].isalpha() else own)
                and not (m.isdigit() and m == own.lstrip("ABCDEFGHIJKLMNOPQRSTUVWXYZ"))
                for m in mentioned
            ):
                turn.actions.append("other_household_refused")
                turn.say("other_household_refused", unit=ctx.resident.unit)
                if state.active_form == "payment":
                    self.offer_resume(turn)
                return True
        return False

    async def _in_payment(
        self, turn: Turn, intent: str, understood: bool, entities: dict[str, Any], text: str
    ) -> bool:
        """Route a message while a payment is in progress; whether it was handled."""
        state = turn.state
        form_values = any(k in entities for k in ("utility", "amount", "payment_method"))
        if state.slots.get("resume_offered") and intent in ("affirm", "deny") and understood:
            if intent == "affirm":
                turn.actions.append("resume_payment")
                await self.form.reprompt(turn)
            else:
                self.form.cancel(turn)
            return True
        if (
            intent == "pay_bill"
            or unreadable_amount(text, turn.today)
            or (state.form_step == "utility" and "utility" in entities and len(text.split()) <= 4)
            or (state.form_step == "utility" and _PAY_ALL_RE.search(text))
            or (form_values and (intent not in DOMAIN_INTENTS or not understood))
            or (state.form_step == "amount" and intent not in DOMAIN_INTENTS)
        ):
            await self.form.update(turn, entities, text)
            return True
        if state.form_step == "confirm" and understood and intent in ("affirm", "deny"):
            if intent == "affirm":
                await self.form.confirm(turn, None)
            else:
                self.form.cancel(turn)
            return True
        if (
            state.form_step in ("verify", "verify_choice", "pin_new", "pin_repeat")
            and intent not in DOMAIN_INTENTS
        ):
            await self.form.reprompt(turn)
            return True
        if understood and intent in DOMAIN_INTENTS:
            turn.actions.append("interruption")
            await self.dispatch(turn, intent, entities, text)
            if state.active_form == "payment":
                self.offer_resume(turn)
            return True
        if not understood and state.form_step in ("utility", "method"):
            self.form._failure(turn)
            return True
        return False

    def offer_resume(self, turn: Turn) -> None:
        """After an interruption: "shall we continue paying the water bill?"."""
        state = turn.state
        utility = state.slots.get("pay_utility")
        state.slots["resume_offered"] = True
        turn.add(
            Reply(
                "resume_payment" if utility else "resume_payment_any",
                {"utility": Term("utility", utility)} if utility else {},
                buttons=[
                    ButtonSpec("button_continue", self.payload(turn, "resume")),
                    ButtonSpec("button_cancel", self.payload(turn, "cancel")),
                ],
            )
        )

    async def cancel(self, turn: Turn) -> None:
        """Cancel whatever is in progress."""
        if turn.state.active_form == "payment":
            self.form.cancel(turn)
        elif turn.state.active_form == "pin_setup":
            if (turn.state.pin_setup or {}).get("for") == "biometrics":
                self.enrollment.discard_early(turn)
            turn.state.clear_form()
            turn.actions.append("cancel_pin_setup")
            turn.say("pin_setup_cancelled")
        elif turn.state.active_form == "enrollment":
            self.enrollment.cancel(turn)
        else:
            turn.actions.append("cancel")
            turn.say("nothing_to_cancel")

    async def misunderstood(self, turn: Turn) -> None:
        """Count a misunderstanding; the second in a row offers a human."""
        state = turn.state
        state.misunderstandings += 1
        turn.actions.append("fallback")
        if state.misunderstandings >= self.settings.max_misunderstandings:
            turn.add(
                Reply(
                    "fallback_offer_human",
                    buttons=[
                        ButtonSpec("button_human", self.payload(turn, "human_handoff")),
                        ButtonSpec("button_help", self.payload(turn, "help")),
                    ],
                )
            )
            state.misunderstandings = 0
        else:
            turn.say("fallback")
        if state.active_form == "payment":
            self.offer_resume(turn)

    async def clarify(self, turn: Turn, first: str, second: str, entities: dict[str, Any]) -> None:
        """Offer the two likeliest intents as buttons."""
        turn.actions.append("clarify")
        data = {k: v for k, v in entities.items() if isinstance(v, str | int | float)}
        turn.add(
            Reply(
                "clarify",
                buttons=[
                    ButtonSpec(
                        "button_intent",
                        self.payload(turn, name, **data),
                        {"intent": Term("intent", name)},
                    )
                    for name in (first, second)
                ],
            )
        )

    async def dispatch(self, turn: Turn, intent: str, entities: dict[str, Any], text: str) -> None:
        """Run the intent's action."""
        state = turn.state
        if intent == "pay_bill":
            await self.form.start(turn, entities, text)
            return
        if intent == "link_account":
            turn.actions.append("link_account")
            turn.say("link_already")
            return
        if intent == "enroll_biometrics":
            await self.enroll(turn, entities, text)
            return
        if intent in ("affirm", "deny"):
            if state.slots.get("resume_offered") and state.active_form == "payment":
                await self._in_payment(turn, intent, True, entities, text)
                return
            turn.say("affirm_nothing")
            return
        if intent == "manage_autopay" and entities.get("utility") in UTILITIES:
            ctx = await self.context(turn)
            ctx.entities, ctx.text = entities, text
            if wanted_state(ctx) is True:  # a money decision: confirmed, maybe stepped up
                await self.form.start_autopay(turn, entities, text)
                return
        action = ACTIONS.get(intent)
        if action is None:
            await self.misunderstood(turn)
            return
        ctx = await self.context(turn)
        if entities is not ctx.entities:
            ctx.entities = entities
        ctx.text = text
        result = await action(ctx)
        turn.apply(intent, result)

    async def enroll(self, turn: Turn, entities: dict[str, Any], text: str = "") -> None:
        """Entry point of enrollment: a PIN, or (after a PIN step-up) face / voice / delete."""
        turn.actions.append("enroll_biometrics")
        kind = str(entities.get("kind") or "")
        if not kind and _PIN_WORDS_RE.search(text) and not _BIOMETRIC_WORDS_RE.search(text):
            kind = "pin"
        registry = self.verification.registry
        if kind == "pin" or (not kind and len(registry) == 1):
            await self.start_pin_setup(turn)
            return
        await self.enrollment.start(turn, kind)

    async def start_pin_setup(self, turn: Turn, purpose: str = "enroll") -> None:
        """Start setting a PIN (only if the resident has none), with a staff one-time code.

        A PIN is set right after the link code (:meth:`after_link`), or later only
        with a fresh one-time code from the property office: never on the say-so
        of whoever holds the chat, and never inside a payment.
        """
        pin = self.verification.registry.get(VerificationKind.PIN)
        if isinstance(pin, PinVerifier) and await pin.is_enrolled(str(turn.resident_id)):
            turn.say("pin_already_set")
            return
        waiting = turn.state.slots.get("waiting_payment")
        turn.state.clear_form()
        if waiting:
            turn.state.slots["waiting_payment"] = waiting
        turn.state.active_form = "pin_setup"
        turn.state.form_step = "pin_code"
        turn.state.pin_setup = {"for": purpose}
        turn.actions.append("pin_code_asked")
        turn.say("pin_code_ask")

    async def pin_code(self, turn: Turn, text: str) -> None:
        """The staff-issued one-time code that allows setting a PIN."""
        state = turn.state
        code = re.sub(r"\D", "", text)
        try:
            result = await self.service_billing().redeem_link_code(
                code, channel=turn.message.channel, external_id=turn.message.external_user_id
            )
            ok = str(result.resident_id) == str(turn.resident_id)
        except BackendUnavailable:
            raise
        except BillingError:  # unknown, used, expired code, or too many tries
            ok = False
        if not ok:
            state.slot_failures += 1
            turn.actions.append("pin_code_refused")
            if state.slot_failures >= _MAX_CODE_FAILURES:
                state.clear_form()
                turn.say("pin_code_gave_up")
            else:
                turn.say("pin_code_bad")
            return
        state.slot_failures = 0
        state.form_step = "pin_new"
        turn.actions.append("pin_code_accepted")
        turn.say("pin_code_ok")
        turn.say("pin_new")

    async def after_link(self, turn: Turn) -> None:
        """Right after a link code from the property office: offer to choose a PIN."""
        if speaker_rule.applies(turn):  # a PIN is never chosen aloud on a shared speaker
            return
        pin = self.verification.registry.get(VerificationKind.PIN)
        if isinstance(pin, PinVerifier) and await pin.is_enrolled(str(turn.resident_id)):
            return
        turn.state.clear_form()
        turn.state.active_form = "pin_setup"
        turn.state.form_step = "pin_new"
        turn.state.pin_setup = {"for": "link"}
        turn.actions.append("pin_offered_after_link")
        turn.say("link_pin_offer")

    async def locked_digits(self, turn: Turn) -> bool:
        """Digits sent while verification is locked: say so, use them for nothing.

        Returns whether they were answered (``False``: the lock is over).
        """
        resident_id = str(turn.resident_id)
        service = self.verification
        untils = [
            u
            for k in await service.enrolled_kinds(resident_id)
            if (u := service.locked_until(resident_id, k)) is not None
        ]
        if not untils:
            turn.state.slots.pop("locked_out", None)
            return False
        turn.secret = True
        turn.actions.append("locked_digits_ignored")
        turn.say("locked_digits", until=max(untils))
        return True

    def service_billing(self) -> Any:
        """The engine's service billing client (link codes are redeemed with it)."""
        if self.service_client is not None:
            return self.service_client
        owner = getattr(self.context, "__self__", None)
        return getattr(owner, "billing", None)

    async def on_payload(self, turn: Turn, payload: str) -> None:
        """A pressed button."""
        parsed = parse_payload(payload)
        state = turn.state
        if parsed is None:
            turn.actions.append("bad_payload")
            turn.say("button_stale")
            return
        name, data = parsed
        if data.pop("s", None) != state.session_id[:8]:
            turn.actions.append("stale_button")
            turn.say("button_stale")
            return
        turn.intent, turn.confidence, turn.entities = name, 1.0, dict(data)
        handler = _BUTTONS.get(name)
        if handler is not None:
            await handler(self, turn, data)
        elif name in ACTIONS or name in ("pay_bill", "enroll_biometrics"):
            state.misunderstandings = 0
            interrupts = state.active_form == "payment" and name in DOMAIN_INTENTS
            await self.dispatch(turn, name, data, "")
            if interrupts and name != "pay_bill":
                self.offer_resume(turn)
        else:
            turn.actions.append("bad_payload")
            turn.say("button_stale")

    async def _resume(self, turn: Turn, data: dict[str, Any]) -> None:
        if turn.state.active_form == "payment":
            turn.actions.append("resume_payment")
            await self.form.reprompt(turn)
        else:
            turn.say("confirmation_stale")

    async def _keep_reading(self, turn: Turn, data: dict[str, Any]) -> None:
        turn.actions.append("reading_keep")
        turn.say("reading_kept")

    async def _autopay_button(self, turn: Turn, data: dict[str, Any]) -> None:
        entities = {"utility": data.get("utility"), "autopay_enabled": bool(data.get("enabled"))}
        await self.dispatch(turn, "manage_autopay", entities, "")


_ButtonHandler = Callable[[Policy, Turn, dict[str, Any]], Awaitable[None]]

#: What each button does, by payload name (other names are intents, dispatched as such).
_BUTTONS: dict[str, _ButtonHandler] = {
    "cancel": lambda p, turn, data: p.cancel(turn),
    "confirm_payment": lambda p, turn, data: p.form.confirm(turn, str(data.get("t", ""))),
    "resume": Policy._resume,
    "choose_utility": lambda p, turn, data: p.form.choose_utility(turn, str(data.get("utility"))),
    "choose_method": lambda p, turn, data: p.form.choose_method(turn, str(data.get("method"))),
    "pay_amount": lambda p, turn, data: p.form.choose_amount(turn, str(data.get("amount"))),
    "verify_with": lambda p, turn, data: p.form.choose_kind(turn, str(data.get("kind"))),
    "enroll": lambda p, turn, data: p.enroll(turn, {"kind": data.get("kind")}),
    "enroll_kind": lambda p, turn, data: p.enrollment.choose(turn, str(data.get("kind"))),
    "enroll_delete": lambda p, turn, data: p.enrollment.choose(turn, "delete"),
    "enroll_delete_yes": lambda p, turn, data: p.enrollment.delete(turn),
    "reading_keep": Policy._keep_reading,
    "manage_autopay": Policy._autopay_button,
    # The reminder digest's button: one payment of everything owed (confirmed, stepped up).
    "pay_all": lambda p, turn, data: p.form.start(turn, {}, "everything"),
}
