"""Run one emulator as its own process; the first stdout line is its base URL once it listens.

python -m tests.emulators.run sendgrid --port 0 --latency-ms 100
python -m tests.emulators.run webhook --port 8099 --no-verify --no-record
python -m tests.emulators.run twilio --faults '{"failure_rate": 0.1, "seed": 3}'
python -m tests.emulators.run twilio --sender-mps 20
python -m tests.emulators.run webhook-fast --port 0    # the lean benchmark receiver (fast_webhook.py)
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from tests.emulators.sendgrid import SendGridEmulator
from tests.emulators.server import Emulator
from tests.emulators.twilio import TwilioEmulator
from tests.emulators.webhook import WebhookReceiver
from tests.emulators.x import XEmulator

KINDS: dict[str, type[Emulator]] = {
    "sendgrid": SendGridEmulator,
    "twilio": TwilioEmulator,
    "x": XEmulator,
    "webhook": WebhookReceiver,
}


def build(argv: list[str] | None = None) -> Emulator:
    parser = argparse.ArgumentParser(prog="python -m tests.emulators.run", description=__doc__)
    parser.add_argument("kind", choices=sorted(KINDS))
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--down", choices=["unavailable", "auth"], default=None)
    parser.add_argument("--failure-rate", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--hang-seconds", type=float, default=300.0)
    parser.add_argument("--faults", default=None, help="fault config JSON, applied after the flags")
    parser.add_argument("--config", default=None, help="provider config JSON (as POST /_emulator/config)")
    parser.add_argument("--no-record", action="store_true", help="count accepted messages, keep nothing")
    parser.add_argument("--api-key", default=None, help="sendgrid: expected API key")
    parser.add_argument("--account-sid", default=None, help="twilio: expected account SID")
    parser.add_argument("--auth-token", default=None, help="twilio: expected auth token")
    parser.add_argument(
        "--sender-mps",
        type=float,
        default=None,
        help="twilio: at most this many messages per second per sender (429 beyond)",
    )
    parser.add_argument("--secret", default=None, help="webhook: default whsec_ secret")
    parser.add_argument("--no-verify", action="store_true", help="webhook: skip signature checks")
    args = parser.parse_args(argv)

    kwargs: dict[str, Any] = {
        "host": args.host,
        "port": args.port,
        "latency_ms": args.latency_ms,
        "down": args.down or False,
        "failure_rate": args.failure_rate,
        "seed": args.seed,
        "hang_seconds": args.hang_seconds,
        "record": not args.no_record,
    }
    if args.kind == "sendgrid" and args.api_key:
        kwargs["api_key"] = args.api_key
    if args.kind == "twilio":
        if args.account_sid:
            kwargs["account_sid"] = args.account_sid
        if args.auth_token:
            kwargs["auth_token"] = args.auth_token
        if args.sender_mps:
            kwargs["sender_mps"] = args.sender_mps
    if args.kind == "webhook":
        kwargs["secret"] = args.secret
        kwargs["verify"] = not args.no_verify
    emulator = KINDS[args.kind](**kwargs)
    if args.faults:
        emulator.set_faults(**json.loads(args.faults))
        emulator._initial_faults = emulator.faults.copy()
    if args.config:
        emulator.configure(json.loads(args.config))
    return emulator


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["webhook-fast"]:
        from tests.emulators import fast_webhook

        fast_webhook.main(args[1:])
        return
    emulator = build(args)

    def ready(url: str) -> None:
        sys.stdout.write(url + "\n")
        sys.stdout.flush()

    emulator.serve_forever(ready)


if __name__ == "__main__":
    main()
