"""The reply vocabulary that actions produce and the dialogue renders.

An action answers with :class:`Reply` objects: a response key (a sentence in
``bot/responses.yml``), typed parameters (:class:`Money`, :class:`Term`, dates),
buttons to offer (:class:`ButtonSpec`) and files (:class:`Attachment`). Actions
never write text themselves; ``bot.responses`` renders replies in the
resident's language. This module is the one both sides import, so the actions
do not depend on the dialogue engine.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

AttachmentKind = Literal["pdf", "image", "video", "audio", "voice"]


@dataclass(frozen=True)
class Attachment:
    """A file sent with a message, in either direction.

    Attributes:
        kind: What it is (``pdf`` for a receipt, ``image`` for a selfie...).
        data: The bytes.
        filename: A name to show or save it under.
        mime_type: Its media type.
    """

    kind: AttachmentKind
    data: bytes = field(repr=False)
    filename: str = ""
    mime_type: str = "application/octet-stream"


@dataclass(frozen=True)
class Money:
    """An amount of money to show; formatted with the currency for the locale."""

    amount: Decimal
    currency: str = "CNY"


@dataclass(frozen=True)
class Term:
    """A value with a localised name, e.g. ``Term("utility", "water")``."""

    group: str
    value: str


@dataclass(frozen=True)
class ButtonSpec:
    """A button to offer: its title template key, parameters and payload."""

    key: str
    payload: str
    params: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Reply:
    """One thing to say: a response key, its parameters, buttons and attachments."""

    key: str
    params: Mapping[str, Any] = field(default_factory=dict)
    buttons: Sequence[ButtonSpec] = ()
    attachments: Sequence[Attachment] = ()


__all__ = ["Attachment", "AttachmentKind", "ButtonSpec", "Money", "Reply", "Term"]
