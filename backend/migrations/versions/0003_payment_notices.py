"""notices.payment_id: a pending payment's outcome goes through the notice outbox

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
    with op.batch_alter_table("notices") as batch_op:
        batch_op.add_column(sa.Column("payment_id", sa.String(length=40), nullable=True))
        batch_op.alter_column("bill_id", existing_type=sa.String(length=60), nullable=True)
        batch_op.alter_column("due_date", existing_type=sa.Date(), nullable=True)
        batch_op.create_unique_constraint("uq_notices_payment_id", ["payment_id"])
        batch_op.create_foreign_key(
            "fk_notices_payment_id_payments", "payments", ["payment_id"], ["payment_id"]
        )


def downgrade() -> None:
    op.execute("DELETE FROM notices WHERE payment_id IS NOT NULL")
    with op.batch_alter_table("notices") as batch_op:
        batch_op.drop_constraint("fk_notices_payment_id_payments", type_="foreignkey")
        batch_op.drop_constraint("uq_notices_payment_id", type_="unique")
        batch_op.alter_column("due_date", existing_type=sa.Date(), nullable=False)
        batch_op.alter_column("bill_id", existing_type=sa.String(length=60), nullable=False)
        batch_op.drop_column("payment_id")
