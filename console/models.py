"""The console's tables: staff accounts, sessions, login failures, review data, audit.

They live in the conversation database (the dialogue's, see ``bot.store``), because
tags, the reviewed flag and annotations are joined with the conversation log.
Own metadata, own Alembic folder ``console/migrations``, version table
``alembic_version_console``.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    Boolean,
    DateTime,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

ROLES = ("agent", "supervisor", "admin")


class Base(DeclarativeBase):
    metadata = MetaData()


class StaffRow(Base):
    """A staff account. ``buildings`` is a comma-separated list, or ``*`` for every building."""

    __tablename__ = "console_staff"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))
    buildings: Mapped[str] = mapped_column(Text, default="*")
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class SessionRow(Base):
    """A logged-in session; the cookie holds the token, the row its SHA-256."""

    __tablename__ = "console_sessions"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    staff_id: Mapped[int] = mapped_column(Integer, index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class LoginFailureRow(Base):
    """A failed login (for throttling per username and per address)."""

    __tablename__ = "console_login_failures"
    __table_args__ = (
        Index("ix_console_login_failures_username_at", "username", "at"),
        Index("ix_console_login_failures_address_at", "address", "at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(64))
    address: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ReviewRow(Base):
    """Console state of a conversation: reviewed flag, handoff assignment, resolution."""

    __tablename__ = "console_reviews"

    conversation_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    reviewed: Mapped[bool] = mapped_column(Boolean, default=False, index=True)
    reviewed_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    assigned_to: Mapped[str | None] = mapped_column(String(64), nullable=True)
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class TagRow(Base):
    """A tag on a conversation."""

    __tablename__ = "console_tags"
    __table_args__ = (
        UniqueConstraint("conversation_id", "tag", name="uq_console_tag"),
        Index("ix_console_tags_tag", "tag", "conversation_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    conversation_id: Mapped[str] = mapped_column(String(36))
    tag: Mapped[str] = mapped_column(String(40))
    added_by: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class NoteRow(Base):
    """A private note on a conversation (never shown to the resident)."""

    __tablename__ = "console_notes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    conversation_id: Mapped[str] = mapped_column(String(36), index=True)
    author: Mapped[str] = mapped_column(String(64))
    text: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class AnnotationRow(Base):
    """A turn's corrected intent and entities, queued for training (one row per turn)."""

    __tablename__ = "console_annotations"

    turn_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    conversation_id: Mapped[str] = mapped_column(String(36), index=True)
    text: Mapped[str] = mapped_column(Text)
    language: Mapped[str | None] = mapped_column(String(8), nullable=True)
    intent: Mapped[str] = mapped_column(String(64))
    #: JSON list of ``{"entity", "value", "start", "end"}``.
    entities: Mapped[str] = mapped_column(Text, default="[]")
    original_intent: Mapped[str | None] = mapped_column(String(64), nullable=True)
    original_confidence: Mapped[float | None] = mapped_column(Float, nullable=True)
    annotated_by: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class AuditRow(Base):
    """A staff action (the console's audit log until the backend's hash-chained one is used)."""

    __tablename__ = "console_audit"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    actor: Mapped[str] = mapped_column(String(80))
    action: Mapped[str] = mapped_column(String(40))
    target: Mapped[str | None] = mapped_column(String(80), nullable=True)
    data: Mapped[str] = mapped_column(Text, default="{}")


class DailyStatsRow(Base):
    """The dashboard's numbers of one closed day for one staff scope (they no longer change)."""

    __tablename__ = "console_daily_stats"

    #: The scope's buildings, comma-separated, or ``*``.
    scope_key: Mapped[str] = mapped_column(String(400), primary_key=True)
    #: ``YYYY-MM-DD`` (UTC).
    day: Mapped[str] = mapped_column(String(10), primary_key=True)
    #: JSON object: turns, active, handoff, fallback, paid, step-up pass / fail, latency p95.
    data: Mapped[str] = mapped_column(Text)
    computed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
