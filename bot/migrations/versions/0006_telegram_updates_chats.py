"""bot_telegram_updates (each Telegram update claimed once, per bot; chat order across
workers) and bot_telegram_chats (language chosen with /lang, group told once)

Revision ID: 0006
Revises: 0005
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "bot_telegram_updates",
        sa.Column("bot_id", sa.String(length=32), nullable=False),
        sa.Column("update_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("chat_id", sa.String(length=32), nullable=True),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("owner", sa.String(length=36), nullable=True),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("done_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("bot_id", "update_id"),
    )
    op.create_index(
        "ix_bot_telegram_updates_chat", "bot_telegram_updates", ["bot_id", "chat_id", "status"]
    )
    op.create_table(
        "bot_telegram_chats",
        sa.Column("bot_id", sa.String(length=32), nullable=False),
        sa.Column("chat_id", sa.String(length=32), nullable=False),
        sa.Column("language", sa.String(length=8), nullable=True),
        sa.Column("group_told", sa.Boolean(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("bot_id", "chat_id"),
    )


def downgrade() -> None:
    op.drop_table("bot_telegram_chats")
    op.drop_index("ix_bot_telegram_updates_chat", table_name="bot_telegram_updates")
    op.drop_table("bot_telegram_updates")
