"""Every channel as sure as email under faults: SMS, X and chat too, with provider faults, kill -9 and a
Redis FLUSHALL, counted from the providers' own records.

Real PostgreSQL, Redis and `tocsin worker` processes deployed as the README's "Running it at scale" says
(a main worker with the beat, a separate SMS worker); every provider is an emulator in this process that
answers about 30% of requests with 500/502/503, 429 with Retry-After, a hang, or a "ghost" (accepted,
then the connection dropped). Each test prints its tally and the publish-to-arrival percentiles per
channel (read from the emulators' request logs, never asserted as a time) and fails if a message is lost,
if the ledger disagrees with what the providers received, or if a row was charged an attempt no request
made.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import redis
from sqlalchemy import select

from channels.twilio import TwilioOptions
from dispatcher.store.engine import get_engine
from dispatcher.store.schema import deliveries, updates
from tests.chaos.harness import (
    FAULT_MIX,
    FULL,
    MAIN_WORKER,
    SMS_WORKER,
    TWILIO_SID,
    TWILIO_TOKEN,
    RestartableRedis,
    every_channel_config,
    first_arrivals,
    percentiles,
    phone,
    size,
    wait_for,
)
from tests.chaos.test_chaos import all_final, ledger_states, owed_rows
from tests.cli import kill_group, start_tocsin, stop, tocsin
from tests.emulators import SendGridEmulator, TwilioEmulator, WebhookReceiver, XEmulator

pytestmark = pytest.mark.timeout(3600 if FULL else 900)


def rows_of(database_url: str, channel: str) -> list[Any]:
    with get_engine(database_url).connect() as conn:
        return list(conn.execute(select(deliveries).where(deliveries.c.channel == channel)))


def publish(folder: Path, env: dict[str, str], incident: int, message: str, *channels: str) -> float:
    """Open incident number ``incident`` and publish ``message`` on ``channels``; returns when (monotonic,
    in this process: the emulators' clock) the publish command started."""
    title = f"Checkout failing #{incident}"
    assert tocsin("incident", "open", title, cwd=folder, env=env).code == 0
    started = time.monotonic()
    picked = [arg for channel in channels for arg in ("--channel", channel)]
    ran = tocsin(
        "publish",
        str(incident),
        "--status",
        "investigating",
        "--message",
        message,
        "--next-update-in",
        "30m",
        *picked,
        cwd=folder,
        env=env,
    )
    assert ran.code == 0, ran.err
    return started


def import_people(folder: Path, env: dict[str, str], header: str, rows: list[str]) -> None:
    (folder / "people.csv").write_text("\n".join([header, *rows]) + "\n")
    ran = tocsin("subscribers", "import", "people.csv", cwd=folder, env=env, timeout=300)
    assert ran.code == 0, ran.err


def faulted(log: list[dict[str, Any]]) -> Counter[str]:
    """How the provider answered: accepted, fault 5xx / 429, hang, drop (ghost), refused …"""
    return Counter(str(e["outcome"]) for e in log)


def test_sms_under_faults_with_burst_10_loses_nothing_and_counts_only_attempts_twilio_saw(
    tmp_path: Path, postgres_url: str, redis_url: str
) -> None:
    """The issue's SMS scenario: 1,000 recipients, about 30% faults, ``rate_limits.twilio.burst = 10``."""
    owed = 1000
    redis.Redis.from_url(redis_url).flushdb()
    env = {"DATABASE_URL": postgres_url, "REDIS_URL": redis_url}
    with TwilioEmulator(account_sid=TWILIO_SID, auth_token=TWILIO_TOKEN, seed=13, **FAULT_MIX) as twilio:
        every_channel_config(tmp_path, twilio=twilio.base_url, sms_burst=10)
        assert tocsin("init", cwd=tmp_path, env=env).code == 0
        import_people(tmp_path, env, "phone", [phone(i) for i in range(owed)])
        workers = [
            start_tocsin(*MAIN_WORKER, cwd=tmp_path, env=env),
            start_tocsin(*SMS_WORKER, cwd=tmp_path, env=env),
        ]
        try:
            published = publish(tmp_path, env, 1, "Checkout fails for a third of customers. Sorry.", "sms")
            done = wait_for(lambda: all_final(ledger_states(postgres_url), owed), timeout=780, period=1)
        finally:
            for worker in workers:
                stop(worker)
        log = list(twilio.request_log)
        received = [m["to"] for m in twilio.received]
        stats = twilio.stats
    rows = rows_of(postgres_url, "sms")
    requests = Counter(str(e["key"]) for e in log)
    answers = faulted(log)
    arrivals = first_arrivals(log, published)
    duplicates = len(received) - len(set(received))
    print(
        f"\nchaos: SMS, {owed} recipients, burst 10, 30% faults: ledger {ledger_states(postgres_url)}; "
        f"Twilio answered {dict(answers)}; {len(received)} messages kept for {len(set(received))} numbers "
        f"({duplicates} duplicates, {stats['dropped']} ghosts); "
        f"requests during the account's Retry-After: {stats['early_account_requests']}; "
        f"publish -> arrival: {percentiles(list(arrivals.values()))}"
    )
    assert done, "every row settled"
    assert sorted(set(received)) == sorted(phone(i) for i in range(owed)), "0 lost"
    assert {r.state for r in rows} == {"sent"} and len(rows) == owed, "no dead letter, no row left owed"
    charged = {r.address: r.attempts for r in rows}
    assert charged == dict(requests), "each row's attempts == the requests Twilio received for its number"
    assert duplicates <= stats["dropped"], "without a kill, duplicates only come from ghosts"
    assert answers["drop"] and answers["hang"] and answers["fault 429"], "the faults struck"
    first_fault = min(e["at"] for e in log if e["outcome"] != "accepted") - published
    assert first_fault < max(arrivals.values()), "… while messages were still owed"
    lags = lags_into_retry_after(log)
    print(
        f"chaos: requests arriving during a Retry-After, by how long after its 429: "
        f"{len(lags)}, the latest {max(lags, default=0.0) * 1000:.0f} ms in"
    )
    assert not [lag for lag in lags if lag >= LEARNS_OF_A_PAUSE], (
        "only requests already on their way when a 429 paused the account: none sent once it was known"
    )


LEARNS_OF_A_PAUSE = 0.5
"""Seconds within which every SMS worker knows of a 429's pause (a Redis write away; the emulator's
Retry-After is 1 s). Requests on the wire when the 429 came (up to ``in_flight`` per process) arrive
sooner; a worker ignoring the pause would keep sending at its rate through the whole second."""


def lags_into_retry_after(log: list[dict[str, Any]], retry_after: float = 1.0) -> list[float]:
    """For each request that arrived while a 429's Retry-After ran, how long after the 429 it came (the
    earliest such 429, when several ran)."""
    throttled = sorted(float(e["at"]) for e in log if e["outcome"] == "fault 429")
    lags = []
    for entry in log:
        at = float(entry["at"])
        running = [at - t for t in throttled if 0 < at - t < retry_after]
        if running:
            lags.append(max(running))
    return lags


POSTS = 6
"""Incidents whose update goes only to X and the two chat rooms (a post each: more posts, more faults)."""


def test_every_channel_under_faults_kill_9_and_flushall_loses_nothing_and_the_ledger_agrees(
    tmp_path: Path, postgres_url: str
) -> None:
    people, phones, hooks = size(600, 5000), size(200, 1000), size(300, 1000)
    broker = RestartableRedis(tmp_path).start()
    env = {"DATABASE_URL": postgres_url, "REDIS_URL": broker.url}
    with (
        SendGridEmulator(api_key="SG.chaos", seed=21, **FAULT_MIX) as sendgrid,
        TwilioEmulator(account_sid=TWILIO_SID, auth_token=TWILIO_TOKEN, seed=22, **FAULT_MIX) as twilio,
        XEmulator(seed=23, fail_next=["drop"], **FAULT_MIX) as x,  # the first post's answer is lost
        WebhookReceiver(verify=False, seed=24, **FAULT_MIX) as receiver,
        WebhookReceiver(verify=False, seed=25, **FAULT_MIX) as rooms,
    ):
        every_channel_config(
            tmp_path,
            sendgrid=sendgrid.base_url,
            twilio=twilio.base_url,
            x=x.base_url,
            chat=rooms.base_url,
            webhooks=True,
        )
        assert tocsin("init", cwd=tmp_path, env=env).code == 0
        import_people(
            tmp_path,
            env,
            "email,phone,webhook_url",
            [
                f"person{i}@example.com,{phone(i) if i < phones else ''},"
                f"{f'{receiver.base_url}/hooks/{i}' if i < hooks else ''}"
                for i in range(people)
            ],
        )
        owed = people + phones + hooks + 3 * (1 + POSTS)
        workers = {
            "main": start_tocsin(*MAIN_WORKER, cwd=tmp_path, env=env),
            "sms": start_tocsin(*SMS_WORKER, cwd=tmp_path, env=env),
        }
        struck: list[str] = []
        try:
            published = {
                k: publish(tmp_path, env, k, f"Payments fail in region {k}. Sorry #{k}.", "social", "chat")
                for k in range(1, 1 + POSTS)
            }
            main = 1 + POSTS
            published[main] = publish(tmp_path, env, main, f"Checkout fails for many. Sorry #{main}.")

            def chaos() -> None:
                """kill -9 the main worker, then the SMS worker, then FLUSHALL and restart Redis, a few
                seconds apart: each only while the ledger still owes deliveries (recorded with how many)."""
                owed_then = owed_rows(postgres_url)
                if owed_then == 0 or len(struck) >= 3:
                    return
                if len(struck) < 2:
                    name = ("main", "sms")[len(struck)]
                    kill_group(workers[name])
                    command = MAIN_WORKER if name == "main" else SMS_WORKER
                    workers[name] = start_tocsin(*command, cwd=tmp_path, env=env)
                    struck.append(f"kill -9 {name} worker with {owed_then} owed")
                else:
                    redis.Redis.from_url(broker.url).flushall()
                    broker.stop()
                    time.sleep(2)
                    broker.start()
                    struck.append(f"FLUSHALL + Redis restart with {owed_then} owed")
                time.sleep(4)

            done = wait_for(lambda: all_final(ledger_states(postgres_url), owed), 780, every=chaos, period=1)
            survived = all(w.poll() is None for w in workers.values())
        finally:
            for worker in workers.values():
                stop(worker)
            broker.stop()
        print(
            f"\nchaos: every channel, 30% faults; {'; '.join(struck)}; ledger {ledger_states(postgres_url)}"
        )
        tallies = {
            "email": email_tally(postgres_url, sendgrid),
            "sms": sms_tally(postgres_url, twilio),
            "webhook": webhook_tally(postgres_url, receiver),
            "social": x_tally(postgres_url, x),
            "chat": chat_tally(postgres_url, rooms),
        }

        def since(key: str) -> float | None:
            """When the incident a post names (``#k``) was published; None for X's look-ups."""
            found = INCIDENT.findall(key)
            return published[int(found[0])] if found else None

        logs = {"email": sendgrid, "sms": twilio, "webhook": receiver, "social": x, "chat": rooms}
        answered = {channel: dict(faulted(emu.request_log)) for channel, emu in logs.items()}
        x_log = list(x.request_log)
        arrivals = {
            "email": first_arrivals(sendgrid.request_log, published[main], split=True),
            "sms": first_arrivals(twilio.request_log, published[main]),
            "webhook": first_arrivals(receiver.request_log, published[main]),
            "social": first_arrivals(x.request_log, since),
            "chat": first_arrivals(rooms.request_log, since),
        }
    for channel, tally in tallies.items():
        print(
            f"chaos: {channel}: {tally}; publish -> arrival {percentiles(list(arrivals[channel].values()))}; "
            f"the provider answered {answered[channel]}"
        )
    assert len(struck) == 3, f"every fault struck while deliveries were owed: {struck}"
    assert answered["social"].get("drop", 0) >= 1 and any(
        str(e["key"]).startswith("GET /2/users/") for e in x_log
    ), "an X post's answer was lost, and the post was looked up"
    assert done and survived
    assert ledger_states(postgres_url) == {"sent": owed}, "0 lost, no dead letter"
    for channel, tally in tallies.items():
        assert tally.lost == set(), f"{channel}: 0 lost"
        assert tally.unknown == set(), f"{channel}: the provider kept nothing the ledger does not know"
        assert tally.duplicates <= tally.allowed, f"{channel}: duplicates only from kills and ghosts"


class Tally:
    """A channel's ledger against a provider's records: what the ledger says ``sent`` but the provider
    never kept (lost), what the provider kept that no row names (unknown), duplicates and their bound."""

    def __init__(self, sent: set[str], kept: list[str], allowed: int) -> None:
        self.lost = sent - set(kept)
        self.unknown = set(kept) - sent
        self.duplicates = len(kept) - len(set(kept))
        self.allowed = allowed
        self.sent = len(sent)

    def __str__(self) -> str:
        return (
            f"{self.sent} sent, lost {len(self.lost)}, unknown {len(self.unknown)}, "
            f"duplicates {self.duplicates} (bound: in flight at 2 kills + ghosts = {self.allowed})"
        )


KILLS = 2
INCIDENT = re.compile(r"#(\d+)")


def sent_rows(database_url: str, channel: str) -> list[Any]:
    return [r for r in rows_of(database_url, channel) if r.state == "sent"]


def email_tally(database_url: str, sendgrid: SendGridEmulator) -> Tally:
    kept = [m["custom_args"]["tocsin_delivery_id"] for m in sendgrid.received]
    per_request = max((int(r["recipients"]) for r in sendgrid.requests_log), default=0)
    allowed = KILLS * 2 * per_request + sendgrid.stats["dropped"] * per_request
    return Tally({str(r.id) for r in sent_rows(database_url, "email")}, kept, allowed)


def sms_tally(database_url: str, twilio: TwilioEmulator) -> Tally:
    kept = [m["to"] for m in twilio.received]
    in_flight = TwilioOptions.model_fields["in_flight"].default  # per SMS process, the default
    return Tally(
        {r.address for r in sent_rows(database_url, "sms")},
        kept,
        KILLS * 2 * in_flight + twilio.stats["dropped"],
    )


def webhook_tally(database_url: str, receiver: WebhookReceiver) -> Tally:
    kept = receiver.ids()
    allowed = KILLS * 2 * 2 * 64 + receiver.stats["dropped"]
    return Tally({f"tocsin-{r.id}" for r in sent_rows(database_url, "webhook")}, kept, allowed)


def x_tally(database_url: str, x: XEmulator) -> Tally:
    """X refuses duplicate content: one post per update, whose id the ledger must hold."""
    kept = [post["id"] for post in x.posts]
    return Tally({str(r.provider_message_id) for r in sent_rows(database_url, "social")}, kept, 0)


def chat_tally(database_url: str, rooms: WebhookReceiver) -> Tally:
    """Each post names its incident (``#k`` in the text); the ledger's rows are (update, room)."""
    with get_engine(database_url).connect() as conn:
        numbers = dict(conn.execute(select(updates.c.id, updates.c.incident_id)).all())
    kept = [f"{m['path'].strip('/')} #{INCIDENT.findall(m['body']['message'])[0]}" for m in rooms.received]
    sent = {f"{r.address} #{numbers[r.update_id]}" for r in sent_rows(database_url, "chat")}
    return Tally(sent, kept, KILLS * 2 * 2 + rooms.stats["dropped"])
