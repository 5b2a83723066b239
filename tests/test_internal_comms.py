"""Internal comms look internal: internal updates and reminders say INTERNAL in the email subject, the
SMS and the chat post, with a staff footer; the CLI and the console take an internal note; and an
internal-only update never changes what customers are shown."""

from __future__ import annotations

import email
import email.policy
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from fastapi.testclient import TestClient

from channels.base import ChannelKind
from dispatcher.access.tokens import Scope, create_token
from dispatcher.audience.subscribers import add_subscribers
from dispatcher.comms.publish import publish
from dispatcher.comms.tick import run_tick
from dispatcher.config.settings import ChannelSettings
from dispatcher.domain.models import (
    Audience,
    ContactPoint,
    IncidentStatus,
    Severity,
    Subscriber,
    UpdateDraft,
)
from dispatcher.engine.runtime import Runtime
from dispatcher.runners.embedded import EmbeddedRunner
from dispatcher.web.app import create_app
from tests.cli import tocsin
from tests.helpers import ManualClock, incident

T0 = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
STAFF, CUSTOMER = "staff@example.com", "customer@example.com"


def people(rt: Runtime) -> None:
    add_subscribers(
        rt,
        [
            Subscriber(
                name="Staff",
                internal=True,
                contact_points=[
                    ContactPoint(channel=ChannelKind.EMAIL, address=STAFF),
                    ContactPoint(channel=ChannelKind.SMS, address="+12025550100"),
                ],
            ),
            Subscriber(
                name="Customer",
                contact_points=[
                    ContactPoint(channel=ChannelKind.EMAIL, address=CUSTOMER),
                    ContactPoint(channel=ChannelKind.SMS, address="+12025550111"),
                ],
            ),
        ],
    )


def mails(outbox: Path, update_id: int) -> dict[str, email.message.EmailMessage]:
    found = {}
    for path in (outbox / f"update-{update_id}" / "email").glob("*.eml"):
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        assert isinstance(message, email.message.EmailMessage)
        found[email.utils.parseaddr(str(message["To"]))[1]] = message
    return found


def text(message: email.message.EmailMessage) -> str:
    body = message.get_body(("plain",))
    assert body is not None
    return str(body.get_content())


def test_internal_updates_and_reminders_are_marked_internal_everywhere(
    make_runtime: Callable[..., Runtime], tmp_path: Path
) -> None:
    rt = make_runtime(channels={ChannelKind.CHAT: ChannelSettings(providers=["outbox"], enabled=True)})
    people(rt)
    clock = ManualClock(T0)
    rt.clock = clock
    runner = EmbeddedRunner(rt)
    inc = incident(rt, Severity.MAJOR)
    outbox = tmp_path / "outbox"
    public = publish(
        rt,
        UpdateDraft(
            incident_id=inc.id,
            status=IncidentStatus.INVESTIGATING,
            message="Checkout fails for some customers. We are sorry.",
            next_update_at=T0 + timedelta(minutes=30),
        ),
        runner.queue,
    ).update
    staff_only = publish(
        rt,
        UpdateDraft(
            incident_id=inc.id,
            status=IncidentStatus.INVESTIGATING,
            message="Payments vendor paged; bridge on the usual line.",
            audience=Audience.INTERNAL,
        ),
        runner.queue,
    ).update
    runner.run_until_idle()
    # The staff update may have found the public one on the wire to the same address and waited a second
    # behind it (deliveries to one address keep their order): let that second pass.
    clock.at = T0 + timedelta(seconds=5)
    runner.run_until_idle(wait_up_to=2.0)
    clock.at = T0 + timedelta(minutes=26)
    [reminder] = run_tick(rt, runner.queue).reminders
    runner.run_until_idle()

    for update_id in (staff_only.id, reminder):
        [(to, mail)] = mails(outbox, update_id).items()
        assert to == STAFF
        assert str(mail["Subject"]).startswith("[INTERNAL] ")
        body = text(mail)
        assert body.startswith("INTERNAL - STAFF ONLY: do not forward to customers.")
        assert "Staff only: you get this because you are on the staff list" in body
        assert "You are receiving this because you subscribed" not in body
        [sms] = [json.loads(p.read_text()) for p in (outbox / f"update-{update_id}" / "sms").glob("*.json")]
        assert sms["text"].startswith("INTERNAL - staff only, do not forward.")
        [chat] = [json.loads(p.read_text()) for p in (outbox / f"update-{update_id}" / "chat").glob("*.json")]
        assert chat["text"].startswith("**INTERNAL · staff only")
    customer = mails(outbox, public.id)[CUSTOMER]
    assert "INTERNAL" not in str(customer["Subject"]) and "INTERNAL" not in text(customer)
    assert "You are receiving this because you subscribed" in text(customer)


def test_an_internal_only_update_never_changes_what_customers_are_shown(rt: Runtime, tmp_path: Path) -> None:
    people(rt)
    clock = ManualClock(T0)
    rt.clock = clock
    runner = EmbeddedRunner(rt)
    inc = incident(rt, Severity.MAJOR)
    publish(
        rt,
        UpdateDraft(
            incident_id=inc.id,
            status=IncidentStatus.INVESTIGATING,
            message="Checkout fails for some customers. We are sorry.",
            next_update_at=T0 + timedelta(minutes=30),
            channels=[ChannelKind.EMAIL],
        ),
        runner.queue,
    )
    publish(
        rt,
        UpdateDraft(
            incident_id=inc.id,
            status=IncidentStatus.IDENTIFIED,
            message="Staff: it is the 09:05 deploy; do not tell customers until legal agrees.",
            audience=Audience.INTERNAL,
            channels=[ChannelKind.EMAIL],
        ),
        runner.queue,
    )
    runner.run_until_idle()

    clock.at = T0 + timedelta(minutes=30)
    [holding] = run_tick(rt, runner.queue).holdings
    runner.run_until_idle()

    told = mails(tmp_path / "outbox", holding)[CUSTOMER]
    assert "[Major · Investigating]" in str(told["Subject"]), "what customers were last told"
    assert "Identified" not in str(told["Subject"]) and "Identified" not in text(told)


def test_the_cli_takes_an_internal_note_for_staff_only(tmp_path: Path) -> None:
    assert tocsin("init", cwd=tmp_path).code == 0
    (tmp_path / "people.csv").write_text(f"name,email,internal\nStaff,{STAFF},yes\nCustomer,{CUSTOMER},no\n")
    assert tocsin("subscribers", "import", "people.csv", cwd=tmp_path).code == 0
    tocsin("incident", "open", "Checkout failing", "--severity", "minor", cwd=tmp_path)

    sent = tocsin(
        "publish", "1", "--status", "investigating", "--message", "Checkout fails for some. Sorry.",
        "--next-update-in", "30m", "--internal-note", "Caused by Bob's 09:05 deploy", cwd=tmp_path,
    )  # fmt: skip

    assert sent.code == 0, sent.err
    got = mails(tmp_path / "outbox", 1)
    assert "Internal note: Caused by Bob's 09:05 deploy" in text(got[STAFF])
    assert "Bob" not in text(got[CUSTOMER])


def test_the_console_takes_an_internal_note(rt: Runtime, tmp_path: Path) -> None:
    people(rt)
    inc = incident(rt, Severity.MINOR)
    _, secret = create_token(rt, "carol", [Scope.PUBLISH])
    with TestClient(create_app(lambda: rt)) as http:
        login = http.get("/console/login")
        csrf = login.text.split('name="csrf" value="')[1].split('"')[0]
        http.post("/console/login", data={"token": secret, "csrf": csrf}, follow_redirects=False)
        page = http.get(f"/console/incidents/{inc.id}")
        csrf = page.text.split('name="csrf" value="')[1].split('"')[0]
        sent = http.post(
            f"/console/incidents/{inc.id}/updates",
            data={
                "csrf": csrf,
                "message": "Checkout fails for some. Sorry.",
                "status": "investigating",
                "next_update_in": "30m",
                "audience": "public",
                "internal_note": "Rollback owner: Dana",
            },
            follow_redirects=False,
        )
        assert sent.status_code == 303, sent.text
        http.app.state.console.background.join(timeout=30)  # type: ignore[attr-defined]
    update_id = int(sent.headers["location"].rsplit("/", 1)[1])
    got = mails(tmp_path / "outbox", update_id)
    assert "Internal note: Rollback owner: Dana" in text(got[STAFF])
    assert "Dana" not in text(got[CUSTOMER])
