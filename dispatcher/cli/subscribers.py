"""``tocsin subscribers …``"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer
from rich.table import Table

from dispatcher.cli.common import console, err_console, fail, friendly_errors, runtime
from dispatcher.domain.errors import InvalidInput
from dispatcher.domain.vocabulary import Severity

if TYPE_CHECKING:
    from dispatcher.domain.models import ContactPoint

app = typer.Typer(help="Add, import and list subscribers.", no_args_is_help=True)
T = TypeVar("T")


def _checked(field: str, check: Callable[[], T]) -> T:
    try:
        return check()
    except ValueError as exc:
        raise InvalidInput(f"{field}: {exc}") from None


@app.command("add")
@friendly_errors
def add(
    email: Annotated[str | None, typer.Option(help="Email address.")] = None,
    phone: Annotated[str | None, typer.Option(help="Mobile number for SMS (+447911123456).")] = None,
    webhook: Annotated[str | None, typer.Option(help="Webhook URL (a signing secret is generated).")] = None,
    name: Annotated[str | None, typer.Option(help="The person's or system's name.")] = None,
    external_id: Annotated[str | None, typer.Option(help="Your own id for them (unique).")] = None,
    locale: Annotated[str, typer.Option(help="Language of their messages: en, fr, fr-CA…")] = "en",
    component: Annotated[
        list[str] | None, typer.Option(help="A component to follow (repeat for more; none: all).")
    ] = None,
    min_severity: Annotated[Severity, typer.Option(help="Lowest severity they are told about.")] = (
        Severity.MINOR
    ),
    internal: Annotated[bool, typer.Option("--internal", help="Staff: also gets internal updates.")] = False,
    region: Annotated[str | None, typer.Option(help="Region, for audience segments (eu, us…).")] = None,
    plan: Annotated[str | None, typer.Option(help="Plan, for audience segments (free, pro…).")] = None,
    tag: Annotated[list[str] | None, typer.Option(help="A tag, for audience segments (repeat).")] = None,
    channels: Annotated[
        str | None, typer.Option(help="Only these channels, e.g. email,sms (default: every contact).")
    ] = None,
    quiet_hours: Annotated[
        str | None, typer.Option(help="22:00-07:00: non-critical updates wait until the window ends.")
    ] = None,
    timezone: Annotated[str | None, typer.Option(help="Time zone of the quiet hours (Europe/Paris).")] = None,
    phone_region: Annotated[
        str | None, typer.Option(help="Region for a number without +, e.g. US (default from config).")
    ] = None,
) -> None:
    """Add one subscriber."""
    from dispatcher.audience.csv_rows import normalise_email, normalise_phone, parse_channels
    from dispatcher.audience.endpoints import EndpointCheck
    from dispatcher.audience.subscribers import add_subscribers
    from dispatcher.domain.models import ChannelKind, ContactPoint, Subscriber
    from dispatcher.domain.quiet_hours import parse_quiet_hours

    rt = runtime()
    points: list[ContactPoint] = []
    if email:
        points.append(
            ContactPoint(channel=ChannelKind.EMAIL, address=_checked("email", lambda: normalise_email(email)))
        )
    if phone:
        region_code = (phone_region or rt.settings.default_region).upper()
        number = _checked("phone", lambda: normalise_phone(phone, region_code))
        points.append(ContactPoint(channel=ChannelKind.SMS, address=number))
    if webhook:
        unreachable = EndpointCheck(rt.settings).problem(webhook)
        if unreachable is not None:
            raise InvalidInput(f"webhook: {unreachable}")
        points.append(ContactPoint(channel=ChannelKind.WEBHOOK, address=webhook))
    if not points:
        raise InvalidInput("contact: give at least one of --email, --phone, --webhook")
    chosen = _checked("channels", lambda: parse_channels(channels)) if channels else None
    have = {p.channel for p in points}
    missing = [c.value for c in chosen or [] if c not in have]
    if missing:
        raise InvalidInput(f"channels: {', '.join(missing)} chosen but no contact given for it")
    start, end = (
        _checked("quiet_hours", lambda: parse_quiet_hours(quiet_hours)) if quiet_hours else (None, None)
    )
    subscriber = Subscriber(
        name=name,
        external_id=external_id,
        locale=locale,
        components=component or [],
        min_severity=min_severity,
        internal=internal,
        contact_points=points,
        region=region,
        plan=plan,
        tags=tag or [],
        channels=chosen,
        quiet_start=start,
        quiet_end=end,
        timezone=timezone,
    )
    add_subscribers(rt, [subscriber])
    console.print(
        f"added {name or 'subscriber'}: " + ", ".join(f"{p.channel.value} {p.address}" for p in points),
        highlight=False,
    )


@app.command("import")
@friendly_errors
def import_(
    file: Annotated[
        Path, typer.Argument(help="CSV file; its columns are listed in docs/pages/getting-started.md.")
    ],
    skip_invalid: Annotated[
        bool, typer.Option(help="Import the valid rows even when some are bad (bad ones are listed).")
    ] = False,
    region: Annotated[
        str | None, typer.Option(help="Region for numbers without +, e.g. US, GB (default from config).")
    ] = None,
) -> None:
    """Import subscribers from CSV. Nothing is imported if any row is bad, unless --skip-invalid."""
    from dispatcher.audience.importing import import_subscribers_file

    rt = runtime()
    outcome = import_subscribers_file(rt, file, region or rt.settings.default_region, skip_invalid)
    for problem in outcome.problems:
        err_console.print(f"{file}:{problem.line}: {problem.column}: {problem.reason}", highlight=False)
    if outcome.problems and not skip_invalid:
        fail(f"{outcome.summary()} in {file}; nothing imported (fix them, or --skip-invalid)")
    console.print(
        f"imported {outcome.imported} subscriber(s)"
        + (f", skipped {outcome.skipped} bad row(s)" if outcome.skipped else "")
    )


@app.command("list")
@friendly_errors
def list_(limit: Annotated[int, typer.Option(help="Show at most this many.")] = 50) -> None:
    """List subscribers and their contact points."""
    from dispatcher.audience.subscribers import count_subscribers, iter_subscribers

    rt = runtime()
    table = Table(
        "id",
        "name",
        "locale",
        "email",
        "sms",
        "webhook",
        "components",
        "staff",
        "segment facts",
        "preferences",
        title=f"{count_subscribers(rt)} subscriber(s)",
    )
    for s in iter_subscribers(rt, limit):
        by_channel = {
            cp.channel.value: cp.address
            + (" (opted out)" if cp.opted_out else "")
            + ("" if cp.confirmed else " (unconfirmed)")
            for cp in s.contact_points
        }
        facts = [f"region {s.region}" if s.region else "", f"plan {s.plan}" if s.plan else ""]
        facts += [f"#{t}" for t in s.tags]
        prefs = []
        if s.channels is not None:
            prefs.append("only " + "+".join(c.value for c in s.channels))
        if s.min_severity is not Severity.MINOR:
            prefs.append(f"{s.min_severity.value}+")
        if s.quiet_start:
            prefs.append(f"quiet {s.quiet_start}-{s.quiet_end} {s.timezone or 'UTC'}")
        table.add_row(
            str(s.id),
            s.name or "-",
            s.locale,
            by_channel.get("email", "-"),
            by_channel.get("sms", "-"),
            by_channel.get("webhook", "-"),
            ", ".join(s.components) or "all",
            "yes" if s.internal else "",
            " ".join(f for f in facts if f),
            ", ".join(prefs),
        )
    console.print(table)
