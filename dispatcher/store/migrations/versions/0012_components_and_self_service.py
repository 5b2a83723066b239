"""Status page components, hand-set component status history, self-service subscription challenges

Revision ID: 0012
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from dispatcher.store.schema import Timestamp

revision = "0012"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "components",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("slug", sa.String(100), nullable=False),
        sa.Column("group_name", sa.String(200), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("position", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("status", sa.String(30), nullable=False, server_default="operational"),
        sa.Column("status_set_at", Timestamp(), nullable=True),
        sa.Column("status_set_by", sa.String(200), nullable=True),
        sa.Column("created_at", Timestamp(), nullable=False),
        sa.Column("updated_at", Timestamp(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_components"),
        sa.UniqueConstraint("name", name="uq_components_name"),
        sa.UniqueConstraint("slug", name="uq_components_slug"),
    )
    op.create_table(
        "component_status_changes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("component", sa.String(200), nullable=False),
        sa.Column("status", sa.String(30), nullable=False),
        sa.Column("effective_at", Timestamp(), nullable=False),
        sa.Column("actor", sa.String(200), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_component_status_changes"),
    )
    op.create_index(
        "ix_component_status_changes_component_effective_at",
        "component_status_changes",
        ["component", "effective_at"],
    )
    # Issue 15's migration creates component_impacts too (same table, same fields): whichever runs
    # first makes it, the other leaves it be.
    if not sa.inspect(op.get_bind()).has_table("component_impacts"):
        _create_component_impacts()
    op.create_table(
        "subscription_challenges",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("contact_point_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("code_hash", sa.String(64), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("created_at", Timestamp(), nullable=False),
        sa.Column("expires_at", Timestamp(), nullable=False),
        sa.ForeignKeyConstraint(
            ["contact_point_id"],
            ["contact_points.id"],
            name="fk_subscription_challenges_contact_point_id_contact_points",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_subscription_challenges"),
        sa.UniqueConstraint("contact_point_id", name="uq_subscription_challenges_contact_point_id"),
    )


def _create_component_impacts() -> None:
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
    op.drop_table("subscription_challenges")
    # component_impacts is left for issue 15's migration to drop when it made it; when this one made
    # it, there is no such migration below and it goes here.
    if not _created_elsewhere():
        op.drop_index("ix_component_impacts_component_effective_at", table_name="component_impacts")
        op.drop_index("ix_component_impacts_incident_id", table_name="component_impacts")
        op.drop_table("component_impacts")
    op.drop_index("ix_component_status_changes_component_effective_at", table_name="component_status_changes")
    op.drop_table("component_status_changes")
    op.drop_table("components")


def _created_elsewhere() -> bool:
    """Whether a migration below this one (issue 15's 0009) made component_impacts."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(op.get_context().config)  # type: ignore[arg-type]
    return any(rev.revision == "0009" for rev in script.walk_revisions("base", down_revision))
