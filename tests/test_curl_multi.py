"""The libcurl pool the webhook adapter sends through, against a real local HTTP server."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator

import pytest

from channels._http.curl_multi import COULDNT_CONNECT, CurlPool, Request
from tests.emulators import WebhookReceiver

LOCAL = ipaddress.ip_address("127.0.0.1")


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver(verify=False, responses={"/busy": {"status": 429, "retry_after": 7}}) as emu:
        yield emu


@pytest.fixture
def pool() -> Iterator[CurlPool]:
    made = CurlPool(concurrency=4, timeout=2.0, user_agent="tocsin-test")
    yield made
    made.close()


def post(receiver: WebhookReceiver, path: str, webhook_id: str) -> Request:
    return Request(
        f"{receiver.base_url}{path}", LOCAL, receiver.port, b"{}", lambda: [f"webhook-id: {webhook_id}"]
    )


def test_answers_come_back_in_request_order_with_status_and_retry_after(
    receiver: WebhookReceiver, pool: CurlPool
) -> None:
    requests = [post(receiver, f"/h/{i}", f"tocsin-{i}") for i in range(10)]
    requests.insert(3, post(receiver, "/busy", "tocsin-busy"))

    answers = pool.run(requests)

    assert [a.status for a in answers] == [204, 204, 204, 429, 204, 204, 204, 204, 204, 204, 204]
    assert answers[3].retry_after == 7
    assert receiver.stats["unique_ids"] == 10  # the refused one is not a delivery


def test_a_refused_connection_is_an_error_not_a_status(pool: CurlPool) -> None:
    [answer] = pool.run([Request("http://127.0.0.1:9/x", LOCAL, 9, b"{}", lambda: [])])
    assert (answer.status, answer.error_code) == (0, COULDNT_CONNECT)
    assert answer.error


def test_the_pool_stays_usable_after_a_run_was_interrupted(receiver: WebhookReceiver, pool: CurlPool) -> None:
    def broken() -> list[str]:
        raise RuntimeError("signing failed")

    interrupted = [
        post(receiver, "/a", "tocsin-a"),
        Request(receiver.base_url, LOCAL, receiver.port, b"", broken),
    ]
    with pytest.raises(RuntimeError, match="signing failed"):
        pool.run(interrupted)

    answers = pool.run([post(receiver, f"/b/{i}", f"tocsin-b{i}") for i in range(6)])
    assert [a.status for a in answers] == [204] * 6
