"""The ``tocsin.toml`` that ``tocsin init`` writes: every setting at its default, commented."""

CONFIG_TEMPLATE = """\
# Tocsin configuration. Environment variables override this file: TOCSIN_<NAME>, nested with "__"
# (e.g. TOCSIN_CHANNELS__EMAIL__PROVIDERS='["sendgrid","smtp"]'); DATABASE_URL and REDIS_URL also work.

organisation = "Example Corp"
# status_page_url = "https://status.example.com"
timezone = "UTC"               # yours: times in X and chat posts, and for subscribers without their own
default_locale = "en"          # the language updates are written in first
# message_templates_dir = "message-templates"   # your message templates, beside policy.toml

# SQLite file by default; PostgreSQL in production: "postgresql://user:pass@host/tocsin"
database_url = "sqlite:///tocsin.db"
# With no redis_url, Tocsin runs the embedded runner in-process: no server needed.
# redis_url = "redis://localhost:6379/0"

outbox_dir = "outbox"
default_region = "US"          # for phone numbers imported without a leading +
# templates_dir = "my-templates" # overrides packaged templates file by file
policy_file = "policy.toml"    # the severity policy (built-in defaults until you write one)
tick_every = 30.0              # seconds between runs of scheduled updates, maintenance, promise checks

# Where people and providers reach `tocsin api` (unsubscribe and confirm links, signed callbacks).
# public_url = "https://tocsin.example.com"
# signing_key = "…"            # signs those links; or TOCSIN_SIGNING_KEY
# ingest_token = "…"           # bearer token for /ingest/alertmanager and /ingest/grafana

# Providers per channel, in failover order: primary first. "outbox" writes files (dry run).
[channels.email]
providers = ["outbox"]          # e.g. ["sendgrid", "smtp"]
[channels.sms]
providers = ["outbox"]
# max_segments = 2              # the SMS budget: longer texts have their body cut, never the promise
[channels.webhook]
providers = ["outbox"]          # "webhook" to POST signed requests to subscribers' endpoints
[channels.social]
providers = ["outbox"]
# The static status page: a folder and/or an S3 bucket (see docs/pages/statuspage.md).
# [channels.statuspage]
# enabled = true
# [providers.statuspage]
# directory = "/srv/status"
# s3_bucket = "status-example-com"

[retry]
# Waits before each retry, seconds; after the last one the delivery is failed (or moved to the next
# provider). Never before the provider's Retry-After. Provider APIs (email, SMS, X, chat) retry within
# seconds, then every minute; customers' webhook endpoints follow Svix's schedule, hours long.
# provider_schedule = [1, 2, 5, 10, 20, 30, 60, 60, 60, 60, 60, 60, 120, 300, 300]
# endpoint_schedule = [0, 5, 300, 1800, 7200, 18000, 36000, 36000]
# A channel may have its own: [channels.sms] retry_schedule = [0, 30, 300]
lease_seconds = 300.0           # a claimed batch not finished by then is owed again

# [providers.sendgrid]
# api_key = "SG.xxxxx"           # or TOCSIN_PROVIDERS__SENDGRID__API_KEY
# from_email = "status@example.com"
# from_name = "Example Corp Status"
# base_url = "https://api.sendgrid.com"   # EU: https://api.eu.sendgrid.com

# [providers.smtp]
# host = "smtp.example.com"
# port = 587
# username = "status"
# password = "…"
# from_email = "status@example.com"

# [providers.webhook]
# timeout = 10
# concurrency = 64
"""
