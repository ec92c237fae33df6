"""Channel links: which resident a Telegram chat or a paired speaker belongs to."""

from __future__ import annotations

from datetime import datetime
from typing import cast

from sqlalchemy import (
    DateTime,
    String,
    Table,
    bindparam,
    select,
)
from sqlalchemy.orm import Mapped, mapped_column

from bot.store.schema import Base, StoreBase


class LinkRow(Base):
    __tablename__ = "bot_channel_links"

    channel: Mapped[str] = mapped_column(String(32), primary_key=True)
    external_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    resident_id: Mapped[str] = mapped_column(String(64), index=True)
    household_id: Mapped[str] = mapped_column(String(64))
    linked_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    #: Set when the channel said the user can't be reached (blocked the bot).
    unreachable_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


_links = cast(Table, LinkRow.__table__)
#: A channel user's link (built once: a turn runs it, statement construction is not free).
_LINKED = select(_links.c.resident_id, _links.c.household_id).where(
    _links.c.channel == bindparam("b_channel"), _links.c.external_id == bindparam("b_external_id")
)
#: The same link as two scalar subqueries (``link_resident_id``, ``link_household_id``), for a
#: statement that reads it along with something else (the turn's lease: one round trip).
LINK_COLUMNS = tuple(
    select(column)
    .where(
        _links.c.channel == bindparam("b_channel"),
        _links.c.external_id == bindparam("b_external_id"),
    )
    .scalar_subquery()
    .label(f"link_{column.name}")
    for column in (_links.c.resident_id, _links.c.household_id)
)


class Links(StoreBase):
    """Channel users linked to residents."""

    def linked_resident(self, channel: str, external_id: str) -> tuple[str, str] | None:
        """``(resident_id, household_id)`` linked to a channel user, or ``None``."""
        row = self.read_one(_LINKED, {"b_channel": channel, "b_external_id": external_id})
        return (row.resident_id, row.household_id) if row else None

    def link(
        self, channel: str, external_id: str, resident_id: str, household_id: str, now: datetime
    ) -> None:
        """Link a channel user to a resident (replacing an earlier link)."""
        with self.session() as s:
            row = s.get(LinkRow, (channel, external_id))
            if row is None:
                s.add(
                    LinkRow(
                        channel=channel,
                        external_id=external_id,
                        resident_id=resident_id,
                        household_id=household_id,
                        linked_at=now,
                    )
                )
            else:
                row.resident_id = resident_id
                row.household_id = household_id
                row.linked_at = now
                row.unreachable_at = None  # linked again: reachable again
