"""``tocsin``: publish incident updates to every channel and watch them land."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from channels.base import ChannelKind
from dispatcher.cli import amends as amends_cmd
from dispatcher.cli import approval as approval_cmds
from dispatcher.cli import check as check_cmd
from dispatcher.cli import deliveries as deliveries_cmds
from dispatcher.cli import demo as demo_cmd
from dispatcher.cli import drafts as drafts_cmds
from dispatcher.cli import incidents as incident_cmds
from dispatcher.cli import maintenance as maintenance_cmds
from dispatcher.cli import policy as policy_cmds
from dispatcher.cli import reports as reports_cmd
from dispatcher.cli import subscribers as subscriber_cmds
from dispatcher.cli import templates as templates_cmds
from dispatcher.cli import tokens as tokens_cmds
from dispatcher.cli.approval import deliver_now
from dispatcher.cli.check import standing_lines
from dispatcher.cli.common import (
    IncidentArg,
    console,
    err_console,
    friendly_errors,
    load_settings,
    parse_duration,
    require_broker,
    runtime,
)
from dispatcher.cli.crisis_options import (
    AffectsOption,
    NotWorkingOption,
    ReportByOption,
    SignerOption,
    SinceOption,
    WorkaroundOption,
    impact_statement,
    parse_report_by,
)
from dispatcher.cli.incidents import AsOption
from dispatcher.cli.options import TEXTS_CONTEXT, Composed, TemplateOption, TextsOption, VarOption
from dispatcher.cli.targets import update_ids
from dispatcher.cli.views import status_table
from dispatcher.cli.watch import watch
from dispatcher.cli.who import TokenOption, default_actor, identify, parse_impact
from dispatcher.domain.ids import update_ref
from dispatcher.domain.vocabulary import Audience, IncidentStatus, UpdateState

if TYPE_CHECKING:
    from dispatcher.comms.preview import ChannelPreview
    from dispatcher.comms.publish import Published
    from dispatcher.config.settings import Settings
    from dispatcher.domain.models import Update
    from dispatcher.engine.runtime import Runtime
    from dispatcher.engine.task_queue import TaskQueue

# Each command imports what it uses when it runs (see dispatcher/cli/common.py): `tocsin --help` and
# `tocsin publish` must answer at once during an outage.

MAX_SCHEDULE_AHEAD = timedelta(days=3653)
"""``--at`` at most ten years ahead."""

app = typer.Typer(
    help="Tocsin: tell everyone what is broken, fast, on every channel you still have.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(subscriber_cmds.app, name="subscribers")
incident_cmds.app.command("report")(friendly_errors(reports_cmd.report))
incident_cmds.app.command("amends")(friendly_errors(amends_cmd.amends))
app.add_typer(incident_cmds.app, name="incident")
app.add_typer(maintenance_cmds.app, name="maintenance")
app.command("tick")(maintenance_cmds.tick)
app.add_typer(deliveries_cmds.app, name="deliveries")
app.add_typer(tokens_cmds.app, name="tokens")
app.command("demo")(demo_cmd.demo)
app.command("check")(check_cmd.check)
app.add_typer(policy_cmds.app, name="policy")
app.add_typer(templates_cmds.app, name="templates")
app.add_typer(drafts_cmds.app, name="drafts")
approval_cmds.register(app)


@app.command()
@friendly_errors
def init(force: Annotated[bool, typer.Option(help="Overwrite an existing config file.")] = False) -> None:
    """Write a tocsin.toml (if there is none) and create or upgrade the database schema."""
    from dispatcher.config.settings import config_file_path
    from dispatcher.config.template import CONFIG_TEMPLATE
    from dispatcher.store.engine import migrate

    path = config_file_path()
    if path.exists() and not force:
        console.print(f"keeping existing config {path}")
    else:
        path.write_text(CONFIG_TEMPLATE, encoding="utf-8")
        console.print(f"wrote {path}")
    settings = load_settings()
    migrate(settings.database_url)
    console.print(f"database ready: {settings.database_url.split('@')[-1]}")


@app.command(context_settings=TEXTS_CONTEXT)
@friendly_errors
def publish(
    ctx: typer.Context,
    incident: IncidentArg,
    status: Annotated[
        IncidentStatus | None,
        typer.Option(help="The incident's status as of this update (a template sets its own)."),
    ] = None,
    message: Annotated[
        str | None, typer.Option(help="What you know, what you are doing, what people should do.")
    ] = None,
    next_update_in: Annotated[
        str | None,
        typer.Option(
            help="Promise the next update within this time (30m, 1h), or `cadence` for the severity "
            "policy's cadence."
        ),
    ] = None,
    audience: Annotated[
        str, typer.Option(help="public: subscribers; internal: staff only; or a segment named in the policy.")
    ] = Audience.PUBLIC.value,
    channel: Annotated[
        list[ChannelKind] | None, typer.Option("--channel", help="Only these channels (repeatable).")
    ] = None,
    idempotency_key: Annotated[
        str | None, typer.Option(help="Publishing again with the same key returns the same update.")
    ] = None,
    at: Annotated[
        str | None, typer.Option("--at", help="Publish later, at this time (e.g. 2026-11-25T14:30Z).")
    ] = None,
    in_: Annotated[str | None, typer.Option("--in", help="Publish later, after this long (e.g. 2h).")] = None,
    override_reason: Annotated[
        str | None, typer.Option(help="Publish despite guardrail errors; the reason is recorded.")
    ] = None,
    internal_note: Annotated[
        str | None, typer.Option(help="A note for staff only (shown in staff's copy, never to customers).")
    ] = None,
    impact: Annotated[
        list[str] | None,
        typer.Option(
            help="How a component is hit, as COMPONENT=operational|degraded|partial_outage|major_outage "
            "(repeatable); the status page shows it."
        ),
    ] = None,
    affects: AffectsOption = None,
    not_working: NotWorkingOption = None,
    since: SinceOption = None,
    workaround: WorkaroundOption = None,
    report_by: ReportByOption = None,
    signer: SignerOption = None,
    token: TokenOption = None,
    as_: AsOption = None,
    wait: Annotated[
        float, typer.Option(help="Embedded mode: also wait this many seconds for retries due soon.")
    ] = 10.0,
    watch_: Annotated[
        bool, typer.Option("--watch", help="Show live progress per channel while it is delivered.")
    ] = False,
    template: TemplateOption = None,
    var: VarOption = None,
    texts: TextsOption = None,
) -> None:
    """Publish one update: it is rendered for every channel and delivered to everyone owed it.

    Severities whose policy wants approval wait for `tocsin approve` (write them with your personal
    token: --token or $TOCSIN_TOKEN); --at/--in schedule it instead. --template writes it from a
    message template (`tocsin templates list`), --var filling its values; --message-fr TEXT adds the
    French text, --sms-text and --x-text short ones (see --texts)."""
    from dispatcher.cli.compose import compose
    from dispatcher.comms.incidents import get_incident
    from dispatcher.comms.publish import needs_approval
    from dispatcher.comms.publish import publish as publish_update

    rt = runtime()
    publish_at = _publish_time(rt.clock.now(), at, in_)
    said = Composed(message, status, next_update_in, template, var, texts, list(ctx.args))
    draft = compose(
        rt,
        incident,
        said,
        author=as_ or default_actor(),
        start=publish_at or rt.clock.now(),
        audience=audience,
        channels=channel,
        idempotency_key=idempotency_key,
        override_reason=override_reason,
        publish_at=publish_at,
        internal_note=internal_note,
        impact=parse_impact(impact),
        impact_statement=impact_statement(affects, not_working, since, workaround, rt.clock.now()),
        report_by=parse_report_by(report_by, publish_at or rt.clock.now()),
        signer=signer,
    )
    opened = get_incident(rt, incident)
    waits = needs_approval(
        rt.policy.policy.for_incident(opened.severity, opened.kind), "update", draft.audience
    )
    who = identify(rt, as_, token, needed_for="writing an update that waits for approval" if waits else None)
    draft = draft.model_copy(update={"author": who.name, "author_token_id": who.token_id})

    def act(queue: TaskQueue) -> Update | None:
        published = publish_update(rt, draft, queue)
        _say_what_happened(published)
        _warn_of_down_channels(rt, published.update)
        going = published.update.state in (UpdateState.PENDING, UpdateState.FANNED_OUT)
        return published.update if going else None

    deliver_now(rt, act, wait, live=watch_)


def _publish_time(now: datetime, at: str | None, in_: str | None) -> datetime | None:
    if at and in_:
        raise typer.BadParameter("give --at or --in, not both")
    if in_:
        return now + parse_duration(in_, "--in")
    if not at:
        return None
    try:
        when = datetime.fromisoformat(at.strip())
    except ValueError:
        raise typer.BadParameter(f"--at: {at!r} is not a time like 2026-11-25T14:30Z") from None
    if when.tzinfo is None:
        raise typer.BadParameter(f"--at: {at!r} needs a time zone, e.g. 2026-11-25T14:30Z")
    if when - now > MAX_SCHEDULE_AHEAD:  # far beyond it, adding the promise overflows the date
        raise typer.BadParameter(f"--at: {at!r} is more than 10 years ahead")
    return when


def _warn_of_down_channels(rt: Runtime, upd: Update) -> None:
    """Loud, not silent: a channel of this update that the last probes found down (see `tocsin check`)."""
    from dispatcher.engine.readiness.state import snapshot

    states = snapshot(rt)
    for kind in upd.channels:
        found = states.get(kind)
        if found is not None and not found.standing:
            console.print(
                f"[bold red]warning:[/] {kind.value} was down at the last probe "
                f"({found.checked_at:%H:%M} UTC): {escape(found.summary())}",
                highlight=False,
                soft_wrap=True,
            )


def _say_what_happened(published: Published) -> None:
    upd = published.update
    for finding in published.findings:
        label = "overridden" if finding.level == "error" else "warning"
        console.print(f"{label}: {finding.rule}: {finding.message}", highlight=False)
    if not published.created:
        console.print(f"already published as update {update_ref(upd.id)} (idempotency key); nothing sent")
    if upd.state is UpdateState.SCHEDULED and upd.scheduled_for is not None:
        console.print(
            f"scheduled update {update_ref(upd.id)} for {upd.scheduled_for:%Y-%m-%d %H:%M} UTC; "
            "nothing sent yet "
            "(a running `tocsin worker` publishes it then)"
        )
    elif upd.state is UpdateState.PENDING_APPROVAL:
        console.print(
            f"update {update_ref(upd.id)} waits for approval by someone other than "
            f"{upd.author or 'its author'}: "
            f"`tocsin approve {update_ref(upd.id)}` (nothing sent yet)"
        )
    elif upd.state is UpdateState.REJECTED:
        console.print(f"update {update_ref(upd.id)} was rejected by {upd.rejected_by}: {upd.rejected_reason}")
    elif published.created:
        console.print(f"published update {update_ref(upd.id)}")


@app.command(context_settings=TEXTS_CONTEXT)
@friendly_errors
def preview(
    ctx: typer.Context,
    incident: IncidentArg,
    message: Annotated[str | None, typer.Option(help="The text you intend to publish.")] = None,
    status: Annotated[
        IncidentStatus | None, typer.Option(help="The incident's status as of this update.")
    ] = None,
    next_update_in: Annotated[
        str | None, typer.Option(help="Promised next update (30m, 1h), or `cadence` for the policy's.")
    ] = None,
    locale: Annotated[str, typer.Option(help="Render as subscribers with this locale see it.")] = "en",
    timezone: Annotated[
        str | None, typer.Option(help="... in this time zone (default: the organisation's `timezone`).")
    ] = None,
    audience: Annotated[
        str, typer.Option(help="public, internal, or a segment named in the policy.")
    ] = Audience.PUBLIC.value,
    template: TemplateOption = None,
    var: VarOption = None,
    texts: TextsOption = None,
    affects: AffectsOption = None,
    not_working: NotWorkingOption = None,
    since: SinceOption = None,
    workaround: WorkaroundOption = None,
    signer: SignerOption = None,
) -> None:
    """Show the update as each channel will carry it, with its length (SMS segments, X weighted length),
    how many contact points are owed it, and what the guardrails find; then as readers of every other
    language get it. Nothing is sent. Takes --template, --var, --message-fr… as `tocsin publish` does.

    Exit code: 0 when no guardrail error was found (warnings only), 3 when there are errors (publishing
    would be refused without --override-reason)."""
    from rich.markup import escape

    from dispatcher.cli.compose import compose
    from dispatcher.comms.guardrails import errors
    from dispatcher.comms.preview import excerpt, preview_draft
    from dispatcher.domain.quiet_hours import check_timezone

    rt = runtime()
    if status is None and template is None:
        status = IncidentStatus.INVESTIGATING
    said = Composed(message, status, next_update_in, template, var, texts, list(ctx.args))
    draft = compose(
        rt,
        incident,
        said,
        author=None,
        start=rt.clock.now(),
        audience=audience,
        impact_statement=impact_statement(affects, not_working, since, workaround, rt.clock.now()),
        signer=signer,
    )
    try:
        zone = check_timezone(timezone) if timezone else None
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--timezone") from None
    result = preview_draft(rt, draft, locale, zone)
    for item in result.channels:
        _show_channel(item, escape)
    for other in result.locales:
        marker = " (no text in this language: the default one, marked)" if other.fallback else ""
        console.print(f"[bold]{other.locale}[/]{marker}", highlight=False)
        for item in other.channels:
            _show_channel(item, escape)
    console.print("channels standing:", highlight=False)
    for line in standing_lines(rt, [item.channel for item in result.channels]):
        console.print(f"  {escape(line)}", highlight=False, soft_wrap=True)
    if not result.findings:
        console.print("[green]guardrails: nothing found[/]")
    for finding in result.findings:
        colour = "red" if finding.level == "error" else "yellow"
        console.print(
            f"[bold {colour}]{finding.level}[/] [{colour}]{finding.rule}[/]: {escape(finding.message)}",
            highlight=False,
            soft_wrap=True,
        )
        if finding.span is not None:
            before, hit, after = excerpt(result.text, finding.span)
            console.print(
                f"    {escape(before)}[bold reverse {colour}]»{escape(hit)}«[/]{escape(after)}",
                highlight=False,
                soft_wrap=True,
            )
    if result.blocked:
        console.print(
            f"[bold red]publishing would be refused:[/] {len(errors(result.findings))} error(s); "
            "fix the text, or publish with --override-reason",
            highlight=False,
        )
        raise typer.Exit(3)


def _show_channel(item: ChannelPreview, escape: Callable[[str], str]) -> None:
    from rich.panel import Panel

    shown = item.message.json_body or item.message.text
    owed = "post(s)" if item.channel.is_broadcast else "contact point(s)"
    title = f"{item.channel.value} · {item.measure} · {item.audience_size} {owed}"
    if item.shortened:
        title += " · shortened to fit"
    if item.channel is ChannelKind.EMAIL:
        shown = f"Subject: {item.message.subject}\n\n{shown}"
    console.print(Panel(escape(shown), title=title, title_align="left", expand=False), highlight=False)


@app.command()
@friendly_errors
def status(
    target: Annotated[
        str,
        typer.Argument(
            metavar="UPDATE_OR_INCIDENT",
            help="An update: upd-7 (or 7); or an incident: inc-3, for each of its updates.",
        ),
    ],
    watch_: Annotated[
        bool, typer.Option("--watch", help="Live progress per channel until nothing is owed (Ctrl-C stops).")
    ] = False,
    every: Annotated[float, typer.Option(help="With --watch: seconds between redraws.", min=0.1)] = 1.0,
) -> None:
    """What an update owes, has sent and has failed to send, per channel (for an incident: each of its
    updates; --watch follows its latest)."""
    from dispatcher.reporting.status import report

    rt = runtime()
    named = update_ids(rt, target)
    if not named:
        console.print(f"incident {target.strip().lower()} has no updates yet", highlight=False)
        return
    if watch_:
        try:
            watch(rt, named[-1], console, every=every)
        except KeyboardInterrupt:
            console.print("stopped watching; delivery goes on")
        return
    for update in named:
        result = report(rt, update)
        console.print(status_table(result.update, result.channels, result.providers))


@app.command()
@friendly_errors
def worker(
    queues: Annotated[
        str | None, typer.Option("-Q", "--queues", help="Comma-separated queues (fanout, email, sms, …).")
    ] = None,
    concurrency: Annotated[int | None, typer.Option("-c", "--concurrency", help="Worker processes.")] = None,
    beat: Annotated[bool, typer.Option(help="Also run the periodic re-drive tick (one per cluster).")] = True,
    loglevel: Annotated[str, typer.Option(help="Log level.")] = "info",
    tick: Annotated[float, typer.Option(help="Embedded mode: seconds between database checks.")] = 5.0,
) -> None:
    """Deliver what is owed: a Celery worker on Redis when REDIS_URL is set, the embedded runner otherwise."""
    from dispatcher.runners.factory import run_worker

    settings = load_settings()
    require_broker(settings)  # Celery would otherwise retry connecting forever, silently
    runtime(settings).close()  # refuse now, with one message, if the database or a provider is wrong
    warn_at_start(settings)
    chosen = [q.strip() for q in queues.split(",") if q.strip()] if queues else None
    try:
        run_worker(
            settings,
            lambda: runtime(settings),
            queues=chosen,
            concurrency=concurrency,
            beat=beat,
            loglevel=loglevel,
            tick=tick,
            announce=console.print,
        )
    except KeyboardInterrupt:
        console.print("stopped")


def warn_at_start(settings: Settings) -> None:
    """What goes out degraded although it goes out (an email without its unsubscribe link) is said at
    start-up, on standard error, as well as by ``tocsin check``: loud where the operator looks."""
    for warning in check_cmd.link_warnings(settings):
        err_console.print(f"warning: {warning}", highlight=False, soft_wrap=True)


ProxyHeadersOption = Annotated[
    bool,
    typer.Option(
        "--proxy-headers/--no-proxy-headers",
        help="Behind a reverse proxy: trust its X-Forwarded-Proto and X-Forwarded-For (from "
        "--forwarded-allow-ips), so cookies are marked Secure behind HTTPS and logs show client addresses.",
    ),
]
ForwardedAllowOption = Annotated[
    str,
    typer.Option(help="With --proxy-headers: the proxy addresses to trust, comma-separated (or '*')."),
]


@app.command()
@friendly_errors
def api(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    proxy_headers: ProxyHeadersOption = False,
    forwarded_allow_ips: ForwardedAllowOption = "127.0.0.1",
) -> None:
    """Serve the HTTP API (docs at /docs, spec at /openapi.json): incidents, updates, subscribers,
    deliveries and policy behind scoped tokens (`tocsin tokens create`), plus provider callbacks
    (Twilio status and STOP, SendGrid events), /healthz and /readyz. Without REDIS_URL it also
    delivers what it publishes, in this process."""
    import uvicorn

    from dispatcher.web.app import create_app

    rt = runtime()
    require_broker(rt.settings)
    warn_at_start(rt.settings)
    uvicorn.run(
        create_app(lambda: rt),
        host=host,
        port=port,
        log_level="info",
        proxy_headers=proxy_headers,
        forwarded_allow_ips=forwarded_allow_ips,
    )


@app.command("console")
@friendly_errors
def console_(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    proxy_headers: ProxyHeadersOption = False,
    forwarded_allow_ips: ForwardedAllowOption = "127.0.0.1",
) -> None:
    """Serve the web console at /console (log in with an API token from `tocsin tokens create`);
    the HTTP API is served alongside, as `tocsin api` does."""
    import uvicorn

    from dispatcher.web.app import create_app

    rt = runtime()
    require_broker(rt.settings)
    console.print(f"web console: http://{host}:{port}/console (Ctrl-C to stop)", highlight=False)
    uvicorn.run(
        create_app(lambda: rt),
        host=host,
        port=port,
        log_level="warning",
        proxy_headers=proxy_headers,
        forwarded_allow_ips=forwarded_allow_ips,
    )


config_app = typer.Typer(help="Inspect the configuration.", no_args_is_help=True)
app.add_typer(config_app, name="config")


@config_app.command("show")
@friendly_errors
def config_show() -> None:
    """Print the effective configuration (file, environment and defaults), secrets masked."""
    from dispatcher.config.show import effective_config

    console.print_json(json.dumps(effective_config(load_settings())))


def main() -> None:
    app()
