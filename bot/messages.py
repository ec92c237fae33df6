"""The channel-neutral message model.

Every channel (terminal chat, Telegram, smart speakers) turns what the resident
sent into an :class:`IncomingMessage` and shows the engine's
:class:`OutgoingMessage` objects in its own way: buttons as inline keyboards or
numbered choices, attachments as files, text as speech.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime

# Re-exported: a channel builds incoming attachments from here.
from actions.replies import Attachment as Attachment
from actions.replies import AttachmentKind as AttachmentKind


def utcnow() -> datetime:
    """The current instant, timezone-aware (UTC)."""
    return datetime.now(UTC)


@dataclass(frozen=True)
class Button:
    """A button offered with a reply.

    Attributes:
        title: What the button says, already in the resident's language.
        payload: What pressing it does, e.g. ``/confirm_payment{"token": "..."}``. It
            stays on the server (in the conversation state); channels never send it out.
        id: A short opaque id for this button in this conversation (at most 16
            characters), issued by the engine when the reply is rendered. Channels
            use it as the button's callback data (Telegram allows 64 bytes) and send
            it back as :attr:`IncomingMessage.button_id`.
    """

    title: str
    payload: str
    id: str = ""


@dataclass(frozen=True)
class IncomingMessage:
    """One message from a resident.

    Attributes:
        channel: The channel's name (``terminal``, ``telegram``, ``speaker``...).
        external_user_id: Who sent it, in the channel's own terms (a Telegram user id...).
        resident_id: The resident, when the channel already knows it (the terminal
            chat is started for one resident); otherwise the engine looks up the
            channel link.
        text: What the resident wrote or said, if anything.
        button_payload: The payload of a pressed button, for trusted in-process
            callers (tests, the terminal chat). Channels that receive button presses
            from outside send :attr:`button_id` instead.
        button_id: The id of a pressed button (:attr:`Button.id`). The engine looks
            it up in the conversation: an id it never issued, or one of a reply
            that has been replaced, is answered as an expired button.
        attachments: Files sent with the message (selfie, voice note...).
        language: A hint for the reply language (``en`` or ``zh``); the language of
            the message itself wins when it can be told.
        received_at: When the channel received it (UTC).
        supports_files: Whether the channel can deliver file attachments.
        delivery_id: The channel's unique id of this delivery (Telegram: the bot's id
            and the ``update_id``). The engine records it with the turn, in the same
            transaction, and ignores a message whose delivery id it has already
            processed: a redelivered update acts once, whichever worker receives it.
        resend_if_processed: The channel has no record that this delivery's replies
            were sent (its worker died between the turn and the send). If the engine
            already acted on the delivery, it returns the replies it recorded with it
            instead of nothing, so the resident is answered, and still acts only once.
        delivery_unseen: The channel vouches that no turn was ever recorded for
            :attr:`delivery_id` (the Telegram adapter: the update ledger's claim of it
            was its first, see :class:`~bot.channels.telegram.ledger.Claim`), so the
            engine does not read the delivery's record before acting. It still records
            the delivery id with the turn (a primary key: a second record of it fails).
    """

    channel: str
    external_user_id: str
    text: str | None = None
    resident_id: str | None = None
    button_payload: str | None = None
    button_id: str | None = None
    attachments: tuple[Attachment, ...] = ()
    language: str | None = None
    received_at: datetime = field(default_factory=utcnow)
    supports_files: bool = True
    delivery_id: str | None = None
    resend_if_processed: bool = False
    delivery_unseen: bool = False


@dataclass(frozen=True)
class OutgoingMessage:
    """One reply from the assistant.

    Attributes:
        text: The reply text.
        buttons: Buttons to offer, in order.
        attachments: Files to send (a receipt PDF...).
        language: The language the reply is in.
        spoken: The same reply for the ear (see :mod:`bot.spoken`): no symbols or
            list markup, amounts read the way people say them, the choices said
            aloud. Voice channels speak this instead of :attr:`text`.
        kind: What the message is: ``reply`` (a turn's answer), or for pushed
            messages ``notice``, ``staff`` or ``step_up``.
    """

    text: str
    buttons: tuple[Button, ...] = ()
    attachments: tuple[Attachment, ...] = ()
    language: str = "en"
    spoken: str = ""
    kind: str = "reply"


def dump_message(message: OutgoingMessage) -> str:
    """``message`` as stored JSON (outbox rows, a delivery's replies); attachments in base64."""
    return json.dumps(
        {
            "text": message.text,
            "spoken": message.spoken,
            "language": message.language,
            "kind": message.kind,
            "buttons": [{"id": b.id, "title": b.title} for b in message.buttons],
            "attachments": [
                {
                    "kind": a.kind,
                    "filename": a.filename,
                    "mime_type": a.mime_type,
                    "data": base64.b64encode(a.data).decode("ascii"),
                }
                for a in message.attachments
            ],
        },
        ensure_ascii=False,
    )


def load_message(text: str) -> OutgoingMessage:
    """The :class:`OutgoingMessage` stored by :func:`dump_message`.

    Buttons come back with their ids and titles only: the payloads stay in the
    conversation they were issued to.
    """
    data = json.loads(text)
    return OutgoingMessage(
        text=data.get("text", ""),
        spoken=data.get("spoken", ""),
        language=data.get("language", "en"),
        kind=data.get("kind", "notice"),
        buttons=tuple(Button(b["title"], "", b["id"]) for b in data.get("buttons", [])),
        attachments=tuple(
            Attachment(
                kind=a["kind"],
                data=base64.b64decode(a["data"]),
                filename=a.get("filename", ""),
                mime_type=a.get("mime_type", "application/octet-stream"),
            )
            for a in data.get("attachments", [])
        ),
    )
