"""A subscriber gets at most K messages per channel per window; what is held back is merged into the next
message they get, never dropped."""

from __future__ import annotations

import email
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

from channels.base import ChannelKind
from dispatcher.comms.publish import publish
from dispatcher.config.settings import ChannelSettings
from dispatcher.domain.models import IncidentStatus
from dispatcher.engine.delivery import deliver_batch
from dispatcher.engine.fanout import fan_out
from dispatcher.engine.redrive import redrive
from dispatcher.engine.runtime import Runtime
from dispatcher.engine.task_queue import BatchRef
from tests.helpers import RecordingQueue, draft, incident, states, subscribe

EMAIL = [ChannelKind.EMAIL]


class FakeClock:
    def __init__(self, start: datetime) -> None:
        self.at = start

    def now(self) -> datetime:
        return self.at


def bodies(outbox: Path, update_id: int) -> list[str]:
    texts = []
    for path in sorted((outbox / f"update-{update_id}" / "email").glob("*.eml")):
        message = email.message_from_bytes(path.read_bytes())
        part = next(p for p in message.walk() if p.get_content_type() == "text/plain")
        texts.append(part.get_payload(decode=True).decode())
    return texts


def test_held_updates_ride_along_with_the_next_message(
    make_runtime: Callable[..., Runtime], tmp_path: Path
) -> None:
    rt = make_runtime(channels={ChannelKind.EMAIL: ChannelSettings(cap_messages=1, cap_window=3600)})
    clock = FakeClock(rt.clock.now())
    rt.clock = clock
    subscribe(rt, 3)
    inc = incident(rt)
    queue = RecordingQueue()

    def publish_now(text: str, status: IncidentStatus) -> int:
        update_id = publish(rt, draft(inc, text, status=status, channels=EMAIL), queue).update.id
        fan_out(rt, update_id, queue)
        deliver_batch(rt, BatchRef(update_id, ChannelKind.EMAIL, 0))
        return update_id

    first = publish_now("Checkout is failing. We are sorry.", IncidentStatus.INVESTIGATING)
    clock.at += timedelta(minutes=10)
    second = publish_now("Cause found: a bad deploy at 09:05.", IncidentStatus.IDENTIFIED)
    clock.at += timedelta(minutes=10)
    third = publish_now("Rolled back; error rates are falling.", IncidentStatus.MONITORING)

    assert states(rt, first) == {"sent": 3}
    assert states(rt, second) == {"queued": 3}, "over the cap: held, not dropped"
    assert states(rt, third) == {"queued": 3}

    clock.at += timedelta(minutes=41)  # the first message leaves the one-hour window
    queue.batches.clear()
    redrive(rt, queue, stale_after=0)
    for ref, _ in sorted(set(queue.batches)):
        deliver_batch(rt, ref)

    assert states(rt, second) == {"superseded": 3}
    assert states(rt, third) == {"sent": 3}
    outbox = tmp_path / "outbox"
    assert bodies(outbox, second) == []
    for text in bodies(outbox, third):
        assert "Rolled back; error rates are falling." in text
        assert "Earlier updates you did not receive" in text
        assert "Cause found: a bad deploy at 09:05." in text


def test_without_a_cap_every_update_goes_out(make_runtime: Callable[..., Runtime]) -> None:
    rt = make_runtime()
    subscribe(rt, 2)
    inc = incident(rt)
    queue = RecordingQueue()
    for text in ("One.", "Two.", "Three."):
        update_id = publish(rt, draft(inc, text, channels=EMAIL), queue).update.id
        fan_out(rt, update_id, queue)
        deliver_batch(rt, BatchRef(update_id, ChannelKind.EMAIL, 0))
        assert states(rt, update_id) == {"sent": 2}
