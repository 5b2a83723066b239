"""Each reader's own amends code, put into the message of the batch that carries it.

An amends update with codes is written one batch per subscriber and channel
(``dispatcher.comms.amends``), so a batch's message can carry its one recipient's code: the offer's
``{code}`` becomes it in the text, the HTML and the JSON body. Rendering stays cached per update,
channel and locale; only the code differs."""

from __future__ import annotations

from dataclasses import replace

from sqlalchemy import select

from channels.base import Message
from dispatcher.engine.runtime import Runtime
from dispatcher.engine.task_queue import BatchRef
from dispatcher.store.schema import amends_codes, deliveries

CODE_MARK = "{code}"
AMENDS_KINDS = ("amends", "amends_public")


def with_code(rt: Runtime, ref: BatchRef, message: Message) -> Message:
    """``message`` with its batch's code in place of ``{code}`` (unchanged when it has none)."""
    parts = (message.text, message.html or "", message.json_body or "")
    if not any(CODE_MARK in part for part in parts):
        return message
    with rt.engine.connect() as conn:
        code = conn.execute(
            select(amends_codes.c.code)
            .join(deliveries, deliveries.c.subscriber_id == amends_codes.c.subscriber_id)
            .where(
                amends_codes.c.update_id == ref.update_id,
                deliveries.c.update_id == ref.update_id,
                deliveries.c.channel == ref.channel.value,
                deliveries.c.batch == ref.batch,
            )
            .limit(1)
        ).scalar_one_or_none()
    if code is None:
        return message
    # Codes are letters, digits, '-' and '_' only: safe as they are in text, HTML and JSON alike.
    return replace(
        message,
        text=message.text.replace(CODE_MARK, code),
        html=message.html.replace(CODE_MARK, code) if message.html else message.html,
        json_body=message.json_body.replace(CODE_MARK, code) if message.json_body else message.json_body,
    )
