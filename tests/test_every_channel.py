"""One update reaches people by email, SMS, X, webhooks and chat, each through its real SDK on the wire."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import select

from channels.base import ChannelKind
from dispatcher.audience.subscribers import add_subscribers
from dispatcher.config.settings import ChannelSettings, RetrySettings
from dispatcher.domain.models import ContactPoint, IncidentStatus, Subscriber
from dispatcher.engine.runtime import Runtime
from dispatcher.store.schema import contact_points, incidents
from tests.emulators import SendGridEmulator, TwilioEmulator, WebhookReceiver, XEmulator
from tests.helpers import draft, incident, publish_and_deliver, states

SID = "AC" + "1" * 32
STOP_NUMBER = "+12025550107"


@pytest.fixture
def emulators() -> Iterator[dict[str, Any]]:
    with (
        SendGridEmulator(api_key="SG.k") as sendgrid,
        TwilioEmulator(account_sid=SID, auth_token="tok", stop_numbers=(STOP_NUMBER,)) as twilio,
        XEmulator() as x,
        WebhookReceiver(verify=False) as hooks,
    ):
        yield {"sendgrid": sendgrid, "twilio": twilio, "x": x, "hooks": hooks}


def all_channels(make_runtime: Callable[..., Runtime], emu: dict[str, Any]) -> Runtime:
    secret = {
        "consumer_key": "ck",
        "consumer_secret": "cs",
        "access_token": "at",
        "access_token_secret": "as",
    }
    return make_runtime(
        channels={
            ChannelKind.EMAIL: ChannelSettings(providers=["sendgrid"]),
            ChannelKind.SMS: ChannelSettings(providers=["twilio"], max_segments=2),
            ChannelKind.SOCIAL: ChannelSettings(providers=["x"]),
            ChannelKind.WEBHOOK: ChannelSettings(providers=["webhook"]),
            ChannelKind.CHAT: ChannelSettings(providers=["apprise"]),
        },
        providers={
            "sendgrid": {
                "api_key": "SG.k",
                "base_url": emu["sendgrid"].base_url,
                "from_email": "status@example.com",
            },
            "twilio": {
                "account_sid": SID,
                "auth_token": "tok",
                "from_number": "+12025550199",
                "base_url": emu["twilio"].base_url,
                "timeout": 5,
            },
            "x": {**secret, "base_url": emu["x"].base_url},
            "webhook": {"timeout": 5, "allow_destinations": ["127.0.0.0/8"]},
            "apprise": {
                "rooms": {
                    "ops": f"json://{emu['hooks'].base_url.removeprefix('http://')}/ops",
                    "support": f"json://{emu['hooks'].base_url.removeprefix('http://')}/support",
                }
            },
        },
        rate_limits={"twilio": {"per_second": 50, "burst": 10}},
        status_page_url="https://status.example.com",
    )


def test_one_update_reaches_every_channel_and_x_posts_form_one_thread(
    make_runtime: Callable[..., Runtime], emulators: dict[str, Any]
) -> None:
    rt = all_channels(make_runtime, emulators)
    people = [
        Subscriber(
            name=f"P{i}",
            contact_points=[
                ContactPoint(channel=ChannelKind.EMAIL, address=f"p{i}@example.com"),
                ContactPoint(channel=ChannelKind.SMS, address=f"+120255501{i:02d}"),
                ContactPoint(channel=ChannelKind.WEBHOOK, address=f"{emulators['hooks'].base_url}/hooks/{i}"),
            ],
        )
        for i in range(8)
    ]
    add_subscribers(rt, people)
    inc = incident(rt)
    long_message = "Checkout is failing for about a third of customers. " * 12

    first = publish_and_deliver(rt, draft(inc, long_message))
    second = publish_and_deliver(
        rt, draft(inc, "We rolled back the 09:05 deploy; monitoring.", status=IncidentStatus.MONITORING)
    )

    assert sorted(m["email"] for m in emulators["sendgrid"].received) == sorted(
        f"p{i}@example.com" for i in range(8) for _ in range(2)
    )
    texts = [m["body"] for m in emulators["twilio"].received]
    assert len(texts) == 14, "7 numbers x 2 updates; the STOP number got nothing after its first refusal"
    assert all(m["from"] == "+12025550199" for m in emulators["twilio"].received)
    from channels.text.sms_segments import count_segments

    assert all(count_segments(t).segments <= 2 for t in texts)
    # US numbers: the body is cut, the promise, the link and the carrier's opt-out hint are kept.
    cut = [t for t in texts if "..." in t]
    assert cut and all(t.endswith("https://status.example.com Reply STOP to opt out.") for t in cut)
    assert all("Next update by" in t for t in cut)
    with rt.engine.connect() as conn:
        assert conn.execute(
            select(contact_points.c.opted_out).where(contact_points.c.address == STOP_NUMBER)
        ).scalar_one()
    assert states(rt, first.update.id, ChannelKind.SMS) == {"sent": 7, "suppressed": 1}

    posts = emulators["x"].received
    assert len(posts) == 2
    assert posts[0]["in_reply_to_tweet_id"] is None
    assert posts[1]["in_reply_to_tweet_id"] == posts[0]["id"], "all posts about one incident form one thread"
    with rt.engine.connect() as conn:
        assert conn.execute(select(incidents.c.social_thread_id)).scalar_one() == posts[1]["id"]

    by_path = {}
    for m in emulators["hooks"].received:
        by_path.setdefault(m["path"], []).append(m)
    assert len(by_path["/ops"]) == len(by_path["/support"]) == 2, "one chat post per room per update"
    assert sum(1 for p in by_path if p.startswith("/hooks/")) == 8
    assert states(rt, second.update.id, ChannelKind.CHAT) == {"sent": 2}
    assert states(rt, second.update.id, ChannelKind.SOCIAL) == {"sent": 1}


def test_a_provider_failing_request_after_request_is_not_called_again_for_the_rest_of_the_batch(
    make_runtime: Callable[..., Runtime],
) -> None:
    with TwilioEmulator(account_sid=SID, auth_token="tok", down=True) as twilio:
        rt = make_runtime(
            channels={ChannelKind.SMS: ChannelSettings(providers=["twilio"])},
            providers={
                "twilio": {
                    "account_sid": SID,
                    "auth_token": "tok",
                    "from_number": "+12025550199",
                    "base_url": twilio.base_url,
                    "timeout": 5,
                }
            },
            rate_limits={"twilio": {"per_second": 100, "burst": 1}},
            retry=RetrySettings(schedule=[30]),
        )
        add_subscribers(
            rt,
            [
                Subscriber(
                    contact_points=[ContactPoint(channel=ChannelKind.SMS, address=f"+120255501{i:02d}")]
                )
                for i in range(5)
            ],
        )
        published = publish_and_deliver(rt, draft(incident(rt), channels=[ChannelKind.SMS]))

        assert twilio.stats["requests"] == 3, "a run of failed requests (the breaker's 3), not one per row"
        assert states(rt, published.update.id) == {"queued": 5}
        with rt.engine.connect() as conn:
            from dispatcher.store.schema import deliveries

            attempts = sorted(conn.execute(select(deliveries.c.attempts)).scalars())
        assert attempts == [0, 0, 1, 1, 1], "only the rows that were tried count an attempt"
