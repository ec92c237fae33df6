"""bot_telegram_updates.payload: the raw update of a claim acknowledged to Telegram before
its turn was done (a voice note), kept until done so a live worker can take it over when
the claiming worker dies; a partial index finds such claims

Revision ID: 0008
Revises: 0007
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ACKED_UNFINISHED = sa.text("status = 'processing' AND payload IS NOT NULL")


def upgrade() -> None:
    with op.batch_alter_table("bot_telegram_updates") as batch:
        batch.add_column(sa.Column("payload", sa.Text(), nullable=True))
    op.create_index(
        "ix_bot_telegram_updates_acked",
        "bot_telegram_updates",
        ["bot_id", "claimed_at"],
        postgresql_where=ACKED_UNFINISHED,
        sqlite_where=ACKED_UNFINISHED,
    )


def downgrade() -> None:
    op.drop_index("ix_bot_telegram_updates_acked", table_name="bot_telegram_updates")
    with op.batch_alter_table("bot_telegram_updates") as batch:
        batch.drop_column("payload")
