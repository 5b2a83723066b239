"""Updates carry texts per language and channel and the template they came from; drafts; delivery rows
name the reader's variant (locale, time zone, SMS opt-out hint)

Revision ID: 0016
Revises: 0013
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from dispatcher.store.schema import Timestamp

revision = "0016"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("updates") as batch:
        batch.add_column(sa.Column("texts", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("template", sa.String(100), nullable=True))
    with op.batch_alter_table("deliveries") as batch:
        batch.alter_column(
            "locale", type_=sa.String(120), existing_type=sa.String(20), existing_nullable=False
        )
    op.create_table(
        "drafts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("incident_id", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("texts", sa.JSON(), nullable=True),
        sa.Column("next_update_in", sa.Integer(), nullable=True),
        sa.Column("audience", sa.String(50), nullable=False),
        sa.Column("channels", sa.JSON(), nullable=True),
        sa.Column("internal_note", sa.Text(), nullable=True),
        sa.Column("impact", sa.JSON(), nullable=True),
        sa.Column("template", sa.String(100), nullable=True),
        sa.Column("template_vars", sa.JSON(), nullable=True),
        sa.Column("author", sa.String(200), nullable=True),
        sa.Column("updated_by", sa.String(200), nullable=True),
        sa.Column("created_at", Timestamp(), nullable=False),
        sa.Column("updated_at", Timestamp(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("published_update_id", sa.Integer(), nullable=True),
        sa.Column("published_by", sa.String(200), nullable=True),
        sa.ForeignKeyConstraint(["incident_id"], ["incidents.id"], name="fk_drafts_incident_id_incidents"),
        sa.PrimaryKeyConstraint("id", name="pk_drafts"),
    )
    op.create_index("ix_drafts_incident_id", "drafts", ["incident_id"])


def downgrade() -> None:
    op.drop_index("ix_drafts_incident_id", table_name="drafts")
    op.drop_table("drafts")
    with op.batch_alter_table("deliveries") as batch:
        batch.alter_column(
            "locale", type_=sa.String(20), existing_type=sa.String(120), existing_nullable=False
        )
    with op.batch_alter_table("updates") as batch:
        batch.drop_column("template")
        batch.drop_column("texts")
