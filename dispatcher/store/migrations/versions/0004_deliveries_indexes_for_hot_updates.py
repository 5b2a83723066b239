"""deliveries: index batches only, leave room for in-place updates

Claims and results change state, attempts and times on every delivery row. With none of those columns
indexed (and free space left in each page on PostgreSQL) such an update rewrites the row without
touching any index.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_index("ix_deliveries_batch_state")
        batch_op.drop_index("ix_deliveries_state_next_attempt")
        batch_op.create_index("ix_deliveries_batch", ["update_id", "channel", "batch"], unique=False)
    if op.get_context().dialect.name == "postgresql":
        op.execute("ALTER TABLE deliveries SET (fillfactor = 70)")


def downgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        op.execute("ALTER TABLE deliveries RESET (fillfactor)")
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_index("ix_deliveries_batch")
        batch_op.create_index("ix_deliveries_state_next_attempt", ["state", "next_attempt_at"], unique=False)
        batch_op.create_index(
            "ix_deliveries_batch_state", ["update_id", "channel", "batch", "state"], unique=False
        )
