"""``tocsin demo``: a real broadcast on the embedded default, delivered to files in this folder."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from channels.base import ChannelKind
from dispatcher.cli.common import console, friendly_errors, load_settings
from dispatcher.domain.ids import incident_ref, update_ref
from dispatcher.domain.vocabulary import DeliveryState, IncidentStatus, Severity

STATUS_DIR = "status"
DEMO_COMPONENTS = ["api", "checkout", "dashboard"]


def _demo_provider(kind: ChannelKind) -> str:
    """Files in ./outbox for every channel, and the real static site for the status page."""
    return "statuspage" if kind is ChannelKind.STATUSPAGE else "outbox"


DEMO_MESSAGE = (
    "Since 09:12 UTC about 30% of checkout requests fail with an error. We are sorry: orders placed "
    "in that time may not have gone through. Engineers have ruled out the payment provider and are "
    "investigating the API gateway. Please retry a failed order; you will not be charged twice."
)


@friendly_errors
def demo(
    subscribers_count: Annotated[
        int, typer.Option("--subscribers", min=1, max=100_000, help="How many sample subscribers to load.")
    ] = 60,
) -> None:
    """Load sample subscribers, open an incident, publish an update and deliver it to ./outbox."""
    from sqlalchemy import select

    from dispatcher.audience.subscribers import add_subscribers
    from dispatcher.cli.demo_data import sample_subscribers
    from dispatcher.comms.incidents import open_incident
    from dispatcher.comms.publish import publish
    from dispatcher.config.settings import ChannelSettings
    from dispatcher.domain.models import IncidentDraft, UpdateDraft
    from dispatcher.engine.runtime import build_runtime
    from dispatcher.reporting.status import report
    from dispatcher.runners.embedded import EmbeddedRunner
    from dispatcher.store.engine import migrate
    from dispatcher.store.schema import subscribers

    started = time.monotonic()
    base = load_settings()
    settings = base.model_copy(
        update={
            "redis_url": None,
            "channels": {kind: ChannelSettings(providers=[_demo_provider(kind)]) for kind in base.channels},
            # The status page is the real thing: a static site in ./status (open status/index.html).
            "providers": {
                **base.providers,
                "statuspage": {"directory": str(Path(STATUS_DIR).absolute()), "components": DEMO_COMPONENTS},
            },
        }
    )
    migrate(settings.database_url)
    rt = build_runtime(settings)
    people = sample_subscribers(subscribers_count)
    with rt.engine.connect() as conn:
        known = set(conn.execute(select(subscribers.c.external_id)).scalars())
    added = add_subscribers(rt, [p for p in people if p.external_id not in known])
    incident = open_incident(
        rt,
        IncidentDraft(
            title="Checkout failing for some customers",
            severity=Severity.MAJOR,
            components=["api", "checkout"],
        ),
    )
    runner = EmbeddedRunner(rt)
    published = publish(
        rt,
        UpdateDraft(
            incident_id=incident.id,
            status=IncidentStatus.INVESTIGATING,
            message=DEMO_MESSAGE,
            next_update_at=rt.clock.now().replace(microsecond=0) + timedelta(minutes=30),
        ),
        runner.queue,
    )
    try:
        runner.run_until_idle()
    finally:
        rt.close()
    result = report(rt, published.update.id)
    outbox = (settings.outbox_dir / f"update-{published.update.id}").resolve()
    table = Table(
        title=f"Update {update_ref(published.update.id)} of incident {incident_ref(incident.id)}: "
        f"{incident.title}"
    )
    for column in ("channel", "sent", "failed", "files"):
        table.add_column(column)
    for st in result.channels:
        where = outbox / st.channel.value
        if st.channel is ChannelKind.STATUSPAGE:
            where = Path(STATUS_DIR).absolute() / "index.html"
        table.add_row(
            st.channel.value,
            str(st.count(DeliveryState.SENT)),
            str(st.count(DeliveryState.FAILED)),
            str(where),
        )
    console.print(f"loaded {added} sample subscribers ({subscribers_count - added} already there)")
    console.print(table)
    console.print(
        f"done in {time.monotonic() - started:.1f}s; state in {settings.database_url}, "
        f"messages under {outbox}"
    )
