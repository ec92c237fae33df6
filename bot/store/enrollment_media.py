"""Biometric enrollment samples waiting for the rest, encrypted (``bot.enrollment_media``)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    DateTime,
    Integer,
    LargeBinary,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from bot.store.schema import Base


class EnrollmentMediaRow(Base):
    """A biometric enrollment sample waiting for the rest (encrypted; ``bot.enrollment_media``)."""

    __tablename__ = "bot_enrollment_media"
    __table_args__ = (UniqueConstraint("key", "position", name="uq_bot_enrollment_media"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    #: ``<conversation id>:<session id>``.
    key: Mapped[str] = mapped_column(String(80), index=True)
    position: Mapped[int] = mapped_column(Integer)
    #: ``face`` (a selfie) or ``voice`` (a recording).
    kind: Mapped[str] = mapped_column(String(8))
    #: The prompted digits of a recording (not secret).
    label: Mapped[str | None] = mapped_column(String(32), nullable=True)
    key_id: Mapped[str] = mapped_column(String(16))
    nonce: Mapped[bytes] = mapped_column(LargeBinary)
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
