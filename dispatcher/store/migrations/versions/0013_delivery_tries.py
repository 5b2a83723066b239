"""Each counted attempt of a delivery that did not deliver, with its error (the evidence of a dead letter)

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from dispatcher.store.schema import Timestamp

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "delivery_tries",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("delivery_id", sa.BigInteger(), nullable=False),
        sa.Column("provider", sa.String(50), nullable=False),
        sa.Column("outcome", sa.String(20), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("tried_at", Timestamp(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_delivery_tries"),
    )
    op.create_index("ix_delivery_tries_delivery_id", "delivery_tries", ["delivery_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_delivery_tries_delivery_id", table_name="delivery_tries")
    op.drop_table("delivery_tries")
