"""biometric templates record the model that made them

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-07 15:45:00

A voice template is only comparable with voiceprints of the model that made it
(GE2E 256-d before issue 18, CAM++ 192-d since). Existing voice rows were all made
by GE2E, the only voice model there was; they are tagged so. Face rows have one
model and stay untagged (NULL).
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = '0002'
down_revision: Union[str, Sequence[str], None] = '0001'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Add ``biometric_templates.model``; existing voice templates are GE2E."""
    with op.batch_alter_table('biometric_templates', schema=None) as batch_op:
        batch_op.add_column(sa.Column('model', sa.String(length=32), nullable=True))
    op.execute(
        "UPDATE biometric_templates SET model = 'ge2e' "
        "WHERE kind IN ('voice', 'voice:previous')"
    )


def downgrade() -> None:
    """Drop ``biometric_templates.model``."""
    with op.batch_alter_table('biometric_templates', schema=None) as batch_op:
        batch_op.drop_column('model')
