"""Persistence of conversations, the conversation log, PINs, lockouts and channel links.

The dialogue owns these tables (own metadata, own Alembic folder
``bot/migrations``, version table ``alembic_version_bot``). They can live in the
billing database (the embedded default) or in a database of their own
(``BILLTALK_DIALOGUE_DATABASE_URL``).

Each concern is a small module with its own tables:

* :mod:`bot.store.conversations`: conversations, state, the turn log, events, and
  inbound deliveries already processed (one turn, one transaction);
* :mod:`bot.store.notice_log`: backend notices written into conversations;
* :mod:`bot.store.credentials`: PIN hashes and verification lockouts;
* :mod:`bot.store.links`: channel users linked to residents;
* :mod:`bot.store.enrollment_media`: encrypted enrollment samples in flight.

:class:`ConversationStore` is the one object the engine holds; it is those parts
over one database engine. The push path's outbox lives with it in
:mod:`bot.outbox`.
"""

from __future__ import annotations

from bot.store.conversations import (
    ConcurrentTurnError,
    ConversationBusyError,
    ConversationLog,
    ConversationRow,
    EventRow,
    LoadedConversation,
    ProcessedDeliveryRow,
    TurnRecord,
    TurnRow,
)
from bot.store.credentials import Credentials, LockoutRow, PinRow
from bot.store.enrollment_media import EnrollmentMediaRow
from bot.store.links import LinkRow, Links
from bot.store.notice_log import NoticeAlreadyWrittenError, NoticeDeliveryRow, NoticeWrite
from bot.store.schema import MIGRATIONS, VERSION_TABLE, Base, ensure_schema


class ConversationStore(ConversationLog, Credentials, Links):
    """Reads and writes the dialogue's tables (see the package docstring for the parts).

    Args:
        engine: A SQLAlchemy engine (see :func:`billtalk.db.make_engine`) whose
            database has the dialogue's schema (:func:`ensure_schema`).
    """


__all__ = [
    "MIGRATIONS",
    "VERSION_TABLE",
    "Base",
    "ConcurrentTurnError",
    "ConversationBusyError",
    "ConversationRow",
    "ConversationStore",
    "Credentials",
    "EnrollmentMediaRow",
    "EventRow",
    "LinkRow",
    "Links",
    "LoadedConversation",
    "LockoutRow",
    "NoticeAlreadyWrittenError",
    "NoticeDeliveryRow",
    "NoticeWrite",
    "PinRow",
    "ProcessedDeliveryRow",
    "TurnRecord",
    "TurnRow",
    "ensure_schema",
]
