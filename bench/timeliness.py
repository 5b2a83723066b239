"""Timeliness under faults: how long after publishing each delivery reaches its provider, per channel,
while every provider fails about 30% of requests, with the default retry schedules.

    .venv/bin/python -m bench.timeliness              # 5,000 email, 1,000 SMS, 1,000 webhooks, X, 2 rooms
    .venv/bin/python -m bench.timeliness --quick      # small sizes, a smoke run (a few minutes)

Deployed as the README's "Running it at scale" says: PostgreSQL, Redis, a main worker with the beat
(``-c 4``) and a separate SMS worker (``-c 2``). Every provider is an emulator process that answers about
30% of requests with 500/502/503, 429 with Retry-After, a 3 s hang, or a "ghost" (accepted, then the
connection dropped). Arrival is read from the providers' own request logs: the first request of each
delivery that a provider kept (accepted, or a ghost). Publish -> arrival p50 / p99 / max per channel is
printed against the goal (99% within 60 s, all within 5 minutes), with how many arrived within each
and how many had not arrived when the run stopped (``--cutoff``). Prints one ``FIGURE`` line per
figure; never asserts on time. See bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import re
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from bench.fanout import Bench, CeleryTaskQueue, figure, info, run_scenarios, settings_for
from bench.infra import CeleryWorker, child_env, load_contact_points, write_config
from channels.base import ChannelKind
from dispatcher.comms.incidents import open_incident
from dispatcher.comms.publish import publish
from dispatcher.domain.models import IncidentDraft, IncidentStatus, Severity, UpdateDraft
from dispatcher.engine.runtime import Runtime, build_runtime
from tests.emulators.client import EmulatorProcess

SCENARIOS = ("faults",)
TWILIO_SID = "AC" + "0" * 32  # the emulator's default account
TWILIO_TOKEN = "test-auth-token"
API_KEY = "SG.bench"
GOAL_P99, GOAL_MAX = 60.0, 300.0
FAULT_RETRY_AFTER = 1.0
"""The Retry-After the emulators give with a random 429 (seconds)."""
INCIDENT = re.compile(r"#(\d+)")
CHANNELS = ("email", "sms", "webhook", "social", "chat")


def faults(seed: int, rate: float) -> str:
    return json.dumps(
        {
            "failure_rate": rate,
            "failure_kinds": ["5xx", "429", "hang", "drop"],
            "hang_seconds": 3,
            "seed": seed,
        }
    )


def config_toml(emulators: dict[str, EmulatorProcess], sms_rate: float) -> str:
    """Every channel on its real adapter, the emulators as providers; the default retry schedules."""
    rooms = emulators["chat"].base_url.replace("http://", "json://", 1)
    return f"""
[channels.email]
providers = ["sendgrid"]
[providers.sendgrid]
api_key = "{API_KEY}"
base_url = "{emulators["email"].base_url}"
from_email = "status@example.com"

[channels.sms]
providers = ["twilio"]
[providers.twilio]
account_sid = "{TWILIO_SID}"
auth_token = "{TWILIO_TOKEN}"
from_number = "+12025550199"
base_url = "{emulators["sms"].base_url}"
[rate_limits.twilio]
per_second = {sms_rate:g}
burst = 10

[channels.webhook]
providers = ["webhook"]
[providers.webhook]
allow_destinations = ["127.0.0.0/8"]

[channels.social]
providers = ["x"]
[providers.x]
consumer_key = "ck"
consumer_secret = "cs"
access_token = "at"
access_token_secret = "ats"
base_url = "{emulators["social"].base_url}"

[channels.chat]
enabled = true
providers = ["apprise"]
[providers.apprise.rooms]
ops = "{rooms}/ops"
support = "{rooms}/support"
"""


def update(incident_id: int, k: int, channels: list[ChannelKind] | None) -> UpdateDraft:
    return UpdateDraft(
        incident_id=incident_id,
        status=IncidentStatus.INVESTIGATING,
        message=f"Checkout fails for some customers; we are rolling back. Sorry #{k}.",
        channels=channels,
        override_reason="benchmark: synthetic update, no promise",
    )


def incident(rt: Runtime, k: int) -> int:
    draft = IncidentDraft(title=f"Checkout failing #{k}", severity=Severity.MAJOR, components=["checkout"])
    return open_incident(rt, draft).id


def arrivals(
    log: list[dict[str, Any]], since: Callable[[str], float | None], split: bool
) -> dict[str, float]:
    """Per delivery, seconds from its publish to the first request its provider kept."""
    first: dict[str, float] = {}
    for entry in log:
        key = entry.get("key")
        if not isinstance(key, str) or entry.get("outcome") not in ("accepted", "drop"):
            continue
        for one in key.split() if split else [key]:
            start = since(one)
            if start is not None:
                first.setdefault(one, float(entry["at"]) - start)
    return first


def at(ordered: list[float], q: float) -> float:
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


def report(channel: str, seconds: dict[str, float], owed: int) -> None:
    ordered = sorted(seconds.values())
    if not ordered:
        figure(f"timeliness {channel} p99", "no arrivals", f"<= {GOAL_P99:g} s", False, f"[0/{owed} arrived]")
        return
    p50, p99, worst = at(ordered, 0.5), at(ordered, 0.99), ordered[-1]
    in_goal = sum(s <= GOAL_P99 for s in ordered)
    in_max = sum(s <= GOAL_MAX for s in ordered)
    complete = len(ordered) >= owed
    note = (
        f"[p50 {p50:.1f} s; {in_goal}/{owed} within {GOAL_P99:g} s ({in_goal / owed:.1%}), "
        f"{in_max}/{owed} within {GOAL_MAX:g} s; {owed - len(ordered)} not arrived when the run stopped]"
    )
    figure(
        f"timeliness {channel} p99", f"{p99:.1f} s", f"<= {GOAL_P99:g} s", complete and p99 <= GOAL_P99, note
    )
    figure(
        f"timeliness {channel} max", f"{worst:.1f} s", f"<= {GOAL_MAX:g} s", complete and worst <= GOAL_MAX
    )


def scenario_faults(b: Bench) -> None:
    args = b.args
    emails, phones, hooks, posts = args.emails, args.sms, args.webhooks, args.posts
    redis_url = b.redis()
    url = b.database("timeliness")
    kinds = {"email": "sendgrid", "sms": "twilio", "webhook": "webhook", "social": "x", "chat": "webhook"}
    extra = {"email": ["--api-key", API_KEY], "webhook": ["--no-verify"], "chat": ["--no-verify"]}
    emulators = {
        channel: b.stack.enter_context(
            EmulatorProcess(
                kinds[channel], *extra.get(channel, []), "--faults", faults(31 + i, args.fault_rate)
            )
        )
        for i, channel in enumerate(CHANNELS)
    }
    hook = emulators["webhook"].base_url
    everything = {
        ChannelKind.EMAIL: lambda i: f"person{i}@example.com",
        ChannelKind.SMS: lambda i: f"+1202555{i:04d}",
        ChannelKind.WEBHOOK: lambda i: f"{hook}/hooks/{i}",
    }
    both = min(phones, hooks)
    load_contact_points(url, both, everything, components=["checkout"], webhook_secrets=True)
    rest: dict[ChannelKind, Callable[[int], str]] = {
        ChannelKind.EMAIL: lambda i: f"person{both + i}@example.com"
    }
    if phones > both:
        rest[ChannelKind.SMS] = lambda i: f"+1202555{both + i:04d}"
    if hooks > both:
        rest[ChannelKind.WEBHOOK] = lambda i: f"{hook}/hooks/{both + i}"
    load_contact_points(
        url, max(emails, phones, hooks) - both, rest, components=["checkout"], webhook_secrets=True
    )
    config = write_config(b.work / "timeliness.toml", config_toml(emulators, args.sms_rate))
    rt = build_runtime(settings_for(url, config))
    queue = CeleryTaskQueue(redis_url)
    env = child_env(REDIS_URL=redis_url, DATABASE_URL=url, TOCSIN_CONFIG=str(config))
    info(
        f"{emails} email, {phones} SMS, {hooks} webhook subscribers, X and 2 chat rooms "
        f"({1 + posts} posts each); every provider fails {args.fault_rate:.0%} of requests (5xx, 429 "
        "Retry-After 1 s, 3 s hangs, ghosts); default retry schedules; [rate_limits.twilio] per_second = "
        f"{args.sms_rate:g}, burst 10; workers -Q fanout,email,webhook,social,chat,maintenance "
        f"-c {args.main_processes} --beat and -Q sms -c 2"
    )
    main_queues = "fanout,email,webhook,social,chat,statuspage,maintenance"
    published: dict[int, float] = {}
    with (
        CeleryWorker(b.work / "worker-main.log", env, args.main_processes, main_queues, beat=True),
        CeleryWorker(b.work / "worker-sms.log", env, 2, "sms"),
    ):
        for k in range(1, 1 + posts):  # more X posts and chat messages: one update each, its own incident
            published[k] = time.monotonic()
            publish(rt, update(incident(rt, k), k, [ChannelKind.SOCIAL, ChannelKind.CHAT]), queue)
        main = 1 + posts
        published[main] = time.monotonic()
        publish(rt, update(incident(rt, main), main, None), queue)
        owed = {
            "email": emails,
            "sms": phones,
            "webhook": hooks,
            "social": 1 + posts,
            "chat": 2 * (1 + posts),
        }
        waited = wait_owed(url, sum(owed.values()), args.cutoff)
        logs = {channel: emulator.client.requests() for channel, emulator in emulators.items()}
        stats = {channel: emulator.client.stats() for channel, emulator in emulators.items()}
    rt.close()

    def since(key: str) -> float | None:
        found = INCIDENT.findall(key)
        return published[int(found[0])] if found else None

    def since_main(key: str) -> float | None:
        return published[main]

    times = {
        "email": arrivals(logs["email"], since_main, split=True),
        "sms": arrivals(logs["sms"], since_main, split=False),
        "webhook": arrivals(logs["webhook"], since_main, split=False),
        "social": arrivals(logs["social"], since, split=False),
        "chat": arrivals(logs["chat"], since, split=False),
    }
    for channel in CHANNELS:
        report(channel, times[channel], owed[channel])
        answers = Counter(str(e["outcome"]) for e in logs[channel])
        info(
            f"{channel}: provider answered {dict(answers)}; early requests while the account was told to "
            f"wait {stats[channel]['early_account_requests']}, early retries of one delivery "
            f"{stats[channel]['early_retries']}"
        )
    for channel in ("email", "sms", "social"):  # provider APIs: a 429 pauses the whole account
        paused, told = paused_seconds(logs[channel])
        last = max(times[channel].values(), default=0.0)
        info(
            f"{channel}: the account was told to wait {told} times (Retry-After {FAULT_RETRY_AFTER:g} s); "
            f"it stood paused {paused:.0f} s of the {last:.0f} s until the last arrival, sending nothing "
            "then, as a 429 asks"
        )
    info(f"ledger settled after {waited:.0f} s (cutoff {args.cutoff:g} s): {ledger_summary(url)}")


def paused_seconds(log: list[dict[str, Any]]) -> tuple[float, int]:
    """Seconds during which some 429's Retry-After was running (overlaps counted once), and how many
    429s the provider answered."""
    starts = sorted(float(e["at"]) for e in log if str(e.get("outcome", "")).endswith(" 429"))
    total, end = 0.0, float("-inf")
    for start in starts:
        stop = start + FAULT_RETRY_AFTER
        total += stop - max(start, end) if stop > end else 0.0
        end = max(end, stop)
    return total, len(starts)


def wait_owed(url: str, expected: int, cutoff: float) -> float:
    """Wait until the ledger has its ``expected`` rows and owes none of them (each sent, failed or
    suppressed), or ``cutoff`` seconds."""
    from sqlalchemy import func, select

    from dispatcher.store.engine import get_engine
    from dispatcher.store.schema import deliveries

    started = time.monotonic()
    owed_states = ("queued", "sending")
    while time.monotonic() - started < cutoff:
        time.sleep(2)
        with get_engine(url).connect() as conn:
            left = conn.execute(select(func.count()).where(deliveries.c.state.in_(owed_states))).scalar_one()
            rows = conn.execute(select(func.count()).select_from(deliveries)).scalar_one()
        if rows >= expected and not left:
            break
    return time.monotonic() - started


def ledger_summary(url: str) -> dict[str, dict[str, int]]:
    from sqlalchemy import func, select

    from dispatcher.store.engine import get_engine
    from dispatcher.store.schema import deliveries

    summary: dict[str, dict[str, int]] = {}
    with get_engine(url).connect() as conn:
        query = select(deliveries.c.channel, deliveries.c.state, func.count()).group_by(
            deliveries.c.channel, deliveries.c.state
        )
        for channel, state, count in conn.execute(query):
            summary.setdefault(channel, {})[state] = int(count)
    return summary


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.timeliness",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--only", choices=SCENARIOS, action="append", help="run only this scenario")
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    parser.add_argument("--emails", type=int, default=None, help="email subscribers (default 5000)")
    parser.add_argument("--sms", type=int, default=None, help="SMS subscribers (default 1000)")
    parser.add_argument("--webhooks", type=int, default=None, help="webhook subscribers (default 1000)")
    parser.add_argument("--posts", type=int, default=None, help="extra X + chat updates (default 9)")
    parser.add_argument("--fault-rate", type=float, default=0.3, help="share of requests failed (0.3)")
    parser.add_argument(
        "--sms-rate", type=float, default=50.0, help="[rate_limits.twilio] per_second (default 50)"
    )
    parser.add_argument("--main-processes", type=int, default=None, help="main worker -c (default 4)")
    parser.add_argument(
        "--cutoff", type=float, default=None, help="stop waiting after this many seconds (default 900)"
    )
    parser.add_argument("--no-postgres", action="store_true", help="SQLite store instead of PostgreSQL")
    args = parser.parse_args(argv)
    quick = args.quick
    args.emails = args.emails or (300 if quick else 5000)
    args.sms = args.sms or (100 if quick else 1000)
    args.webhooks = args.webhooks or (100 if quick else 1000)
    args.posts = args.posts if args.posts is not None else (3 if quick else 9)
    args.main_processes = args.main_processes or (2 if quick else 4)
    args.cutoff = args.cutoff or (360.0 if quick else 900.0)
    args.profile = None
    return args


def main(argv: list[str] | None = None) -> None:
    run_scenarios(parse(argv), {"faults": scenario_faults}, "tocsin-bench-timeliness-")


if __name__ == "__main__":
    main()
