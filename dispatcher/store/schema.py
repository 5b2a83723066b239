"""Tables. Alembic migrations (dispatcher/migrations) create them; this module is their one description."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# SQLite only auto-increments INTEGER PRIMARY KEY; PostgreSQL gets a BIGINT for the big ledger.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class Timestamp(TypeDecorator[datetime]):
    """Stored as naive UTC everywhere (SQLite has no time zones); always read back as aware UTC."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; use aware UTC datetimes")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


incidents = Table(
    "incidents",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("title", String(200), nullable=False),
    Column("status", String(20), nullable=False),
    Column("severity", String(20), nullable=False),
    Column("components", JSON, nullable=False),
    Column("opened_at", Timestamp(), nullable=False),
    Column("updated_at", Timestamp(), nullable=False),
    # The provider id of the incident's latest social post: the next one replies to it (one thread).
    Column("social_thread_id", String(64), nullable=True),
)

updates = Table(
    "updates",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("incident_id", Integer, ForeignKey("incidents.id"), nullable=False, index=True),
    Column("status", String(20), nullable=False),
    Column("message", Text, nullable=False),
    Column("next_update_at", Timestamp(), nullable=True),
    Column("audience", String(50), nullable=False),
    Column("channels", JSON, nullable=False),
    Column("idempotency_key", String(200), nullable=True, unique=True),
    Column("state", String(20), nullable=False),
    Column("published_at", Timestamp(), nullable=False),
    Column("fanned_out_at", Timestamp(), nullable=True),
)

subscribers = Table(
    "subscribers",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("external_id", String(200), nullable=True, unique=True),
    Column("name", String(200), nullable=True),
    Column("locale", String(20), nullable=False),
    Column("components", JSON, nullable=False),
    Column("min_severity_rank", Integer, nullable=False),
    Column("internal", Boolean, nullable=False),
    Column("created_at", Timestamp(), nullable=False),
)

contact_points = Table(
    "contact_points",
    metadata,
    Column("id", Integer, primary_key=True),
    Column(
        "subscriber_id", Integer, ForeignKey("subscribers.id", ondelete="CASCADE"), nullable=False, index=True
    ),
    Column("channel", String(20), nullable=False),
    Column("address", String(500), nullable=False),
    Column("secret", String(200), nullable=True),
    Column("opted_out", Boolean, nullable=False),
    Column("opted_out_reason", String(200), nullable=True),
    Column("opted_out_at", Timestamp(), nullable=True),
    UniqueConstraint("channel", "address", name="uq_contact_points_channel_address"),
    # Fan-out pages through one channel's contact points in id order.
    Index("ix_contact_points_channel_id", "channel", "id"),
)

deliveries = Table(
    "deliveries",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("update_id", Integer, ForeignKey("updates.id"), nullable=False),
    Column("channel", String(20), nullable=False),
    Column("address", String(500), nullable=False),
    Column("subscriber_id", Integer, nullable=True),
    Column("contact_point_id", Integer, nullable=True),
    Column("locale", String(20), nullable=False),
    Column("batch", Integer, nullable=False),
    Column("state", String(20), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("provider", String(50), nullable=True),
    Column("provider_message_id", String(300), nullable=True),
    Column("last_error", Text, nullable=True),
    Column("next_attempt_at", Timestamp(), nullable=True),
    Column("lease_until", Timestamp(), nullable=True),
    Column("created_at", Timestamp(), nullable=False),
    Column("updated_at", Timestamp(), nullable=False),
    Column("sent_at", Timestamp(), nullable=True),
    # What the provider said later (status callback, event webhook): delivered, undelivered, bounce…
    Column("provider_status", String(30), nullable=True),
    Column("provider_status_at", Timestamp(), nullable=True),
    UniqueConstraint("update_id", "channel", "address", name="uq_deliveries_update_channel_address"),
    # No index on state, attempts or times: a claim or a result then rewrites the row without touching
    # any index (PostgreSQL "HOT" updates), which is most of what delivering costs the database.
    Index("ix_deliveries_batch", "update_id", "channel", "batch"),
)

delivery_attempts = Table(
    "delivery_attempts",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("update_id", Integer, nullable=False, index=True),
    Column("channel", String(20), nullable=False),
    Column("batch", Integer, nullable=False),
    Column("provider", String(50), nullable=False),
    Column("size", Integer, nullable=False),
    Column("outcome", String(20), nullable=False),
    Column("sent", Integer, nullable=False),
    Column("retrying", Integer, nullable=False),
    Column("failed", Integer, nullable=False),
    Column("error", Text, nullable=True),
    Column("started_at", Timestamp(), nullable=False),
    Column("finished_at", Timestamp(), nullable=False),
)
