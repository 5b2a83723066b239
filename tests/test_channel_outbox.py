"""The outbox writes what would have been sent as files someone can open."""

from __future__ import annotations

import email
import email.policy
import json
from email.message import EmailMessage
from pathlib import Path

import pytest

from channels import registry
from channels.base import ChannelKind, Message, Outcome, Recipient, TransientError
from channels.outbox import OutboxAdapter

EMAIL = Message(
    kind=ChannelKind.EMAIL,
    update_id=7,
    incident_id=42,
    subject="[Major · Investigating] Dashboard is slow - Acme",
    text="We are investigating slow page loads.\n",
    html="<p>We are investigating slow page loads.</p>\n",
)
WEBHOOK = Message(
    kind=ChannelKind.WEBHOOK,
    update_id=7,
    incident_id=42,
    subject="Dashboard is slow",
    text="Dashboard is slow: We are investigating slow page loads.",
    json_body='{"type":"incident.update","update":{"id":7}}',
)
SMS = Message(
    kind=ChannelKind.SMS, update_id=7, incident_id=42, subject="Dashboard is slow", text="Acme: MAJOR - ..."
)


def _outbox(directory: Path) -> OutboxAdapter:
    adapter = registry.create("outbox", {"directory": str(directory), "from_email": "status@acme.test"})
    assert isinstance(adapter, OutboxAdapter)
    return adapter


def _read_eml(path: Path) -> EmailMessage:
    parsed = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def test_one_eml_per_email_recipient_with_text_and_html(tmp_path: Path) -> None:
    recipients = [
        Recipient(1, "ann@example.org", name="Ann Lee"),
        Recipient(2, "zoe@example.org", name="Zoë O'Brien"),
    ]
    results = _outbox(tmp_path).send(EMAIL, recipients)

    assert [r.outcome for r in results] == [Outcome.SENT, Outcome.SENT]
    assert [r.provider_message_id for r in results] == ["update-7/email/1.eml", "update-7/email/2.eml"]
    assert sorted(p.name for p in (tmp_path / "update-7" / "email").iterdir()) == ["1.eml", "2.eml"]

    second = _read_eml(tmp_path / "update-7" / "email" / "2.eml")
    assert second["To"] == "Zoë O'Brien <zoe@example.org>"
    assert second["From"] == "Tocsin <status@acme.test>"
    assert second["Subject"] == EMAIL.subject
    assert second["Date"] is not None
    assert second["Message-ID"] == "<tocsin-2@acme.test>"
    assert second["X-Tocsin-Delivery-Id"] == "2"
    plain, html = second.get_body(("plain",)), second.get_body(("html",))
    # RFC 5322 line endings are CRLF
    assert plain is not None and plain.get_content().replace("\r\n", "\n") == EMAIL.text
    assert html is not None and html.get_content().replace("\r\n", "\n") == EMAIL.html
    assert "ann@example.org" not in (tmp_path / "update-7" / "email" / "2.eml").read_text()


def test_one_json_per_webhook_and_sms_recipient(tmp_path: Path) -> None:
    outbox = _outbox(tmp_path)
    hook = Recipient(10, "https://hooks.example.org/tocsin", secret="whsec_c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0")
    outbox.send(WEBHOOK, [hook])
    outbox.send(SMS, [Recipient(11, "+447911123456"), Recipient(12, "+12025550143")])

    document = json.loads((tmp_path / "update-7" / "webhook" / "10.json").read_text())
    assert document == {
        "channel": "webhook",
        "to": "https://hooks.example.org/tocsin",
        "subject": "Dashboard is slow",
        "text": WEBHOOK.text,
        "json_body": {"type": "incident.update", "update": {"id": 7}},
        "delivery_id": 10,
        "message_id": "tocsin-10",
        "update_id": 7,
        "incident_id": 42,
    }
    assert "whsec_" not in (tmp_path / "update-7" / "webhook" / "10.json").read_text()  # secrets stay out
    sms = json.loads((tmp_path / "update-7" / "sms" / "12.json").read_text())
    assert (sms["channel"], sms["to"], sms["text"], sms["json_body"]) == (
        "sms",
        "+12025550143",
        SMS.text,
        None,
    )
    assert len(list((tmp_path / "update-7" / "sms").iterdir())) == 2


def test_writing_the_same_delivery_twice_overwrites_it_and_leaves_no_temp_files(tmp_path: Path) -> None:
    outbox = _outbox(tmp_path)
    outbox.send(SMS, [Recipient(11, "+447911123456")])
    changed = Message(kind=ChannelKind.SMS, update_id=7, incident_id=42, subject="s", text="second text")
    outbox.send(changed, [Recipient(11, "+447911123456")])

    files = list((tmp_path / "update-7" / "sms").iterdir())
    assert [f.name for f in files] == ["11.json"]
    assert json.loads(files[0].read_text())["text"] == "second text"


def test_an_unwritable_directory_is_a_transient_error(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the outbox should be")
    with pytest.raises(TransientError, match="outbox"):
        _outbox(blocker).send(SMS, [Recipient(1, "+447911123456")])


def test_an_address_that_cannot_be_an_email_fails_alone(tmp_path: Path) -> None:
    results = _outbox(tmp_path).send(EMAIL, [Recipient(1, "no-at-sign"), Recipient(2, "ok@example.org")])
    assert [r.outcome for r in results] == [Outcome.FAILED, Outcome.SENT]
    assert not (tmp_path / "update-7" / "email" / "1.eml").exists()


def test_outbox_takes_every_kind_in_big_batches() -> None:
    assert OutboxAdapter.capabilities.kinds == frozenset(ChannelKind)
    assert OutboxAdapter.capabilities.max_batch == 1000
    assert OutboxAdapter.capabilities.renders_html
