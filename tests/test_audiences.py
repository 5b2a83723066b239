"""Who gets an update: public, internal and policy segments, each subscriber's preferences, staff first.

Every test drives the real publish → fan-out → deliver path on SQLite and PostgreSQL and reads the
ledger (and the outbox, for what people actually receive)."""

from __future__ import annotations

import email
import email.policy
import io
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import func, select

from channels.base import ChannelKind
from dispatcher.audience.subscribers import add_subscribers
from dispatcher.comms.incidents import open_incident
from dispatcher.comms.publish import publish
from dispatcher.domain.errors import InvalidInput
from dispatcher.domain.models import Audience, ContactPoint, IncidentDraft, Severity, Subscriber
from dispatcher.engine.fanout import fan_out
from dispatcher.engine.runtime import Runtime
from dispatcher.store.schema import deliveries, updates
from tests.helpers import RecordingQueue, draft, incident, publish_and_deliver

POLICY = """
[severity.minor]
cadence = "3h"
audiences = ["public", "internal", "eu-pro", "beta", "checkout-watchers"]

[severity.major]
cadence = "1h"
audiences = ["public", "internal", "eu-pro", "beta", "checkout-watchers"]

[severity.critical]
cadence = "30m"
audiences = ["public", "internal", "eu-pro", "beta", "checkout-watchers"]

[segments.eu-pro]
regions = ["eu"]
plans = ["pro"]

[segments.beta]
tags = ["beta"]

[segments.checkout-watchers]
components = ["checkout"]
"""


@pytest.fixture
def rt(make_runtime: Callable[..., Runtime], tmp_path: Path) -> Runtime:
    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY)
    return make_runtime(policy_file=policy)


def mail(address: str, **fields: object) -> Subscriber:
    confirmed = bool(fields.pop("confirmed", True))
    opted_out = bool(fields.pop("opted_out", False))
    points = [
        ContactPoint(channel=ChannelKind.EMAIL, address=address, confirmed=confirmed, opted_out=opted_out)
    ]
    phone = fields.pop("phone", None)
    if phone:
        points.append(ContactPoint(channel=ChannelKind.SMS, address=str(phone)))
    return Subscriber(name=address.split("@")[0], contact_points=points, **fields)


PEOPLE = [
    mail("everyone@example.com"),
    mail("staff@example.com", internal=True),
    mail("staff-billing@example.com", internal=True, components=["billing"]),
    mail("billing-only@example.com", components=["billing"]),
    mail("checkout-fan@example.com", components=["checkout"]),
    mail("critical-only@example.com", min_severity=Severity.CRITICAL),
    mail("sms-only@example.com", phone="+12025550101", channels=[ChannelKind.SMS]),
    mail("both@example.com", phone="+12025550102"),
    mail("pending@example.com", confirmed=False),
    mail("gone@example.com", opted_out=True),
    mail("eu-pro@example.com", region="eu", plan="pro"),
    mail("eu-free@example.com", region="eu", plan="free"),
    mail("us-pro@example.com", region="us", plan="pro"),
    mail("tester@example.com", tags=["beta", "vip"]),
]


def rows(rt: Runtime, update_id: int, channel: ChannelKind = ChannelKind.EMAIL) -> dict[str, str]:
    with rt.engine.connect() as conn:
        found = conn.execute(
            select(deliveries.c.address, deliveries.c.state).where(
                deliveries.c.update_id == update_id, deliveries.c.channel == channel.value
            )
        )
        return {address: state for address, state in found}


def fanned(rt: Runtime, audience: str, severity: Severity = Severity.MAJOR) -> tuple[int, RecordingQueue]:
    add_subscribers(rt, PEOPLE)
    inc = incident(rt, severity=severity, components=["checkout"])
    queue = RecordingQueue()
    published = publish(
        rt, draft(inc, audience=audience, channels=[ChannelKind.EMAIL, ChannelKind.SMS]), queue
    )
    fan_out(rt, published.update.id, queue)
    return published.update.id, queue


def test_public_reaches_matching_subscribers_and_staff_and_respects_every_preference(rt: Runtime) -> None:
    update_id, _ = fanned(rt, "public")

    assert rows(rt, update_id) == {
        "everyone@example.com": "queued",
        "staff@example.com": "queued",
        "checkout-fan@example.com": "queued",
        "both@example.com": "queued",
        "gone@example.com": "suppressed",  # opted out: in the ledger, never sent
        "eu-pro@example.com": "queued",
        "eu-free@example.com": "queued",
        "us-pro@example.com": "queued",
        "tester@example.com": "queued",
    }
    # Not there: other components (billing), severity below their minimum, email not among their
    # channels, and the unconfirmed self-service signup.
    assert rows(rt, update_id, ChannelKind.SMS) == {"+12025550101": "queued", "+12025550102": "queued"}


def test_staff_rows_are_batched_and_queued_before_the_public(rt: Runtime) -> None:
    update_id, queue = fanned(rt, "public")

    with rt.engine.connect() as conn:
        first_batch = set(
            conn.execute(
                select(deliveries.c.address).where(
                    deliveries.c.update_id == update_id,
                    deliveries.c.channel == ChannelKind.EMAIL.value,
                    deliveries.c.batch == 0,
                )
            ).scalars()
        )
    assert first_batch == {"staff@example.com"}
    email_batches = [ref.batch for ref, _ in queue.batches if ref.channel is ChannelKind.EMAIL]
    assert email_batches == [0, 1], "the staff batch goes to the queue first"


def test_internal_reaches_staff_only(rt: Runtime) -> None:
    update_id, _ = fanned(rt, "internal")

    assert rows(rt, update_id) == {"staff@example.com": "queued"}
    assert rows(rt, update_id, ChannelKind.SMS) == {}


@pytest.mark.parametrize(
    ("segment", "members"),
    [
        ("eu-pro", {"eu-pro@example.com"}),
        ("beta", {"tester@example.com"}),
        # Following checkout, or following everything (no components chosen): both follow checkout.
        (
            "checkout-watchers",
            {
                "everyone@example.com",
                "checkout-fan@example.com",
                "both@example.com",
                "gone@example.com",
                "eu-pro@example.com",
                "eu-free@example.com",
                "us-pro@example.com",
                "tester@example.com",
            },
        ),
    ],
)
def test_a_segment_reaches_its_members_and_staff(rt: Runtime, segment: str, members: set[str]) -> None:
    update_id, _ = fanned(rt, segment)

    assert set(rows(rt, update_id)) == members | {"staff@example.com"}
    with rt.engine.connect() as conn:
        stored = conn.execute(select(updates.c.audience).where(updates.c.id == update_id)).scalar_one()
    assert stored == segment


def test_an_unknown_segment_is_named_and_nothing_is_written(rt: Runtime) -> None:
    inc = incident(rt)
    with pytest.raises(InvalidInput, match="no segment named 'nope'"):
        publish(rt, draft(inc, audience="nope"), RecordingQueue())
    with pytest.raises(ValueError, match="audience"):
        draft(inc, audience="not a name")
    with rt.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(updates)).scalar_one() == 0


def test_segment_audience_is_an_audience_value() -> None:
    segment = Audience("eu-pro")
    assert segment.is_segment and segment.value == "eu-pro" and segment is not Audience.PUBLIC
    assert Audience("Public") is Audience.PUBLIC and not Audience.INTERNAL.is_segment


def test_a_segment_update_never_goes_to_social(rt: Runtime) -> None:
    add_subscribers(rt, PEOPLE)
    published = publish(rt, draft(incident(rt), audience="beta"), RecordingQueue())
    assert ChannelKind.SOCIAL not in published.update.channels
    assert published.update.audience == "beta"


def _eml(outbox: Path, update_id: int, address: str) -> email.message.EmailMessage:
    for path in (outbox / f"update-{update_id}" / "email").glob("*.eml"):
        parsed = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        if parsed["To"] == address:
            assert isinstance(parsed, email.message.EmailMessage)
            return parsed
    raise AssertionError(f"no email to {address} in update {update_id}")


def _text(message: email.message.EmailMessage) -> str:
    body = message.get_body(("plain",))
    assert body is not None
    return str(body.get_content())


def test_the_subscriber_locale_picks_the_french_templates_end_to_end(rt: Runtime, tmp_path: Path) -> None:
    add_subscribers(rt, [mail("marie@example.fr", locale="fr"), mail("mary@example.com")])
    update_id = publish_and_deliver(rt, draft(incident(rt), channels=[ChannelKind.EMAIL])).update.id

    french = _text(_eml(tmp_path / "outbox", update_id, "marie@example.fr"))
    english = _text(_eml(tmp_path / "outbox", update_id, "mary@example.com"))
    assert "Publié" in french and "Vous recevez ce message" in french
    assert "Publié" not in english


def test_internal_notes_reach_staff_and_never_the_public(rt: Runtime, tmp_path: Path) -> None:
    add_subscribers(rt, [mail("staff@example.com", internal=True), mail("customer@example.com")])
    inc = open_incident(rt, IncidentDraft(title="Database failover", components=["checkout"]))
    note = "Runbook DB-7; ping the on-call DBA."
    internal = publish_and_deliver(
        rt, draft(inc, audience="internal", internal_note=note, channels=[ChannelKind.EMAIL])
    ).update.id
    public = publish_and_deliver(
        rt,
        draft(inc, message="Still investigating.", internal_note=note, channels=[ChannelKind.EMAIL]),
    ).update.id

    assert note in _text(_eml(tmp_path / "outbox", internal, "staff@example.com"))
    # Of a public update, staff's copy carries the note; the customer's (same locale) never does.
    assert note in _text(_eml(tmp_path / "outbox", public, "staff@example.com"))
    customer_copy = _text(_eml(tmp_path / "outbox", public, "customer@example.com"))
    assert "Still investigating." in customer_copy and note not in customer_copy


# --- preferences from the CLI and CSV import ---------------------------------------------------------


def test_subscribers_add_and_import_take_every_preference(tmp_path: Path) -> None:
    from dispatcher.audience.subscribers import iter_subscribers
    from dispatcher.config.settings import Settings
    from dispatcher.engine.runtime import build_runtime
    from tests.cli import tocsin

    assert tocsin("init", cwd=tmp_path).code == 0
    added = tocsin(
        "subscribers",
        "add",
        "--email",
        "Ops@Example.com",
        "--phone",
        "(202) 555-0143",
        "--name",
        "Ops",
        "--region",
        "eu",
        "--plan",
        "pro",
        "--tag",
        "beta",
        "--tag",
        "vip",
        "--channels",
        "sms",
        "--quiet-hours",
        "22:00-07:00",
        "--timezone",
        "Europe/Paris",
        "--locale",
        "fr",
        "--internal",
        cwd=tmp_path,
    )
    assert added.code == 0, added.err
    (tmp_path / "people.csv").write_text(
        "name,email,region,plan,tags,channels,quiet_hours,timezone\n"
        "Ann,ann@example.com,us,free,beta;x,email,23:00-06:30,America/New_York\n"
    )
    imported = tocsin("subscribers", "import", "people.csv", cwd=tmp_path)
    assert imported.code == 0, imported.err

    listed = tocsin("subscribers", "list", cwd=tmp_path)
    assert "only sms" in listed.out and "quiet 22:00-07:00 Europe/Paris" in listed.out
    assert "region eu" in listed.out and "#vip" in listed.out

    rt = build_runtime(Settings(database_url=f"sqlite:///{tmp_path / 'tocsin.db'}"))
    ops, ann = list(iter_subscribers(rt))
    rt.close()
    assert (ops.region, ops.plan, ops.tags, ops.channels) == ("eu", "pro", ["beta", "vip"], [ChannelKind.SMS])
    assert (ops.quiet_start, ops.quiet_end, ops.timezone, ops.locale, ops.internal) == (
        "22:00",
        "07:00",
        "Europe/Paris",
        "fr",
        True,
    )
    assert [cp.address for cp in ops.contact_points] == ["Ops@example.com", "+12025550143"]
    assert (ann.region, ann.plan, ann.tags, ann.channels) == (
        "us",
        "free",
        ["beta", "x"],
        [ChannelKind.EMAIL],
    )
    assert (ann.quiet_start, ann.quiet_end, ann.timezone) == ("23:00", "06:30", "America/New_York")


BAD_ADDS = [
    (["--email", "x@example.com", "--channels", "sms"], "channels: sms chosen but no contact given"),
    (["--email", "x@example.com", "--quiet-hours", "22:00"], "quiet_hours: '22:00' is not a quiet-hours"),
    (["--email", "not-an-email"], "email: 'not-an-email' is not a valid email address"),
    (["--name", "Nobody"], "give at least one of --email, --phone, --webhook"),
]


def test_subscribers_add_names_what_is_wrong_and_adds_nothing(tmp_path: Path) -> None:
    from tests.cli import tocsin

    tocsin("init", cwd=tmp_path)
    for args, expected in BAD_ADDS:
        ran = tocsin("subscribers", "add", *args, cwd=tmp_path)
        assert ran.code == 1, args
        assert expected in " ".join(ran.err.split())
        assert "Traceback" not in ran.err
    assert "0 subscriber(s)" in tocsin("subscribers", "list", cwd=tmp_path).out


def test_csv_rows_with_bad_preferences_are_named() -> None:
    from dispatcher.audience.csv_rows import parse_subscribers_csv

    report = parse_subscribers_csv(
        io.StringIO(
            "name,email,phone,channels,quiet_hours,timezone,region\n"
            "A,a@example.com,,sms,,,\n"
            "B,b@example.com,,fax,25:00-07:00,Mars/Base,\n"
            "C,c@example.com,,,,," + "r" * 51 + "\n"
            "D,d@example.com,+12025550143,email;sms,22:00-07:00,Europe/Paris,eu\n"
        )
    )
    assert [str(p) for p in report.problems] == [
        "line 2, channels: sms chosen but the row has no phone",
        "line 3, channels: 'fax' is not a channel a subscriber can choose (use email, sms, webhook)",
        "line 3, quiet_hours: '25:00' is not a time of day: use HH:MM, 24-hour (e.g. 22:00)",
        "line 3, timezone: 'Mars/Base' is not a time zone: use an IANA name such as Europe/Paris",
        "line 4, region: 'rrrrrrrrrrrrrrrrrrrr'… is longer than 50 characters",
    ]
    [d] = report.subscribers
    assert (d.channels, d.quiet_start, d.quiet_end, d.region) == (
        [ChannelKind.EMAIL, ChannelKind.SMS],
        "22:00",
        "07:00",
        "eu",
    )
