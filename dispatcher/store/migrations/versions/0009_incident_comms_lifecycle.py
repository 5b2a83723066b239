"""Incident comms from first word to closure: first-word watchdog, escalation, proven authors and
approvers, per-component impact

Revision ID: 0009
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from dispatcher.store.schema import Timestamp

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

INCIDENT_TIMES = ("first_word_at", "first_word_nudged_at", "first_word_escalated_at", "escalated_at")


def upgrade() -> None:
    with op.batch_alter_table("incidents") as batch:
        for name in INCIDENT_TIMES:
            batch.add_column(sa.Column(name, Timestamp(), nullable=True))
        batch.add_column(sa.Column("holding_streak", sa.Integer(), nullable=False, server_default="0"))
    with op.batch_alter_table("updates") as batch:
        batch.add_column(sa.Column("author_token_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("approver_token_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("approval_nudged_at", Timestamp(), nullable=True))
        batch.add_column(sa.Column("impact", sa.JSON(), nullable=True))
    # Incidents that already had a public update were told already: the watchdog leaves them alone.
    op.execute(
        "UPDATE incidents SET first_word_at = ("
        " SELECT MIN(updates.published_at) FROM updates WHERE updates.incident_id = incidents.id"
        " AND updates.audience != 'internal' AND updates.state IN ('pending', 'fanned_out'))"
    )
    op.create_table(
        "component_impacts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("incident_id", sa.Integer(), nullable=False),
        sa.Column("component", sa.String(200), nullable=False),
        sa.Column("impact", sa.String(30), nullable=False),
        sa.Column("effective_at", Timestamp(), nullable=False),
        sa.Column("source", sa.String(20), nullable=False),
        sa.Column("update_id", sa.Integer(), nullable=True),
        sa.Column("actor", sa.String(200), nullable=True),
        sa.ForeignKeyConstraint(
            ["incident_id"], ["incidents.id"], name="fk_component_impacts_incident_id_incidents"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_component_impacts"),
    )
    op.create_index("ix_component_impacts_incident_id", "component_impacts", ["incident_id"])
    op.create_index(
        "ix_component_impacts_component_effective_at", "component_impacts", ["component", "effective_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_component_impacts_component_effective_at", table_name="component_impacts")
    op.drop_index("ix_component_impacts_incident_id", table_name="component_impacts")
    op.drop_table("component_impacts")
    with op.batch_alter_table("updates") as batch:
        for name in ("impact", "approval_nudged_at", "approver_token_id", "author_token_id"):
            batch.drop_column(name)
    with op.batch_alter_table("incidents") as batch:
        batch.drop_column("holding_streak")
        for name in reversed(INCIDENT_TIMES):
            batch.drop_column(name)
