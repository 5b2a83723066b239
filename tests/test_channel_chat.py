"""The chat adapter: real Apprise posting ``json://`` notifications to the local webhook receiver."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from pydantic import ValidationError

from channels.base import ChannelKind, Message, Outcome, PermanentError, Recipient
from channels.chat import ChatAdapter, redact
from tests.emulators import WebhookReceiver

BODY = "**Checkout is degraded.** Card payments fail for some customers.\n\n- next update in 30 min"
MESSAGE = Message(kind=ChannelKind.CHAT, update_id=3, incident_id=7, subject="Checkout degraded", text=BODY)


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver(verify=False, responses={"/down": 500}, hang_seconds=5) as emu:
        yield emu


def room_url(receiver: WebhookReceiver, path: str) -> str:
    return receiver.base_url.replace("http://", "json://", 1) + path


def make_adapter(rooms: dict[str, str], **options: object) -> ChatAdapter:
    adapter = ChatAdapter.from_options({"rooms": rooms, "timeout": 2.0, **options})
    assert isinstance(adapter, ChatAdapter)
    return adapter


def recipients(*rooms: str) -> list[Recipient]:
    return [Recipient(delivery_id=i, address=room) for i, room in enumerate(rooms, start=1)]


def test_capabilities():
    caps = ChatAdapter.capabilities
    assert caps.kinds == frozenset({ChannelKind.CHAT})
    assert caps.broadcast and caps.max_batch == 50 and not caps.renders_html


def test_each_room_gets_one_post_with_the_markdown_body(receiver):
    adapter = make_adapter({"ops": room_url(receiver, "/ops"), "support": room_url(receiver, "/support")})

    results = adapter.send(MESSAGE, recipients("ops", "support"))

    assert [(r.delivery_id, r.outcome, r.provider_message_id) for r in results] == [
        (1, Outcome.SENT, "ops"),
        (2, Outcome.SENT, "support"),
    ]
    assert sorted(m["path"] for m in receiver.received) == ["/ops", "/support"]
    for item in receiver.received:
        assert item["body"]["title"] == "Checkout degraded"
        assert item["body"]["message"] == BODY
        assert item["body"]["type"] == "info"


def test_a_failing_room_is_retried_while_the_other_is_sent(receiver):
    down = room_url(receiver, "/down")
    adapter = make_adapter({"ops": room_url(receiver, "/ops"), "broken": down})

    results = adapter.send(MESSAGE, recipients("broken", "ops"))

    assert [r.outcome for r in results] == [Outcome.RETRY, Outcome.SENT]
    error = results[0].error or ""
    assert "'broken'" in error and "500" in error
    assert f"{receiver.base_url.removeprefix('http://')}/***" in error
    assert "/down" not in error
    assert [m["path"] for m in receiver.received] == ["/ops"]


def test_an_unknown_room_fails_without_sending(receiver):
    adapter = make_adapter({"ops": room_url(receiver, "/ops")})

    results = adapter.send(MESSAGE, recipients("nowhere", "ops"))

    assert results[0].outcome is Outcome.FAILED
    assert "no such room 'nowhere'" in (results[0].error or "")
    assert results[1].outcome is Outcome.SENT
    assert len(receiver.received) == 1


def test_an_unreachable_room_is_retried_and_its_url_never_shown():
    adapter = make_adapter({"ops": "json://127.0.0.1:9/hooks/s3cr3t-token"}, timeout=0.5)
    result = adapter.send(MESSAGE, recipients("ops"))[0]
    assert result.outcome is Outcome.RETRY
    assert "s3cr3t-token" not in (result.error or "")


def test_many_rooms_in_one_call_are_posted_concurrently(receiver):
    rooms = {f"room{i}": room_url(receiver, f"/r/{i}") for i in range(20)}
    receiver.set_faults(latency_ms=100)
    adapter = make_adapter(rooms, concurrency=10)

    results = adapter.send(MESSAGE, recipients(*rooms))

    assert receiver.stats["max_in_flight"] > 1, "the rooms were posted to at the same time"
    assert [r.outcome for r in results] == [Outcome.SENT] * 20
    assert [r.provider_message_id for r in results] == list(rooms)
    assert len(receiver.received) == 20


def test_throttle_spaces_posts_to_one_room(receiver):
    adapter = make_adapter({"ops": room_url(receiver, "/ops")}, throttle_seconds=0.3)
    started = time.monotonic()
    adapter.send(MESSAGE, recipients("ops"))
    adapter.send(MESSAGE, recipients("ops"))
    assert time.monotonic() - started >= 0.3
    assert len(receiver.received) == 2


def test_no_throttle_by_default(receiver):
    adapter = make_adapter({"ops": room_url(receiver, "/ops")})
    for _ in range(3):
        adapter.send(MESSAGE, recipients("ops"))
    assert len(receiver.received) == 3
    for room in adapter._rooms.values():
        assert room.apprise[0].request_rate_per_sec == 0, "Apprise's own pause between posts is off"


def test_an_invalid_url_is_a_validation_error_naming_the_room_not_the_secret(caplog):
    secret = "T0SECRET/B0SECRET"  # slack:// needs three tokens
    with pytest.raises(ValidationError) as caught:
        ChatAdapter.from_options({"rooms": {"ops": "json://127.0.0.1/ok", "eng": f"slack://{secret}"}})

    text = str(caught.value)
    assert "room 'eng'" in text and "slack://***" in text
    assert "SECRET" not in text
    assert "SECRET" not in caplog.text  # Apprise's own log of the URL is silenced
    with pytest.raises(ValidationError, match="room 'x'"):
        ChatAdapter.from_options({"rooms": {"x": "nosuchscheme://host/token"}})
    with pytest.raises(ValidationError):
        ChatAdapter.from_options({"rooms": {}})


def test_wrong_kind_is_permanent(receiver):
    email = Message(kind=ChannelKind.EMAIL, update_id=1, incident_id=1, subject="s", text="t")
    with pytest.raises(PermanentError):
        make_adapter({"ops": room_url(receiver, "/ops")}).send(email, recipients("ops"))


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("slack://T000/B000/XXXXXXXX", "slack://***"),
        ("discord://1234567890/abcdefgh", "discord://***"),
        ("tgram://123456789:AAbbCCdd/-100200300", "tgram://***"),
        ("msteams://team/tokenA/tokenB/tokenC", "msteams://***"),
        ("mmost://chat.example.com/abcdefghijkl", "mmost://chat.example.com/***"),
        ("json://user:pw@hooks.example.com/path?key=v", "json://hooks.example.com/***"),
        ("json://127.0.0.1:8080/ops", "json://127.0.0.1:8080/***"),
        ("json://localhost", "json://localhost"),
        ("not a url", "***"),
    ],
)
def test_redact_keeps_scheme_and_host_only(url, shown):
    assert redact(url) == shown


def test_a_network_error_past_apprise_is_retried_but_a_bug_is_not_hidden(receiver, monkeypatch):
    adapter = make_adapter({"ops": room_url(receiver, "/ops")})
    room = adapter._rooms["ops"]

    def refused(**_: object) -> bool:
        raise ConnectionRefusedError("connection refused")

    monkeypatch.setattr(room.apprise, "notify", refused)
    [result] = adapter.send(MESSAGE, recipients("ops"))
    assert result.outcome is Outcome.RETRY and "ConnectionRefusedError" in (result.error or "")

    def bug(**_: object) -> bool:
        raise TypeError("unexpected keyword argument 'title'")

    monkeypatch.setattr(room.apprise, "notify", bug)
    with pytest.raises(TypeError, match="unexpected keyword"):
        adapter.send(MESSAGE, recipients("ops"))
