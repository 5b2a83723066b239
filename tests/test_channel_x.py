"""The X adapter: the real tweepy client against the X API v2 emulator."""

from __future__ import annotations

import dataclasses
import json
import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from channels.base import (
    ChannelKind,
    Outcome,
    PermanentError,
    ProviderUnavailable,
    Recipient,
    TransientError,
)
from channels.base import Message as ChannelMessage
from channels.text.x_text import ELLIPSIS, weighted_length
from channels.x import XAdapter
from tests.emulators import XEmulator
from tests.emulators.x import problem

CREDENTIALS = {
    "consumer_key": "ck-secret",
    "consumer_secret": "cs-secret",
    "access_token": "123-at-secret",
    "access_token_secret": "ats-secret",
}
ACCOUNT = [Recipient(delivery_id=1, address="@acme_status")]


def message(text: str, reply_to_id: str | None = None, update_id: int = 1) -> ChannelMessage:
    return ChannelMessage(
        kind=ChannelKind.SOCIAL,
        update_id=update_id,
        incident_id=7,
        subject="Checkout degraded",
        text=text,
        reply_to_id=reply_to_id,
    )


@pytest.fixture
def emu() -> Iterator[XEmulator]:
    with XEmulator(hang_seconds=5) as emulator:
        yield emulator


def make_adapter(base_url: str, **options: object) -> XAdapter:
    adapter = XAdapter.from_options({**CREDENTIALS, "base_url": base_url, "timeout": 2.0, **options})
    assert isinstance(adapter, XAdapter)
    return adapter


def test_capabilities():
    caps = XAdapter.capabilities
    assert caps.kinds == frozenset({ChannelKind.SOCIAL}) and caps.broadcast
    assert (caps.max_batch, caps.max_text_length, caps.length_rule) == (1, 280, "x_weighted")


def test_a_post_is_sent_with_oauth1_user_context(emu):
    results = make_adapter(emu.base_url).send(message("Investigating checkout failures"), ACCOUNT)

    assert [(r.delivery_id, r.outcome) for r in results] == [(1, Outcome.SENT)]
    assert emu.received == [
        {
            "id": results[0].provider_message_id,
            "text": "Investigating checkout failures",
            "in_reply_to_tweet_id": None,
            "auth": "oauth1",
        }
    ]


def test_a_follow_up_is_a_reply_threaded_on_the_previous_post(emu):
    adapter = make_adapter(emu.base_url)
    first = adapter.send(message("Investigating"), ACCOUNT)[0].provider_message_id
    second = adapter.send(message("Identified: a bad deploy", first, 2), ACCOUNT)[0].provider_message_id
    third = adapter.send(message("Resolved", second, 3), ACCOUNT)[0].provider_message_id

    assert [m["in_reply_to_tweet_id"] for m in emu.received] == [None, first, second]
    assert [m["id"] for m in emu.received] == [first, second, third]
    assert len({first, second, third}) == 3


class ThreadCheckingXEmulator(XEmulator):
    """Refuses, like X, a reply to a post that is deleted (or was never posted here)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.deleted: set[str] = set()

    async def create_tweet(self, request):
        body = json.loads(await request.read())  # aiohttp keeps the body for the base handler
        parent = (body.get("reply") or {}).get("in_reply_to_tweet_id")
        if parent is not None and (parent in self.deleted or parent not in {m["id"] for m in self.received}):
            detail = "You attempted to reply to a Tweet that is deleted or not visible to you."
            return self._reject(403, problem("Forbidden", detail, 403), "parent gone")
        return await super().create_tweet(request)


def test_a_reply_to_a_deleted_post_is_posted_on_its_own():
    with ThreadCheckingXEmulator() as emu:
        adapter = make_adapter(emu.base_url)
        first = adapter.send(message("Investigating"), ACCOUNT)[0].provider_message_id
        assert first is not None
        emu.deleted.add(first)

        result = adapter.send(message("Resolved", first, 2), ACCOUNT)[0]

        assert result.outcome is Outcome.SENT
        assert [(m["text"], m["in_reply_to_tweet_id"]) for m in emu.received] == [
            ("Investigating", None),
            ("Resolved", None),
        ]
        assert emu.rejected[0]["reason"] == "parent gone"


def test_duplicate_content_is_permanent_and_sent_once(emu):
    adapter = make_adapter(emu.base_url)
    adapter.send(message("Resolved"), ACCOUNT)
    before = emu.stats["requests"]

    with pytest.raises(PermanentError, match="duplicate content"):
        adapter.send(message("Resolved"), ACCOUNT)

    assert emu.stats["requests"] == before + 1  # no retry by tweepy or requests
    assert len(emu.received) == 1


def published_now(text: str, reply_to_id: str | None = None) -> ChannelMessage:
    return dataclasses.replace(message(text, reply_to_id), published_at=datetime.now(UTC))


def test_after_duplicate_content_the_post_a_lost_answer_made_is_found_by_its_text(emu):
    adapter = make_adapter(emu.base_url)
    text = "Checkout & payments fail. Sorry. Details: https://status.example.com/incidents/7?x=1"
    [first] = adapter.send(published_now(text), ACCOUNT)  # as if its 201 had been lost

    [again] = adapter.send(published_now(text), ACCOUNT)

    assert again.outcome is Outcome.SENT and again.provider_message_id == first.provider_message_id
    assert len(emu.received) == 1, "nothing posted twice"
    assert [e["key"] for e in emu.request_log] == [
        f"post {text}",
        f"post {text}",
        "GET /2/users/me",
        "GET /2/users/2244994945/tweets",
    ]


def test_a_found_post_must_answer_the_same_post_of_the_thread(emu):
    adapter = make_adapter(emu.base_url)
    [root] = adapter.send(published_now("Investigating."), ACCOUNT)
    [other] = adapter.send(published_now("Another thread."), ACCOUNT)
    adapter.send(published_now("Fixed, monitoring.", reply_to_id=root.provider_message_id), ACCOUNT)

    with pytest.raises(PermanentError, match="duplicate content"):
        adapter.send(published_now("Fixed, monitoring.", reply_to_id=other.provider_message_id), ACCOUNT)


def test_a_failed_look_up_is_transient(emu):
    adapter = make_adapter(emu.base_url)
    adapter.send(published_now("Resolved."), ACCOUNT)
    emu.set_faults(fail_next=["pass", 503])  # the post is refused as a duplicate, the look-up fails

    with pytest.raises(TransientError, match="looking up"):
        adapter.send(published_now("Resolved."), ACCOUNT)


def test_rate_limit_is_transient_with_retry_after_from_the_reset_header(emu):
    emu.set_faults(fail_next=[{"status": 429, "retry_after": 60}])
    adapter = make_adapter(emu.base_url)
    started = time.monotonic()

    with pytest.raises(TransientError) as caught:
        adapter.send(message("Investigating"), ACCOUNT)

    assert time.monotonic() - started < 2  # tweepy did not sleep on the rate limit
    assert caught.value.retry_after is not None and 57 <= caught.value.retry_after <= 61
    assert "429" in caught.value.message
    assert emu.received == []


def test_rate_limit_reset_in_the_past_still_waits_a_second(emu):
    emu.set_faults(fail_next=[{"status": 429, "retry_after": 0}])
    with pytest.raises(TransientError) as caught:
        make_adapter(emu.base_url).send(message("x"), ACCOUNT)
    assert caught.value.retry_after == 1.0


def test_broken_credentials_make_the_provider_unavailable(emu):
    emu.set_faults(down="auth")  # 401 for everything
    with pytest.raises(ProviderUnavailable, match="401"):
        make_adapter(emu.base_url).send(message("Investigating"), ACCOUNT)


def test_forbidden_other_than_duplicate_makes_the_provider_unavailable(emu):
    # What X answers an app-only bearer token or an app without write permission.
    emu.set_faults(fail_next=[403])
    with pytest.raises(ProviderUnavailable, match="403"):
        make_adapter(emu.base_url).send(message("Investigating"), ACCOUNT)


def test_bad_request_is_permanent_with_xs_message(emu):
    emu.set_faults(fail_next=[400])
    with pytest.raises(PermanentError, match="x 400"):
        make_adapter(emu.base_url).send(message("Investigating"), ACCOUNT)


@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_errors_are_transient(emu, status):
    emu.set_faults(fail_next=[status])
    with pytest.raises(TransientError, match=str(status)):
        make_adapter(emu.base_url).send(message("Investigating"), ACCOUNT)


def test_a_hung_request_times_out_as_transient(emu):
    emu.set_faults(fail_next=["hang"])
    started = time.monotonic()
    with pytest.raises(TransientError, match="timed out"):
        make_adapter(emu.base_url, timeout=0.5).send(message("Investigating"), ACCOUNT)
    assert time.monotonic() - started < 3


def test_a_refused_connection_is_transient():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(TransientError):
        make_adapter(f"http://127.0.0.1:{port}").send(message("Investigating"), ACCOUNT)


def test_an_over_long_text_is_shortened_before_sending(emu):
    link = "https://status.example.com/incidents/42"
    text = "Card payments fail for some customers in the EU; we are rolling back. " * 6 + link
    assert weighted_length(text) > 280

    results = make_adapter(emu.base_url).send(message(text), ACCOUNT)

    assert results[0].outcome is Outcome.SENT
    sent = emu.received[0]["text"]
    assert weighted_length(sent) <= 280
    assert sent.endswith(f"{ELLIPSIS} {link}")
    assert sent.startswith("Card payments fail")


def test_a_cjk_text_is_shortened_by_weight_not_by_characters(emu):
    text = "決済障害が発生しています。" * 30  # 390 characters, weight 780
    make_adapter(emu.base_url).send(message(text), ACCOUNT)
    sent = emu.received[0]["text"]
    assert weighted_length(sent) <= 280
    assert len(sent) < 141


def test_wrong_kind_is_permanent(emu):
    email = ChannelMessage(kind=ChannelKind.EMAIL, update_id=1, incident_id=1, subject="s", text="t")
    with pytest.raises(PermanentError):
        make_adapter(emu.base_url).send(email, ACCOUNT)
    assert emu.stats["requests"] == 0


def test_options_require_every_oauth1_secret_and_hide_them():
    with pytest.raises(ValidationError) as caught:
        XAdapter.from_options({"consumer_key": "ck-secret", "consumer_secret": "cs-secret"})
    missing = {err["loc"][0] for err in caught.value.errors()}
    assert missing == {"access_token", "access_token_secret"}
    with pytest.raises(ValidationError) as caught:
        XAdapter.from_options({**CREDENTIALS, "base_url": "ftp://nope"})
    assert "ck-secret" not in str(caught.value)
    adapter = make_adapter("https://api.twitter.com")
    assert "ck-secret" not in repr(adapter.options)
