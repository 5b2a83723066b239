"""A senior voice (issue 17). Given signatories in the policy, an update signed by one goes out in their
name (the email's From display name and signature), and the status page and the webhook body say who
signed it; the policy can require a signer for a severity and for security incidents, and can hold a
security incident's updates for an approver in a named role.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from channels.base import ChannelKind
from channels.memory import MemoryAdapter
from channels.sendgrid import SendGridAdapter, SendGridOptions
from dispatcher.comms.approval import approve
from dispatcher.comms.incidents import open_incident
from dispatcher.config.settings import ChannelSettings
from dispatcher.domain.crisis import DataFacts
from dispatcher.domain.errors import ConfigurationError, GuardrailsBlocked, InvalidInput
from dispatcher.domain.identity import Identity
from dispatcher.domain.models import IncidentDraft, Severity, UpdateState
from dispatcher.domain.policy import parse_policy
from dispatcher.engine.messages import render_for
from dispatcher.engine.runtime import Runtime
from dispatcher.engine.status_site import build_snapshot
from dispatcher.runners.embedded import EmbeddedRunner
from tests.cli import tocsin
from tests.helpers import draft, incident, publish_and_deliver, subscribe

POLICY = """
[signatories.ceo]
name = "Jane Doe"
role = "Chief Executive"

[signatories.cto]
name = "Sam Lee"
role = "Chief Technology Officer"

[severity.critical]
cadence = "30m"
needs_signer = true
[severity.major]
cadence = "1h"
[severity.minor]
cadence = "3h"

[security]
needs_signer = true
needs_approval = true
approver_role = "security-lead"

[roles]
security-lead = ["carol"]
"""
FACTS = DataFacts(
    data_affected="names",
    data_not_affected="passwords",
    customer_actions="nothing",
    company_actions="fixed it",
)


def soon(rt: Runtime) -> datetime:
    return rt.clock.now() + timedelta(minutes=20)


def staged(make_runtime: Callable[..., Runtime], tmp_path: Path, **more: object) -> Runtime:
    (tmp_path / "policy.toml").write_text(POLICY)
    return make_runtime(policy_file=tmp_path / "policy.toml", organisation="Example Corp", **more)


def test_a_critical_update_must_be_signed_by_a_known_signatory(
    make_runtime: Callable[..., Runtime], tmp_path: Path
) -> None:
    rt = staged(make_runtime, tmp_path)
    inc = incident(rt, Severity.CRITICAL)
    with pytest.raises(GuardrailsBlocked) as blocked:
        publish_and_deliver(rt, draft(inc, "Everything is down. We are sorry.", next_update_at=soon(rt)))
    assert [f.rule for f in blocked.value.findings if f.level == "error"] == ["signer-missing"]
    assert "critical incidents' updates signed by a senior voice" in str(blocked.value)
    with pytest.raises(
        InvalidInput, match=r"signer: no signatory named 'cfo' in the policy \(known: ceo, cto\)"
    ):
        publish_and_deliver(
            rt, draft(inc, "Everything is down. We are sorry.", next_update_at=soon(rt), signer="cfo")
        )
    minor = incident(rt, Severity.MINOR)
    assert publish_and_deliver(rt, draft(minor, "Slow pages. Sorry.")).created, "minor: no signer needed"


def test_a_signed_update_goes_out_in_the_signers_name(
    make_runtime: Callable[..., Runtime], tmp_path: Path
) -> None:
    memory = MemoryAdapter()
    rt = staged(
        make_runtime,
        tmp_path,
        channels={
            ChannelKind.EMAIL: ChannelSettings(providers=["outbox"]),
            ChannelKind.WEBHOOK: ChannelSettings(providers=["memory"]),
        },
        adapters={"memory": memory},
    )
    subscribe(rt, 1, webhook="https://hooks.example.com")
    inc = incident(rt, Severity.CRITICAL)

    published = publish_and_deliver(
        rt, draft(inc, "Everything is down. We are sorry.", next_update_at=soon(rt), signer="ceo")
    )

    assert published.update.signer is not None and published.update.signer.line == "Jane Doe, Chief Executive"
    mail = next((Path(rt.settings.outbox_dir) / f"update-{published.update.id}" / "email").glob("*.eml"))
    text = mail.read_text()
    assert 'From: "Jane Doe, Example Corp" <' in text
    assert "Jane Doe\nChief Executive\n\n--" in text.replace("\r\n", "\n")
    hook = json.loads(memory.calls[0].message.json_body or "{}")
    assert hook["signer"] == {"name": "Jane Doe", "role": "Chief Executive"}
    [shown] = [
        u for item in build_snapshot(rt).everything() for u in item.updates if u.id == published.update.id
    ]
    assert shown.signer == "Jane Doe, Chief Executive"


def test_sendgrid_sends_it_from_the_signer(make_runtime: Callable[..., Runtime], tmp_path: Path) -> None:
    rt = staged(make_runtime, tmp_path)
    inc = incident(rt, Severity.CRITICAL)
    published = publish_and_deliver(
        rt, draft(inc, "Everything is down. We are sorry.", next_update_at=soon(rt), signer="cto")
    )
    message = render_for(rt, published.update.id, ChannelKind.EMAIL, "en")
    options = SendGridOptions(api_key="SG.x", from_email="status@example.com", from_name="Example")
    body = SendGridAdapter(options).request_body(message, [])  # the JSON SendGrid is sent
    assert body["from"] == {"email": "status@example.com", "name": "Sam Lee, Example Corp"}


def test_a_security_incident_waits_for_an_approver_in_the_named_role(
    make_runtime: Callable[..., Runtime], tmp_path: Path
) -> None:
    rt = staged(make_runtime, tmp_path)
    subscribe(rt, 1)
    inc = open_incident(
        rt,
        IncidentDraft(
            title="Customer data exposed", severity=Severity.MINOR, kind="security", data_facts=FACTS
        ),
    )
    unsigned = draft(inc, "Someone read our customer list. Sorry.")
    with pytest.raises(GuardrailsBlocked, match="security incidents' updates signed"):
        publish_and_deliver(rt, unsigned)
    waiting = publish_and_deliver(rt, draft(inc, "Someone read our customer list. Sorry.", signer="ceo"))
    assert waiting.update.state is UpdateState.PENDING_APPROVAL, (
        "a minor security incident waits all the same"
    )

    runner = EmbeddedRunner(rt)
    with pytest.raises(
        InvalidInput, match="only someone in the role security-lead \\(carol\\) may approve it"
    ):
        approve(rt, waiting.update.id, Identity("api:bob", 2, "bob"), runner.queue)
    released = approve(rt, waiting.update.id, Identity("api:carol", 3, "carol"), runner.queue)
    assert released.state is UpdateState.PENDING


def test_the_policy_refuses_an_unknown_role() -> None:
    with pytest.raises(ConfigurationError, match=r"security\.approver_role: no role named 'ciso'"):
        parse_policy('[security]\napprover_role = "ciso"\n')


def test_tocsin_publish_signer(tmp_path: Path) -> None:
    assert tocsin("init", cwd=tmp_path).code == 0
    (tmp_path / "policy.toml").write_text(POLICY)
    assert tocsin("incident", "open", "Slow dashboards", "--severity", "minor", cwd=tmp_path).code == 0
    said = ["--message", "Dashboards are slow. Sorry.", "--next-update-in", "1h"]
    signed = tocsin("publish", "1", "--status", "investigating", *said, "--signer", "ceo", cwd=tmp_path)
    assert signed.code == 0, signed.err
    shown = tocsin("incident", "show", "1", cwd=tmp_path)
    assert shown.code == 0
    unknown = tocsin("publish", "1", "--status", "investigating", *said, "--signer", "cfo", cwd=tmp_path)
    assert unknown.code != 0 and "signer: no signatory named 'cfo'" in unknown.err
