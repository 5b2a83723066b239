"""Crisis comms extended: impact statements, security incidents' data facts, post-incident reports,
amends codes, signers

Revision ID: 0017
Revises: 0016
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from dispatcher.store.schema import Timestamp

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("updates") as batch:
        batch.add_column(sa.Column("impact_statement", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("report_by", Timestamp(), nullable=True))
        batch.add_column(sa.Column("signer", sa.JSON(), nullable=True))
    with op.batch_alter_table("incidents") as batch:
        batch.add_column(sa.Column("data_facts", sa.JSON(), nullable=True))
        for name in ("report_due_at", "report_reminded_at", "report_overdue_at"):
            batch.add_column(sa.Column(name, Timestamp(), nullable=True))
    op.create_table(
        "incident_reports",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("incident_id", sa.Integer(), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("impact", sa.Text(), nullable=False),
        sa.Column("root_cause", sa.Text(), nullable=False),
        sa.Column("actions_taken", sa.Text(), nullable=False),
        sa.Column("prevention", sa.Text(), nullable=False),
        sa.Column("published_at", Timestamp(), nullable=False),
        sa.Column("author", sa.String(200), nullable=True),
        sa.Column("override_reason", sa.Text(), nullable=True),
        sa.Column("notice_update_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["incident_id"], ["incidents.id"], name="fk_incident_reports_incident_id_incidents"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_incident_reports"),
        sa.UniqueConstraint("incident_id", name="uq_incident_reports_incident_id"),
    )
    op.create_table(
        "amends_codes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("update_id", sa.Integer(), nullable=False),
        sa.Column("subscriber_id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(64), nullable=False),
        sa.ForeignKeyConstraint(["update_id"], ["updates.id"], name="fk_amends_codes_update_id_updates"),
        sa.ForeignKeyConstraint(
            ["subscriber_id"],
            ["subscribers.id"],
            name="fk_amends_codes_subscriber_id_subscribers",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_amends_codes"),
        sa.UniqueConstraint("update_id", "subscriber_id", name="uq_amends_codes_update_id_subscriber_id"),
    )


def downgrade() -> None:
    op.drop_table("amends_codes")
    op.drop_table("incident_reports")
    with op.batch_alter_table("incidents") as batch:
        for name in ("report_overdue_at", "report_reminded_at", "report_due_at", "data_facts"):
            batch.drop_column(name)
    with op.batch_alter_table("updates") as batch:
        batch.drop_column("signer")
        batch.drop_column("report_by")
        batch.drop_column("impact_statement")
