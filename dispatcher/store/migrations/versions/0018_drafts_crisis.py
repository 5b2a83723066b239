"""Drafts keep an update's impact statement and its signer (a draft published without them lost them)

Revision ID: 0018
Revises: 0017
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("drafts") as batch:
        batch.add_column(sa.Column("impact_statement", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("signer", sa.String(50), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("drafts") as batch:
        batch.drop_column("signer")
        batch.drop_column("impact_statement")
