"""Channel benchmarks: a provider's rate limit held exactly, and slow SMS never holding back fast channels.

    .venv/bin/python -m bench.channels                      # both scenarios at the default sizes
    .venv/bin/python -m bench.channels --only sms-rate --sms-mps 20 --sms-subscribers 600
    .venv/bin/python -m bench.channels --only channels --channel-subscribers 2000

Starts what it needs itself (Redis, PostgreSQL unless ``TOCSIN_BENCH_DATABASE_URL`` names a server,
provider emulators and Celery workers as child processes, all stopped by pid), prints one line per
figure with its target beside it, and never asserts on time. See bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import time
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import func, select

from bench.fanout import (
    Bench,
    CeleryTaskQueue,
    figure,
    info,
    new_incident,
    run_scenarios,
    settings_for,
    wait_sent,
)
from bench.infra import (
    CeleryWorker,
    CpuSplit,
    child_env,
    ledger_times,
    load_contact_points,
    write_config,
)
from channels.base import ChannelKind
from dispatcher.comms.publish import publish
from dispatcher.domain.models import IncidentStatus, UpdateDraft
from dispatcher.engine.runtime import build_runtime
from dispatcher.store.engine import get_engine
from dispatcher.store.schema import deliveries, delivery_attempts
from tests.emulators.client import EmulatorProcess

SCENARIOS = ("sms-rate", "channels")
TWILIO_SID = "AC" + "0" * 32  # the emulator's default account
TWILIO_TOKEN = "test-auth-token"
FROM_NUMBER = "+15005550006"
STEADY_AFTER = 1.0
"""Seconds of sending left out of the steady-state rate (workers warming up, first batches claimed)."""


def phone(i: int) -> str:
    return f"+1555{i:07d}"


def twilio_toml(base_url: str, per_second: float) -> str:
    return (
        f'[channels.sms]\nproviders = ["twilio"]\n\n'
        f'[providers.twilio]\naccount_sid = "{TWILIO_SID}"\nauth_token = "{TWILIO_TOKEN}"\n'
        f'from_number = "{FROM_NUMBER}"\nbase_url = "{base_url}"\n\n'
        f"[rate_limits.twilio]\nper_second = {per_second:g}\nburst = 1\n"
    )


def draft(incident_id: int, channels: list[ChannelKind]) -> UpdateDraft:
    return UpdateDraft(
        incident_id=incident_id,
        status=IncidentStatus.INVESTIGATING,
        message="We are investigating failed checkouts. Next update within 30 minutes.",
        channels=channels,
        override_reason="benchmark: synthetic update, no promise",
    )


def sent_offsets(url: str, update_id: int, channel: ChannelKind, published_at: datetime) -> list[float]:
    """Seconds from publish to each ``sent_at`` of one channel's deliveries, in order."""
    with get_engine(url).connect() as conn:
        rows = (
            conn.execute(
                select(deliveries.c.sent_at)
                .where(
                    deliveries.c.update_id == update_id,
                    deliveries.c.channel == channel.value,
                    deliveries.c.sent_at.is_not(None),
                )
                .order_by(deliveries.c.sent_at)
            )
            .scalars()
            .all()
        )
    return [(t - published_at).total_seconds() for t in rows]


def steady_rate(offsets: list[float], skip: float = STEADY_AFTER) -> tuple[float, int, float]:
    """(messages/s, messages counted, seconds spanned) after the first ``skip`` seconds of sending:
    intervals between consecutive sends, so (k - 1) / (last - first) over the ``k`` sends kept."""
    if not offsets:
        return 0.0, 0, 0.0
    kept = [t for t in offsets if t >= offsets[0] + skip]
    if len(kept) < 2:
        return 0.0, len(kept), 0.0
    span = kept[-1] - kept[0]
    return (len(kept) - 1) / span, len(kept), span


def emulator_pid(emulator: EmulatorProcess) -> int | None:
    return None if emulator.process is None else emulator.process.pid


def gaps(offsets: list[float], expected: float, top: int = 3) -> str:
    """The longest pauses between consecutive sends, against the ``expected`` spacing (1 / rate)."""
    pauses = sorted(((b - a, a) for a, b in itertools.pairwise(offsets)), reverse=True)[:top]
    return ", ".join(f"{d:.2f} s at {t:.1f} s" for d, t in pauses if d > 2 * expected) or "none"


def transient_attempts(url: str, update_id: int, channel: ChannelKind) -> dict[str, int]:
    """Provider calls of one channel that did not end ``sent``, by outcome (transient, partial...)."""
    with get_engine(url).connect() as conn:
        rows = conn.execute(
            select(delivery_attempts.c.outcome, func.count())
            .where(
                delivery_attempts.c.update_id == update_id,
                delivery_attempts.c.channel == channel.value,
                delivery_attempts.c.outcome != "sent",
            )
            .group_by(delivery_attempts.c.outcome)
        ).all()
    return {str(outcome): int(count) for outcome, count in rows}


def failure_sample(url: str, update_id: int) -> str:
    """One ``last_error`` per channel among rows that are not ``sent`` (why a channel fell short)."""
    with get_engine(url).connect() as conn:
        error = func.min(deliveries.c.last_error)
        rows = conn.execute(
            select(deliveries.c.channel, deliveries.c.state, error)
            .where(deliveries.c.update_id == update_id, deliveries.c.state != "sent")
            .group_by(deliveries.c.channel, deliveries.c.state)
        ).all()
    return "; ".join(f"{channel} {state}: {error}" for channel, state, error in rows)


def within(value: float, target: float, tolerance: float = 0.05) -> bool:
    return abs(value - target) <= tolerance * target


def rejected_429(stats: dict[str, object]) -> int:
    rejected = stats.get("rejected")
    return int(rejected.get("429", 0)) if isinstance(rejected, dict) else 0


def wait_all(url: str, update_id: int, expected: int, timeout: float) -> int:
    """Wait until ``expected`` rows are sent, or nothing is owed any more (some failed), or timeout."""
    deadline = time.monotonic() + timeout
    sent = 0
    while time.monotonic() < deadline:
        sent = wait_sent(url, update_id, expected, timeout=min(5.0, max(0.1, deadline - time.monotonic())))
        if sent >= expected:
            return sent
        states = ledger_times(url, update_id).states
        if (
            sum(states.values()) >= expected
            and sum(n for s, n in states.items() if s not in ("sent", "failed", "suppressed")) == 0
        ):
            return sent
    return sent


# ---------------------------------------------------------------------------------------- 1. sms-rate


def scenario_sms_rate(b: Bench) -> None:
    n, mps = b.args.sms_subscribers, b.args.sms_mps
    redis_url = b.redis()
    url = b.database("smsrate")
    twilio = b.stack.enter_context(EmulatorProcess("twilio", "--no-record", "--sender-mps", f"{mps:g}"))
    load_contact_points(url, n, {ChannelKind.SMS: phone}, components=["checkout"])
    config = write_config(b.work / "sms-rate.toml", twilio_toml(twilio.base_url, mps))
    rt = build_runtime(settings_for(url, config))
    queue = CeleryTaskQueue(redis_url)
    env = child_env(REDIS_URL=redis_url, DATABASE_URL=url, TOCSIN_CONFIG=str(config))
    info(
        f"{n} SMS subscribers; Twilio emulator --sender-mps {mps:g}; [rate_limits.twilio] per_second = "
        f"{mps:g}, burst 1; worker -c 2 -Q fanout,sms,maintenance"
    )
    with CeleryWorker(b.work / "worker-sms-rate.log", env, 2, "fanout,sms,maintenance") as worker:
        assert twilio.process is not None
        split = CpuSplit(
            worker=worker.pid,
            twilio=twilio.process.pid,
            postgres=b.server_pid("postgres"),
            redis=b.server_pid("redis"),
        )
        with split:
            published = publish(rt, draft(new_incident(rt, ["checkout"]), [ChannelKind.SMS]), queue)
            sent = wait_all(url, published.update.id, n, timeout=n / mps * 3 + 60)
        stats = twilio.client.stats()
    rt.close()
    times = ledger_times(url, published.update.id)
    offsets = sent_offsets(url, published.update.id, ChannelKind.SMS, times.published_at)
    rate, kept, span = steady_rate(offsets)
    complete = sent == n and stats["accepted"] == n
    figure(
        f"sms-rate {n} at {mps:g}/s",
        f"{rate:.2f} msg/s",
        f"{mps:g} +-5%",
        within(rate, mps) and complete,
        f"[steady state: {kept} sends over {span:.1f} s after the first {STEADY_AFTER:g} s of sending; "
        f"overall {len(offsets) / times.seconds if offsets else 0:.2f}/s over {times.seconds:.1f} s "
        f"publish->last sent; first sent at {offsets[0] if offsets else float('nan'):.2f} s; "
        f"emulator accepted={stats['accepted']} requests={stats['requests']}; "
        f"ledger {times.states}{'' if complete else '; INCOMPLETE'}]",
    )
    if not complete:
        info(f"not sent: {failure_sample(url, published.update.id)}")
    refused = rejected_429(stats)
    figure(
        "sms-rate emulator 429 answers",
        f"{refused}",
        "0",
        refused == 0,
        f"[emulator rejected {stats['rejected']}]",
    )
    info(
        f"pauses > {2 / mps:.2f} s between sends: {gaps(offsets, 1 / mps)}; provider calls not sent: "
        f"{transient_attempts(url, published.update.id, ChannelKind.SMS) or 'none'}"
    )
    info(split.describe())


# ---------------------------------------------------------------------------------------- 2. channels


def channels_toml(sendgrid: str, twilio: str, sms_rate: float) -> str:
    return (
        twilio_toml(twilio, sms_rate) + '\n[channels.email]\nproviders = ["sendgrid"]\n\n'
        f'[providers.sendgrid]\napi_key = "SG.test-key"\nbase_url = "{sendgrid}"\n'
        'from_email = "status@example.com"\n\n'
        '[channels.webhook]\nproviders = ["webhook"]\n\n'
        '[providers.webhook]\nallow_destinations = ["127.0.0.0/8"]\n'
    )  # the local receiver


def scenario_channels(b: Bench) -> None:
    n, sms_rate, latency = b.args.channel_subscribers, b.args.channel_sms_rate, b.args.channel_latency_ms
    redis_url = b.redis()
    url = b.database("channels")
    lat = ("--latency-ms", f"{latency:g}")
    sendgrid = b.stack.enter_context(EmulatorProcess("sendgrid", "--no-record", *lat))
    twilio = b.stack.enter_context(EmulatorProcess("twilio", "--no-record", *lat))
    receiver = b.stack.enter_context(EmulatorProcess("webhook", "--no-verify", "--no-record", *lat))
    addresses: dict[ChannelKind, Callable[[int], str]] = {
        ChannelKind.EMAIL: lambda i: f"person{i}@example.com",
        ChannelKind.SMS: phone,
        ChannelKind.WEBHOOK: lambda i: f"{receiver.base_url}/s/{i}",
    }
    load_contact_points(url, n, addresses, components=["checkout"], webhook_secrets=True)
    config = write_config(
        b.work / "channels.toml", channels_toml(sendgrid.base_url, twilio.base_url, sms_rate)
    )
    rt = build_runtime(settings_for(url, config))
    queue = CeleryTaskQueue(redis_url)
    env = child_env(REDIS_URL=redis_url, DATABASE_URL=url, TOCSIN_CONFIG=str(config))
    info(
        f"{n} subscribers x (email, sms, webhook); emulators --latency-ms {latency:g}; "
        f"[rate_limits.twilio] per_second = {sms_rate:g}; workers -Q fanout,email,webhook,maintenance -c 2 "
        f"and -Q sms -c 2 (as docker-compose.yml runs them)"
    )
    channels = [ChannelKind.EMAIL, ChannelKind.SMS, ChannelKind.WEBHOOK]
    with contextlib.ExitStack() as workers:
        main = workers.enter_context(
            CeleryWorker(b.work / "worker-channels-main.log", env, 2, "fanout,email,webhook,maintenance")
        )
        sms = workers.enter_context(CeleryWorker(b.work / "worker-channels-sms.log", env, 2, "sms"))
        split = CpuSplit(
            main_worker=main.pid,
            sms_worker=sms.pid,
            sendgrid=emulator_pid(sendgrid),
            twilio=emulator_pid(twilio),
            receiver=emulator_pid(receiver),
            postgres=b.server_pid("postgres"),
            redis=b.server_pid("redis"),
        )
        with split:
            published = publish(rt, draft(new_incident(rt, ["checkout"]), channels), queue)
            sent = wait_all(url, published.update.id, 3 * n, timeout=n / sms_rate * 3 + 60)
        stats = {
            "email": sendgrid.client.stats(),
            "sms": twilio.client.stats(),
            "webhook": receiver.client.stats(),
        }
    rt.close()
    times = ledger_times(url, published.update.id)
    done: dict[ChannelKind, float] = {}
    for channel in channels:
        offsets = sent_offsets(url, published.update.id, channel, times.published_at)
        done[channel] = offsets[-1] if offsets else float("nan")
        overall = len(offsets) / done[channel] if offsets else 0.0
        note = (
            f"[{len(offsets)}/{n} sent; publish->last sent {done[channel]:.2f} s; first sent at "
            f"{offsets[0] if offsets else float('nan'):.2f} s; emulator accepted="
            f"{stats[channel.value]['accepted']} rejected={stats[channel.value]['rejected']}]"
        )
        if channel is ChannelKind.SMS:
            rate, kept, span = steady_rate(offsets)
            figure(
                f"channels sms {n} at {sms_rate:g}/s",
                f"{rate:.2f} msg/s",
                f"{sms_rate:g} +-5%",
                within(rate, sms_rate) and len(offsets) == n,
                f"[steady state: {kept} sends over {span:.1f} s after the first {STEADY_AFTER:g} s; "
                f"overall {overall:.2f}/s] {note}",
            )
            info(
                f"sms pauses > {2 / sms_rate:.2f} s: {gaps(offsets, 1 / sms_rate)}; provider calls not "
                f"sent: {transient_attempts(url, published.update.id, channel) or 'none'}"
            )
        else:
            figure(f"channels {channel.value} {n}", f"{overall:,.0f} deliveries/s", "none stated", None, note)
    sms_done = done[ChannelKind.SMS]
    for channel in (ChannelKind.EMAIL, ChannelKind.WEBHOOK):
        share = done[channel] / sms_done if sms_done > 0 else float("nan")
        figure(
            f"channels {channel.value} done vs sms",
            f"{done[channel]:.2f} s ({share:.1%})",
            "< 25% of sms",
            share < 0.25,
            f"[sms done at {sms_done:.2f} s]",
        )
    info(f"ledger {times.states}; fan-out done at {times.fanout_seconds:.2f} s; sent {sent}/{3 * n}")
    if sent < 3 * n:
        info(f"not sent: {failure_sample(url, published.update.id)}")
    info(split.describe())


# ---------------------------------------------------------------------------------------- main


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.channels",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--only", choices=SCENARIOS, action="append", help="run only this scenario (repeatable)"
    )
    parser.add_argument(
        "--sms-mps",
        type=float,
        default=20.0,
        help="sms-rate: Twilio sender MPS and [rate_limits.twilio] per_second (default 20)",
    )
    parser.add_argument(
        "--sms-subscribers",
        type=int,
        default=None,
        help="sms-rate: SMS subscribers (default 30 s of sending: 30 x --sms-mps)",
    )
    parser.add_argument(
        "--channel-subscribers",
        type=int,
        default=2000,
        help="channels: subscribers, each with email, SMS and webhook (default 2000)",
    )
    parser.add_argument(
        "--channel-sms-rate",
        type=float,
        default=10.0,
        help="channels: [rate_limits.twilio] per_second (default 10)",
    )
    parser.add_argument(
        "--channel-latency-ms",
        type=float,
        default=100.0,
        help="channels: latency of every emulator (default 100)",
    )
    parser.add_argument("--no-postgres", action="store_true", help="SQLite store instead of PostgreSQL")
    args = parser.parse_args(argv)
    args.sms_subscribers = args.sms_subscribers or round(30 * args.sms_mps)
    args.profile = None
    return args


def main(argv: list[str] | None = None) -> None:
    runners = {"sms-rate": scenario_sms_rate, "channels": scenario_channels}
    run_scenarios(parse(argv), runners, "tocsin-bench-channels-")


if __name__ == "__main__":
    main()
