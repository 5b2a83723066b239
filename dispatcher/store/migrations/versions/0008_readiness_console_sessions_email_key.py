"""Channel readiness (per provider and per channel), console sessions ended on the server, and email
addresses looked up without case

Revision ID: 0008
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from dispatcher.store.schema import Timestamp

revision = "0008"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "provider_readiness",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(20), nullable=False),
        sa.Column("provider", sa.String(50), nullable=False),
        sa.Column("ready", sa.Boolean(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("checked_at", Timestamp(), nullable=False),
        sa.Column("elapsed_ms", sa.Integer(), nullable=False),
        sa.Column("since", Timestamp(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_provider_readiness"),
        sa.UniqueConstraint("channel", "provider", name="uq_provider_readiness_channel_provider"),
    )
    op.create_table(
        "channel_readiness",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(20), nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("since", Timestamp(), nullable=False),
        sa.Column("checked_at", Timestamp(), nullable=False),
        sa.Column("incident_id", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_channel_readiness"),
        sa.UniqueConstraint("channel", name="uq_channel_readiness_channel"),
    )
    op.create_table(
        "console_sessions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("session_hash", sa.String(64), nullable=False),
        sa.Column("token_id", sa.Integer(), nullable=False),
        sa.Column("created_at", Timestamp(), nullable=False),
        sa.Column("expires_at", Timestamp(), nullable=False),
        sa.Column("ended_at", Timestamp(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_console_sessions"),
        sa.UniqueConstraint("session_hash", name="uq_console_sessions_session_hash"),
    )
    op.create_index("ix_contact_points_email_key", "contact_points", ["channel", sa.text("lower(address)")])


def downgrade() -> None:
    op.drop_index("ix_contact_points_email_key", table_name="contact_points")
    op.drop_table("console_sessions")
    op.drop_table("channel_readiness")
    op.drop_table("provider_readiness")
