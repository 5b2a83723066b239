"""``--watch``: live progress per channel from the ledger (owed, sent, failed, retrying, an estimate),
ending by itself when nothing is owed."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

from rich.console import Console

from channels.base import ChannelKind, TransientError
from channels.memory import MemoryAdapter
from dispatcher.cli.watch import _Pace, progress_table, watch
from dispatcher.comms.publish import publish
from dispatcher.config.settings import ChannelSettings, RetrySettings
from dispatcher.engine.delivery import deliver_batch
from dispatcher.engine.fanout import fan_out
from dispatcher.engine.runtime import Runtime
from dispatcher.engine.task_queue import BatchRef
from dispatcher.reporting.status import report
from tests.cli import tocsin
from tests.helpers import RecordingQueue, draft, hand_clock, incident, subscribe


def screen() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, width=120, force_terminal=False), out


def test_the_watch_shows_retries_and_ends_by_itself_when_nothing_is_owed(
    make_runtime: Callable[..., Runtime],
) -> None:
    memory = MemoryAdapter()
    memory.fail_calls(TransientError("503 Service Unavailable"))
    rt = make_runtime(
        channels={ChannelKind.EMAIL: ChannelSettings(providers=["memory"])},
        retry=RetrySettings(schedule=[5], jitter=0),
        adapters={"memory": memory},
    )
    clock = hand_clock(rt)
    subscribe(rt, 4)
    queue = RecordingQueue()
    published = publish(rt, draft(incident(rt), channels=[ChannelKind.EMAIL]), queue)
    fan_out(rt, published.update.id, queue)
    ref = BatchRef(published.update.id, ChannelKind.EMAIL, 0)
    deliver_batch(rt, ref)  # the provider fails: four rows wait for a retry

    waiting = report(rt, published.update.id)
    shown = io.StringIO()
    Console(file=shown, width=120).print(progress_table(waiting, _Pace(0.0), 1.0))
    row = next(line for line in shown.getvalue().splitlines() if "email" in line)
    assert [cell.strip() for cell in row.split("│")[2:6]] == ["4", "0", "0", "4"], row  # owed…retrying
    assert "4 still owed" in shown.getvalue()

    def meanwhile(_: float) -> None:  # while the watch sleeps, the retry comes due and goes out
        clock.advance(seconds=6)
        deliver_batch(rt, ref)

    console, out = screen()
    final = watch(rt, published.update.id, console, every=0.01, sleep=meanwhile)

    assert final.owed == 0
    assert "nothing owed: every delivery is settled" in out.getvalue()
    assert len(memory.addresses()) == 4


def test_publish_watch_and_status_watch_from_the_command_line(tmp_path: Path) -> None:
    (tmp_path / "people.csv").write_text("name,email\nAda,ada@example.com\nBob,bob@example.com\n")
    for step in (
        ("init",),
        ("subscribers", "import", "people.csv"),
        ("incident", "open", "Checkout failing", "--severity", "minor"),
    ):
        assert tocsin(*step, cwd=tmp_path).code == 0

    published = tocsin(
        "publish",
        "1",
        "--status",
        "investigating",
        "--message",
        "Checkouts fail for some. Sorry.",
        "--next-update-in",
        "30m",
        "--watch",
        cwd=tmp_path,
    )
    watched = tocsin("status", "1", "--watch", cwd=tmp_path)

    assert published.code == 0, published.err
    assert "live" in published.out and "nothing owed: every delivery is settled" in published.out
    assert watched.code == 0, watched.err
    email_row = next(line for line in watched.out.splitlines() if line.strip("│ ").startswith("email"))
    assert email_row.split("│")[3].strip() == "2", email_row  # sent
