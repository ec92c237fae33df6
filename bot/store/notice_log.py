"""Backend notices written into conversations: at most once each (``bot.notices``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import (
    DateTime,
    ForeignKey,
    Integer,
    String,
    Text,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from bot.store.schema import Base, StoreBase


class NoticeDeliveryRow(Base):
    """A backend notice written into a conversation (``bot.notices``): at most one row each.

    The primary key is the backend's notice id, so a notice can be written into
    the conversations once only, whichever worker tries; the backend is told it
    was delivered only afterwards (``marked_at``).
    """

    __tablename__ = "bot_notice_deliveries"

    notice_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    conversation_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("bot_conversations.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(32))
    #: ``poll``: written as an event, the channel sends it when the backend
    #: accepts the delivery; ``turn``: told in a resident's turn reply.
    mode: Mapped[str] = mapped_column(String(8))
    channel: Mapped[str] = mapped_column(String(32))
    language: Mapped[str] = mapped_column(String(8))
    #: What the resident is told (``poll`` mode), for a retry to send.
    text: Mapped[str | None] = mapped_column(Text, nullable=True)
    written_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    #: When the backend accepted the delivery (``None`` until then).
    marked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class NoticeAlreadyWrittenError(RuntimeError):
    """The notice was already written into a conversation; nothing was written now."""


@dataclass(frozen=True)
class NoticeWrite:
    """A backend notice to record as written into a conversation (``NoticeDeliveryRow``)."""

    notice_id: int
    kind: str
    mode: str
    channel: str
    language: str
    text: str | None = None


class NoticeLog(StoreBase):
    """Which backend notices were written into which conversation, and when marked."""

    @staticmethod
    def _add_notice(s: Session, conversation_id: str, notice: NoticeWrite, at: datetime) -> None:
        """Record ``notice`` as written (in ``s``'s transaction), or raise if it already was."""
        if s.get(NoticeDeliveryRow, notice.notice_id) is not None:
            raise NoticeAlreadyWrittenError(notice.notice_id)
        s.add(
            NoticeDeliveryRow(
                notice_id=notice.notice_id,
                conversation_id=conversation_id,
                kind=notice.kind,
                mode=notice.mode,
                channel=notice.channel,
                language=notice.language,
                text=notice.text,
                written_at=at,
            )
        )
        try:
            s.flush()  # a concurrent writer loses on the primary key
        except IntegrityError as exc:
            raise NoticeAlreadyWrittenError(notice.notice_id) from exc

    def notice_delivery(self, notice_id: int) -> NoticeDeliveryRow | None:
        """Where and how a backend notice was written, or ``None`` if it was not."""
        with self.session() as s:
            return s.get(NoticeDeliveryRow, notice_id)

    def notice_marked(self, notice_id: int, at: datetime) -> None:
        """Note that the backend accepted the notice's delivery."""
        with self.session() as s:
            s.execute(
                update(NoticeDeliveryRow)
                .where(NoticeDeliveryRow.notice_id == notice_id)
                .values(marked_at=at)
                .execution_options(synchronize_session=False)
            )
