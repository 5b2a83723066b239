"""``tocsin incident …``"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from dispatcher.cli.common import IncidentArg, console, friendly_errors, runtime
from dispatcher.cli.crisis_options import ReportByOption, parse_report_by
from dispatcher.cli.delivering import deliver_now
from dispatcher.cli.who import AsOption, TokenOption, default_actor, identify, parse_impact
from dispatcher.domain.errors import InvalidInput
from dispatcher.domain.ids import incident_ref, update_ref
from dispatcher.domain.vocabulary import IncidentStatus, Severity

if TYPE_CHECKING:
    from dispatcher.comms.lifecycle import TimelineEntry
    from dispatcher.domain.models import Incident, Update
    from dispatcher.engine.runtime import Runtime
    from dispatcher.engine.task_queue import TaskQueue

app = typer.Typer(help="Open, move, resolve, reopen and inspect incidents.", no_args_is_help=True)

__all__ = ["AsOption", "TokenOption", "app", "default_actor"]

WaitOption = Annotated[
    float, typer.Option(help="Embedded mode: also wait this many seconds for retries due soon.")
]
OverrideOption = Annotated[
    str | None, typer.Option(help="Go ahead despite guardrail errors (in the title or text); recorded.")
]


@app.command("open")
@friendly_errors
def open_(
    title: Annotated[str, typer.Argument(help="What is broken, in the customer's words.")],
    severity: Annotated[Severity, typer.Option(help="minor, major or critical.")] = Severity.MAJOR,
    component: Annotated[
        list[str] | None, typer.Option("--component", help="Affected component (repeatable).")
    ] = None,
    owner: Annotated[str | None, typer.Option(help="Who answers for this incident.")] = None,
    kind: Annotated[
        str, typer.Option(help="incident, or security (a breach or data incident: its data facts are owed).")
    ] = "incident",
    override_reason: OverrideOption = None,
    as_: AsOption = None,
) -> None:
    """Open an incident (status: investigating). Then `tocsin publish` tells people about it.

    The title and components go out in every message: the guardrails check them. The same title
    resolved within the policy's flap window is reopened instead. A security incident cannot go public
    until `tocsin incident facts` has given its data facts (or --override-reason says why)."""
    from dispatcher.comms.incidents import open_by_person
    from dispatcher.domain.crisis import SECURITY
    from dispatcher.domain.models import IncidentDraft

    draft = IncidentDraft(
        title=title, severity=severity, components=component or [], owner=owner, kind=kind.strip().lower()
    )
    opened = open_by_person(runtime(), draft, as_ or default_actor(), override_reason)
    incident = opened.incident
    if opened.action == "reopened":
        console.print(
            f"reopened incident {incident_ref(incident.id)}: {incident.title} [{incident.severity.value}] "
            f"(resolved recently; reopened {incident.reopened_count} time(s))",
            markup=False,
        )
        return
    console.print(
        f"opened {_kind_word(incident)} {incident_ref(incident.id)}: {incident.title} "
        f"[{incident.severity.value}]",
        markup=False,
    )
    if incident.kind == SECURITY:
        console.print(
            "its data facts are owed before any public update: "
            f"`tocsin incident facts {incident_ref(incident.id)} "
            "--data-affected … --data-not-affected … --customers-should … --we-are-doing …`",
            markup=False,
        )


def _kind_word(incident: Incident) -> str:
    from dispatcher.domain.crisis import SECURITY

    return "security incident" if incident.kind == SECURITY else "incident"


@app.command("facts")
@friendly_errors
def facts(
    incident: IncidentArg,
    data_affected: Annotated[str | None, typer.Option(help="What data may be affected.")] = None,
    data_not_affected: Annotated[str | None, typer.Option(help="What data is not affected.")] = None,
    customers_should: Annotated[
        str | None, typer.Option(help="What customers should do (reset a password, watch for phishing).")
    ] = None,
    we_are_doing: Annotated[str | None, typer.Option(help="What the company is doing about it.")] = None,
    as_: AsOption = None,
) -> None:
    """Give a security incident's data facts (each replaces what was said before). An incident found
    to be a breach becomes a security incident. Every channel shows the facts first."""
    from dispatcher.comms.security import set_data_facts
    from dispatcher.domain.crisis import DATA_FACT_LABELS, DataFacts

    given = DataFacts(
        data_affected=data_affected,
        data_not_affected=data_not_affected,
        customer_actions=customers_should,
        company_actions=we_are_doing,
    )
    inc = set_data_facts(runtime(), incident, given, as_ or default_actor())
    missing = (inc.data_facts or DataFacts()).missing()
    console.print(f"security incident {incident_ref(inc.id)}: data facts recorded", markup=False)
    if missing:
        owed = ", ".join(DATA_FACT_LABELS[m] for m in missing)
        console.print(f"still owed before it goes public: {owed}", markup=False, style="bold yellow")


@app.command("list")
@friendly_errors
def list_(limit: Annotated[int, typer.Option(help="How many, newest first.")] = 20) -> None:
    """List incidents, newest first."""
    from dispatcher.comms.attention import flags
    from dispatcher.comms.incidents import list_incidents

    table = Table("id", "title", "status", "severity", "components", "owner", "opened", "attention")
    rt = runtime()
    for inc in list_incidents(rt, limit):
        table.add_row(
            incident_ref(inc.id),
            inc.title,
            inc.status.value,
            inc.severity.value,
            ", ".join(inc.components) or "-",
            inc.owner or "-",
            inc.opened_at.strftime("%Y-%m-%d %H:%M UTC"),
            ", ".join(flags(rt, inc)) or "-",
        )
    console.print(table)


def _resolve(
    rt: Runtime,
    incident: int,
    *,
    reason: str | None,
    force: bool,
    message: str | None,
    override_reason: str | None,
    as_: str | None,
    token: str | None,
    wait: float,
    report_by: datetime | None = None,
) -> None:
    """Resolve and tell everyone told; deliver here (embedded) or hand it to the workers."""
    from dispatcher.comms.closure import resolve as resolve_incident

    own_words = bool((message or "").strip())
    proof = "writing a resolution that waits for approval" if own_words and _waits(rt, incident) else None
    who = identify(rt, as_, token, needed_for=proof)
    said: list[str] = []

    def act(queue: TaskQueue) -> Update | None:
        done = resolve_incident(
            rt,
            incident,
            who,
            queue,
            reason=reason,
            force=force,
            message=message,
            override_reason=override_reason,
            report_by=report_by,
        )
        if done.waiting:
            said.append(
                f"the resolution (update {update_ref(done.update.id)}) waits for approval by someone "
                f"other than {who.name}: `tocsin approve {update_ref(done.update.id)}`; "
                f"incident {incident_ref(incident)} stays open until then"
            )
            return None
        said.append(
            f"incident {incident_ref(incident)} is resolved; resolution update "
            f"{update_ref(done.update.id)} tells everyone told"
        )
        return done.update

    deliver_now(rt, act, wait)
    for line in said:
        console.print(line, highlight=False)


def _waits(rt: Runtime, incident: int) -> bool:
    """Whether an update of this incident written by someone waits for a second person."""
    from dispatcher.comms.incidents import get_incident

    severity = get_incident(rt, incident).severity
    return rt.policy.policy.for_severity(severity).needs_approval


ResolveMessage = Annotated[
    str | None,
    typer.Option(help="Your own resolution text (default: the policy's approved one); guardrails apply."),
]


@app.command("status")
@friendly_errors
def status(
    incident: IncidentArg,
    to: Annotated[IncidentStatus, typer.Option(help="The new status.")],
    reason: Annotated[str | None, typer.Option(help="Why (recorded in the timeline).")] = None,
    force: Annotated[
        bool, typer.Option(help="Resolve before the monitoring hold has passed (needs --reason).")
    ] = False,
    message: ResolveMessage = None,
    token: TokenOption = None,
    as_: AsOption = None,
    wait: WaitOption = 10.0,
) -> None:
    """Move an incident to another status without publishing an update; moving it to resolved is
    resolving it, which tells everyone who was told about it (see `tocsin incident resolve`)."""
    from dispatcher.comms.lifecycle import change_status

    rt = runtime()
    if to is IncidentStatus.RESOLVED:
        _resolve(
            rt,
            incident,
            reason=reason,
            force=force,
            message=message,
            override_reason=None,
            as_=as_,
            token=token,
            wait=wait,
        )
        return
    if message is not None:
        raise InvalidInput("--message: only a resolution carries a text here; `tocsin publish` says more")
    moved = change_status(rt, incident, to, identify(rt, as_, token).name, reason=reason, force=force)
    console.print(f"incident {incident_ref(moved.id)} is now {moved.status.value}")


@app.command("resolve")
@friendly_errors
def resolve(
    incident: IncidentArg,
    force: Annotated[
        bool, typer.Option(help="Resolve before the monitoring hold has passed (needs --reason).")
    ] = False,
    reason: Annotated[str | None, typer.Option(help="Why (required with --force; staff see it).")] = None,
    message: ResolveMessage = None,
    override_reason: OverrideOption = None,
    report_by: ReportByOption = None,
    token: TokenOption = None,
    as_: AsOption = None,
    wait: WaitOption = 10.0,
) -> None:
    """Resolve an incident and tell everyone who was told about it, on the channels they were told on,
    and the status page. It must have been monitored for the policy's hold, or be forced with a reason
    (the reason is for staff; customers get the resolution text)."""
    rt = runtime()
    _resolve(
        rt,
        incident,
        report_by=parse_report_by(report_by, rt.clock.now()),
        reason=reason,
        force=force,
        message=message,
        override_reason=override_reason,
        as_=as_,
        token=token,
        wait=wait,
    )


@app.command("change")
@friendly_errors
def change(
    incident: IncidentArg,
    reason: Annotated[str, typer.Option(help="Why it changes (recorded on the timeline).")],
    severity: Annotated[
        Severity | None, typer.Option(help="A new severity (its policy applies at once).")
    ] = None,
    title: Annotated[str | None, typer.Option(help="A new title, in the customer's words.")] = None,
    component: Annotated[
        list[str] | None,
        typer.Option("--component", help="The affected components from now on (repeatable)."),
    ] = None,
    impact: Annotated[
        list[str] | None,
        typer.Option(
            help="How a component is hit now, COMPONENT=LEVEL (repeatable); shown from the next update."
        ),
    ] = None,
    override_reason: OverrideOption = None,
    token: TokenOption = None,
    as_: AsOption = None,
) -> None:
    """Change an open incident's severity, title or components: recorded with who and why, and the
    severity policy applies at once (its channels and approval from the next update; a shorter cadence
    pulls the next update in)."""
    from dispatcher.comms.changes import change_incident

    rt = runtime()
    changed = change_incident(
        rt,
        incident,
        identify(rt, as_, token),
        reason=reason,
        severity=severity,
        title=title,
        components=component,
        impact=parse_impact(impact),
        override_reason=override_reason,
    )
    due = f"; next update due by {changed.next_update_at:%H:%M} UTC" if changed.next_update_at else ""
    console.print(
        f"incident {incident_ref(changed.id)}: {changed.title} [{changed.severity.value}] "
        f"components: {', '.join(changed.components) or '-'}{due}",
        markup=False,
    )


@app.command("first-notice")
@friendly_errors
def first_notice(
    incident: IncidentArg,
    override_reason: OverrideOption = None,
    token: TokenOption = None,
    as_: AsOption = None,
    wait: WaitOption = 10.0,
) -> None:
    """Send the severity's pre-approved first notice now ("We are aware of a problem with … Next update
    by …"): it needs no approval, so the first word is never held up."""
    from dispatcher.comms.first_word import send_first_notice

    rt = runtime()
    who = identify(rt, as_, token)
    said: list[str] = []

    def act(queue: TaskQueue) -> Update | None:
        sent = send_first_notice(rt, incident, who, queue, override_reason)
        if not sent.created:
            said.append(
                f"the first notice went out already as update {update_ref(sent.update.id)}; nothing sent"
            )
            return None
        said.append(f"first notice sent as update {update_ref(sent.update.id)}")
        return sent.update

    deliver_now(rt, act, wait)
    for line in said:
        console.print(line, highlight=False)


@app.command("reopen")
@friendly_errors
def reopen_(
    incident: IncidentArg,
    reason: Annotated[str, typer.Option(help="Why it is reopened (recorded).")],
    as_: AsOption = None,
) -> None:
    """Reopen a resolved incident (back to investigating)."""
    from dispatcher.comms.lifecycle import reopen

    moved = reopen(runtime(), incident, as_ or default_actor(), reason)
    console.print(f"incident {incident_ref(moved.id)} reopened: {moved.status.value}")


@app.command("owner")
@friendly_errors
def owner(
    incident: IncidentArg,
    name: Annotated[str, typer.Argument(help="The new owner ('' for nobody).")],
    as_: AsOption = None,
) -> None:
    """Set who answers for an incident."""
    from dispatcher.comms.lifecycle import set_owner

    moved = set_owner(runtime(), incident, name, as_ or default_actor())
    console.print(f"incident {incident_ref(moved.id)} owner: {moved.owner or 'nobody'}")


def _what(entry: TimelineEntry) -> tuple[str, str]:
    """(what happened, detail) for one timeline line."""
    if entry.update is not None:
        upd = entry.update
        label = f"update {update_ref(upd.id)} · {upd.kind} · {upd.audience} · {upd.state.value}"
        detail = f"[{upd.status.value}] {upd.message}"
        if upd.next_update_at is not None:
            detail += f"\nnext update by {upd.next_update_at:%Y-%m-%d %H:%M} UTC ({upd.promise_state or '-'})"
        if upd.rejected_reason:
            detail += f"\nrejected by {upd.rejected_by}: {upd.rejected_reason}"
        if upd.approved_by:
            detail += f"\napproved by {upd.approved_by}"
        if upd.override_reason:
            detail += f"\nguardrails overridden: {upd.override_reason}"
        return label, detail
    moved = ""
    if entry.to_status is not None:
        moved = f"{entry.from_status.value} → " if entry.from_status is not None else ""
        moved += entry.to_status.value
    detail = " · ".join(part for part in (moved, entry.reason or "") if part)
    if entry.update_id is not None:
        detail += f" (update {update_ref(entry.update_id)})"
    return entry.kind, detail


@app.command("show")
@friendly_errors
def show(incident: IncidentArg) -> None:
    """The incident and its timeline: status changes, approvals and updates, oldest first."""
    from dispatcher.comms.attention import flags
    from dispatcher.comms.incidents import get_incident
    from dispatcher.comms.lifecycle import human, timeline
    from dispatcher.domain.crisis import DATA_FACT_LABELS, SECURITY, DataFacts

    rt = runtime()
    inc = get_incident(rt, incident)
    promise = f"{inc.next_update_at:%Y-%m-%d %H:%M} UTC" if inc.next_update_at else "-"
    first = human(inc.first_word_at - inc.opened_at) + " after opening" if inc.first_word_at else "not yet"
    console.print(
        f"incident {incident_ref(inc.id)}: {inc.title} [{inc.severity.value}] {inc.status.value}\n"
        f"owner: {inc.owner or '-'} · next update due: {promise} · reopened: {inc.reopened_count}\n"
        f"customers first told: {first}",
        highlight=False,
        markup=False,  # "[major]" is the severity, not a rich style
    )
    if inc.kind == SECURITY:
        given = inc.data_facts or DataFacts()
        for name, label in DATA_FACT_LABELS.items():
            console.print(f"{label}: {getattr(given, name) or 'NOT GIVEN'}", markup=False, highlight=False)
    for flag in flags(rt, inc):
        console.print(f"ATTENTION: {flag}", style="bold red", highlight=False)
    table = Table("when (UTC)", "what", "who", "detail", title=f"Timeline of incident {incident_ref(inc.id)}")
    for entry in timeline(rt, incident):
        what, detail = _what(entry)
        table.add_row(entry.at.strftime("%Y-%m-%d %H:%M:%S"), what, entry.actor or "-", detail)
    console.print(table)
