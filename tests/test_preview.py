"""Preview: every channel's text and length, who would be owed it, and the guardrails' findings, with
nothing sent. The audience sizes it shows are what the fan-out then really writes."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from channels.base import ChannelKind
from dispatcher.audience.subscribers import add_subscribers
from dispatcher.comms.preview import PreviewResult, excerpt, preview, preview_draft
from dispatcher.domain.models import Audience, ContactPoint, Severity, Subscriber, UpdateDraft
from dispatcher.engine.runtime import Runtime
from tests.cli import tocsin
from tests.helpers import draft, incident, publish_and_deliver, states


def someone(i: int, *, email: bool = True, sms: bool = True, **fields: object) -> Subscriber:
    points = []
    if email:
        points.append(
            ContactPoint(
                channel=ChannelKind.EMAIL,
                address=f"p{i}@example.com",
                opted_out=bool(fields.pop("email_opted_out", False)),
                confirmed=bool(fields.pop("email_confirmed", True)),
            )
        )
    if sms:
        points.append(ContactPoint(channel=ChannelKind.SMS, address=f"+1202555{i:04d}"))
    return Subscriber.model_validate({"name": f"P{i}", "contact_points": points, **fields})


def a_varied_audience(rt: Runtime) -> None:
    add_subscribers(
        rt,
        [
            someone(0),
            someone(1),
            someone(2, sms=False),
            someone(3, email_opted_out=True),  # owed on SMS only
            someone(4, email_confirmed=False),  # an unconfirmed signup: owed on SMS only
            someone(5, min_severity=Severity.CRITICAL),  # not for a major incident
            someone(6, components=["billing"]),  # follows something else
            someone(7, components=["checkout", "billing"]),
            someone(8, channels=[ChannelKind.SMS]),  # wants SMS only
            someone(9, internal=True),  # staff get public updates too
            someone(10, region="EU", internal=False),
        ],
    )


def owed(rt: Runtime, update_id: int, channel: ChannelKind) -> int:
    """Delivery rows the fan-out wrote on ``channel`` that are meant to be sent (not suppressed)."""
    return sum(n for state, n in states(rt, update_id, channel).items() if state != "suppressed")


def test_audience_sizes_match_what_the_fan_out_writes(rt: Runtime) -> None:
    a_varied_audience(rt)
    inc = incident(rt, Severity.MAJOR, ["checkout"])
    upd = draft(inc, "Checkout is failing for some customers. We are sorry.")

    result = preview_draft(rt, upd)

    sizes = {c.channel: c.audience_size for c in result.channels}
    assert sizes[ChannelKind.EMAIL] == 6  # 0, 1, 2, 7, 9, 10
    assert sizes[ChannelKind.SMS] == 8  # all but 2 (no phone), 5, 6
    assert sizes[ChannelKind.SOCIAL] == 1  # one post
    published = publish_and_deliver(rt, upd)
    for channel in (ChannelKind.EMAIL, ChannelKind.SMS, ChannelKind.SOCIAL):
        assert owed(rt, published.update.id, channel) == sizes[channel], channel


def test_internal_audience_is_staff_only_and_never_posted_publicly(rt: Runtime) -> None:
    a_varied_audience(rt)
    inc = incident(rt, Severity.MAJOR, ["checkout"])
    upd = draft(inc, "Staff: checkout is failing.", audience=Audience.INTERNAL)

    result = preview_draft(rt, upd)

    assert {c.channel: c.audience_size for c in result.channels} == {
        ChannelKind.EMAIL: 1,
        ChannelKind.SMS: 1,
        ChannelKind.WEBHOOK: 0,
    }
    published = publish_and_deliver(rt, upd)
    assert owed(rt, published.update.id, ChannelKind.EMAIL) == 1


def test_a_segment_counts_staff_and_the_segments_members(
    make_runtime: Callable[..., Runtime], tmp_path: Path
) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text(
        '[segments.eu]\nregions = ["EU"]\n'
        '[severity.critical]\ncadence = "30m"\n'
        '[severity.major]\ncadence = "1h"\naudiences = ["public", "internal", "eu"]\n'
        '[severity.minor]\ncadence = "3h"\n'
    )
    rt = make_runtime(policy_file=policy)
    a_varied_audience(rt)
    inc = incident(rt, Severity.MAJOR, ["checkout"])
    upd = draft(inc, "EU customers: checkout is failing. Sorry.", audience=Audience("eu"))

    sizes = {c.channel: c.audience_size for c in preview_draft(rt, upd).channels}

    assert sizes == {ChannelKind.EMAIL: 2, ChannelKind.SMS: 2, ChannelKind.WEBHOOK: 0}  # staff 9, EU 10
    published = publish_and_deliver(rt, upd)
    assert owed(rt, published.update.id, ChannelKind.EMAIL) == 2


def test_the_severity_policy_picks_the_channels(make_runtime: Callable[..., Runtime], tmp_path: Path) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text(
        '[severity.critical]\ncadence = "30m"\n'
        '[severity.major]\ncadence = "1h"\nchannels = ["sms", "social"]\n'
        '[severity.minor]\ncadence = "3h"\n'
    )
    rt = make_runtime(policy_file=policy)
    inc = incident(rt, Severity.MAJOR)

    result = preview_draft(rt, draft(inc, "Checkout is failing. Sorry."))

    assert [c.channel for c in result.channels] == [ChannelKind.SMS, ChannelKind.SOCIAL]


def test_the_result_carries_measures_and_findings_as_json(rt: Runtime) -> None:
    inc = incident(rt, Severity.MAJOR)
    text = "Checkout is failing on db-3.internal. Back soon."

    result = preview(rt, inc.id, draft(inc).status, text, rt.clock.now() + timedelta(minutes=30))

    assert isinstance(result, PreviewResult)
    measures = {c.channel: c.measure for c in result.channels}
    assert measures[ChannelKind.SMS].startswith("1 segment(s)")
    assert measures[ChannelKind.SOCIAL].endswith("/280 weighted")
    assert measures[ChannelKind.EMAIL].endswith("characters")
    assert [(f.rule, f.level) for f in result.findings] == [
        ("internal-hostname", "error"),
        ("vague-timing", "error"),
        ("apology-missing", "warn"),
    ]
    assert result.blocked
    data = json.loads(json.dumps(result.as_dict()))
    assert data["blocked"] is True
    assert data["findings"][0]["span"] == [text.index("db-3"), text.index("db-3") + len("db-3.internal")]
    assert {c["channel"] for c in data["channels"]} == {"email", "sms", "webhook", "social"}
    assert all(isinstance(c["audience_size"], int) for c in data["channels"])


def test_nothing_is_sent_by_a_preview(rt: Runtime) -> None:
    a_varied_audience(rt)
    inc = incident(rt, Severity.MINOR)
    upd = UpdateDraft(incident_id=inc.id, status=draft(inc).status, message="Looking into it.")
    assert [f.rule for f in preview_draft(rt, upd).findings] == ["next-update-missing"]
    assert not list(Path(rt.settings.outbox_dir).glob("**/*.*"))


def test_excerpt_shows_the_words_around_a_span_on_one_line() -> None:
    text = "First line.\nWe will be back soon, we hope, with more news for everyone who waits for it."
    start = text.index("soon")
    before, hit, after = excerpt(text, (start, start + 4), around=20)
    assert (before, hit, after) == ("…ne. We will be back ", "soon", ", we hope, with more…")


# --- the command ------------------------------------------------------------------------------------

PEOPLE = """name,email,phone,locale
Ada,ada@example.com,+442079460000,en
Grace,grace@example.com,(202) 555-0143,fr
Alan,alan@example.com,,
"""


def test_tocsin_preview_shows_lengths_audiences_and_findings(tmp_path: Path) -> None:
    assert tocsin("init", cwd=tmp_path).code == 0
    (tmp_path / "people.csv").write_text(PEOPLE)
    assert tocsin("subscribers", "import", "people.csv", cwd=tmp_path).code == 0
    assert tocsin("incident", "open", "Checkout failing", cwd=tmp_path).code == 0

    bad = tocsin("preview", "1", "--message", "Errors on db-3.internal; back soon.", cwd=tmp_path)

    assert bad.code == 3, bad.err
    assert "email · " in bad.out and "3 contact point(s)" in bad.out
    assert "sms · 1 segment(s)" in bad.out and "2 contact point(s)" in bad.out
    assert "/280 weighted · 1 post(s)" in bad.out
    assert "error internal-hostname" in bad.out
    assert "Errors on »db-3.internal«; back soon." in bad.out
    assert "error vague-timing" in bad.out and "»soon«" in bad.out
    assert "error next-update-missing" in bad.out
    assert "warn apology-missing" in bad.out
    assert "publishing would be refused: 3 error(s)" in bad.out

    good = tocsin(
        "preview",
        "1",
        "--message",
        "Checkout fails for some customers; we are rolling back. Sorry for the trouble.",
        "--next-update-in",
        "30m",
        cwd=tmp_path,
    )
    assert good.code == 0, good.err
    assert "error" not in good.out
    # Grace reads French and the update has no French text: she gets the English one, marked.
    assert "warn locale-missing: no text in fr" in good.out
    assert not list(tmp_path.glob("outbox/**/*.*")), "a preview sends nothing"

    staff = tocsin("preview", "1", "--message", "Staff: back soon.", "--audience", "internal", cwd=tmp_path)
    assert staff.code == 3
    assert "social" not in staff.out
    assert "next-update-missing" not in staff.out, "internal updates promise nothing to the public"


def test_tocsin_preview_help_names_its_exit_codes(tmp_path: Path) -> None:
    ran = tocsin("preview", "--help", cwd=tmp_path)
    assert ran.code == 0
    assert "3 when there are errors" in " ".join(ran.out.split())
