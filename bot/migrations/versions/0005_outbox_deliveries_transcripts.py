"""bot_outbox (the push path), bot_processed_deliveries (exactly-once inbound),
bot_turns.transcript, bot_channel_links.unreachable_at

Revision ID: 0005
Revises: 0004
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "bot_outbox",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("conversation_id", sa.String(length=36), nullable=True),
        sa.Column("resident_id", sa.String(length=64), nullable=True),
        sa.Column("channel", sa.String(length=32), nullable=False),
        sa.Column("external_user_id", sa.String(length=128), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("dedupe_key", sa.String(length=200), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("claimed_by", sa.String(length=64), nullable=True),
        sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("channel", "external_user_id", "dedupe_key", name="uq_bot_outbox_dedupe"),
    )
    op.create_index("ix_bot_outbox_due", "bot_outbox", ["status", "channel", "next_attempt_at"])
    op.create_index("ix_bot_outbox_conversation", "bot_outbox", ["conversation_id"])
    op.create_table(
        "bot_processed_deliveries",
        sa.Column("delivery_id", sa.String(length=200), nullable=False),
        sa.Column("conversation_id", sa.String(length=36), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("delivery_id"),
    )
    with op.batch_alter_table("bot_turns") as batch:
        batch.add_column(sa.Column("transcript", sa.Text(), nullable=True))
    with op.batch_alter_table("bot_channel_links") as batch:
        batch.add_column(sa.Column("unreachable_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("bot_channel_links") as batch:
        batch.drop_column("unreachable_at")
    with op.batch_alter_table("bot_turns") as batch:
        batch.drop_column("transcript")
    op.drop_table("bot_processed_deliveries")
    op.drop_index("ix_bot_outbox_conversation", table_name="bot_outbox")
    op.drop_index("ix_bot_outbox_due", table_name="bot_outbox")
    op.drop_table("bot_outbox")
