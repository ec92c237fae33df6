"""trust and safety: step-up attempts and proofs, the audit log, payment risk and review

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
    with op.batch_alter_table("payments") as batch_op:
        batch_op.add_column(sa.Column("risk", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("channel", sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column("reviewed_by", sa.String(length=80), nullable=True))
        batch_op.add_column(sa.Column("reviewed_at", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "step_up_attempts",
        sa.Column("attempt_id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("resident_id", sa.String(length=32), nullable=False),
        sa.Column("household_id", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("channel", sa.String(length=20), nullable=False),
        sa.Column("passed", sa.Boolean(), nullable=False),
        sa.Column("attempted_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["resident_id"], ["residents.resident_id"]),
        sa.PrimaryKeyConstraint("attempt_id"),
    )
    op.create_index(
        "ix_step_up_attempts_resident_at", "step_up_attempts", ["resident_id", "attempted_at"]
    )
    op.create_index("ix_step_up_attempts_household_id", "step_up_attempts", ["household_id"])
    op.create_table(
        "step_up_proofs",
        sa.Column("proof_id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("resident_id", sa.String(length=32), nullable=False),
        sa.Column("household_id", sa.String(length=32), nullable=False),
        sa.Column("utility", sa.String(length=20), nullable=True),
        sa.Column("amount", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column("method", sa.String(length=20), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("payment_id", sa.String(length=40), nullable=True),
        sa.ForeignKeyConstraint(["resident_id"], ["residents.resident_id"]),
        sa.PrimaryKeyConstraint("proof_id"),
        sa.UniqueConstraint("token_hash"),
    )
    op.create_index("ix_step_up_proofs_household_id", "step_up_proofs", ["household_id"])
    op.create_table(
        "audit_log",
        sa.Column("seq", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("at", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("actor", sa.String(length=80), nullable=False),
        sa.Column("subject", sa.String(length=120), nullable=False),
        sa.Column("data", sa.Text(), nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("seq"),
    )
    op.create_index("ix_audit_log_kind", "audit_log", ["kind"])


def downgrade() -> None:
    op.drop_index("ix_audit_log_kind", table_name="audit_log")
    op.drop_table("audit_log")
    op.drop_index("ix_step_up_proofs_household_id", table_name="step_up_proofs")
    op.drop_table("step_up_proofs")
    op.drop_index("ix_step_up_attempts_household_id", table_name="step_up_attempts")
    op.drop_index("ix_step_up_attempts_resident_at", table_name="step_up_attempts")
    op.drop_table("step_up_attempts")
    with op.batch_alter_table("payments") as batch_op:
        batch_op.drop_column("reviewed_at")
        batch_op.drop_column("reviewed_by")
        batch_op.drop_column("channel")
        batch_op.drop_column("risk")
