"""The Telegram adapter: Telegram updates in, dialogue-engine turns, replies out.

:class:`TelegramAdapter` owns the PTB handlers. Each handler turns an update
into an :class:`~bot.messages.IncomingMessage` (text, a pressed button's id, a
voice note, a photo or round video note as an attachment) for
``DialogueEngine.handle`` and sends the replies through
:class:`~bot.channels.telegram.channel.TelegramChannel`. Around every handler:

* **exactly once**: the update is claimed in the ledger
  (:class:`~bot.channels.telegram.ledger.UpdateLedger`) first; a redelivered or
  duplicated update is acknowledged and dropped;
* **in order**: an update waits for earlier updates of its chat, in this process
  (:class:`ChatSequencer`) and in other workers (the ledger);
* **acknowledged early** (webhook, voice notes and other media only): the webhook is
  told once the update is claimed with its raw JSON (:meth:`TelegramAdapter.expect_ack`),
  so it answers Telegram while the turn goes on in the background.

What the adapter decides itself, without the engine: group chats (told once
that billtalk talks in private chats only, then ignored), edited and forwarded
messages (never acted on), update kinds the bot does not read (stickers,
locations, contacts, polls...: a clear reply), files over the size limit
(refused by their declared size, before any download), ``/lang`` and ``/unlink``.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from telegram import Message, Update
from telegram.constants import ChatAction
from telegram.error import TelegramError
from telegram.ext import (
    Application,
    BaseHandler,
    BaseUpdateProcessor,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    TypeHandler,
    filters,
)

from billtalk.logs import get_logger
from bot.channels.base import ChannelSendError, ChannelUnreachable
from bot.channels.telegram import texts
from bot.channels.telegram.channel import NAME, TelegramChannel
from bot.channels.telegram.ledger import UpdateLedger
from bot.channels.telegram.masking import mask_token
from bot.channels.telegram.settings import TelegramSettings
from bot.messages import Attachment, AttachmentKind, IncomingMessage, OutgoingMessage
from bot.store import ConversationBusyError

log = get_logger("bot.channels.telegram")

#: Commands handed to the engine as the words they stand for.
ENGINE_COMMANDS = ("balance", "pay", "history", "usage", "reading", "autopay", "human", "help")
Callback = Callable[[Update, ContextTypes.DEFAULT_TYPE], Coroutine[Any, Any, None]]


@dataclass(frozen=True)
class EarlyAck:
    """A webhook request waiting to answer Telegram once its update is claimed.

    Attributes:
        payload: The raw update (JSON), kept in the claim row until the turn is done.
        acknowledge: Called once the claim is made (or refused): the request answers 200.
    """

    payload: str
    acknowledge: Callable[[], None]


def bot_id_of(token: str) -> str:
    """The bot's id: the number before ``:`` in its token (not secret)."""
    return token.split(":", 1)[0] or "bot"


class ChatSequencer:
    """One lock per chat, handed out first come first served: a chat's updates run in order."""

    def __init__(self) -> None:
        self._locks: dict[str, asyncio.Lock] = {}
        self._users: dict[str, int] = {}

    @contextlib.asynccontextmanager
    async def hold(self, key: str | None) -> AsyncIterator[None]:
        """Hold ``key``'s lock (no lock for ``None``: updates without a chat)."""
        if key is None:
            yield
            return
        lock = self._locks.setdefault(key, asyncio.Lock())
        self._users[key] = self._users.get(key, 0) + 1
        try:
            async with lock:
                yield
        finally:
            self._users[key] -= 1
            if self._users[key] == 0:
                del self._users[key]
                self._locks.pop(key, None)


def chat_key(update: object) -> str | None:
    """The chat an update belongs to (``None`` for updates without one)."""
    chat = update.effective_chat if isinstance(update, Update) else None
    return None if chat is None else str(chat.id)


class ChatOrderedUpdateProcessor(BaseUpdateProcessor):
    """PTB's concurrent update processing, one chat at a time per chat (polling mode)."""

    def __init__(self, max_concurrent_updates: int, sequencer: ChatSequencer) -> None:
        super().__init__(max_concurrent_updates)
        self.sequencer = sequencer

    async def do_process_update(self, update: object, coroutine: Awaitable[Any]) -> None:
        """Run the update's handlers after the chat's earlier updates (FIFO per chat)."""
        async with self.sequencer.hold(chat_key(update)):
            await coroutine

    async def initialize(self) -> None:
        """Nothing to set up."""

    async def shutdown(self) -> None:
        """Nothing to tear down."""


class TelegramAdapter:
    """The Telegram side of billtalk for one bot.

    Args:
        engine: The dialogue engine (``DialogueEngine``).
        settings: The Telegram settings (token, limits).
    """

    def __init__(self, engine: Any, settings: TelegramSettings) -> None:
        self.engine = engine
        self.settings = settings
        self.bot_id = bot_id_of(settings.token)
        self.ledger = UpdateLedger(engine.db, self.bot_id, stale_claim_s=settings.stale_claim_s)
        self.sequencer = ChatSequencer()
        self.channel: TelegramChannel | None = None
        #: Updates acted on / dropped as duplicates by this process (for the benchmark).
        self.handled = 0
        self.duplicates = 0
        #: Updates being handled whose ledger claim was fresh (see :attr:`remembers_redeliveries`).
        self._unseen: set[int] = set()
        #: The claims this process holds: update id -> owner (renewed by the webhook's sweep).
        self.claims: dict[int, str] = {}
        #: Webhook requests that answer once their update is claimed (:meth:`expect_ack`).
        self._acks: dict[int, EarlyAck] = {}

    @property
    def remembers_redeliveries(self) -> bool:
        """Whether the ledger keeps a handled update at least as long as Telegram may
        redeliver it (24 hours): ``keep_handled_h`` 0 (forever) or at least 24.

        Then an update whose claim was fresh (the ledger had no row of it) was never
        claimed, so no turn was recorded for it, and the engine need not read its
        delivery record before acting (:attr:`~bot.messages.IncomingMessage.delivery_unseen`).
        A redelivery, a stale claim taken over, or a shorter memory: the engine reads it.
        """
        keep = self.settings.keep_handled_h
        return keep == 0 or keep >= 24

    # -- wiring ---------------------------------------------------------------------------

    def attach(self, application: Application) -> None:
        """Add the handlers to ``application`` and bind the sending channel to its bot."""
        self.channel = TelegramChannel(application.bot)
        once = self._once
        private = filters.ChatType.PRIVATE
        handlers: list[BaseHandler[Any, Any, Any]] = [
            MessageHandler(~private, once(self.on_group)),
            CallbackQueryHandler(once(self.on_press)),
            MessageHandler(filters.UpdateType.EDITED, once(self.on_edited)),
            MessageHandler(filters.FORWARDED, once(self.on_forwarded)),
            CommandHandler("start", once(self.on_start)),
            CommandHandler("unlink", once(self.on_unlink)),
            CommandHandler("lang", once(self.on_lang)),
            CommandHandler(ENGINE_COMMANDS, once(self.on_command)),
            MessageHandler(filters.TEXT, once(self.on_text)),
            # slow turns (download, decoding, face checks): the webhook may acknowledge early
            MessageHandler(filters.VOICE | filters.AUDIO, once(self.on_voice, early=True)),
            MessageHandler(
                filters.PHOTO | filters.VIDEO_NOTE | filters.VIDEO | filters.Document.ALL,
                once(self.on_media, early=True),
            ),
            MessageHandler(filters.ALL, once(self.on_unsupported)),
            TypeHandler(Update, once(self.on_other)),
        ]
        application.add_handlers(handlers)
        application.add_error_handler(self.on_error)

    async def set_commands(self, bot: Any) -> None:
        """Register the command menu (``setMyCommands``) in English and Chinese."""
        await bot.set_my_commands(texts.commands("en"))
        await bot.set_my_commands(texts.commands("zh"), language_code="zh")

    def expect_ack(self, update_id: int, ack: EarlyAck) -> None:
        """Let ``ack`` answer the webhook once update ``update_id`` is claimed by a handler
        that may acknowledge early (voice notes, media); other handlers leave it waiting."""
        self._acks[update_id] = ack

    def forget_ack(self, update_id: int) -> None:
        """Drop an :meth:`expect_ack` no handler took (the update was handled otherwise)."""
        self._acks.pop(update_id, None)

    def _once(self, callback: Callback, *, early: bool = False) -> Callback:
        """``callback`` claimed in the ledger first, finished after (see the module doc).

        With ``early``, a webhook request waiting in :meth:`expect_ack` is answered once the
        claim (with the raw update) is made, and the turn goes on without it.
        """

        async def exactly_once(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
            chat = chat_key(update)
            owner = uuid.uuid4().hex
            ack = self._acks.pop(update.update_id, None) if early else None
            claimed = await asyncio.to_thread(
                self.ledger.claim_update,
                update.update_id,
                chat,
                owner,
                None if ack is None else ack.payload,
            )
            if ack is not None:  # claimed with its payload (or refused): Telegram may be told
                ack.acknowledge()
            if claimed is None:
                self.duplicates += 1
                log.info("telegram_duplicate_update", update_id=update.update_id)
                if update.callback_query is not None:
                    with contextlib.suppress(TelegramError):
                        await update.callback_query.answer()
                return
            self.claims[update.update_id] = owner
            acted = False  # whether the turn began and ran to its end (an error included)
            try:
                if claimed.wait and chat is not None:  # an earlier update of the chat is on
                    await self.ledger.wait_for_turn(
                        update.update_id, chat, self.settings.order_wait_s
                    )
                if claimed.fresh and self.remembers_redeliveries:
                    self._unseen.add(update.update_id)
                acted = True
                await callback(update, context)
            except asyncio.CancelledError:
                # The worker is stopping mid-turn: the claim stays (the turn may or may not
                # have been recorded) for a redelivery, or for a live worker's sweep when it
                # was acknowledged, to take over once stale (the engine reads the delivery).
                acted = False
                raise
            except ConversationBusyError:
                # The turn never began: another holder's lease on the conversation (often a
                # dead worker's, until it expires). An acknowledged update is not redelivered,
                # so its claim stays for a live worker's sweep to try again once stale.
                if claimed.kept:
                    acted = False
                    log.warning("telegram_turn_busy_retry_later", update_id=update.update_id)
                raise
            finally:
                self._unseen.discard(update.update_id)
                if acted:
                    # Done even when a send failed: the turn may have acted, and acting twice
                    # is worse than a reply the outbox could not deliver.
                    await asyncio.to_thread(self.ledger.finish, update.update_id, owner)
                    self.handled += 1
                self.claims.pop(update.update_id, None)

        exactly_once.__name__ = getattr(callback, "__name__", "handler")
        return exactly_once

    async def on_error(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Log a handler's error (masked); the worker keeps running."""
        error = context.error
        log.error(
            "telegram_handler_failed",
            update_id=getattr(update, "update_id", None),
            error=mask_token(f"{type(error).__name__}: {error}"),
        )

    # -- the turn -------------------------------------------------------------------------

    def language(self, update: Update) -> str:
        """The chat's language: chosen with ``/lang``, else the user's ``language_code``."""
        chat = chat_key(update)
        chosen = self.ledger.chat_language(chat) if chat else None
        if chosen:
            return chosen
        user = update.effective_user
        return texts.language_of(user.language_code if user else None)

    async def turn(
        self,
        update: Update,
        *,
        text: str | None = None,
        button_id: str | None = None,
        attachments: tuple[Attachment, ...] = (),
    ) -> list[OutgoingMessage]:
        """Hand one message of this update's chat to the engine; its replies."""
        chat = update.effective_chat
        assert chat is not None
        fields: dict[str, Any] = {
            "channel": NAME,
            "external_user_id": str(chat.id),
            "text": text,
            "attachments": attachments,
            "language": self.language(update),
            "supports_files": True,
            "delivery_id": f"{NAME}:{self.bot_id}:{update.update_id}",
            # The ledger lets an update through only if no worker finished it, so a turn
            # already recorded means its replies may never have been sent.
            "resend_if_processed": True,
            # Its first claim ever: no turn can have been recorded for it (see _once).
            "delivery_unseen": update.update_id in self._unseen,
        }
        if button_id is not None:
            fields["button_id"] = button_id
        replies: list[OutgoingMessage] = await self.engine.handle(IncomingMessage(**fields))
        return replies

    async def reply(self, chat_id: int, replies: list[OutgoingMessage]) -> None:
        """Send a turn's replies, retrying a failed send a few times (429s: as told)."""
        assert self.channel is not None
        for message in replies:
            await self._send_with_retries(chat_id, message)

    async def _send_with_retries(self, chat_id: int, message: OutgoingMessage) -> None:
        assert self.channel is not None
        delays = [0.2, 0.5, 1.0]
        for attempt in range(len(delays) + 1):
            try:
                await self.channel.send(str(chat_id), message)
                return
            except ChannelUnreachable:
                log.info("telegram_chat_unreachable", chat=chat_id)
                return
            except ChannelSendError as exc:
                if attempt == len(delays):
                    log.warning("telegram_reply_to_outbox", chat=chat_id, error=str(exc))
                    await asyncio.to_thread(self._to_outbox, chat_id, message)
                    return
                await asyncio.sleep(max(delays[attempt], exc.retry_after_s or 0.0))

    def _to_outbox(self, chat_id: int, message: OutgoingMessage) -> None:
        """A reply Telegram would not take now: the outbox sender retries it with backoff."""
        from bot.outbox import Outbox, Target

        Outbox(self.engine.store).enqueue(Target(NAME, str(chat_id)), message, kind="reply")

    async def say(self, update: Update, key: str, **values: Any) -> None:
        """Send one of the channel's own texts to the update's chat.

        These updates never reach the engine, so they are counted against the chat's
        message limit here (a flood of stickers gets one "slow down", not a reply each).
        """
        chat = update.effective_chat
        if chat is None:
            return
        check = getattr(self.engine, "flood_check", None)
        user = update.effective_user
        # (the user's own language: no database read before the flood check)
        language = texts.language_of(user.language_code if user else None)
        flooded = check(NAME, str(chat.id), language) if check else None
        if flooded is not None:
            await self.reply(chat.id, flooded)
            return
        text = texts.say(key, self.language(update), **values)
        await self.reply(chat.id, [OutgoingMessage(text=text, language=self.language(update))])

    # -- handlers ---------------------------------------------------------------------------

    async def on_text(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """A text message (an unknown ``/command`` included): a turn."""
        message = update.effective_message
        assert message is not None and update.effective_chat is not None
        await self.reply(update.effective_chat.id, await self.turn(update, text=message.text))

    async def on_start(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """``/start`` or the deep link ``/start CODE``: link with the code, or say hello."""
        assert update.effective_chat is not None
        args = context.args or []
        text = " ".join(args).strip() or texts.command_text("start", self.language(update))
        await self.reply(update.effective_chat.id, await self.turn(update, text=text))

    async def on_command(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """``/balance``, ``/pay``...: the words the command stands for, in the chat's language."""
        message = update.effective_message
        assert message is not None and message.text and update.effective_chat is not None
        name = message.text.split()[0].lstrip("/").split("@")[0].lower()
        words = texts.command_text(name, self.language(update)) or message.text
        extra = " ".join(context.args or [])
        text = f"{words} {extra}".strip()
        await self.reply(update.effective_chat.id, await self.turn(update, text=text))

    async def on_lang(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """``/lang en|zh`` (or ``/lang`` to switch): the language from now on."""
        chat = chat_key(update)
        assert chat is not None
        args = [a.lower() for a in (context.args or [])]
        if args and args[0] in ("en", "english"):
            language = "en"
        elif args and (args[0].startswith("zh") or args[0] in ("中文", "chinese", "cn")):
            language = "zh"
        else:
            language = "en" if self.language(update) == "zh" else "zh"
        self.ledger.set_chat_language(chat, language)
        await self.say(update, "lang_set")

    async def on_unlink(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """``/unlink``: forget which household this chat belongs to."""
        chat = chat_key(update)
        assert chat is not None
        removed = unlink_chat(self.engine.store, chat)
        await self.say(update, "unlinked" if removed else "not_linked")

    async def on_press(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """An inline button: the engine acts on its id; the pressed message shows the outcome."""
        query = update.callback_query
        assert query is not None
        try:
            if update.effective_chat is None or update.effective_chat.type != "private":
                return
            replies = await self.turn(update, button_id=str(query.data or ""))
            await self._show_outcome(update.effective_chat.id, query.message, replies)
        finally:
            with contextlib.suppress(TelegramError):
                await query.answer()

    async def _show_outcome(
        self, chat_id: int, pressed: Any, replies: list[OutgoingMessage]
    ) -> None:
        """Edit the pressed message into the first reply (buttons removed); send the rest."""
        if isinstance(pressed, Message) and replies:
            first = replies[0]
            fits = (
                not first.buttons
                and not first.attachments
                and first.text
                and len(first.text) <= 4096
            )
            try:
                if fits:
                    await pressed.edit_text(first.text, reply_markup=None)
                    replies = replies[1:]
                else:
                    await pressed.edit_reply_markup(reply_markup=None)
            except TelegramError as exc:  # too old to edit, unchanged...: send it instead
                log.info("telegram_edit_failed", error=mask_token(str(exc)))
        await self.reply(chat_id, replies)

    async def on_voice(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """A voice note or audio file: fetched and handed to the engine (which transcribes it)."""
        message = update.effective_message
        assert message is not None and update.effective_chat is not None
        media = message.voice or message.audio
        assert media is not None
        kind: AttachmentKind = "voice" if message.voice else "audio"
        mime = getattr(media, "mime_type", None) or "audio/ogg"
        attachment = await self._fetch(update, media, kind, mime, "voice.ogg")
        if attachment is not None:
            await self._media_turn(update, attachment, ChatAction.TYPING)

    async def on_media(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """A photo, round video note, video, or a document holding one (face verification)."""
        message = update.effective_message
        assert message is not None
        kind: AttachmentKind
        media: Any
        if message.photo:
            media, kind, mime, name = message.photo[-1], "image", "image/jpeg", "photo.jpg"
        elif message.video_note:
            media, kind, mime, name = message.video_note, "video", "video/mp4", "note.mp4"
        elif message.video:
            media, kind = message.video, "video"
            mime, name = message.video.mime_type or "video/mp4", "video.mp4"
        else:
            document = message.document
            assert document is not None
            mime = document.mime_type or ""
            top = mime.split("/")[0]
            if top not in ("image", "video", "audio"):
                await self.say(update, "unsupported")
                return
            kind = "image" if top == "image" else "video" if top == "video" else "audio"
            media, name = document, document.file_name or "file"
        attachment = await self._fetch(update, media, kind, mime, name)
        if attachment is not None:
            await self._media_turn(update, attachment, ChatAction.TYPING)

    async def _fetch(
        self, update: Update, media: Any, kind: AttachmentKind, mime: str, name: str
    ) -> Attachment | None:
        """The file's bytes (``getFile`` + download), refused by declared size when too big."""
        limit = self.settings.max_file_bytes
        size = getattr(media, "file_size", None)
        if size is not None and size > limit:
            await self.say(
                update,
                "file_too_big",
                size_mb=f"{size / 2**20:.1f}",
                limit_mb=f"{limit / 2**20:.0f}",
            )
            return None
        try:
            file = await media.get_file()
            if file.file_size is not None and file.file_size > limit:
                await self.say(
                    update,
                    "file_too_big",
                    size_mb=f"{file.file_size / 2**20:.1f}",
                    limit_mb=f"{limit / 2**20:.0f}",
                )
                return None
            data = bytes(await file.download_as_bytearray())
        except TelegramError as exc:
            log.warning("telegram_file_failed", error=mask_token(str(exc)))
            await self.say(update, "file_failed")
            return None
        if len(data) > limit:
            await self.say(
                update,
                "file_too_big",
                size_mb=f"{len(data) / 2**20:.1f}",
                limit_mb=f"{limit / 2**20:.0f}",
            )
            return None
        return Attachment(kind=kind, data=data, filename=name, mime_type=mime)

    async def _media_turn(self, update: Update, attachment: Attachment, action: str) -> None:
        chat = update.effective_chat
        assert chat is not None
        with contextlib.suppress(TelegramError):
            await chat.send_action(action)
        replies = await self.turn(update, attachments=(attachment,))
        await self.reply(chat.id, replies)

    async def on_group(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """A message in a group or channel: said once that billtalk talks in private only."""
        chat = chat_key(update)
        if chat is None or update.effective_message is None:
            return
        if self.ledger.tell_group_once(chat):
            await self.say(update, "private_only")

    async def on_edited(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """An edited message: never acted on (it could re-trigger a payment)."""
        await self.say(update, "edited")

    async def on_forwarded(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """A forwarded message: never acted on (someone else wrote it)."""
        await self.say(update, "forwarded")

    async def on_unsupported(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Stickers, locations, contacts, polls, dice...: a clear reply, nothing done."""
        await self.say(update, "unsupported")

    async def on_other(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Updates without a message to answer (poll answers, membership changes): recorded.

        A private message the library could not parse gets the "can't read that" reply.
        """
        log.info("telegram_update_ignored", update_id=update.update_id)
        chat_id = update.api_kwargs.get("unparsed_private_chat")
        if isinstance(chat_id, int):
            code = update.api_kwargs.get("unparsed_language_code")
            language = self.ledger.chat_language(str(chat_id)) or texts.language_of(
                code if isinstance(code, str) else None
            )
            text = texts.say("unsupported", language)
            await self.reply(chat_id, [OutgoingMessage(text=text)])


def unlink_chat(store: Any, chat_id: str) -> bool:
    """Remove the chat's link to a resident and forget the resident in its conversation.

    Returns whether the chat was linked. The conversation's state is reset, so
    nothing of the household (a pending confirmation, buttons) survives.
    """
    unlink = getattr(store, "unlink", None)
    if unlink is not None:
        return bool(unlink(NAME, chat_id))
    from sqlalchemy import delete, update

    from bot.store import ConversationRow, LinkRow

    with store.session() as s:
        removed = s.execute(
            delete(LinkRow).where(LinkRow.channel == NAME, LinkRow.external_id == chat_id)
        ).rowcount
        s.execute(
            update(ConversationRow)
            .where(ConversationRow.channel == NAME, ConversationRow.external_user_id == chat_id)
            .values(
                resident_id=None, household_id=None, state="{}", version=ConversationRow.version + 1
            )
            .execution_options(synchronize_session=False)
        )
    return bool(removed)


__all__ = [
    "ChatOrderedUpdateProcessor",
    "ChatSequencer",
    "EarlyAck",
    "TelegramAdapter",
    "unlink_chat",
]
