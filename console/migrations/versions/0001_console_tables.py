"""console tables: staff, sessions, login failures, reviews, tags, notes, annotations, audit;
indexes on the conversation log for the conversation list's filters

Revision ID: 0001
Revises:
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "console_staff",
        sa.Column("id", sa.Integer(), autoincrement=True, primary_key=True),
        sa.Column("username", sa.String(64), nullable=False, unique=True),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("buildings", sa.Text(), nullable=False),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
    )
    op.create_table(
        "console_sessions",
        sa.Column("token_hash", sa.String(64), primary_key=True),
        sa.Column("staff_id", sa.Integer(), nullable=False, index=True),
        sa.Column("csrf_token", sa.String(64), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("last_seen_at", TZ, nullable=False),
    )
    op.create_table(
        "console_login_failures",
        sa.Column("id", sa.Integer(), autoincrement=True, primary_key=True),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("address", sa.String(64), nullable=False),
        sa.Column("at", TZ, nullable=False),
    )
    op.create_index("ix_console_login_failures_username_at", "console_login_failures",
                    ["username", "at"])
    op.create_index("ix_console_login_failures_address_at", "console_login_failures",
                    ["address", "at"])
    op.create_table(
        "console_reviews",
        sa.Column("conversation_id", sa.String(36), primary_key=True),
        sa.Column("reviewed", sa.Boolean(), nullable=False, index=True),
        sa.Column("reviewed_by", sa.String(64), nullable=True),
        sa.Column("assigned_to", sa.String(64), nullable=True),
        sa.Column("resolved_at", TZ, nullable=True),
        sa.Column("updated_at", TZ, nullable=False),
    )
    op.create_table(
        "console_tags",
        sa.Column("id", sa.Integer(), autoincrement=True, primary_key=True),
        sa.Column("conversation_id", sa.String(36), nullable=False),
        sa.Column("tag", sa.String(40), nullable=False),
        sa.Column("added_by", sa.String(64), nullable=False),
        sa.Column("at", TZ, nullable=False),
        sa.UniqueConstraint("conversation_id", "tag", name="uq_console_tag"),
    )
    op.create_index("ix_console_tags_tag", "console_tags", ["tag", "conversation_id"])
    op.create_table(
        "console_notes",
        sa.Column("id", sa.Integer(), autoincrement=True, primary_key=True),
        sa.Column("conversation_id", sa.String(36), nullable=False, index=True),
        sa.Column("author", sa.String(64), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("at", TZ, nullable=False),
    )
    op.create_table(
        "console_annotations",
        sa.Column("turn_id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("conversation_id", sa.String(36), nullable=False, index=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("language", sa.String(8), nullable=True),
        sa.Column("intent", sa.String(64), nullable=False),
        sa.Column("entities", sa.Text(), nullable=False),
        sa.Column("original_intent", sa.String(64), nullable=True),
        sa.Column("original_confidence", sa.Float(), nullable=True),
        sa.Column("annotated_by", sa.String(64), nullable=False),
        sa.Column("at", TZ, nullable=False),
    )
    op.create_table(
        "console_audit",
        sa.Column("id", sa.Integer(), autoincrement=True, primary_key=True),
        sa.Column("at", TZ, nullable=False, index=True),
        sa.Column("actor", sa.String(80), nullable=False),
        sa.Column("action", sa.String(40), nullable=False),
        sa.Column("target", sa.String(80), nullable=True),
        sa.Column("data", sa.Text(), nullable=False),
    )
    # The conversation list reads the dialogue's tables (bot/migrations): these
    # indexes serve its sort (last activity) and its turn filters.
    op.create_index("ix_console_conv_updated", "bot_conversations", ["updated_at", "id"])
    op.create_index("ix_console_conv_household", "bot_conversations",
                    ["household_id", "updated_at"])
    op.create_index("ix_console_turns_intent", "bot_turns", ["intent", "conversation_id"])
    op.create_index("ix_console_turns_conv_conf", "bot_turns", ["conversation_id", "confidence"])


def downgrade() -> None:
    op.drop_index("ix_console_turns_conv_conf", "bot_turns")
    op.drop_index("ix_console_turns_intent", "bot_turns")
    op.drop_index("ix_console_conv_household", "bot_conversations")
    op.drop_index("ix_console_conv_updated", "bot_conversations")
    for table in ("console_audit", "console_annotations", "console_notes", "console_tags",
                  "console_reviews", "console_login_failures", "console_sessions",
                  "console_staff"):
        op.drop_table(table)
