"""indexes on the turn time for the dashboard: one covering, one per counted outcome

The dashboard counts 30 days of turns per day: all turns (with the conversation,
household and latency, for distinct conversations and the p95), and per outcome
(fallback, paid, step-up passed / failed, handoff). Each count reads only its
own index (PostgreSQL index-only scans; INCLUDE columns).

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

INCLUDE = ["conversation_id", "household_id"]
PARTIAL = {
    "ix_console_day_fallback": (
        "intent IN ('nlu_fallback', 'out_of_scope') OR actions LIKE '%\"fallback\"%'"
    ),
    "ix_console_day_paid": "payment_ids <> '[]'",
    "ix_console_day_stepup_pass": "verification LIKE '%\"decision\": \"accept\"%'",
    "ix_console_day_stepup_fail": "verification LIKE '%\"decision\": \"reject\"%'",
    "ix_console_day_handoff": "intent = 'human_handoff'",
}


def upgrade() -> None:
    op.drop_index("ix_console_turns_at", "bot_turns")
    op.create_index("ix_console_turns_at", "bot_turns", ["at"],
                    postgresql_include=[*INCLUDE, "latency_ms"])
    for name, where in PARTIAL.items():
        op.create_index(name, "bot_turns", ["at"], postgresql_include=INCLUDE,
                        postgresql_where=sa.text(where), sqlite_where=sa.text(where))


def downgrade() -> None:
    for name in PARTIAL:
        op.drop_index(name, "bot_turns")
    op.drop_index("ix_console_turns_at", "bot_turns")
    op.create_index("ix_console_turns_at", "bot_turns", ["at"])
