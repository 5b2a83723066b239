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
    func,
    true,
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
    # "incident", or "maintenance" (a scheduled window with starts_at/ends_at).
    Column("kind", String(20), nullable=False, server_default="incident"),
    Column("owner", String(200), nullable=True),
    Column("monitoring_since", Timestamp(), nullable=True),
    Column("resolved_at", Timestamp(), nullable=True),
    Column("reopened_count", Integer, nullable=False, server_default="0"),
    # The promise now standing: the next public update is due by then (moved forward by holding messages).
    Column("next_update_at", Timestamp(), nullable=True),
    Column("promise_reminded_at", Timestamp(), nullable=True),
    Column("starts_at", Timestamp(), nullable=True),
    Column("ends_at", Timestamp(), nullable=True),
    # Maintenance only: scheduled → reminded → in_progress → completed (or cancelled).
    Column("maintenance_stage", String(20), nullable=True),
    # Who opened it from outside (alertmanager, grafana, generic) and their key for it (e.g. groupKey).
    Column("source", String(30), nullable=True),
    Column("external_key", String(300), nullable=True),
    # When customers were first told, and the first-word watchdog's reminder and escalation.
    Column("first_word_at", Timestamp(), nullable=True),
    Column("first_word_nudged_at", Timestamp(), nullable=True),
    Column("first_word_escalated_at", Timestamp(), nullable=True),
    # Holding messages in a row since the last real public update; set when the incident drags on.
    Column("holding_streak", Integer, nullable=False, server_default="0"),
    Column("escalated_at", Timestamp(), nullable=True),
    # A security incident's data facts (dispatcher.domain.crisis.DataFacts), owed before it goes public.
    Column("data_facts", JSON, nullable=True),
    # The post-incident report owed (policy report_within, or the resolution's promise), its reminder,
    # and when it was flagged overdue.
    Column("report_due_at", Timestamp(), nullable=True),
    Column("report_reminded_at", Timestamp(), nullable=True),
    Column("report_overdue_at", Timestamp(), nullable=True),
    UniqueConstraint("source", "external_key", name="uq_incidents_source_external_key"),
)

incident_events = Table(
    "incident_events",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("incident_id", Integer, ForeignKey("incidents.id"), nullable=False, index=True),
    Column("at", Timestamp(), nullable=False),
    # opened, status, forced_resolve, reopened, approved, rejected, holding_sent, reminder_sent, …
    Column("kind", String(30), nullable=False),
    Column("actor", String(200), nullable=True),
    Column("from_status", String(20), nullable=True),
    Column("to_status", String(20), nullable=True),
    Column("reason", Text, nullable=True),
    Column("update_id", Integer, nullable=True),
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
    # "update" (written by a person or monitoring), "holding" (no news yet), "reminder", "maintenance".
    Column("kind", String(20), nullable=False, server_default="update"),
    Column("author", String(200), nullable=True),
    Column("severity", String(20), nullable=True),
    Column("policy_version", String(64), nullable=True),
    Column("internal_note", Text, nullable=True),
    Column("override_reason", Text, nullable=True),
    Column("scheduled_for", Timestamp(), nullable=True),
    Column("approved_by", String(200), nullable=True),
    Column("approved_at", Timestamp(), nullable=True),
    Column("rejected_by", String(200), nullable=True),
    Column("rejected_reason", Text, nullable=True),
    # The promise this update made: open until the next public update (kept) or its time passing (broken).
    Column("promise_state", String(20), nullable=True),
    # Its words in other languages and per channel ({"fr": {"message": …, "sms": …}}), and the message
    # template it was written from.
    Column("texts", JSON, nullable=True),
    Column("template", String(100), nullable=True),
    # The API tokens that proved who wrote and who approved it (four eyes compare these, not names).
    Column("author_token_id", Integer, nullable=True),
    Column("approver_token_id", Integer, nullable=True),
    Column("approval_nudged_at", Timestamp(), nullable=True),
    # Component name -> impact (operational, degraded_performance, partial_outage, major_outage).
    Column("impact", JSON, nullable=True),
    # Who is affected, what does not work, since when, what to do meanwhile (domain.crisis.ImpactStatement).
    Column("impact_statement", JSON, nullable=True),
    # A resolution's promise: "a full report by <date>" (tracked on the incident as report_due_at).
    Column("report_by", Timestamp(), nullable=True),
    # Who signed it (key, name, role of a policy signatory, as they were when it was signed).
    Column("signer", JSON, nullable=True),
)

incident_reports = Table(
    "incident_reports",
    metadata,
    # The post-incident report of a resolved incident (one per incident): the status page shows it
    # under the incident, status.json and the feed carry it, and a notice tells everyone told.
    Column("id", Integer, primary_key=True),
    Column("incident_id", Integer, ForeignKey("incidents.id"), nullable=False, unique=True),
    Column("summary", Text, nullable=False),
    Column("impact", Text, nullable=False),
    Column("root_cause", Text, nullable=False),
    Column("actions_taken", Text, nullable=False),
    Column("prevention", Text, nullable=False),
    Column("published_at", Timestamp(), nullable=False),
    Column("author", String(200), nullable=True),
    Column("override_reason", Text, nullable=True),
    # The notice that told everyone told about the incident.
    Column("notice_update_id", Integer, nullable=True),
)

amends_codes = Table(
    "amends_codes",
    metadata,
    # Per-recipient codes of an amends update (a voucher, a service credit), imported from a CSV: each
    # subscriber reads only their own, on every channel they are told on.
    Column("id", Integer, primary_key=True),
    Column("update_id", Integer, ForeignKey("updates.id"), nullable=False),
    Column("subscriber_id", Integer, ForeignKey("subscribers.id", ondelete="CASCADE"), nullable=False),
    Column("code", String(64), nullable=False),
    UniqueConstraint("update_id", "subscriber_id", name="uq_amends_codes_update_id_subscriber_id"),
)

component_impacts = Table(
    "component_impacts",
    metadata,
    # How hard each component was hit, and from when: one row per component each time a released public
    # update or a person changes it (and "operational" for every component when the incident ends), so
    # uptime can be computed as intervals per component.
    Column("id", Integer, primary_key=True),
    Column("incident_id", Integer, ForeignKey("incidents.id"), nullable=False, index=True),
    Column("component", String(200), nullable=False),
    Column("impact", String(30), nullable=False),
    Column("effective_at", Timestamp(), nullable=False),
    # "update" (a released public update), "manual" (a person), "resolved" (the incident ended).
    Column("source", String(20), nullable=False),
    Column("update_id", Integer, nullable=True),
    Column("actor", String(200), nullable=True),
    Index("ix_component_impacts_component_effective_at", "component", "effective_at"),
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
    Column("region", String(50), nullable=True),
    Column("plan", String(50), nullable=True),
    Column("tags", JSON, nullable=True),
    # Channels this subscriber wants (null: every channel they have a contact point on).
    Column("channels", JSON, nullable=True),
    # Quiet hours ("22:00" to "07:00" in the subscriber's time zone): non-critical updates wait until the end.
    Column("quiet_start", String(5), nullable=True),
    Column("quiet_end", String(5), nullable=True),
    Column("timezone", String(60), nullable=True),
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
    # Self-service email signups stay unconfirmed (and are never sent updates) until double opt-in.
    Column("confirmed", Boolean, nullable=False, server_default=true()),
    Column("confirmed_at", Timestamp(), nullable=True),
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
    # The reader's variant of the rendering: locale, staff mark, time zone, SMS opt-out hint
    # (dispatcher.domain.readers), e.g. "fr+staff@Europe/Paris".
    Column("locale", String(120), nullable=False),
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

delivery_tries = Table(
    "delivery_tries",
    metadata,
    # Each counted attempt of a delivery that did not deliver (retried, failed, opted out), with its
    # error: the evidence behind a dead letter. Successful attempts are the delivery row itself.
    Column("id", BigId, primary_key=True),
    Column("delivery_id", BigInteger, nullable=False, index=True),
    Column("provider", String(50), nullable=False),
    Column("outcome", String(20), nullable=False),
    Column("error", Text, nullable=True),
    Column("tried_at", Timestamp(), nullable=False),
)

api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(100), nullable=False),
    Column("scopes", JSON, nullable=False),
    # sha256 of the token; the token itself is shown once, at creation.
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("prefix", String(16), nullable=False),
    Column("created_at", Timestamp(), nullable=False),
    Column("revoked_at", Timestamp(), nullable=True),
    Column("last_used_at", Timestamp(), nullable=True),
)

idempotency_records = Table(
    "idempotency_records",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("token_id", Integer, nullable=False),
    Column("key", String(200), nullable=False),
    Column("method", String(10), nullable=False),
    Column("path", String(300), nullable=False),
    Column("request_hash", String(64), nullable=False),
    Column("status_code", Integer, nullable=False),
    Column("body", Text, nullable=False),
    Column("created_at", Timestamp(), nullable=False),
    UniqueConstraint("token_id", "key", name="uq_idempotency_records_token_id_key"),
)

ingest_events = Table(
    "ingest_events",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("source", String(30), nullable=False),
    # sha256 of what makes a delivery the same (e.g. groupKey + status + alert fingerprints and times).
    Column("dedupe_key", String(64), nullable=False),
    Column("incident_id", Integer, nullable=True),
    Column("received_at", Timestamp(), nullable=False),
    UniqueConstraint("source", "dedupe_key", name="uq_ingest_events_source_dedupe_key"),
)

drafts = Table(
    "drafts",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("incident_id", Integer, ForeignKey("incidents.id"), nullable=False, index=True),
    # open, published or discarded
    Column("state", String(20), nullable=False),
    Column("status", String(20), nullable=False),
    Column("message", Text, nullable=False),
    Column("texts", JSON, nullable=True),
    # The promise, counted from when it is sent (a draft may wait a while before someone sends it).
    Column("next_update_in", Integer, nullable=True),
    Column("audience", String(50), nullable=False),
    Column("channels", JSON, nullable=True),
    Column("internal_note", Text, nullable=True),
    # Component name -> impact, as the update will say it.
    Column("impact", JSON, nullable=True),
    Column("template", String(100), nullable=True),
    Column("template_vars", JSON, nullable=True),
    Column("author", String(200), nullable=True),
    Column("updated_by", String(200), nullable=True),
    Column("created_at", Timestamp(), nullable=False),
    Column("updated_at", Timestamp(), nullable=False),
    # Bumped on every edit: an edit made against an older version is refused (two people, one draft).
    Column("version", Integer, nullable=False),
    Column("published_update_id", Integer, nullable=True),
    Column("published_by", String(200), nullable=True),
    # Who is affected, what does not work, since when, what to do meanwhile (as the update will say it).
    Column("impact_statement", JSON, nullable=True),
    # A signatory's short name in the policy: who it is (name, role) is looked up when it is sent.
    Column("signer", String(50), nullable=True),
    # A resolution's promise of the post-incident report: a fixed time, not counted from sending.
    Column("report_by", Timestamp(), nullable=True),
)

# Email addresses are unique without case (``BOB@Example.com`` is ``bob@example.com``): imports and
# signups look them up by ``lower(address)``.
Index("ix_contact_points_email_key", contact_points.c.channel, func.lower(contact_points.c.address))

provider_readiness = Table(
    "provider_readiness",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("channel", String(20), nullable=False),
    Column("provider", String(50), nullable=False),
    Column("ready", Boolean, nullable=False),
    # Why not (or what the probe saw when ready: "scopes include mail.send").
    Column("detail", Text, nullable=False),
    Column("checked_at", Timestamp(), nullable=False),
    Column("elapsed_ms", Integer, nullable=False),
    # When the provider last went from ready to not ready, or back.
    Column("since", Timestamp(), nullable=False),
    UniqueConstraint("channel", "provider", name="uq_provider_readiness_channel_provider"),
)

channel_readiness = Table(
    "channel_readiness",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("channel", String(20), nullable=False, unique=True),
    # ready (every provider answers), degraded (a fallback carries it), down (no provider answers).
    Column("state", String(20), nullable=False),
    Column("since", Timestamp(), nullable=False),
    Column("checked_at", Timestamp(), nullable=False),
    # The internal incident that told staff the channel is not ready, while it is open.
    Column("incident_id", Integer, nullable=True),
)

console_sessions = Table(
    "console_sessions",
    metadata,
    Column("id", Integer, primary_key=True),
    # sha256 of the random session id the cookie carries: logging out ends it here, for every copy.
    Column("session_hash", String(64), nullable=False, unique=True),
    Column("token_id", Integer, nullable=False),
    Column("created_at", Timestamp(), nullable=False),
    Column("expires_at", Timestamp(), nullable=False),
    Column("ended_at", Timestamp(), nullable=True),
)


# --- status page components and self-service subscriptions (migration 0012) ---------------------------

components = Table(
    "components",
    metadata,
    # What the status page lists: configured by people (console, API, CLI), shown in ``position`` order
    # within their group. ``status`` is what a person set by hand (between incidents); the page shows
    # the worse of it and what open incidents say.
    Column("id", Integer, primary_key=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("slug", String(100), nullable=False, unique=True),
    Column("group_name", String(200), nullable=True),
    Column("description", Text, nullable=True),
    Column("position", Integer, nullable=False, server_default="0"),
    Column("status", String(30), nullable=False, server_default="operational"),
    Column("status_set_at", Timestamp(), nullable=True),
    Column("status_set_by", String(200), nullable=True),
    Column("created_at", Timestamp(), nullable=False),
    Column("updated_at", Timestamp(), nullable=False),
)

component_status_changes = Table(
    "component_status_changes",
    metadata,
    # Every status set by hand, from when: the uptime history counts these intervals as well.
    Column("id", Integer, primary_key=True),
    Column("component", String(200), nullable=False),
    Column("status", String(30), nullable=False),
    Column("effective_at", Timestamp(), nullable=False),
    Column("actor", String(200), nullable=True),
    Column("reason", Text, nullable=True),
    Index("ix_component_status_changes_component_effective_at", "component", "effective_at"),
)

subscription_challenges = Table(
    "subscription_challenges",
    metadata,
    # A self-service contact point waiting to prove itself: an SMS code texted to the number, or a
    # verification ping the webhook endpoint must answer. Only the code's hash is kept.
    Column("id", Integer, primary_key=True),
    Column(
        "contact_point_id",
        Integer,
        ForeignKey("contact_points.id", ondelete="CASCADE"),
        nullable=False,
        unique=True,
    ),
    Column("kind", String(20), nullable=False),
    Column("code_hash", String(64), nullable=False),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("created_at", Timestamp(), nullable=False),
    Column("expires_at", Timestamp(), nullable=False),
)
