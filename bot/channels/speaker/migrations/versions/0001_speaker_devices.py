"""speaker_devices: smart speakers seen, their HTTP keys and pairing lockouts

Revision ID: s0001
Revises:
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "s0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "speaker_devices",
        sa.Column("device_id", sa.String(length=128), nullable=False),
        sa.Column("label", sa.String(length=128), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=True),
        sa.Column("failed_codes", sa.Integer(), nullable=False),
        sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("first_seen", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("device_id"),
    )
    with op.batch_alter_table("speaker_devices") as batch_op:
        batch_op.create_index("ix_speaker_devices_key_hash", ["key_hash"], unique=True)


def downgrade() -> None:
    op.drop_table("speaker_devices")
