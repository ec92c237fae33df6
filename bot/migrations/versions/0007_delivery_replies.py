"""bot_processed_deliveries.replies: a delivery's replies, kept with it so a channel whose
worker died between the turn and the send can still send them

Revision ID: 0007
Revises: 0006
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("bot_processed_deliveries") as batch:
        batch.add_column(sa.Column("replies", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("bot_processed_deliveries") as batch:
        batch.drop_column("replies")
