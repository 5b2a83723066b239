"""Local emulators of the provider HTTP APIs Tocsin talks to, for tests and benchmarks.

Each emulator is an aiohttp.web server on 127.0.0.1 speaking the provider's real wire format, so the
official SDKs can be pointed at it. Run one in a background thread (``with SendGridEmulator() as emu``)
or as a separate process (``python -m tests.emulators.run sendgrid --port 0``); inspect and steer it
through ``/_emulator/*`` control endpoints (see ``EmulatorClient``) or, in-process, its attributes.
"""

from tests.emulators.client import EmulatorClient, EmulatorProcess
from tests.emulators.sendgrid import SendGridEmulator
from tests.emulators.server import Emulator, FaultConfig, FaultSpec
from tests.emulators.twilio import TwilioEmulator
from tests.emulators.webhook import WebhookReceiver
from tests.emulators.x import XEmulator

__all__ = [
    "Emulator",
    "EmulatorClient",
    "EmulatorProcess",
    "FaultConfig",
    "FaultSpec",
    "SendGridEmulator",
    "TwilioEmulator",
    "WebhookReceiver",
    "XEmulator",
]
