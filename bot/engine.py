"""The dialogue engine: one message in, replies out, state and log saved.

Every channel calls :meth:`DialogueEngine.handle`. A turn:

1. finds the resident (given by the channel, or through the channel link);
2. takes the conversation's lease and loads its state (``bot.store``);
3. starts a new session if the last one idled out (dropping any confirmation);
4. if the conversation is with staff (human handoff), logs the message and
   stays quiet;
5. lets the :class:`~bot.policy.Policy` parse the message (NLU or button) and
   run the actions;
6. renders the replies in the message's language (``bot/responses.yml``);
7. writes the new state and the turn's log row in one transaction.

Example::

    engine = await DialogueEngine.embedded()
    replies = await engine.handle(
        IncomingMessage(channel="terminal", external_user_id="r-1", resident_id="r-1",
                        text="how much do I owe?")
    )
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import json
import math
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine

from actions.base import ActionContext
from actions.errors import BackendUnavailable, BillingError
from actions.link_account import redeem_link_code
from backend.client import one_turn
from billtalk.db import is_sqlite, make_engine
from billtalk.logs import get_logger
from billtalk.ratelimit import MemoryLimiter, RateLimiter, get_limiter
from billtalk.settings import get_settings
from bot.masking import SECRET_MASK, mask_pii
from bot.messages import (
    Attachment,
    Button,
    IncomingMessage,
    OutgoingMessage,
    dump_message,
    load_message,
    utcnow,
)
from bot.nlu_batcher import BatchingParser
from bot.notices import Delivery, NoticeCourier
from bot.outbox import Outbox, Target, add_row
from bot.policy import Policy, first_entities
from bot.responses import Reply, ResponseError, Responses, default_responses
from bot.settings import DialogueSettings, get_dialogue_settings
from bot.spoken import speak, speak_replies
from bot.state import ConversationState
from bot.store import ConversationStore, LoadedConversation, TurnRecord, ensure_schema
from bot.turn import Turn
from bot.verification_service import VerificationService
from bot.verifiers import build_registry
from bot.voice_input import DECODER_FAILED, VoiceInput
from verification import VerificationKind, Verifier

log = get_logger("bot.engine")


@dataclass
class _ScopedCache:
    client: Any
    resident: Any
    expires: float
    #: Until when (monotonic) the client's token may still be used.
    token_until: float = math.inf
    extra: dict[str, Any] = field(default_factory=dict)


#: A scoped token is replaced this long before it expires (a turn's calls must not outlive it).
_TOKEN_MARGIN_S = 120.0


def _usable_until(client: Any, now: float) -> float:
    """Until when (monotonic, from ``now``) ``client``'s scoped token may be used."""
    expires_at = client.token_expires_at
    if expires_at is None:
        return math.inf
    left = (expires_at - datetime.now(UTC)).total_seconds() - _TOKEN_MARGIN_S
    return now + max(0.0, left)


class DialogueEngine:
    """The assistant, shared by every channel.

    Args:
        store: The dialogue's store (conversation state, log, PINs, links).
        billing: A service :class:`~backend.client.BillingClient`; the engine asks it
            for a resident-scoped client for each turn.
        nlu: An object with ``parse(text, *, reference_date=None) -> dict`` (Rasa
            ``/model/parse`` format), e.g. ``nlu.load_model()``.
        settings: Dialogue settings (default: from the environment).
        clock: Returns the current time; tests inject one to test idle timeouts.
        responses: The reply templates (default: ``bot/responses.yml``).
        registry: Step-up verifiers by kind (default: PIN plus the biometric
            verifiers that can be imported).
        currency: The currency of every amount (default: ``BILLTALK_CURRENCY``).
        scope_ttl_s: How long a resident-scoped client is reused.
        limiter: Counts each channel user's messages for flood control (default: the
            Redis limiter when ``BILLTALK_REDIS_URL`` is set, else one of this engine's own).
    """

    def __init__(
        self,
        store: ConversationStore,
        billing: Any,
        nlu: Any,
        *,
        settings: DialogueSettings | None = None,
        clock: Callable[[], datetime] = utcnow,
        responses: Responses | None = None,
        registry: dict[VerificationKind, Verifier] | None = None,
        currency: str | None = None,
        scope_ttl_s: float = 60.0,
        limiter: RateLimiter | None = None,
    ) -> None:
        self.store = store
        self.billing = billing
        self.nlu = nlu
        self.settings = settings or get_dialogue_settings()
        self.clock = clock
        self.responses = responses or default_responses()
        self.currency = currency or get_settings().currency
        self.verification = VerificationService(
            registry if registry is not None else build_registry(store, clock),
            store,
            self.settings,
            clock,
            billing=billing,  # outcomes recorded with the backend, which issues proofs
        )
        self.policy = Policy(self.settings, store, self.verification, self._context, self._parse)
        self.notices = NoticeCourier(self)
        self.outbox = Outbox(store, clock)
        self.voice_input = VoiceInput(
            self.settings.voice_decoding or None,
            processes=self.settings.voice_processes,
            nice=self.settings.voice_nice,
            idle=self.settings.voice_idle,
        )
        self.policy.claim_notice = self._claim_payment_notice
        self._scopes: dict[str, _ScopedCache] = {}
        self._scope_ttl = scope_ttl_s
        self._batcher: BatchingParser | None = None
        #: Turns being handled right now (the NLU batcher waits for company only if > 1).
        self._turns_in_flight = 0
        redis_url = get_settings().redis_url
        if limiter is None:
            limiter = get_limiter(redis_url) if redis_url else MemoryLimiter()
        self.limiter = limiter
        #: Messages dropped by flood control (the polite replies included).
        self.flooded = 0

    # -- construction -------------------------------------------------------------

    @classmethod
    async def embedded(
        cls,
        database_url: str | None = None,
        *,
        nlu: Any = None,
        billing: Any = None,
        **kwargs: Any,
    ) -> DialogueEngine:
        """The engine on the embedded default: billing API in-process, one database.

        Migrates the dialogue's tables, builds ``BillingClient.embedded`` on the same
        database and loads the default NLU model (training it if missing).
        """
        from backend.client import BillingClient

        url = database_url or get_settings().database_url
        dialogue_url = get_dialogue_settings().database_url or url
        ensure_schema(dialogue_url)
        # 16 connections kept (SQLAlchemy's default keeps 5 and makes and drops up to 10 more
        # under load); no overflow, so a worker opens at most 16 + the API's 40, about what
        # it did before (15 + 40): two workers stay near PostgreSQL's default 100. Turns
        # beyond 16 at once wait a moment for a connection.
        pool = {} if is_sqlite(dialogue_url) else {"pool_size": 16, "max_overflow": 0}
        store = ConversationStore(make_engine(dialogue_url, **pool))
        if billing is None:
            billing = BillingClient.embedded(url)
        if nlu is None:
            import nlu as nlu_pkg

            if hasattr(nlu_pkg, "ensure_default_model"):
                nlu_pkg.ensure_default_model()
            nlu = nlu_pkg.load_model()
        return cls(store, billing, nlu, **kwargs)

    @property
    def db(self) -> Engine:
        """The dialogue database's engine."""
        return self.store.engine

    # -- collaborators for the policy ------------------------------------------------

    async def _parse(self, text: str, *, reference_date: Any = None) -> dict[str, Any]:
        # Off the event loop and batched with concurrent turns' messages
        # (bot/nlu_batcher.py); a new batcher if the NLU object was swapped.
        if self._batcher is None or self._batcher.model is not self.nlu:
            old, self._batcher = (
                self._batcher,
                BatchingParser(
                    self.nlu,
                    company=lambda: self._turns_in_flight > 1,
                    cache_size=self.settings.nlu_cache_size,
                ),
            )
            if old is not None:
                await old.aclose()
        return dict(await self._batcher.parse(text, reference_date))

    def serve_voice_from_processes(self) -> None:
        """A server runtime's choice: voice notes decode in lower-priority child processes.

        Unless ``BILLTALK_DIALOGUE_VOICE_DECODING`` says otherwise (:mod:`bot.voice_input`):
        a decode then never takes the cores from other residents' text turns.
        """
        self.voice_input.prefer_processes()

    async def stop_voice_processes(self) -> None:
        """Stop the voice-decoding child processes, if any (a runtime's shutdown)."""
        await asyncio.to_thread(self.voice_input.close)

    def nlu_cache_stats(self) -> dict[str, int]:
        """Parses answered from the NLU cache and parses the model ran, since the start."""
        batcher = self._batcher
        if batcher is None:
            return {"nlu_cache_hits": 0, "nlu_cache_misses": 0}
        return {"nlu_cache_hits": batcher.cache_hits, "nlu_cache_misses": batcher.cache_misses}

    async def _scoped(self, resident_id: str) -> _ScopedCache:
        """The resident's scoped client and profile, read again every ``scope_ttl_s``.

        The scoped token is kept until shortly before it expires: minting one is an
        audited write, and re-minting it with every profile read put one into the
        audit chain per active resident per minute.
        """
        now = time.monotonic()
        cached = self._scopes.get(resident_id)
        if cached is None or cached.expires < now:
            if cached is not None and cached.token_until > now:
                client, token_until = cached.client, cached.token_until
            else:
                client = await self.billing.resident_scope(resident_id)
                token_until = _usable_until(client, now)
            resident = await client.get_resident(resident_id)
            cached = _ScopedCache(client, resident, now + self._scope_ttl, token_until)
            self._scopes[resident_id] = cached
        return cached

    async def scoped_client(self, resident_id: str) -> Any:
        """A billing client scoped to ``resident_id``'s household (cached briefly)."""
        return (await self._scoped(resident_id)).client

    async def _context(self, turn: Turn) -> ActionContext:
        if turn._context is None:
            if turn.resident_id is None:
                raise BillingError("not_linked", "no resident for this conversation", 403)
            scoped = await self._scoped(turn.resident_id)
            turn.household_id = str(scoped.resident.household_id)
            slots = dict(turn.state.slots)
            slots["conversation_ref"] = turn.conversation_id[:8].upper()
            turn._context = ActionContext(
                client=scoped.client,
                resident=scoped.resident,
                language=turn.language,
                entities=turn.entities,
                slots=slots,
                text=turn.message.text or "",
                today=turn.today,
                currency=self.currency,
                supports_files=turn.message.supports_files,
                session=turn.state.session_id[:8],
            )
        turn._context.language = turn.language
        turn._context.slots = {
            **turn.state.slots,
            "conversation_ref": turn.conversation_id[:8].upper(),
        }
        return turn._context

    # -- proactive notices ---------------------------------------------------------

    async def deliver_notices(
        self, *, channel: str | None = None, resident_id: str | None = None, limit: int = 50
    ) -> list[Delivery]:
        """Deliver the backend's pending notices into conversations (``bot.notices``).

        Channels poll this and send each :class:`~bot.notices.Delivery`'s messages
        to its conversation's user. Every notice is delivered once, whichever
        worker or channel polls.

        Args:
            channel: Only into conversations on this channel (the poller's own).
            resident_id: Only this resident's notices, into their conversations.
            limit: At most this many notices per call.
        """
        return await self.notices.deliver(channel=channel, resident_id=resident_id, limit=limit)

    # -- the push path -------------------------------------------------------------

    async def push(
        self,
        resident_id: str,
        replies: list[Reply] | str,
        *,
        kind: str = "notice",
        dedupe_key: str | None = None,
        channels: tuple[str, ...] | None = None,
    ) -> int:
        """Say something to a resident outside a turn, through their linked channel(s).

        For each place the resident can be reached (``bot.outbox.Outbox.targets_of``,
        or only ``channels``), the message is rendered in that conversation's
        language, its buttons are issued there (pressable like a turn's buttons),
        and the conversation's ``push`` event and the outbox row are written in one
        transaction. A sender (:class:`bot.outbox.OutboxSender`) delivers it.

        Args:
            resident_id: Who to tell.
            replies: What to say: reply objects, or plain text already in their language.
            kind: What it is (``notice``, ``step_up``...), kept with the row.
            dedupe_key: Writing the same key for the same channel user again is a no-op.
            channels: Only these channels.

        Returns:
            How many channel users it was queued for.
        """
        targets = await asyncio.to_thread(self.outbox.targets_of, resident_id)
        queued = 0
        for target in targets:
            if channels is not None and target.channel not in channels:
                continue
            if await self._push_to(target, replies, kind, dedupe_key):
                queued += 1
        return queued

    async def _push_to(
        self, target: Target, replies: list[Reply] | str, kind: str, dedupe_key: str | None
    ) -> bool:
        now = self.clock()
        conversation_id = target.conversation_id
        if conversation_id is None:
            conversation_id = await asyncio.to_thread(
                self.store.conversation_id_for,
                target.channel,
                target.external_user_id,
                target.resident_id,
                now,
            )
        target = dataclasses.replace(target, conversation_id=conversation_id)
        owner = uuid.uuid4().hex
        loaded = await self.store.acquire(conversation_id, owner, self.settings.lease_s)
        queued = False
        try:
            if dedupe_key is not None and await asyncio.to_thread(
                self.outbox.exists, target, dedupe_key
            ):  # already queued (checked under the conversation's lease)
                await asyncio.to_thread(self.store.release, conversation_id, owner)
                return False
            state = self._load_state(
                loaded.state,
                IncomingMessage(channel=target.channel, external_user_id=target.external_user_id),
                now,
            )
            if isinstance(replies, str):
                message = OutgoingMessage(
                    text=replies, language=state.language, spoken=speak(replies, (), state.language)
                )
            else:
                message = self.render_replies(replies, state.language)[0]
            if message.buttons:
                buttons = tuple(dataclasses.replace(b, id=_button_id()) for b in message.buttons)
                message = dataclasses.replace(message, buttons=buttons)
                state.buttons = [
                    {"id": b.id, "title": b.title, "payload": b.payload} for b in buttons
                ]
            message = dataclasses.replace(message, kind=kind)

            def write_row(s: Any) -> None:
                nonlocal queued
                queued = add_row(s, target, message, kind=kind, dedupe_key=dedupe_key, now=now)

            await asyncio.to_thread(
                self.store.commit_event,
                loaded,
                owner,
                state.to_dict(),
                "push",
                at=now,
                actor="bot",
                data={"kind": kind, "text": message.text, "dedupe_key": dedupe_key},
                also=write_row,
            )
        except BaseException:
            await asyncio.to_thread(self.store.release, conversation_id, owner)
            raise
        return queued

    async def _claim_payment_notice(self, turn: Turn, ctx: ActionContext, payment_id: str) -> bool:
        notice = await self.notices.claim_payment_notice(
            ctx.client, payment_id, turn.message.channel, turn.language
        )
        if notice is None:
            return False
        turn.notices.append(notice)
        return True

    # -- the turn ------------------------------------------------------------------

    async def handle(self, message: IncomingMessage) -> list[OutgoingMessage]:
        """Handle one message and return the replies (possibly none)."""
        flooded = self.flood_check(message.channel, message.external_user_id, message.language)
        if flooded is not None:
            return flooded
        self._turns_in_flight += 1
        try:
            with one_turn():  # the billing reads of this turn check its token once
                return await self._handle(message)
        finally:
            self._turns_in_flight -= 1

    def expectation(self, channel: str, external_user_id: str) -> str | None:
        """The spoken answer this channel user's conversation waits for, if any.

        ``"pin"`` or ``"yes_no"`` as :meth:`ConversationState.expecting` says, for a
        channel that recognises speech to tell its recogniser. Blocking (it reads the
        store): call it in a worker thread.
        """
        now = self.clock()
        link = self.store.linked_resident(channel, external_user_id)
        conversation_id = self.store.conversation_id_for(
            channel, external_user_id, link[0] if link else None, now
        )
        row = self.store.get_conversation(conversation_id)
        if row is None or not row.state:
            return None
        try:
            state = ConversationState.from_dict(json.loads(row.state))
        except (ValueError, KeyError, TypeError):
            return None  # unreadable: expect nothing, recognise freely
        return state.expecting(now, self.settings.session_timeout_s)

    def flood_check(
        self, channel: str, external_user_id: str, language: str | None = None
    ) -> list[OutgoingMessage] | None:
        """Count one message of this channel user: ``None`` if it may go on, else what to
        answer instead (channels call it for messages they answer without a turn).

        Each channel user may send ``messages_per_window`` messages per window. The
        first message over the limit is answered once, politely ("slow down"); the
        rest of the window is dropped unread and unanswered (no reply storm). This
        runs before any database, NLU or billing work, so a flood costs one counter
        increment per message. The channel still acknowledges what was dropped (the
        Telegram adapter records the update as handled, so it is not redelivered).
        """
        limit = self.settings.messages_per_window
        if limit <= 0:
            return None
        key = f"msg:{channel}:{external_user_id}"
        verdict = self.limiter.hit(key, limit, self.settings.message_window_s)
        if verdict.allowed:
            return None
        self.flooded += 1
        if verdict.count != limit + 1:
            return []
        log.info("flood_limited", channel=channel, retry_after=verdict.retry_after)
        reply = Reply("slow_down", {"seconds": verdict.retry_after})
        return self.render_replies([reply], language or "en")

    async def _handle(self, message: IncomingMessage) -> list[OutgoingMessage]:
        started = time.perf_counter()
        now = self.clock()
        owner = uuid.uuid4().hex
        resident_id, household_id, loaded = await self._find_and_acquire(message, now, owner)
        conversation_id = loaded.conversation_id
        processed = loaded.processed
        if processed is not None:
            await asyncio.to_thread(self.store.release, conversation_id, owner)
            if message.resend_if_processed and processed.replies:
                log.info("redelivery_replies_resent", channel=message.channel)
                return [load_message(text) for text in json.loads(processed.replies)]
            log.info("redelivery_ignored", channel=message.channel)
            return []
        try:
            state = self._load_state(loaded.state, message, now)
            snapshot = copy.deepcopy(state)
            message = self._resolve_button(message, state)
            turn = Turn(
                message=message,
                state=state,
                now=now,
                today=now.date(),
                conversation_id=conversation_id,
                resident_id=resident_id or loaded.resident_id,
                household_id=household_id or loaded.household_id,
                language=state.language,
                status=loaded.status,
                flagged=loaded.flagged,
                flag_reason=loaded.flag_reason,
            )
            slots_before = dict(snapshot.slots)
            expired = now - state.last_activity_at > timedelta(
                seconds=self.settings.session_timeout_s
            )
            if expired:
                had_pending = state.active_form is not None
                state.new_session(uuid.uuid4().hex, now)
                turn.actions.append("session_started")
                if had_pending:
                    turn.say("session_expired")
            state.last_activity_at = now
            if await self._hear(turn):
                pass  # a voice message that could not be used has been answered
            elif turn.status == "waiting_for_staff":
                turn.actions.append("waiting_for_staff")
            elif message.button_id is not None and message.button_payload is None:
                turn.keep_buttons = True
                turn.actions.append("button_expired")
                turn.say("button_expired")
            else:
                await self._run_policy(turn, snapshot)
            try:
                outgoing = self._render(turn)
            except ResponseError:  # a template bug must not lose the turn
                log.exception("render_failed", conversation=conversation_id)
                self._fail(turn, snapshot, "internal_error: render", "internal_error")
                outgoing = self._render(turn)
            record = self._record(turn, outgoing, slots_before, started)
            await asyncio.to_thread(
                self.store.commit_turn,
                loaded,
                owner,
                turn.state.to_dict(),
                record,
                status=turn.status,
                flagged=turn.flagged,
                flag_reason=turn.flag_reason,
                resident_id=turn.resident_id,
                household_id=turn.household_id,
                notices=turn.notices,
            )
        except BaseException:
            await asyncio.to_thread(self.store.release, conversation_id, owner)
            raise
        if turn.notices:
            await self.notices.mark_told_in_turn(turn.notices)
        return outgoing

    async def _find_and_acquire(
        self, message: IncomingMessage, now: datetime, owner: str
    ) -> tuple[str | None, str | None, LoadedConversation]:
        """The sender's linked resident and household (if any) and the conversation, its
        lease taken by ``owner`` (the delivery's record read under the lease).

        Once this process knows the conversation's id, the link is read in the lease's own
        statement (one round trip and one worker-thread call for both); before that, in
        the call that finds or creates the conversation.
        """
        known = self.store.known_conversation_id(message.channel, message.external_user_id)
        if known is None:
            resident_id, household_id, conversation_id = await asyncio.to_thread(
                self._find_conversation, message, now
            )
        else:
            resident_id, household_id, conversation_id = message.resident_id, None, known
        link = None
        if known is not None and resident_id is None:
            link = (message.channel, message.external_user_id)
        loaded = await self.store.acquire(
            conversation_id,
            owner,
            self.settings.lease_s,
            # a delivery the channel vouches was never recorded needs no read
            delivery_id=None if message.delivery_unseen else message.delivery_id,
            link=link,
        )
        if link is not None and loaded.link is not None:
            resident_id, household_id = loaded.link
        return resident_id, household_id, loaded

    def _find_conversation(
        self, message: IncomingMessage, now: datetime
    ) -> tuple[str | None, str | None, str]:
        """The sender's linked resident and household (if any) and the conversation's id.

        One worker-thread call for both reads (the id is cached after a conversation's
        first turn in this process).
        """
        resident_id, household_id = message.resident_id, None
        if resident_id is None:
            link = self.store.linked_resident(message.channel, message.external_user_id)
            if link is not None:
                resident_id, household_id = link
        conversation_id = self.store.conversation_id_for(
            message.channel, message.external_user_id, resident_id, now
        )
        return resident_id, household_id, conversation_id

    def _load_state(
        self, data: dict[str, Any], message: IncomingMessage, now: datetime
    ) -> ConversationState:
        if data:
            return ConversationState.from_dict(data)
        return ConversationState(
            session_id=uuid.uuid4().hex,
            session_started_at=now,
            last_activity_at=now,
            language=message.language or "en",
        )

    async def _hear(self, turn: Turn) -> bool:
        """A voice message outside a verification or enrollment step, as text.

        The transcript replaces the message's text (and is logged with its
        confidence). Returns True when the turn has been answered instead: the
        audio was unusable, or the transcript too weak to act on (the resident
        is told what was heard and asked again).
        """
        message = turn.message
        if message.text or not self.voice_input.wants(message, turn.state):
            return False
        heard = await self.voice_input.transcribe(message.attachments[0])
        turn.transcript = heard.to_log()
        turn.actions.append("transcribed")
        if heard.error == DECODER_FAILED:  # our fault, not the recording's
            turn.keep_buttons = True
            turn.say("voice_failed")
            return True
        if heard.error is not None:
            turn.keep_buttons = True
            turn.say("voice_unusable", reason=heard.error)
            return True
        if heard.weak or not heard.text:
            turn.keep_buttons = True
            turn.say("voice_weak", heard=heard.text or "…")
            return True
        turn.message = dataclasses.replace(message, text=heard.text, attachments=())
        return False

    async def _run_policy(self, turn: Turn, snapshot: ConversationState) -> None:
        try:
            if turn.resident_id is None:
                await self._unlinked(turn)
            else:
                await self.policy.respond(turn)
        except BackendUnavailable as exc:
            self._fail(turn, snapshot, f"backend_unavailable: {exc.code}", "backend_down")
        except BillingError as exc:
            self._fail(turn, snapshot, f"billing_error: {exc.code}", "backend_error")
        except Exception as exc:  # the resident gets a plain apology, staff the log
            log.exception("turn_failed", conversation=turn.conversation_id)
            self._fail(turn, snapshot, f"internal_error: {type(exc).__name__}", "internal_error")

    def _fail(self, turn: Turn, snapshot: ConversationState, error: str, key: str) -> None:
        """An error mid-turn: keep the state as it was before the turn, apologise."""
        now = turn.state.last_activity_at
        turn.state = copy.deepcopy(snapshot)
        turn.state.last_activity_at = now
        turn.error = error
        turn.keep_buttons = True  # the state is as before the turn, so are its buttons
        turn.replies = [r for r in turn.replies if r.key.startswith("session_")]
        turn.notices = []  # their replies are dropped: a later turn or poll tells them
        turn.say(key)

    async def _unlinked(self, turn: Turn) -> None:
        """A channel user with no linked resident: only a link code is accepted."""
        text = (turn.message.text or "").strip()
        if not text:
            turn.say("link_required")
            return
        if len(text) > self.settings.max_message_chars:
            turn.say("too_long", limit=self.settings.max_message_chars)
            return
        parse = await self._parse(text, reference_date=turn.today)
        turn.read(text, parse)
        turn.entities = first_entities(parse.get("entities") or [])
        turn.intent = (parse.get("intent") or {}).get("name")
        code = turn.entities.get("link_code")
        if code is None and text.isdigit() and 4 <= len(text) <= 10:
            code = text
        if code is None:
            turn.say("link_required")
            return
        turn.actions.append("link_account")
        reply, linked = await redeem_link_code(
            self.billing,
            str(code),
            channel=turn.message.channel,
            external_id=turn.message.external_user_id,
        )
        turn.add(reply)
        if linked is not None:
            turn.resident_id, turn.household_id = linked
            await asyncio.to_thread(
                self.store.link,
                turn.message.channel,
                turn.message.external_user_id,
                linked[0],
                linked[1],
                turn.now,
            )
            # Right after the property office's link code is the one moment (besides a
            # staff one-time code) a PIN may be chosen: offer it now.
            await self.policy.after_link(turn)

    # -- rendering and logging ---------------------------------------------------------

    def _render(self, turn: Turn) -> list[OutgoingMessage]:
        if not turn.replies and turn.keep_buttons:
            return []
        if not turn.replies:
            turn.state.buttons = []
            return []
        messages = self.render_replies(turn.replies, turn.language)
        buttons = messages[0].buttons
        if buttons or not turn.keep_buttons:
            buttons = tuple(dataclasses.replace(b, id=_button_id()) for b in buttons)
            messages[0] = dataclasses.replace(messages[0], buttons=buttons)
            turn.state.buttons = [
                {"id": b.id, "title": b.title, "payload": b.payload} for b in buttons
            ]
        return messages

    @staticmethod
    def _resolve_button(message: IncomingMessage, state: ConversationState) -> IncomingMessage:
        """A press by button id, as the payload the conversation holds for that id.

        An id this conversation's last reply did not offer resolves to nothing
        (the turn answers "that button has expired").
        """
        if message.button_id is None or message.button_payload is not None:
            return message
        for button in state.buttons:
            if button.get("id") and button.get("id") == message.button_id:
                return dataclasses.replace(message, button_payload=str(button["payload"]))
        return message

    def render_replies(self, replies: list[Reply], language: str) -> list[OutgoingMessage]:
        """Replies rendered as one message in ``language`` (``en`` unless ``zh``)."""
        language = language if language in ("en", "zh") else "en"
        texts: list[str] = []
        buttons: list[Button] = []
        attachments: list[Attachment] = []
        for reply in replies:
            texts.append(self.responses.render(reply, language))
            buttons.extend(self.responses.buttons(reply, language))
            attachments.extend(reply.attachments)
        text = "\n".join(texts)
        return [
            OutgoingMessage(
                text=text,
                buttons=tuple(buttons),
                attachments=tuple(attachments),
                language=language,
                spoken=speak_replies(replies, language, self.responses),
            )
        ]

    def _record(
        self,
        turn: Turn,
        outgoing: list[OutgoingMessage],
        slots_before: dict[str, Any],
        started: float,
    ) -> TurnRecord:
        message = turn.message
        raw = message.text
        masked = mask_pii(raw)
        if turn.secret:
            raw = masked = SECRET_MASK
        parse = turn.parse or {}
        return TurnRecord(
            at=turn.now,
            channel=message.channel,
            resident_id=turn.resident_id,
            household_id=turn.household_id,
            session_id=turn.state.session_id,
            text_raw=raw,
            text_masked=masked,
            button_payload=message.button_payload,
            language=turn.language,
            intent=turn.intent,
            confidence=turn.confidence,
            ranking=list(parse.get("intent_ranking") or [])[:5],
            entities=[] if turn.secret else list(parse.get("entities") or []),
            slots_before=slots_before,
            slots_after=dict(turn.state.slots),
            actions=list(turn.actions),
            replies=[
                {
                    "text": m.text,
                    "buttons": [{"title": b.title, "payload": b.payload} for b in m.buttons],
                    "attachments": [a.filename for a in m.attachments],
                    "keys": [r.key for r in turn.replies],
                }
                for m in outgoing
            ],
            verification=list(turn.verification),
            payment_ids=list(dict.fromkeys(turn.payment_ids)),
            latency_ms=round((time.perf_counter() - started) * 1000, 3),
            error=turn.error,
            transcript=turn.transcript,
            delivery_id=message.delivery_id,
            delivery_replies=(
                None
                if message.delivery_id is None
                else json.dumps([dump_message(m) for m in outgoing], ensure_ascii=False)
            ),
        )


def _button_id() -> str:
    """A short opaque button id: 8 URL-safe characters (48 random bits)."""
    return secrets.token_urlsafe(6)


__all__ = ["DialogueEngine", "Reply"]
