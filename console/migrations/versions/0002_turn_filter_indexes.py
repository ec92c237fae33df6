"""partial and covering indexes on the conversation log for the list's turn filters

Each outcome filter (error, paid, step-up failed, fallback, handoff) gets a
partial index holding only the matching turns, so a rare outcome is found from
its few index entries instead of probing every conversation's turns; intent and
confidence filters read language / confidence from the index (PostgreSQL
INCLUDE), not from the wide turn rows.

Revision ID: 0002
Revises: 0001
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PARTIAL = {
    "ix_console_turns_error": "error IS NOT NULL",
    "ix_console_turns_paid": "payment_ids <> '[]'",
    "ix_console_turns_stepup_failed": "verification LIKE '%\"decision\": \"reject\"%'",
    "ix_console_turns_fallback": (
        "intent IN ('nlu_fallback', 'out_of_scope') OR actions LIKE '%\"fallback\"%'"
    ),
    "ix_console_turns_handoff": "intent = 'human_handoff'",
}


def upgrade() -> None:
    for name, where in PARTIAL.items():
        op.create_index(name, "bot_turns", ["conversation_id"],
                        postgresql_where=sa.text(where), sqlite_where=sa.text(where))
    op.drop_index("ix_console_turns_intent", "bot_turns")
    op.create_index("ix_console_turns_intent", "bot_turns", ["intent", "conversation_id"],
                    postgresql_include=["language", "confidence"])
    op.drop_index("ix_console_turns_conv_conf", "bot_turns")
    op.create_index("ix_console_turns_conv_conf", "bot_turns", ["conversation_id", "confidence"],
                    postgresql_include=["intent", "language"])
    op.create_index("ix_console_turns_at", "bot_turns", ["at"])
    op.create_index("ix_console_conv_waiting", "bot_conversations", ["updated_at"],
                    postgresql_where=sa.text("status = 'waiting_for_staff'"),
                    sqlite_where=sa.text("status = 'waiting_for_staff'"))


def downgrade() -> None:
    op.drop_index("ix_console_conv_waiting", "bot_conversations")
    op.drop_index("ix_console_turns_at", "bot_turns")
    op.drop_index("ix_console_turns_conv_conf", "bot_turns")
    op.create_index("ix_console_turns_conv_conf", "bot_turns", ["conversation_id", "confidence"])
    op.drop_index("ix_console_turns_intent", "bot_turns")
    op.create_index("ix_console_turns_intent", "bot_turns", ["intent", "conversation_id"])
    for name in PARTIAL:
        op.drop_index(name, "bot_turns")
