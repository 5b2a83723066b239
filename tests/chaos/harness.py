"""What every chaos test needs: a real deployment (PostgreSQL, Redis, `tocsin worker` processes) sending
webhooks to a receiver that counts what arrived, and the arithmetic of owed vs received."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tests.cli import tocsin
from tests.emulators import WebhookReceiver

FULL = bool(os.environ.get("TOCSIN_CHAOS_FULL"))
"""Full sizes (50,000 recipients) with TOCSIN_CHAOS_FULL=1; bounded sizes otherwise (CI)."""


def size(bounded: int, full: int) -> int:
    return full if FULL else bounded


def write_config(folder: Path, extra: str = "", channel: str = "webhook") -> None:
    """Only ``channel`` on; webhooks through the real adapter; short leases and a fast re-drive tick."""
    off = "".join(
        f"[channels.{other}]\nenabled = false\n"
        for other in ("email", "sms", "social", "webhook")
        if other != channel
    )
    hooks = '[channels.webhook]\nproviders = ["webhook"]\nbatch_size = 100'
    (folder / "tocsin.toml").write_text(
        f"""
{off}
{hooks if channel == "webhook" else ""}
[providers.webhook]
timeout = 3
allow_destinations = ["127.0.0.0/8"]
[retry]
lease_seconds = 4
redrive_every = 1
schedule = [0.2, 0.5, 1, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2]
{extra}
"""
    )


def load_webhook_subscribers(
    folder: Path, env: dict[str, str], receiver: WebhookReceiver, count: int
) -> None:
    rows = ["name,webhook_url"] + [f"S{i},{receiver.base_url}/hooks/{i}" for i in range(count)]
    (folder / "people.csv").write_text("\n".join(rows) + "\n")
    ran = tocsin("subscribers", "import", "people.csv", cwd=folder, env=env, timeout=300)
    assert ran.code == 0, ran.err


@dataclass
class Tally:
    owed: int
    received: int
    duplicates: int

    @property
    def lost(self) -> int:
        return self.owed - self.received

    def __str__(self) -> str:
        return f"owed {self.owed}, received {self.received}, lost {self.lost}, duplicated {self.duplicates}"


def tally(receiver: WebhookReceiver, owed: int) -> Tally:
    stats = receiver.stats
    return Tally(owed, int(stats["unique_ids"]), int(stats["duplicates"]))


def wait_for(
    done: Callable[[], bool], timeout: float, every: Callable[[], None] | None = None, period: float = 0.2
) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if done():
            return True
        if every is not None:
            every()
        time.sleep(period)
    return done()


class RestartableRedis:
    """A private redis-server this test may flush, stop and start again on the same port."""

    def __init__(self, state: Path) -> None:
        from tests.services import free_port

        binary = shutil.which("redis-server")
        if binary is None:
            from tests.services import unavailable

            unavailable("redis-server (the chaos tests start and restart their own)")
        assert binary is not None
        self.binary, self.state, self.port = binary, state, free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> RestartableRedis:
        from tests.services import redis_reachable

        self.proc = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.state),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        assert wait_for(lambda: redis_reachable(self.url), timeout=10, period=0.05)
        return self

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None


class RestartablePostgres:
    """A private PostgreSQL cluster this test may restart under the workers' feet."""

    def __init__(self) -> None:
        import tempfile

        from tests.services import _pg_bin, free_port, unavailable

        initdb, self.pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
        if initdb is None or self.pg_ctl is None:
            unavailable("PostgreSQL binaries (the chaos tests start and restart their own cluster)")
        assert initdb is not None
        self.as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        # Not under pytest's tmp_path: the postgres user must be able to reach the folder.
        self.state = Path(tempfile.mkdtemp(prefix="tocsin-chaos-pg-"))
        self.state.chmod(0o755)
        self.data = self.state / "pg"
        self.data.mkdir()
        if self.as_postgres:
            shutil.chown(self.data, "postgres")
        self.port = free_port()
        subprocess.run(
            [*self.as_postgres, initdb, "-D", str(self.data), "-A", "trust", "-U", "postgres"],
            check=True,
            capture_output=True,
        )
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _ctl(self, *args: str) -> None:
        assert self.pg_ctl is not None
        subprocess.run(
            [*self.as_postgres, self.pg_ctl, "-D", str(self.data), "-l", str(self.data / "log"), "-w", *args],
            check=True,
            capture_output=True,
        )

    def start(self) -> RestartablePostgres:
        self._ctl("-o", f"-h 127.0.0.1 -p {self.port} -k {self.data} -c fsync=off", "start")
        return self

    def restart(self, down_for: float = 2.0) -> None:
        self._ctl("-m", "fast", "stop")
        time.sleep(down_for)
        self.start()

    def stop(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self._ctl("-m", "fast", "stop")
        shutil.rmtree(self.state, ignore_errors=True)


# ------------------------------------------------------------------------------ every channel, faulted

FAULT_MIX = {
    "failure_rate": 0.3,
    "failure_kinds": ["5xx", "429", "hang", "drop"],
    "hang_seconds": 3,
}
"""What every provider does to about 30% of requests: 500/502/503, 429 with Retry-After, a 3 s hang
(beyond the client's 2 s timeout), or a "ghost" (accepted, then the connection dropped)."""
TWILIO_SID = "AC" + "7" * 32
TWILIO_TOKEN = "chaos-token"
MAIN_WORKER = (
    "worker",
    "-Q",
    "fanout,email,webhook,social,chat,statuspage,maintenance",
    "-c",
    "2",
    "--loglevel",
    "warning",
)
SMS_WORKER = ("worker", "-Q", "sms", "-c", "2", "--no-beat", "--loglevel", "warning")
"""As the README's "Running it at scale" runs them: a main worker with the beat, and a separate SMS one."""


def phone(i: int) -> str:
    return f"+1202555{i:04d}"


def every_channel_config(
    folder: Path,
    *,
    sendgrid: str | None = None,
    twilio: str | None = None,
    x: str | None = None,
    chat: str | None = None,
    webhooks: bool = False,
    sms_burst: int = 10,
) -> None:
    """Only the channels given, each through its real adapter and the emulator at that URL; default
    provider retry schedule; a fast schedule for the webhook receiver (it fails at random, it is not an
    endpoint that is down for hours); short leases and a fast re-drive tick."""
    parts = [
        f"[channels.{name}]\nenabled = false\n"
        for name, url in (("email", sendgrid), ("sms", twilio), ("social", x))
        if url is None
    ]
    if not webhooks:
        parts.append("[channels.webhook]\nenabled = false\n")
    if sendgrid:
        parts.append(
            '[channels.email]\nproviders = ["sendgrid"]\n[providers.sendgrid]\napi_key = "SG.chaos"\n'
            f'base_url = "{sendgrid}"\nfrom_email = "status@example.com"\ntimeout = 2\n'
        )
    if twilio:
        parts.append(
            f'[channels.sms]\nproviders = ["twilio"]\n[providers.twilio]\naccount_sid = "{TWILIO_SID}"\n'
            f'auth_token = "{TWILIO_TOKEN}"\nfrom_number = "+12025550199"\nbase_url = "{twilio}"\n'
            f"timeout = 2\n[rate_limits.twilio]\nper_second = 50\nburst = {sms_burst}\n"
        )
    if x:
        parts.append(
            '[channels.social]\nproviders = ["x"]\n[providers.x]\nconsumer_key = "ck"\n'
            'consumer_secret = "cs"\naccess_token = "at"\naccess_token_secret = "ats"\n'
            f'base_url = "{x}"\ntimeout = 2\n'
        )
    if chat:
        room = chat.replace("http://", "json://", 1)
        parts.append(
            '[channels.chat]\nenabled = true\nproviders = ["apprise"]\n[providers.apprise]\ntimeout = 2\n'
            f'[providers.apprise.rooms]\nops = "{room}/ops"\nsupport = "{room}/support"\n'
        )
    if webhooks:
        parts.append(
            '[channels.webhook]\nproviders = ["webhook"]\nbatch_size = 100\n'
            '[providers.webhook]\ntimeout = 2\nallow_destinations = ["127.0.0.0/8"]\n'
        )
    # The periodic readiness probes are off: against providers failing 30% of requests they would
    # announce channels going down and up to staff, as incidents of their own (tests/test_readiness*
    # cover that), and these tests count exactly the deliveries the updates they publish owe.
    parts.append("[readiness]\nprobe_every = 0\n")
    parts.append(
        "[retry]\nlease_seconds = 10\nredrive_every = 1\n"
        "endpoint_schedule = [0.2, 0.5, 1, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2]\n"
    )
    (folder / "tocsin.toml").write_text("\n".join(parts))


def percentiles(seconds: list[float]) -> str:
    """p50 / p99 / max of ``seconds``, for printing (never asserted: no timed assertions)."""
    if not seconds:
        return "no arrivals"
    ordered = sorted(seconds)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]

    return f"p50 {at(0.5):.1f} s, p99 {at(0.99):.1f} s, max {ordered[-1]:.1f} s (n={len(ordered)})"


def first_arrivals(
    log: list[dict[str, object]], since: float | Callable[[str], float | None], split: bool = False
) -> dict[str, float]:
    """Per request key, seconds from ``since`` (or ``since(key)``) to the first request the provider
    kept (accepted, or a ghost: accepted and then the connection dropped), from an emulator's request
    log; keys for which ``since`` gives None are left out. ``split``: a key names several deliveries,
    space separated (a SendGrid request)."""
    first: dict[str, float] = {}
    for entry in log:
        key, outcome, at = entry.get("key"), entry.get("outcome"), entry.get("at")
        if isinstance(key, str) and outcome in ("accepted", "drop") and isinstance(at, float):
            for one in key.split() if split else [key]:
                start = since(one) if callable(since) else since
                if start is not None:
                    first.setdefault(one, at - start)
    return first
