"""bot_notice_deliveries: backend notices written into conversations, once each

Revision ID: 0004
Revises: 0003
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "bot_notice_deliveries",
        sa.Column("notice_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("conversation_id", sa.String(length=36), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("mode", sa.String(length=8), nullable=False),
        sa.Column("channel", sa.String(length=32), nullable=False),
        sa.Column("language", sa.String(length=8), nullable=False),
        sa.Column("text", sa.Text(), nullable=True),
        sa.Column("written_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("marked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["conversation_id"], ["bot_conversations.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("notice_id"),
    )
    with op.batch_alter_table("bot_notice_deliveries") as batch_op:
        batch_op.create_index(
            "ix_bot_notice_deliveries_conversation_id", ["conversation_id"], unique=False
        )


def downgrade() -> None:
    op.drop_table("bot_notice_deliveries")
