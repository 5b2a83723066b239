"""incident lifecycle, maintenance, promises, approval, policy version; subscriber preferences, consent

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa
from alembic import op

from dispatcher.store.schema import Timestamp

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def _incident_columns() -> list[sa.Column[object]]:
    return [
        sa.Column("kind", sa.String(20), nullable=False, server_default="incident"),
        sa.Column("owner", sa.String(200), nullable=True),
        sa.Column("monitoring_since", Timestamp(), nullable=True),
        sa.Column("resolved_at", Timestamp(), nullable=True),
        sa.Column("reopened_count", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("next_update_at", Timestamp(), nullable=True),
        sa.Column("promise_reminded_at", Timestamp(), nullable=True),
        sa.Column("starts_at", Timestamp(), nullable=True),
        sa.Column("ends_at", Timestamp(), nullable=True),
        sa.Column("maintenance_stage", sa.String(20), nullable=True),
        sa.Column("source", sa.String(30), nullable=True),
        sa.Column("external_key", sa.String(300), nullable=True),
    ]


def _update_columns() -> list[sa.Column[object]]:
    return [
        sa.Column("kind", sa.String(20), nullable=False, server_default="update"),
        sa.Column("author", sa.String(200), nullable=True),
        sa.Column("severity", sa.String(20), nullable=True),
        sa.Column("policy_version", sa.String(64), nullable=True),
        sa.Column("internal_note", sa.Text(), nullable=True),
        sa.Column("override_reason", sa.Text(), nullable=True),
        sa.Column("scheduled_for", Timestamp(), nullable=True),
        sa.Column("approved_by", sa.String(200), nullable=True),
        sa.Column("approved_at", Timestamp(), nullable=True),
        sa.Column("rejected_by", sa.String(200), nullable=True),
        sa.Column("rejected_reason", sa.Text(), nullable=True),
        sa.Column("promise_state", sa.String(20), nullable=True),
    ]


def _subscriber_columns() -> list[sa.Column[object]]:
    return [
        sa.Column("region", sa.String(50), nullable=True),
        sa.Column("plan", sa.String(50), nullable=True),
        sa.Column("tags", sa.JSON(), nullable=True),
        sa.Column("channels", sa.JSON(), nullable=True),
        sa.Column("quiet_start", sa.String(5), nullable=True),
        sa.Column("quiet_end", sa.String(5), nullable=True),
        sa.Column("timezone", sa.String(60), nullable=True),
    ]


def _contact_point_columns() -> list[sa.Column[object]]:
    return [
        sa.Column("confirmed", sa.Boolean(), nullable=False, server_default=sa.true()),
        sa.Column("confirmed_at", Timestamp(), nullable=True),
    ]


def _add(table: str, columns: Callable[[], list[sa.Column[object]]]) -> None:
    with op.batch_alter_table(table, schema=None) as batch_op:
        for column in columns():
            batch_op.add_column(column)
        if table == "incidents":
            batch_op.create_unique_constraint("uq_incidents_source_external_key", ["source", "external_key"])


def _drop(table: str, columns: Callable[[], list[sa.Column[object]]]) -> None:
    with op.batch_alter_table(table, schema=None) as batch_op:
        if table == "incidents":
            batch_op.drop_constraint("uq_incidents_source_external_key", type_="unique")
        for column in columns():
            batch_op.drop_column(column.name)


def upgrade() -> None:
    _add("incidents", _incident_columns)
    _add("updates", _update_columns)
    _add("subscribers", _subscriber_columns)
    _add("contact_points", _contact_point_columns)
    op.create_table(
        "incident_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("incident_id", sa.Integer(), nullable=False),
        sa.Column("at", Timestamp(), nullable=False),
        sa.Column("kind", sa.String(30), nullable=False),
        sa.Column("actor", sa.String(200), nullable=True),
        sa.Column("from_status", sa.String(20), nullable=True),
        sa.Column("to_status", sa.String(20), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("update_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["incident_id"], ["incidents.id"], name="fk_incident_events_incident_id_incidents"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_incident_events"),
    )
    op.create_index("ix_incident_events_incident_id", "incident_events", ["incident_id"])


def downgrade() -> None:
    op.drop_index("ix_incident_events_incident_id", table_name="incident_events")
    op.drop_table("incident_events")
    _drop("contact_points", _contact_point_columns)
    _drop("subscribers", _subscriber_columns)
    _drop("updates", _update_columns)
    _drop("incidents", _incident_columns)
