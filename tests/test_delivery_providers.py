"""Given subscribers and real providers (emulated on the wire), when an update is published, then each
provider received exactly the owed messages, retries and failover behaved, and the ledger says so."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import select

from channels.base import ChannelKind
from dispatcher.audience.subscribers import add_subscribers
from dispatcher.config.settings import ChannelSettings, RetrySettings
from dispatcher.domain.models import ContactPoint, Subscriber
from dispatcher.engine.runtime import Runtime
from dispatcher.store.schema import deliveries, delivery_attempts
from tests.emulators import SendGridEmulator, WebhookReceiver
from tests.emulators.smtp import SmtpSink
from tests.helpers import draft, incident, publish_and_deliver, states, subscribe

API_KEY = "SG.test-key"
FAST_RETRY = RetrySettings(schedule=[0.05, 0.1, 0.2])


@pytest.fixture
def sendgrid() -> Iterator[SendGridEmulator]:
    with SendGridEmulator(api_key=API_KEY, hang_seconds=5) as emu:
        yield emu


@pytest.fixture
def smtp() -> Iterator[SmtpSink]:
    with SmtpSink() as sink:
        yield sink


def email_runtime(
    make_runtime: Callable[..., Runtime],
    sendgrid: SendGridEmulator,
    providers: list[str],
    smtp: SmtpSink | None = None,
    timeout: float = 1.0,
    **extra: Any,
) -> Runtime:
    options: dict[str, dict[str, Any]] = {
        "sendgrid": {
            "api_key": API_KEY,
            "base_url": sendgrid.base_url,
            "from_email": "status@example.com",
            "timeout": timeout,
        },
    }
    if smtp is not None:
        options["smtp"] = {
            "host": smtp.host,
            "port": smtp.port,
            "starttls": False,
            "from_email": "status@example.com",
            "timeout": 2,
        }
    return make_runtime(
        channels={ChannelKind.EMAIL: ChannelSettings(providers=providers)},
        providers=options,
        retry=extra.pop("retry", FAST_RETRY),
        **extra,
    )


def ledger(rt: Runtime, update_id: int) -> list[Any]:
    with rt.engine.connect() as conn:
        return list(conn.execute(select(deliveries).where(deliveries.c.update_id == update_id)))


def test_sendgrid_gets_one_request_per_thousand_and_the_ledger_keeps_its_message_ids(
    make_runtime: Callable[..., Runtime], sendgrid: SendGridEmulator
) -> None:
    # A generous timeout: a 1,000-recipient request on a loaded machine may take over a second, and a
    # timed-out request is retried (a ghost), which is not what this test is about.
    rt = email_runtime(make_runtime, sendgrid, ["sendgrid"], timeout=30.0)
    subscribe(rt, 2500)

    published = publish_and_deliver(rt, draft(incident(rt), channels=[ChannelKind.EMAIL]))

    assert sendgrid.stats["accepted_requests"] == 3
    received = sendgrid.received
    assert sorted(m["email"] for m in received) == sorted(f"person{i}@example.com" for i in range(2500))
    rows = {r.id: r for r in ledger(rt, published.update.id)}
    for message in received:
        row = rows[int(message["custom_args"]["tocsin_delivery_id"])]
        assert row.address == message["email"]
        assert row.state == "sent" and row.provider == "sendgrid"
        assert row.provider_message_id == message["message_id"]


def test_429_is_retried_no_sooner_than_retry_after(
    make_runtime: Callable[..., Runtime], sendgrid: SendGridEmulator
) -> None:
    rt = email_runtime(make_runtime, sendgrid, ["sendgrid"])
    subscribe(rt, 10)
    sendgrid.set_faults(fail_next=[{"status": 429, "retry_after": 1}])

    published = publish_and_deliver(rt, draft(incident(rt), channels=[ChannelKind.EMAIL]), wait=5)

    assert states(rt, published.update.id) == {"sent": 10}
    assert len(sendgrid.received) == 10
    with rt.engine.connect() as conn:
        attempts = conn.execute(
            select(delivery_attempts.c.outcome, delivery_attempts.c.started_at).order_by(
                delivery_attempts.c.id
            )
        ).all()
    assert [a.outcome for a in attempts] == ["transient", "sent"]
    assert (attempts[1].started_at - attempts[0].started_at).total_seconds() >= 1.0
    assert {r.attempts for r in ledger(rt, published.update.id)} == {2}


def test_a_permanent_error_fails_the_rows_once_and_is_never_retried(
    make_runtime: Callable[..., Runtime], sendgrid: SendGridEmulator
) -> None:
    rt = email_runtime(make_runtime, sendgrid, ["sendgrid"])
    subscribe(rt, 3)
    sendgrid.set_faults(fail_next=[{"status": 400}])

    published = publish_and_deliver(rt, draft(incident(rt), channels=[ChannelKind.EMAIL]), wait=2)

    assert states(rt, published.update.id) == {"failed": 3}
    assert sendgrid.stats["requests"] == 1
    assert all("sendgrid 400" in (r.last_error or "") for r in ledger(rt, published.update.id))


def test_one_address_sendgrid_rejects_fails_alone_and_the_rest_are_sent(
    make_runtime: Callable[..., Runtime], sendgrid: SendGridEmulator
) -> None:
    rt = email_runtime(make_runtime, sendgrid, ["sendgrid"])
    subscribe(rt, 4)
    add_subscribers(
        rt,
        [
            Subscriber(
                name="Typo", contact_points=[ContactPoint(channel=ChannelKind.EMAIL, address="typo@@example")]
            )
        ],
    )

    published = publish_and_deliver(rt, draft(incident(rt), channels=[ChannelKind.EMAIL]), wait=2)

    assert states(rt, published.update.id) == {"sent": 4, "failed": 1}
    assert sorted(m["email"] for m in sendgrid.received) == [f"person{i}@example.com" for i in range(4)]
    bad = next(r for r in ledger(rt, published.update.id) if r.state == "failed")
    assert bad.address == "typo@@example" and "email" in bad.last_error


def test_transient_failures_give_up_after_max_attempts_and_keep_the_last_error(
    make_runtime: Callable[..., Runtime], sendgrid: SendGridEmulator
) -> None:
    rt = email_runtime(
        make_runtime,
        sendgrid,
        ["sendgrid"],
        retry=RetrySettings(schedule=[0.05, 0.1]),
    )
    subscribe(rt, 2)
    sendgrid.set_faults(fail_next=[503, 503, 503, 503])

    published = publish_and_deliver(rt, draft(incident(rt), channels=[ChannelKind.EMAIL]), wait=15)

    assert states(rt, published.update.id) == {"failed": 2}
    assert sendgrid.stats["requests"] == 3
    rows = ledger(rt, published.update.id)
    assert all(r.attempts == 3 and "gave up after 3 attempts" in r.last_error for r in rows)


def test_when_sendgrid_is_down_smtp_carries_every_message(
    make_runtime: Callable[..., Runtime], sendgrid: SendGridEmulator, smtp: SmtpSink
) -> None:
    rt = email_runtime(make_runtime, sendgrid, ["sendgrid", "smtp"], smtp=smtp)
    subscribe(rt, 40)
    sendgrid.set_faults(down="auth")

    published = publish_and_deliver(rt, draft(incident(rt), channels=[ChannelKind.EMAIL]))

    assert sendgrid.received == []
    delivered = sorted(rcpt for m in smtp.messages for rcpt in m.rcpt_tos)
    assert delivered == sorted(f"person{i}@example.com" for i in range(40))
    assert {(r.state, r.provider) for r in ledger(rt, published.update.id)} == {("sent", "smtp")}


def test_webhooks_are_signed_and_keep_their_id_across_retries(
    make_runtime: Callable[..., Runtime],
) -> None:
    with WebhookReceiver(responses={"/hooks/gone": 410}) as receiver:
        rt = make_runtime(
            channels={ChannelKind.WEBHOOK: ChannelSettings(providers=["webhook"])},
            providers={"webhook": {"timeout": 2, "allow_destinations": ["127.0.0.0/8"]}},
            retry=FAST_RETRY,
        )
        subscribe(rt, 6, email=False, webhook=f"{receiver.base_url}/hooks")
        from dispatcher.audience.subscribers import iter_subscribers

        for s in iter_subscribers(rt):
            receiver.set_secret(s.contact_points[0].secret, path=f"/hooks/{s.name.split()[-1]}")
        receiver.set_faults(fail_next=[503])

        published = publish_and_deliver(rt, draft(incident(rt), channels=[ChannelKind.WEBHOOK]), wait=3)

        assert states(rt, published.update.id) == {"sent": 6}
        assert all(m["verified"] for m in receiver.received)
        assert receiver.stats["rejected"] == {"503": 1}
        ids = [m["webhook_id"] for m in receiver.received]
        assert len(ids) == len(set(ids)) == 6
        retried = {r["webhook_id"] for r in receiver.rejected if "webhook_id" in r}
        assert retried <= set(ids), "a retried webhook keeps its webhook-id"
        assert (
            receiver.received[0]["body"]["type"] == "incident.update"
            or "incident" in receiver.received[0]["body"]
        )
