"""A worker keeps working when Redis goes away under a task in flight (real Redis, kombu's real channel).

Celery, on losing the broker, collects the broken connection and then closes it; a task that was
running meanwhile finishes and acknowledges its message through the old channel. With kombu's own
Redis transport both raise AttributeError and the worker shuts down for good (it happened in the chaos
test where Redis is flushed and restarted). Tocsin's transport must survive both, and leave the message
where Redis can hand it out again (the ledger decides whether anything is still owed)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import redis
from kombu import Connection

from workers.redis_transport import TRANSPORT


@pytest.fixture
def queue_name(redis_url: str) -> Iterator[str]:
    name = f"test-transport-{uuid.uuid4().hex[:8]}"
    yield name
    redis.Redis.from_url(redis_url).delete(name, "unacked", "unacked_index")


def take_one_unacked(conn: Connection, name: str) -> object:
    """A message received and not yet acknowledged, as a task with ``acks_late`` holds it while it runs."""
    queue = conn.SimpleQueue(name)
    queue.put({"batch": 7})
    return queue.get(timeout=5)


def break_like_a_lost_broker(conn: Connection) -> None:
    """The state Celery leaves when Redis drops while the worker waits on it: ``collect()`` could not
    close the channel (Redis was gone) but detached the transport from the connection's settings."""
    conn.transport.client = None


def unacked_tags(redis_url: str) -> set[bytes]:
    return set(redis.Redis.from_url(redis_url).hkeys("unacked"))


def test_closing_a_collected_connection_with_a_message_in_flight_does_not_crash(
    redis_url: str, queue_name: str
) -> None:
    conn = Connection(redis_url, transport=TRANSPORT)
    message = take_one_unacked(conn, queue_name)
    assert unacked_tags(redis_url) == {message.delivery_tag.encode()}  # type: ignore[attr-defined]

    break_like_a_lost_broker(conn)
    conn.close()  # Celery closes the broken connection: this restored unacked messages, and crashed

    # The message is still Redis's to hand out again after the visibility timeout; nothing was lost.
    assert unacked_tags(redis_url) == {message.delivery_tag.encode()}  # type: ignore[attr-defined]


def test_a_task_finishing_after_its_connection_was_closed_can_acknowledge(
    redis_url: str, queue_name: str
) -> None:
    conn = Connection(redis_url, transport=TRANSPORT)
    message = take_one_unacked(conn, queue_name)
    break_like_a_lost_broker(conn)
    conn.close()  # the broker connection broke and Celery closed it while the task ran on

    message.ack()  # type: ignore[attr-defined]  # the task finishes: this crashed the worker

    assert message.acknowledged  # type: ignore[attr-defined]


def test_with_the_connection_alive_ack_and_restore_still_reach_redis(redis_url: str, queue_name: str) -> None:
    conn = Connection(redis_url, transport=TRANSPORT)
    acked = take_one_unacked(conn, queue_name)
    acked.ack()  # type: ignore[attr-defined]
    assert unacked_tags(redis_url) == set()

    take_one_unacked(conn, queue_name)
    conn.close()  # a worker shutting down cleanly puts its unstarted message back on the queue
    assert unacked_tags(redis_url) == set()
    assert redis.Redis.from_url(redis_url).llen(queue_name) == 1
