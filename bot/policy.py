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

import json
import re
from collections.abc import Awaitable, Callable
from typing import Any

from actions.base import UTILITIES, ActionContext, ActionResult
from actions.check_balance import check_balance
from actions.due_date import due_date
from actions.explain_bill import explain_bill
from actions.human_handoff import human_handoff
from actions.manage_autopay import manage_autopay
from actions.pay_bill import payment_status_update
from actions.payment_history import payment_history
from actions.report_problem import report_problem
from actions.request_receipt import request_receipt
from actions.small_talk import goodbye, greet, help_, out_of_scope, thank
from actions.submit_meter_reading import submit_meter_reading
from actions.usage import usage
from bot.channels.speaker import chat_commands as speaker_chat
from bot.forms.enrollment import EnrollmentForm
from bot.forms.payment import PaymentForm
from bot.responses import ButtonSpec, Reply, Term
from bot.settings import DialogueSettings
from bot.store import ConversationStore
from bot.turn import Turn
from bot.verification_service import VerificationService
from bot.verifiers.pin import PinVerifier
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
_NUMBER_STEPS = frozenset({"verify", "pin_new", "pin_repeat", "enroll_pin"})
_PAYLOAD_RE = re.compile(r"^/([a-z_]+)(\{.*\})?$", re.S)
_CARRY_OVER_RE = re.compile(r"^\s*(and|what about|how about|also)\b|^\s*(那|还有|那么)", re.I)


def parse_payload(payload: str) -> tuple[str, dict[str, Any]] | None:
    """Split a button payload ``/name{json}`` into its name and data."""
    match = _PAYLOAD_RE.match(payload.strip())
    if not match:
        return None
    data: dict[str, Any] = {}
    if match.group(2):
        try:
            loaded = json.loads(match.group(2))
        except ValueError:
            return None
        if not isinstance(loaded, dict):
            return None
        data = loaded
    return match.group(1), data


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
        self.form = PaymentForm(self)
        self.enrollment = EnrollmentForm(self)
        #: Claims the outbox notice of a settled pending payment for this turn
        #: (``await claim_notice(turn, ctx, payment_id) -> bool``); set by the engine.
        self.claim_notice: Callable[[Turn, ActionContext, str], Awaitable[bool]] | None = None

    def payload(self, turn: Turn, name: str, **data: Any) -> str:
        """A button payload stamped with the session."""
        data["s"] = turn.state.session_id[:8]
        return f"/{name}{json.dumps(data, ensure_ascii=False, sort_keys=True)}"

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
        if not text:
            turn.keep_buttons = True
            turn.say("empty_message")
            return
        if len(text) > self.settings.max_message_chars:
            turn.keep_buttons = True
            turn.actions.append("refused_too_long")
            turn.say("too_long", limit=self.settings.max_message_chars)
            return
        if state.form_step in ("pin_new", "pin_repeat") and re.fullmatch(r"[\d\s]{1,12}", text):
            turn.secret = True
            for_enrollment = (state.pin_setup or {}).get("for") == "biometrics"
            await self.form.pin_entry(turn, text)
            if for_enrollment and "pin_set" in turn.actions:
                await self.enrollment.after_pin_setup(turn)
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
        turn.parse = parse
        turn.language = parse.get("language") or turn.language
        turn.state.language = turn.language
        intent = str((parse.get("intent") or {}).get("name") or "nlu_fallback")
        confidence = float((parse.get("intent") or {}).get("confidence") or 0.0)
        entities = first_entities(parse.get("entities") or [])
        turn.intent, turn.confidence, turn.entities = intent, confidence, entities
        if await speaker_chat.remove_speaker(self, turn, text):  # "remove the kitchen speaker"
            return
        state = turn.state
        threshold = self.settings.fallback_threshold
        understood = confidence >= threshold and intent not in ("nlu_fallback",)

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
            turn.say("pin_new" if state.form_step == "pin_new" else "pin_repeat")
            return

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
            or (state.form_step == "utility" and "utility" in entities and len(text.split()) <= 4)
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
            await self.enroll(turn, entities)
            return
        if intent in ("affirm", "deny"):
            if state.slots.get("resume_offered") and state.active_form == "payment":
                await self._in_payment(turn, intent, True, entities, text)
                return
            turn.say("affirm_nothing")
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

    async def enroll(self, turn: Turn, entities: dict[str, Any]) -> None:
        """Entry point of enrollment: a PIN, or (after a PIN step-up) face / voice / delete."""
        turn.actions.append("enroll_biometrics")
        kind = str(entities.get("kind") or "")
        registry = self.verification.registry
        if kind == "pin" or (not kind and len(registry) == 1):
            await self.start_pin_setup(turn)
            return
        await self.enrollment.start(turn, kind)

    async def start_pin_setup(self, turn: Turn) -> None:
        """Start setting a PIN (only if the resident has none)."""
        pin = self.verification.registry.get(VerificationKind.PIN)
        if isinstance(pin, PinVerifier) and await pin.is_enrolled(str(turn.resident_id)):
            turn.say("pin_already_set")
            return
        turn.state.clear_form()
        turn.state.active_form = "pin_setup"
        turn.state.form_step = "pin_new"
        turn.state.pin_setup = {"for": "enroll"}
        turn.say("pin_new")

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
        if name == "cancel":
            await self.cancel(turn)
        elif name == "confirm_payment":
            await self.form.confirm(turn, str(data.get("t", "")))
        elif name == "resume":
            if state.active_form == "payment":
                turn.actions.append("resume_payment")
                await self.form.reprompt(turn)
            else:
                turn.say("confirmation_stale")
        elif name == "choose_utility":
            await self.form.choose_utility(turn, str(data.get("utility")))
        elif name == "choose_method":
            await self.form.choose_method(turn, str(data.get("method")))
        elif name == "pay_amount":
            await self.form.choose_amount(turn, str(data.get("amount")))
        elif name == "verify_with":
            await self.form.choose_kind(turn, str(data.get("kind")))
        elif name == "enroll":
            await self.enroll(turn, {"kind": data.get("kind")})
        elif name == "enroll_kind":
            await self.enrollment.choose(turn, str(data.get("kind")))
        elif name == "enroll_delete":
            await self.enrollment.choose(turn, "delete")
        elif name == "enroll_delete_yes":
            await self.enrollment.delete(turn)
        elif name == "reading_keep":
            turn.actions.append("reading_keep")
            turn.say("reading_kept")
        elif name == "manage_autopay":
            entities = {
                "utility": data.get("utility"),
                "autopay_enabled": bool(data.get("enabled")),
            }
            await self.dispatch(turn, name, entities, "")
        elif name in ACTIONS or name in ("pay_bill", "enroll_biometrics"):
            state.misunderstandings = 0
            if state.active_form == "payment" and name in DOMAIN_INTENTS and name != "pay_bill":
                await self.dispatch(turn, name, data, "")
                self.offer_resume(turn)
            else:
                await self.dispatch(turn, name, data, "")
        else:
            turn.actions.append("bad_payload")
            turn.say("button_stale")
