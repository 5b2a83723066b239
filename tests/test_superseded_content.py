"""A recipient whose older update was superseded gets its content with the newer one.

Given an update 1 fanned out but not yet delivered, when update 2 of the same incident is published and
delivered first, then update 1 is superseded for every address and its text rides along with update 2:
the webhook body lists it in ``earlier_updates`` (id and message), the email and the chat post carry it
under "Earlier updates ... did not receive". Nothing is lost to the supersede.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from channels.base import ChannelKind
from channels.memory import MemoryAdapter
from dispatcher.comms.publish import publish
from dispatcher.config.settings import ChannelSettings
from dispatcher.domain.models import IncidentStatus
from dispatcher.engine.fanout import fan_out
from dispatcher.engine.runtime import Runtime
from tests.helpers import RecordingQueue, draft, incident, publish_and_deliver, states, subscribe

FIRST = "Since 09:12 UTC a third of checkouts fail. We are sorry."
SECOND = "The 09:05 deploy broke checkout; we are rolling it back. Sorry."


def overtaken(rt: Runtime, channel: ChannelKind) -> tuple[int, int]:
    """Update 1 is fanned out and left queued; update 2 is published and delivered before it."""
    inc = incident(rt)
    queue = RecordingQueue()
    first = publish(rt, draft(inc, FIRST, channels=[channel]), queue)
    fan_out(rt, first.update.id, queue)
    second = publish_and_deliver(rt, draft(inc, SECOND, status=IncidentStatus.IDENTIFIED, channels=[channel]))
    return first.update.id, second.update.id


def test_webhook_bodies_of_the_newer_update_carry_the_superseded_one(
    make_runtime: Callable[..., Runtime],
) -> None:
    hooks = MemoryAdapter()
    rt = make_runtime(
        channels={ChannelKind.WEBHOOK: ChannelSettings(providers=["webhook"])}, adapters={"webhook": hooks}
    )
    subscribe(rt, 6, email=False, webhook="https://hooks.example.com/h")

    first, second = overtaken(rt, ChannelKind.WEBHOOK)

    bodies = [json.loads(call.message.json_body or "{}") for call in hooks.calls]
    assert sum(len(call.recipients) for call in hooks.calls) == 6
    for body in bodies:
        assert body["update"]["id"] == second
        assert [(e["id"], e["message"]) for e in body["earlier_updates"]] == [(first, FIRST)]
    assert states(rt, first) == {"superseded": 6} and states(rt, second) == {"sent": 6}


def test_emails_of_the_newer_update_carry_the_superseded_one(make_runtime: Callable[..., Runtime]) -> None:
    mail = MemoryAdapter()
    rt = make_runtime(
        channels={ChannelKind.EMAIL: ChannelSettings(providers=["sendgrid"])}, adapters={"sendgrid": mail}
    )
    subscribe(rt, 4)

    first, second = overtaken(rt, ChannelKind.EMAIL)

    assert len(mail.addresses(second)) == 4
    for call in mail.calls:
        assert "Earlier updates you did not receive" in call.message.text
        assert FIRST in call.message.text and SECOND in call.message.text
    assert states(rt, first) == {"superseded": 4}


def test_chat_rooms_get_the_superseded_update_with_the_newer_one(
    make_runtime: Callable[..., Runtime],
) -> None:
    chat = MemoryAdapter()
    rt = make_runtime(
        channels={ChannelKind.CHAT: ChannelSettings(providers=["apprise"], enabled=True)},
        providers={"apprise": {"rooms": {"ops": "json://127.0.0.1/ops", "support": "json://127.0.0.1/s"}}},
        adapters={"apprise": chat},
    )

    first, second = overtaken(rt, ChannelKind.CHAT)

    assert sorted(chat.addresses(second)) == ["ops", "support"]
    for call in chat.calls:
        assert FIRST in call.message.text and SECOND in call.message.text
    assert states(rt, first) == {"superseded": 2}
