"""``tocsin``: publish incident updates to every channel and watch them land."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated

import typer
from rich.panel import Panel

from channels.base import ChannelKind
from dispatcher.cli import deliveries as deliveries_cmds
from dispatcher.cli import demo as demo_cmd
from dispatcher.cli import incidents as incident_cmds
from dispatcher.cli import subscribers as subscriber_cmds
from dispatcher.cli.common import console, fail, friendly_errors, load_settings, parse_duration, runtime
from dispatcher.cli.views import status_table
from dispatcher.config_show import effective_config
from dispatcher.config_template import CONFIG_TEMPLATE
from dispatcher.embedded import EmbeddedRunner
from dispatcher.models import Audience, IncidentStatus, UpdateDraft
from dispatcher.preview import preview as render_preview
from dispatcher.publish import publish as publish_update
from dispatcher.queues import broker_queue, broker_worker, uses_broker
from dispatcher.settings import config_file_path
from dispatcher.status import report
from dispatcher.store.engine import migrate

app = typer.Typer(
    help="Tocsin: tell everyone what is broken, fast, on every channel you still have.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(subscriber_cmds.app, name="subscribers")
app.add_typer(incident_cmds.app, name="incident")
app.add_typer(deliveries_cmds.app, name="deliveries")
app.command("demo")(demo_cmd.demo)


@app.command()
@friendly_errors
def init(force: Annotated[bool, typer.Option(help="Overwrite an existing config file.")] = False) -> None:
    """Write a tocsin.toml (if there is none) and create or upgrade the database schema."""
    path = config_file_path()
    if path.exists() and not force:
        console.print(f"keeping existing config {path}")
    else:
        path.write_text(CONFIG_TEMPLATE, encoding="utf-8")
        console.print(f"wrote {path}")
    settings = load_settings()
    migrate(settings.database_url)
    console.print(f"database ready: {settings.database_url.split('@')[-1]}")


@app.command()
@friendly_errors
def publish(
    incident: Annotated[int, typer.Argument(help="Incident id (see `tocsin incident list`).")],
    status: Annotated[IncidentStatus, typer.Option(help="The incident's status as of this update.")],
    message: Annotated[str, typer.Option(help="What you know, what you are doing, what people should do.")],
    next_update_in: Annotated[
        str | None, typer.Option(help="Promise the next update within this time, e.g. 30m, 1h.")
    ] = None,
    audience: Annotated[
        Audience, typer.Option(help="public: subscribers; internal: staff only.")
    ] = Audience.PUBLIC,
    channel: Annotated[
        list[ChannelKind] | None, typer.Option("--channel", help="Only these channels (repeatable).")
    ] = None,
    idempotency_key: Annotated[
        str | None, typer.Option(help="Publishing again with the same key returns the same update.")
    ] = None,
    wait: Annotated[
        float, typer.Option(help="Embedded mode: also wait this many seconds for retries due soon.")
    ] = 10.0,
) -> None:
    """Publish one update: it is rendered for every channel and delivered to everyone owed it."""
    rt = runtime()
    next_at: datetime | None = None
    if next_update_in:
        next_at = rt.clock.now() + parse_duration(next_update_in)
    draft = UpdateDraft(
        incident_id=incident,
        status=status,
        message=message,
        next_update_at=next_at,
        audience=audience,
        channels=channel,
        idempotency_key=idempotency_key,
    )
    if uses_broker(rt.settings):
        published = publish_update(rt, draft, broker_queue())
        verb = "published" if published.created else "already published"
        console.print(
            f"{verb} update {published.update.id}; workers are delivering it "
            f"(follow with `tocsin status {published.update.id}`)"
        )
        return
    runner = EmbeddedRunner(rt)
    published = publish_update(rt, draft, runner.queue)
    if not published.created:
        console.print(f"already published as update {published.update.id} (idempotency key); nothing sent")
    try:
        runner.run_until_idle(wait_up_to=wait)
    finally:
        rt.close()  # providers' pooled connections
    result = report(rt, published.update.id)
    console.print(status_table(result.update, result.channels, result.providers))
    if result.owed:
        console.print(f"{result.owed} deliveries still owed: `tocsin worker` retries them when due")


@app.command()
@friendly_errors
def preview(
    incident: Annotated[int, typer.Argument(help="Incident id.")],
    message: Annotated[str, typer.Option(help="The text you intend to publish.")],
    status: Annotated[IncidentStatus, typer.Option(help="The incident's status as of this update.")] = (
        IncidentStatus.INVESTIGATING
    ),
    next_update_in: Annotated[str | None, typer.Option(help="Promised next update, e.g. 30m.")] = None,
    locale: Annotated[str, typer.Option(help="Render as subscribers with this locale see it.")] = "en",
) -> None:
    """Show the update as each channel will carry it, with its length (SMS segments, X weighted length)."""
    rt = runtime()
    next_at = rt.clock.now() + parse_duration(next_update_in) if next_update_in else None
    for item in render_preview(rt, incident, status, message, next_at, locale):
        shown = item.message.json_body or item.message.text
        title = f"{item.channel.value} · {item.measure}"
        if item.channel is ChannelKind.EMAIL:
            shown = f"Subject: {item.message.subject}\n\n{shown}"
        console.print(Panel(shown, title=title, title_align="left", expand=False), highlight=False)


@app.command()
@friendly_errors
def status(update: Annotated[int, typer.Argument(help="Update id.")]) -> None:
    """What an update owes, has sent and has failed to send, per channel."""
    result = report(runtime(), update)
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
    settings = load_settings()
    if uses_broker(settings):
        chosen = [q.strip() for q in queues.split(",") if q.strip()] if queues else None
        broker_worker()(chosen, concurrency, beat, loglevel)
        return
    if queues:
        fail("-Q needs Redis (REDIS_URL): the embedded runner serves every channel", code=2)
    rt = runtime(settings)
    console.print("embedded worker: delivering owed updates from the database (Ctrl-C to stop)")
    try:
        EmbeddedRunner(rt).serve_forever(tick=tick)
    except KeyboardInterrupt:
        console.print("stopped")


@app.command()
@friendly_errors
def api(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
) -> None:
    """Serve the HTTP endpoints: provider callbacks (Twilio status and STOP, SendGrid events), health."""
    import uvicorn

    from dispatcher.http.app import create_app

    rt = runtime()
    uvicorn.run(create_app(lambda: rt), host=host, port=port, log_level="info")


config_app = typer.Typer(help="Inspect the configuration.", no_args_is_help=True)
app.add_typer(config_app, name="config")


@config_app.command("show")
@friendly_errors
def config_show() -> None:
    """Print the effective configuration (file, environment and defaults), secrets masked."""
    console.print_json(json.dumps(effective_config(load_settings())))


def main() -> None:
    app()
