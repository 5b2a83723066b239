"""Kombu's Redis transport, made safe to lose the broker while tasks are in flight.

When the Redis connection drops, Celery ``collect()``s the broken connection, which detaches its
channels from the transport, and opens a new one. Two things then touch Redis through the detached
channel, and with kombu 5.7 each raises ``AttributeError`` (``'NoneType' object has no attribute
'hostname'`` or ``'client'``), which Celery treats as unrecoverable: the worker shuts down, and after a
Redis restart nothing is delivered until someone restarts it.

- closing the channel puts its unacknowledged messages back on the queue;
- a task that was running when the connection dropped finishes and acknowledges its message.

Neither can reach the old connection, and nothing is lost by skipping them: Tocsin's ledger, not the
broker, says what is owed. Rows whose task vanished are re-driven from the database
(``dispatcher.engine.redrive``), and a message that Redis hands out again finds its rows already claimed or
sent.
"""

from __future__ import annotations

import logging
from typing import Any

from kombu.transport import redis as kombu_redis
from kombu.transport import virtual

log = logging.getLogger(__name__)


class QoS(kombu_redis.QoS):
    def _detached(self) -> bool:
        """True when the channel's connection was already collected: Redis cannot be reached through it."""
        transport = self.channel.connection
        return transport is None or transport.client is None

    def restore_unacked(self, client: Any = None) -> None:
        if client is None and self._detached():
            log.warning(
                "broker connection already closed: %d unacknowledged message(s) left to the re-drive",
                len(self._delivered),
            )
            self._delivered.clear()
            return
        super().restore_unacked(client)  # type: ignore[no-untyped-call]

    def ack(self, delivery_tag: str) -> None:
        if self._detached():
            log.info("message %s finished after its broker connection closed", delivery_tag)
            virtual.QoS.ack(self, delivery_tag)  # type: ignore[no-untyped-call]  # forget it locally; Redis is not reachable through it
            return
        super().ack(delivery_tag)  # type: ignore[no-untyped-call]

    def reject(self, delivery_tag: str, requeue: bool = False) -> None:
        if self._detached():
            log.info("message %s rejected after its broker connection closed", delivery_tag)
            virtual.QoS.ack(self, delivery_tag)  # type: ignore[no-untyped-call]
            return
        super().reject(delivery_tag, requeue)  # type: ignore[no-untyped-call]


class Channel(kombu_redis.Channel):
    QoS = QoS


class Transport(kombu_redis.Transport):
    Channel = Channel


TRANSPORT = f"{__name__}:Transport"
"""The ``broker_transport`` setting that selects this transport for ``redis://`` and ``rediss://`` URLs."""
