"""step-up proofs say what they are for: a payment or turning autopay on

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
    with op.batch_alter_table("step_up_proofs") as batch_op:
        batch_op.add_column(
            sa.Column("purpose", sa.String(length=10), nullable=False, server_default="payment")
        )


def downgrade() -> None:
    with op.batch_alter_table("step_up_proofs") as batch_op:
        batch_op.drop_column("purpose")
