"""What a client of the public self-service pages is answered, as /openapi.json states it: a body that
breaks the description is a 422 naming the field, one that matches it but is refused by what no schema
knows is a 409; a link is a 422 (not a link's shape), 404 (no address matches it) or 410 (expired); a
rate limit is a 429 that says when to come back, on every page and endpoint. Texts go through the
in-memory provider (what is under test is the answer, not a provider's wire), email through the outbox."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from limits import parse_many
from sqlalchemy import select

from channels.base import ChannelKind
from channels.memory import MemoryAdapter
from dispatcher.audience import self_service
from dispatcher.audience.subscribers import add_subscribers
from dispatcher.config import keys
from dispatcher.domain.models import ContactPoint, Subscriber
from dispatcher.engine.runtime import Runtime
from dispatcher.store.schema import contact_points
from dispatcher.web.app import create_app
from dispatcher.web.self_service.rate_limits import LIMITS, RateLimits
from tests.helpers import hand_clock

KEY = "self-service-answers-signing-key-0123456789"
CODE = re.compile(r"your code is (\d{6})")


@pytest.fixture
def texts() -> MemoryAdapter:
    return MemoryAdapter()


@pytest.fixture
def rt(make_runtime: Callable[..., Runtime], texts: MemoryAdapter) -> Runtime:
    return make_runtime(
        adapters={"twilio": texts},
        public_url="https://status.example.com",
        signing_key=KEY,
        channels={"sms": {"providers": ["twilio"]}},
        providers={"statuspage": {"components": ["API", "Checkout"]}},
    )


@pytest.fixture
def client(rt: Runtime) -> Iterator[TestClient]:
    with TestClient(create_app(lambda: rt), base_url="http://testserver") as http:
        yield http


def subscribed(rt: Runtime, number: str) -> int:
    """A confirmed number; its contact point's id."""
    add_subscribers(rt, [Subscriber(contact_points=[ContactPoint(channel=ChannelKind.SMS, address=number)])])
    with rt.engine.connect() as conn:
        found = conn.execute(select(contact_points.c.id).where(contact_points.c.address == number))
        return int(found.scalar_one())


def token_of(link: str) -> str:
    return link.split("token=", 1)[1]


def test_every_rate_limited_page_says_when_to_come_back(client: TestClient, rt: Runtime) -> None:
    point = subscribed(rt, "+12025550150")
    manage = token_of(self_service.manage_link(rt, point, "+12025550150"))
    verify = client.post("/subscribe", json={"channel": "sms", "address": "+12025550151"}).json()[
        "verify_token"
    ]
    asks: list[tuple[str, Callable[[], object]]] = [
        ("GET /subscribe", lambda: client.get("/subscribe")),
        ("GET /manage", lambda: client.get(f"/manage?token={manage}")),
        ("POST /manage", lambda: client.post(f"/manage?token={manage}", data={"action": "save"})),
        (
            "POST /subscribe/verify",
            lambda: client.post(f"/subscribe/verify?token={verify}", data={"code": "1"}),
        ),
    ]
    for name, ask in asks:
        for _ in range(200):  # more than any of the limits allows in a minute
            answer = ask()
            assert hasattr(answer, "status_code")
            if answer.status_code == 429:
                break
        else:
            pytest.fail(f"{name} was never limited")
        assert int(answer.headers["Retry-After"]) > 0, name
        assert answer.headers["content-type"].startswith("text/html"), name


def test_a_link_says_whether_it_is_malformed_unknown_or_expired(client: TestClient, rt: Runtime) -> None:
    point = subscribed(rt, "+12025550160")
    link = token_of(self_service.manage_link(rt, point, "+12025550160"))
    code, point_id, expires, signature = link.split(".")
    forged = f"{code}.{point_id}.{int(expires) + 1}.{signature}"
    too_big = f"{code}.9999999999.{expires}.{signature}"

    assert client.get(f"/manage?token={link}").status_code == 200
    assert client.get("/manage?token=m.1.2.short").status_code == 422
    assert client.get("/manage").status_code == 422
    assert client.get(f"/manage?token={forged}").status_code == 404
    assert client.get(f"/manage?token={too_big}").status_code == 404, "no id that large: no match"
    refused = client.post(f"/manage?token={forged}", json={"action": "stop"})
    assert refused.status_code == 404 and refused.json()["errors"][0]["field"] == "token"
    for page, purpose in (("/unsubscribe", "u"), ("/subscribe/confirm", "c")):
        assert client.get(f"{page}?token=garbage").status_code == 422, page
        assert client.get(f"{page}?token={purpose}.1.2.{signature}").status_code == 404, page
        assert client.get(f"{page}?token={link}").status_code == 422, "a manage link is not this link"

    clock = hand_clock(rt)
    clock.advance(seconds=(keys.MANAGE_VALID_FOR + timedelta(days=1)).total_seconds())
    expired = client.get(f"/manage?token={link}")
    assert expired.status_code == 410 and "expired" in expired.text


def test_what_breaks_the_description_is_422_and_what_matches_it_but_is_refused_409(
    client: TestClient, rt: Runtime, texts: MemoryAdapter
) -> None:
    unlimited = {kind: parse_many("1000/minute") for kind in LIMITS}
    client.app.state.self_service_limits = RateLimits.build(None, unlimited)  # type: ignore[attr-defined]

    def signup(**body: object) -> tuple[int, str]:
        answer = client.post("/subscribe", json=body)
        field = answer.json().get("errors", [{}])[0].get("field", "") if answer.status_code >= 400 else ""
        return answer.status_code, field

    assert signup(email="a@example.com", components=["Payments"]) == (409, "components")
    assert signup(email="a@example.com", quiet_start="22:00") == (422, "quiet_end")
    assert signup(email="a@example.com", quiet_start="7:00", quiet_end="07:00") == (409, "quiet_end")
    assert signup(email="a@example.com", timezone=None) == (422, "timezone")
    assert signup(email="a@example.com", timezone="Mars/Olympus") == (422, "timezone")
    assert signup(email="a@example.com", channel="") == (422, "channel")
    assert signup(email="nobody") == (422, "email")
    assert signup(email="someone@example.test") == (409, "email"), "an address email-validator refuses"
    assert signup(channel="sms", address="call me") == (422, "address")
    assert signup(channel="sms", address="+0 000 000") == (409, "address"), "no country's plan has it"
    assert signup(channel="webhook", url="http://10.0.0.8/hook") == (409, "address")
    assert signup(email="a@example.com", components=["API"]) == (202, "")

    number = "+12025550170"
    verify = client.post("/subscribe", json={"channel": "sms", "address": number}).json()["verify_token"]
    [sent] = [call.message.text for call in texts.calls if call.recipients[0].address == number]
    code = CODE.search(sent)
    assert code is not None
    wrong = "000000" if code.group(1) != "000000" else "111111"
    assert client.post(f"/subscribe/verify?token={verify}", json={"code": "12ab"}).status_code == 422
    refused = client.post(f"/subscribe/verify?token={verify}", json={"code": wrong})
    assert refused.status_code == 409 and refused.json()["errors"][0]["field"] == "code"
    assert client.post(f"/subscribe/verify?token={verify}", json={"code": code.group(1)}).status_code == 200


def test_a_form_leaves_out_its_blank_fields_and_gives_each_field_once(client: TestClient) -> None:
    form = {
        "channel": "email",
        "email": "form@example.com",
        "phone": "",
        "url": " ",
        "timezone": "",
        "components": ["API, Checkout", ""],
        "min_severity": "major",
        "locale": "fr",
    }
    page = client.post("/subscribe", data=form)
    assert page.status_code == 202 and "Check your inbox" in page.text

    twice = client.post("/subscribe", content=b"email=a%40example.com&locale=en&locale=fr", headers=FORM)
    assert twice.status_code == 422 and "locale: give it once" in twice.text
    assert twice.headers["content-type"].startswith("text/html")
    long_name = client.post("/subscribe", data={"email": "a@example.com", "components": "x" * 101})
    assert long_name.status_code == 422 and "components" in long_name.text


FORM = {"content-type": "application/x-www-form-urlencoded"}
