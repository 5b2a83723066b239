"""``tocsin check``: is every channel ready for the next incident? ``--send`` proves it end to end."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from channels.base import ChannelKind
from dispatcher.cli.common import console, friendly_errors, load_settings, runtime

if TYPE_CHECKING:
    from dispatcher.comms.canary import CanaryOutcome
    from dispatcher.comms.readiness import ReadinessRound
    from dispatcher.config.settings import Settings
    from dispatcher.engine.readiness.services import ServiceCheck
    from dispatcher.engine.readiness.state import ChannelReadiness
    from dispatcher.engine.runtime import Runtime
    from dispatcher.runners.factory import Work

NOT_READY_EXIT = 1
CANARY_POLL_SECONDS = 1.0


def used_channels(rt: Runtime) -> set[ChannelKind]:
    """The enabled channels some severity of the policy sends on (all of them when a severity has no
    list of its own)."""
    enabled = set(rt.settings.enabled_channels())
    used: set[ChannelKind] = set()
    for rules in rt.policy.policy.severity.values():
        used |= enabled if rules.channels is None else enabled & set(rules.channels)
    return used


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def _services(settings_url: str, redis_url: str | None) -> list[ServiceCheck]:
    from dispatcher.engine.readiness.services import check_broker, check_database
    from dispatcher.store.engine import get_engine

    checks = [check_database(get_engine(settings_url))]
    if redis_url is not None:
        checks.append(check_broker(redis_url))
    return checks


def _table(services: list[ServiceCheck], done: ReadinessRound | None) -> Table:
    table = Table("channel", "provider", "ready", "why", "took", title="Readiness", title_justify="left")
    for service in services:
        table.add_row(
            "-",
            service.name,
            "yes" if service.ok else "NO",
            escape(service.problem or "answers"),
            _ms(service.elapsed),
        )
    for result in done.results if done is not None else []:
        table.add_row(
            result.channel.value,
            result.provider,
            "yes" if result.ready else "NO",
            escape(result.detail),
            _ms(result.elapsed),
        )
    return table


def _verdict(rt: Runtime, states: dict[ChannelKind, ChannelReadiness]) -> list[str]:
    """One line per channel that is not ready; the channels the policy uses that are down."""
    from dispatcher.engine.readiness.state import DOWN, READY

    used = used_channels(rt)
    lines = []
    for kind, state in states.items():
        if state.state == READY:
            continue
        note = (
            "updates on it reach no one" if state.state == DOWN else "a fallback carries it; failover is gone"
        )
        used_note = "" if kind in used else " (the severity policy does not use it)"
        lines.append(f"{kind.value} is {state.state}: {note}{used_note}")
    return lines


def link_warnings(settings: Settings) -> list[str]:
    """What every reader's email would lack: the one-click unsubscribe link (RFC 8058, which Gmail and
    Yahoo require of bulk senders) needs ``public_url`` and a signing key. Sending still goes on without it,
    so ``tocsin check`` is where it is said."""
    from dispatcher.config.keys import signing_key
    from dispatcher.domain.errors import ConfigurationError

    email = settings.channels.get(ChannelKind.EMAIL)
    if email is None or not email.enabled or set(email.providers) <= {"outbox"}:
        return []
    lacking = "email goes out without its one-click unsubscribe link"
    if not settings.public_url:
        return [f"{lacking}: set public_url to the address where readers reach `tocsin api`"]
    try:
        signing_key(settings)
    except ConfigurationError as exc:
        return [f"{lacking}: {exc}"]
    return []


def standing_lines(rt: Runtime, channels: list[ChannelKind]) -> list[str]:
    """For ``tocsin preview``: whether each channel the update would use is standing, as last probed."""
    from dispatcher.engine.readiness.state import snapshot

    states = snapshot(rt)
    lines = []
    for kind in channels:
        found = states.get(kind)
        if found is None:
            lines.append(f"{kind.value}: not probed yet (run `tocsin check`)")
        else:
            lines.append(f"{kind.value}: {found.summary()} (probed {found.checked_at:%Y-%m-%d %H:%M} UTC)")
    return lines


def _canary(rt: Runtime, work: Work) -> list[CanaryOutcome]:
    """Send the canary and follow it in the ledger until each one is settled or ``canary.wait`` ends."""
    from dispatcher.comms.canary import canary_outcomes, send_canary

    update_id = send_canary(rt, work.queue)
    deadline = time.monotonic() + rt.settings.canary.wait
    while True:
        work.finish(0.0)  # embedded: deliver what is due now (with Redis, the workers do)
        found = canary_outcomes(rt, update_id)
        if all(o.settled for o in found) or time.monotonic() >= deadline:
            return found
        time.sleep(CANARY_POLL_SECONDS)


def _canary_table(found: list[CanaryOutcome]) -> Table:
    table = Table("channel", "to", "provider", "arrived", "how we know", title="Canary", title_justify="left")
    shown = {True: "yes", False: "NO", None: "unconfirmed"}
    for o in found:
        table.add_row(
            o.channel.value, escape(o.address), o.provider or "-", shown[o.arrived], escape(o.detail)
        )
    return table


@friendly_errors
def check(
    send: Annotated[
        bool,
        typer.Option(
            "--send",
            help="Also send a marked test message through every channel to the [canary] contacts and report "
            "whether each arrived.",
        ),
    ] = False,
    wait: Annotated[
        float, typer.Option(help="Embedded mode: seconds to wait for the alerts to staff to be delivered.")
    ] = 10.0,
) -> None:
    """Probe every configured provider with a harmless real call (nothing is sent to anyone), and the
    database and Redis; print one table. Exit 1 when the database or Redis is down, or a channel the
    severity policy uses has no provider that answers. A channel whose state changed is announced to
    staff on the channels still standing, as the periodic tick does.

    With --send, a marked test message then goes to your canary contacts ([canary] in tocsin.toml) on
    every private channel, and a second table says, from the ledger and the providers' delivery reports,
    whether each arrived; exit 1 when one did not."""
    from dispatcher.comms.readiness import readiness_round
    from dispatcher.engine.readiness.state import DOWN, snapshot
    from dispatcher.runners.factory import work_for

    settings = load_settings()
    services = _services(settings.database_url, settings.redis_url)
    if not all(s.ok for s in services):
        console.print(_table(services, None))
        down = ", ".join(f"{s.name} ({s.problem})" for s in services if not s.ok)
        console.print(f"[bold red]not ready:[/] {escape(down)}", highlight=False)
        raise typer.Exit(NOT_READY_EXIT)
    rt = runtime(settings)
    work = work_for(rt)
    canaries: list[CanaryOutcome] = []
    try:
        done = readiness_round(rt, work.queue)
        work.finish(wait)
        states = snapshot(rt)
        if send:
            canaries = _canary(rt, work)
    finally:
        rt.close()
    console.print(_table(services, done))
    for change in done.changes:
        console.print(
            f"{change.channel.value}: {change.before} -> {change.after}; staff told", highlight=False
        )
    for error in done.errors:
        console.print(f"[bold red]error:[/] {escape(error)}", highlight=False)
    problems = _verdict(rt, states) + link_warnings(settings)
    for line in problems:
        console.print(escape(line), highlight=False)
    if send:
        console.print(_canary_table(canaries))
    used_down = [k.value for k, s in states.items() if s.state == DOWN and k in used_channels(rt)]
    lost = [f"{o.channel.value} to {o.address}" for o in canaries if o.arrived is False]
    if used_down or lost:
        failed = [*used_down, *(f"canary {what} did not arrive" for what in lost)]
        console.print(f"[bold red]not ready:[/] {escape(', '.join(failed))}", highlight=False)
        raise typer.Exit(NOT_READY_EXIT)
    console.print(
        "[green]every channel the policy uses is ready[/]" if not problems else "ready, with warnings above"
    )
