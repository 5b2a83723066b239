"""The database decides what is owed: work a dead worker left behind, or a lost task, is re-driven."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

from channels.base import ChannelKind, TransientError
from channels.memory import MemoryAdapter
from dispatcher.comms.publish import publish
from dispatcher.config.settings import ChannelSettings, RetrySettings
from dispatcher.engine.claims import claim_batch
from dispatcher.engine.delivery import deliver_batch
from dispatcher.engine.fanout import fan_out
from dispatcher.engine.redrive import redrive
from dispatcher.engine.runtime import Runtime
from dispatcher.engine.task_queue import BatchRef
from tests.cli import start_tocsin, stop, tocsin
from tests.emulators import SendGridEmulator
from tests.helpers import RecordingQueue, draft, incident, states, subscribe


class FakeClock:
    def __init__(self, start: datetime) -> None:
        self.at = start

    def now(self) -> datetime:
        return self.at

    def advance(self, seconds: float) -> None:
        self.at += timedelta(seconds=seconds)


def test_rows_claimed_by_a_worker_that_died_are_sent_after_the_lease(
    make_runtime: Callable[..., Runtime], tmp_path: Path
) -> None:
    rt = make_runtime()
    clock = FakeClock(rt.clock.now())
    rt.clock = clock
    subscribe(rt, 5)
    queue = RecordingQueue()
    published = publish(rt, draft(incident(rt), channels=[ChannelKind.EMAIL]), queue)
    fan_out(rt, published.update.id, queue)
    ref = BatchRef(published.update.id, ChannelKind.EMAIL, 0)
    assert len(claim_batch(rt, ref)) == 5  # a worker claims the batch, then dies before sending

    assert deliver_batch(rt, ref).claimed == 0, "nobody else may take rows under a live lease"
    queue.batches.clear()
    redrive(rt, queue)
    assert queue.batches == []

    clock.advance(rt.settings.retry.lease_seconds + 1)
    redrive(rt, queue)
    assert [r for r, _ in queue.batches] == [ref]
    outcome = deliver_batch(rt, ref)

    assert outcome.sent == 5
    assert states(rt, published.update.id) == {"sent": 5}
    assert len(list((tmp_path / "outbox").glob("update-*/email/*.eml"))) == 5


def test_an_update_whose_fan_out_task_was_lost_is_fanned_out_by_the_tick(
    make_runtime: Callable[..., Runtime],
) -> None:
    rt = make_runtime()
    subscribe(rt, 3)
    lost = RecordingQueue()  # the broker lost the fan-out task
    published = publish(rt, draft(incident(rt), channels=[ChannelKind.EMAIL]), lost)

    queue = RecordingQueue()
    assert redrive(rt, queue, stale_after=0).updates == 1
    assert queue.fanouts == [published.update.id]


def test_the_embedded_worker_delivers_what_publish_left_owed(tmp_path: Path) -> None:
    with SendGridEmulator(api_key="SG.k") as sendgrid:
        (tmp_path / "tocsin.toml").write_text(
            f'[channels.email]\nproviders = ["sendgrid"]\n[channels.sms]\nenabled = false\n'
            f"[channels.webhook]\nenabled = false\n[channels.social]\nenabled = false\n"
            f'[providers.sendgrid]\napi_key = "SG.k"\nbase_url = "{sendgrid.base_url}"\n'
            f'from_email = "status@example.com"\n[retry]\nschedule = [0.2, 0.5, 0.5]\n'
        )
        tocsin("init", cwd=tmp_path)
        (tmp_path / "people.csv").write_text("email\na@example.com\nb@example.com\n")
        tocsin("subscribers", "import", "people.csv", cwd=tmp_path)
        tocsin("incident", "open", "Checkout failing", cwd=tmp_path)
        sendgrid.set_faults(down=True)

        published = tocsin(
            "publish",
            "1",
            "--status",
            "investigating",
            "--message",
            "Looking into it.",
            "--next-update-in",
            "30m",
            "--wait",
            "0",
            cwd=tmp_path,
        )
        assert "2 deliveries still owed" in published.out
        assert sendgrid.received == []

        sendgrid.set_faults(down=False)
        worker = start_tocsin("worker", "--tick", "0.5", cwd=tmp_path)
        try:
            deadline = time.monotonic() + 30
            while len(sendgrid.received) < 2 and time.monotonic() < deadline:
                time.sleep(0.1)
        finally:
            stop(worker, signal.SIGINT)
        assert sorted(m["email"] for m in sendgrid.received) == ["a@example.com", "b@example.com"]


def test_a_retry_longer_than_a_queue_keeps_is_re_driven_when_it_is_due_not_a_lease_later(
    make_runtime: Callable[..., Runtime],
) -> None:
    memory = MemoryAdapter()
    memory.fail_calls(TransientError("503"))
    rt = make_runtime(
        channels={ChannelKind.EMAIL: ChannelSettings(providers=["memory"])},
        retry=RetrySettings(schedule=[120], jitter=0),
        adapters={"memory": memory},
    )
    clock = FakeClock(rt.clock.now())
    rt.clock = clock
    subscribe(rt, 2)
    queue = RecordingQueue()
    published = publish(rt, draft(incident(rt), channels=[ChannelKind.EMAIL]), queue)
    fan_out(rt, published.update.id, queue)
    ref = BatchRef(published.update.id, ChannelKind.EMAIL, 0)
    assert deliver_batch(rt, ref).retry_in == 120  # longer than a Celery countdown is kept: the tick's
    queue.batches.clear()

    clock.advance(119)
    redrive(rt, queue, stale_after=rt.settings.retry.lease_seconds)
    assert queue.batches == [], "not before it is due"
    clock.advance(1 + 10)
    redrive(rt, queue, stale_after=rt.settings.retry.lease_seconds)

    assert [r for r, _ in queue.batches] == [ref], "due 2 minutes after the failure, not 5 (the lease)"
    assert deliver_batch(rt, ref).sent == 2
