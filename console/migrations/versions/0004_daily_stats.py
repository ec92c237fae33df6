"""console_daily_stats: the dashboard's numbers of closed days, per staff scope

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
        "console_daily_stats",
        sa.Column("scope_key", sa.String(400), nullable=False),
        sa.Column("day", sa.String(10), nullable=False),
        sa.Column("data", sa.Text(), nullable=False),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("scope_key", "day"),
    )


def downgrade() -> None:
    op.drop_table("console_daily_stats")
