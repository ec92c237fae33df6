"""bot_enrollment_media: encrypted enrollment samples waiting between turns

Revision ID: 0003
Revises: 0002
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "bot_enrollment_media",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("key", sa.String(length=80), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("label", sa.String(length=32), nullable=True),
        sa.Column("key_id", sa.String(length=16), nullable=False),
        sa.Column("nonce", sa.LargeBinary(), nullable=False),
        sa.Column("ciphertext", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("key", "position", name="uq_bot_enrollment_media"),
    )
    with op.batch_alter_table("bot_enrollment_media") as batch_op:
        batch_op.create_index("ix_bot_enrollment_media_key", ["key"], unique=False)
        batch_op.create_index("ix_bot_enrollment_media_created_at", ["created_at"], unique=False)


def downgrade() -> None:
    op.drop_table("bot_enrollment_media")
