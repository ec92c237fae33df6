"""Step-up credentials the dialogue keeps: PIN hashes and verification lockouts."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import (
    DateTime,
    Integer,
    String,
)
from sqlalchemy.orm import Mapped, mapped_column

from bot.store.schema import Base, StoreBase, _aware


class PinRow(Base):
    __tablename__ = "bot_pins"

    resident_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    pin_hash: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class LockoutRow(Base):
    __tablename__ = "bot_verification_lockouts"

    resident_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Credentials(StoreBase):
    """PIN hashes (argon2) and failure counts / lockouts per resident and kind."""

    def get_pin_hash(self, resident_id: str) -> str | None:
        """The argon2 hash of the resident's PIN, or ``None``."""
        with self.session() as s:
            row = s.get(PinRow, resident_id)
            return row.pin_hash if row else None

    def set_pin_hash(self, resident_id: str, pin_hash: str, now: datetime) -> None:
        """Store (or replace) the resident's PIN hash."""
        with self.session() as s:
            row = s.get(PinRow, resident_id)
            if row is None:
                s.add(
                    PinRow(
                        resident_id=resident_id, pin_hash=pin_hash, created_at=now, updated_at=now
                    )
                )
            else:
                row.pin_hash = pin_hash
                row.updated_at = now

    # -- lockouts ----------------------------------------------------------------

    def locked_until(self, resident_id: str, kind: str, now: datetime) -> datetime | None:
        """Until when ``kind`` is locked for the resident, or ``None`` if it is not."""
        with self.session() as s:
            row = s.get(LockoutRow, (resident_id, kind))
            until = _aware(row.locked_until) if row else None
            return until if until is not None and until > now else None

    def record_failure(
        self, resident_id: str, kind: str, now: datetime, max_failures: int, lock_for: timedelta
    ) -> tuple[int, datetime | None]:
        """Count a failed verification; returns (failures, locked_until if it now locks)."""
        with self.session() as s:
            row = s.get(LockoutRow, (resident_id, kind))
            if row is None:
                row = LockoutRow(resident_id=resident_id, kind=kind, failures=0, updated_at=now)
                s.add(row)
            previous_lock = _aware(row.locked_until)
            if previous_lock is not None and previous_lock <= now:
                row.failures = 0  # an expired lock starts a new count
                row.locked_until = None
            row.failures = (row.failures or 0) + 1
            row.updated_at = now
            if row.failures >= max_failures:
                row.locked_until = now + lock_for
                return row.failures, row.locked_until
            return row.failures, None

    def record_success(self, resident_id: str, kind: str, now: datetime) -> None:
        """A passed verification resets the failure count."""
        with self.session() as s:
            row = s.get(LockoutRow, (resident_id, kind))
            if row is not None:
                row.failures = 0
                row.locked_until = None
                row.updated_at = now
