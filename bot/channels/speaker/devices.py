"""Speakers known to billtalk: pairing to a household, pairing lockouts, HTTP device keys.

A speaker is *paired* when its device id is linked to a resident in the
dialogue's channel links (channel ``speaker``), exactly as a Telegram chat is
linked: the engine's unlinked flow redeems the household's link code said to it
("my link code is 123456"). This module keeps what is speaker-specific, in its
own table ``speaker_devices`` (own Alembic folder, version table
``alembic_version_speaker``):

* when each device was first and last heard, and what it calls itself;
* wrong link codes said to a device, and the pairing lock that follows too many
  (``BILLTALK_SPEAKER_PAIRING_MAX_FAILURES`` within a lock period);
* the SHA-256 hash of an HTTP device's key (``POST /api/v1/speaker/ask``).

Unpairing removes the link and clears the speaker's conversation, so the next
request starts unpaired.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import DateTime, Engine, Integer, MetaData, String, select, update
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from billtalk.db import upgrade

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
VERSION_TABLE = "alembic_version_speaker"
#: The channel name of every speaker front end (Wyoming, Alexa, HTTP).
CHANNEL = "speaker"


class Base(DeclarativeBase):
    metadata = MetaData()


class DeviceRow(Base):
    __tablename__ = "speaker_devices"

    device_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    label: Mapped[str] = mapped_column(String(128), default="")
    #: ``wyoming``, ``alexa`` or ``http``.
    source: Mapped[str] = mapped_column(String(16), default="wyoming")
    key_hash: Mapped[str | None] = mapped_column(String(64), nullable=True, unique=True)
    failed_codes: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    first_seen: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_seen: Mapped[datetime] = mapped_column(DateTime(timezone=True))


def ensure_schema(url: str) -> None:
    """Create or upgrade the ``speaker_devices`` table at ``url``."""
    upgrade(MIGRATIONS, url, VERSION_TABLE)


def _aware(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def key_hash(key: str) -> str:
    """The stored form of an HTTP device key."""
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class DeviceInfo:
    """A speaker as ``billtalk speaker devices`` lists it."""

    device_id: str
    label: str
    source: str
    paired: bool
    resident_id: str | None
    household_id: str | None
    paired_at: datetime | None
    last_seen: datetime | None
    pairing_locked_until: datetime | None

    def to_dict(self) -> dict[str, object]:
        """The JSON form."""
        return {
            "device_id": self.device_id,
            "label": self.label,
            "source": self.source,
            "paired": self.paired,
            "resident_id": self.resident_id,
            "household_id": self.household_id,
            "paired_at": self.paired_at.isoformat() if self.paired_at else None,
            "last_seen": self.last_seen.isoformat() if self.last_seen else None,
            "pairing_locked_until": (
                self.pairing_locked_until.isoformat() if self.pairing_locked_until else None
            ),
        }


class DeviceRegistry:
    """The speakers table, next to the dialogue's links and conversations.

    Args:
        engine: The dialogue database (the same one the engine's store uses).
        max_failures: Wrong link codes before pairing locks.
        lock_minutes: How long pairing stays locked.
    """

    def __init__(self, engine: Engine, *, max_failures: int = 5, lock_minutes: int = 15) -> None:
        self.engine = engine
        self.max_failures = max_failures
        self.lock = timedelta(minutes=lock_minutes)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """One transaction."""
        with Session(self.engine, expire_on_commit=False) as session, session.begin():
            yield session

    def _row(self, s: Session, device_id: str, source: str, now: datetime) -> DeviceRow:
        row = s.get(DeviceRow, device_id)
        if row is None:
            row = DeviceRow(
                device_id=device_id,
                label="",
                source=source,
                failed_codes=0,
                first_seen=now,
                last_seen=now,
            )
            s.add(row)
        return row

    def touch(self, device_id: str, source: str, now: datetime, label: str | None = None) -> None:
        """Record that the device was heard (created on first sight)."""
        with self.session() as s:
            row = self._row(s, device_id, source, now)
            row.last_seen = now
            if label:
                row.label = label[:128]

    def pairing_locked_until(self, device_id: str, now: datetime) -> datetime | None:
        """When pairing unlocks for this device, if it is locked now."""
        with self.session() as s:
            row = s.get(DeviceRow, device_id)
            until = _aware(row.locked_until) if row else None
            return until if until is not None and until > now else None

    def record_failed_code(self, device_id: str, now: datetime) -> datetime | None:
        """Count a wrong link code; when pairing locks, until when."""
        with self.session() as s:
            row = self._row(s, device_id, "wyoming", now)
            until = _aware(row.locked_until)
            if until is not None and until <= now:
                row.failed_codes = 0
                row.locked_until = None
            row.failed_codes += 1
            if row.failed_codes >= self.max_failures:
                row.locked_until = now + self.lock
                row.failed_codes = 0
                return _aware(row.locked_until)
            return None

    def record_paired(self, device_id: str) -> None:
        """The device was paired: forget its wrong codes."""
        with self.session() as s:
            s.execute(
                update(DeviceRow)
                .where(DeviceRow.device_id == device_id)
                .values(failed_codes=0, locked_until=None)
            )

    def issue_key(self, device_id: str, now: datetime, label: str = "") -> str:
        """A new HTTP key for ``device_id`` (replacing any earlier one); shown once."""
        key = "spk_" + secrets.token_urlsafe(24)
        with self.session() as s:
            row = self._row(s, device_id, "http", now)
            row.key_hash = key_hash(key)
            row.source = "http"
            if label:
                row.label = label[:128]
        return key

    def device_for_key(self, key: str) -> str | None:
        """The device an HTTP key belongs to, or ``None``."""
        if not key:
            return None
        with self.session() as s:
            return s.scalar(select(DeviceRow.device_id).where(DeviceRow.key_hash == key_hash(key)))

    def devices(self, *, paired_only: bool = True) -> list[DeviceInfo]:
        """Known speakers (by default only paired ones), most recently heard first."""
        from bot.store import LinkRow

        now = datetime.now(UTC)
        with self.session() as s:
            links = {
                row.external_id: row
                for row in s.scalars(select(LinkRow).where(LinkRow.channel == CHANNEL))
            }
            rows = {row.device_id: row for row in s.scalars(select(DeviceRow))}
        out: list[DeviceInfo] = []
        for device_id in set(links) | set(rows):
            link, row = links.get(device_id), rows.get(device_id)
            if paired_only and link is None:
                continue
            until = _aware(row.locked_until) if row else None
            out.append(
                DeviceInfo(
                    device_id=device_id,
                    label=row.label if row else "",
                    source=row.source if row else "wyoming",
                    paired=link is not None,
                    resident_id=link.resident_id if link else None,
                    household_id=link.household_id if link else None,
                    paired_at=_aware(link.linked_at) if link else None,
                    last_seen=_aware(row.last_seen) if row else None,
                    pairing_locked_until=until if until and until > now else None,
                )
            )
        out.sort(key=lambda d: d.last_seen or datetime.min.replace(tzinfo=UTC), reverse=True)
        return out

    def find(self, words: str, resident_id: str) -> list[DeviceInfo]:
        """The resident's paired speakers whose label or id matches ``words``."""
        needle = words.lower().strip()
        mine = [d for d in self.devices() if d.resident_id == resident_id]
        return [d for d in mine if needle and (needle in d.label.lower() or needle == d.device_id)]

    def unpair(self, device_id: str) -> bool:
        """Remove the device's link and clear its conversation; whether it was paired."""
        from bot.store import ConversationRow, LinkRow

        with self.session() as s:
            link = s.get(LinkRow, (CHANNEL, device_id))
            if link is not None:
                s.delete(link)
            s.execute(
                update(ConversationRow)
                .where(
                    ConversationRow.channel == CHANNEL,
                    ConversationRow.external_user_id == device_id,
                )
                .values(resident_id=None, household_id=None, state="{}")
                .execution_options(synchronize_session=False)
            )
            return link is not None
