"""``tocsin drafts …``: prepare an update, let others edit it, and let whoever is on duty send it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from channels.base import ChannelKind
from dispatcher.cli.approval import deliver_now
from dispatcher.cli.common import IncidentArg, console, friendly_errors, runtime
from dispatcher.cli.crisis_options import (
    AffectsOption,
    NotWorkingOption,
    ReportByOption,
    SignerOption,
    SinceOption,
    WorkaroundOption,
)
from dispatcher.cli.options import TEXTS_CONTEXT, Composed, TemplateOption, TextsOption, VarOption
from dispatcher.cli.who import AsOption, TokenOption, default_actor, identify
from dispatcher.domain.ids import incident_ref, update_ref
from dispatcher.domain.vocabulary import Audience, IncidentStatus, UpdateState

if TYPE_CHECKING:
    from datetime import datetime

    from dispatcher.domain.drafts import Draft
    from dispatcher.domain.models import Update
    from dispatcher.engine.task_queue import TaskQueue

# Each command imports what it uses when it runs: `tocsin --help` must answer at once.

app = typer.Typer(help="Drafts of updates: one person prepares, another sends.", no_args_is_help=True)

VersionOption = Annotated[
    int | None,
    typer.Option(help="Refuse if the draft changed since this version (shown by `tocsin drafts show`)."),
]


def _summary(draft: Draft) -> None:
    from dispatcher.comms.lifecycle import human

    promise_in = human(draft.next_update_in) if draft.next_update_in else "none"
    console.print(
        f"draft {draft.id} (incident {incident_ref(draft.incident_id)}, version {draft.version}, "
        f"{draft.state.value}): "
        f"status {draft.status.value} · next update in {promise_in} · audience {draft.audience}"
        + (f" · template {draft.template}" if draft.template else ""),
        highlight=False,
    )


@app.command("save", context_settings=TEXTS_CONTEXT)
@friendly_errors
def save(
    ctx: typer.Context,
    incident: IncidentArg,
    message: Annotated[str | None, typer.Option(help="The update's text.")] = None,
    status: Annotated[IncidentStatus | None, typer.Option(help="The incident's status then.")] = None,
    next_update_in: Annotated[
        str | None, typer.Option(help="The promise, counted from when it is sent (30m, 1h, `cadence`).")
    ] = None,
    audience: Annotated[str, typer.Option(help="public, internal, or a segment.")] = Audience.PUBLIC.value,
    channel: Annotated[list[ChannelKind] | None, typer.Option("--channel", help="Only these.")] = None,
    internal_note: Annotated[str | None, typer.Option(help="Shown to staff only.")] = None,
    template: TemplateOption = None,
    var: VarOption = None,
    texts: TextsOption = None,
    affects: AffectsOption = None,
    not_working: NotWorkingOption = None,
    since: SinceOption = None,
    workaround: WorkaroundOption = None,
    signer: SignerOption = None,
    report_by: ReportByOption = None,
    as_: AsOption = None,
) -> None:
    """Save a draft of an update (from --message or --template, with --message-fr… as for `publish`,
    its impact statement, signer and, on a resolution, --report-by). Nothing is sent:
    `tocsin drafts publish ID` sends it."""
    from dispatcher.cli.compose import compose
    from dispatcher.cli.crisis_options import impact_statement, parse_report_by
    from dispatcher.comms.drafts import save_draft
    from dispatcher.domain.drafts import DraftContent

    rt = runtime()
    now = rt.clock.now()
    said = Composed(message, status, next_update_in, template, var, texts, list(ctx.args))
    upd = compose(rt, incident, said, author=None, start=now, audience=audience, channels=channel)
    content = DraftContent(
        status=upd.status,
        message=upd.message,
        texts=upd.texts,
        next_update_in=None if upd.next_update_at is None else upd.next_update_at - now,
        audience=upd.audience,
        channels=upd.channels,
        internal_note=internal_note,
        template=upd.template,
        template_vars=upd.template_vars,
        impact_statement=impact_statement(affects, not_working, since, workaround, now),
        signer=signer,
        report_by=parse_report_by(report_by, now),
    )
    draft = save_draft(rt, incident, content, as_ or default_actor())
    console.print(f"saved draft {draft.id}: send it with `tocsin drafts publish {draft.id}`", highlight=False)


@app.command("list")
@friendly_errors
def list_(
    incident: Annotated[int | None, typer.Option(help="Only this incident's drafts.")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Published and discarded ones too.")] = False,
) -> None:
    """Open drafts, newest first."""
    from rich.table import Table

    from dispatcher.comms.drafts import list_drafts
    from dispatcher.domain.drafts import DraftState

    rt = runtime()
    found = list_drafts(rt, incident, None if all_ else DraftState.OPEN)
    table = Table(title="Drafts")
    for column in ("id", "incident", "state", "version", "status", "by", "updated", "message"):
        table.add_column(column)
    for d in found:
        by = d.author if d.updated_by in (None, d.author) else f"{d.author}, {d.updated_by}"
        published = f" (update {update_ref(d.published_update_id)})" if d.published_update_id else ""
        state = d.state.value + published
        table.add_row(
            str(d.id),
            str(d.incident_id),
            state,
            str(d.version),
            d.status.value,
            escape(by or "-"),
            f"{d.updated_at:%Y-%m-%d %H:%M} UTC",
            escape(d.message if len(d.message) <= 60 else d.message[:59] + "…"),
        )
    console.print(table if found else "no drafts")


@app.command("show")
@friendly_errors
def show(draft_id: Annotated[int, typer.Argument(help="Draft id.")]) -> None:
    """A draft in full: its version, who prepared and edited it, and every text."""
    from dispatcher.comms.drafts import get_draft

    rt = runtime()
    draft = get_draft(rt, draft_id)
    _summary(draft)
    who = f"prepared by {draft.author or '-'}, last edited by {draft.updated_by or '-'}"
    console.print(who, highlight=False)
    console.print(f"\n{escape(draft.message)}", highlight=False)
    for locale, text in sorted((draft.texts or {}).items()):
        for field, words in text.items():
            console.print(f"{locale} {field}: {escape(words)}", highlight=False, soft_wrap=True)
    if draft.internal_note:
        console.print(f"internal note: {escape(draft.internal_note)}", highlight=False)
    _show_crisis_fields(draft)


def _show_crisis_fields(draft: Draft) -> None:
    """The impact statement and the signer, as the update will carry them."""
    statement = draft.impact_statement
    if statement is not None:
        given = {
            "affects": statement.who,
            "not working": statement.not_working,
            "since": f"{statement.since:%Y-%m-%d %H:%M %Z}" if statement.since else None,
            "meanwhile": statement.workaround,
        }
        for label, words in given.items():
            if words:
                console.print(f"impact, {label}: {escape(words)}", highlight=False, soft_wrap=True)
    if draft.signer:
        console.print(f"signed by: {escape(draft.signer)}", highlight=False)
    if draft.report_by is not None:
        console.print(f"full report by: {draft.report_by:%Y-%m-%d %H:%M %Z}", highlight=False)


@app.command("edit", context_settings=TEXTS_CONTEXT)
@friendly_errors
def edit(
    ctx: typer.Context,
    draft_id: Annotated[int, typer.Argument(help="Draft id.")],
    message: Annotated[str | None, typer.Option(help="A new text.")] = None,
    status: Annotated[IncidentStatus | None, typer.Option(help="A new status.")] = None,
    next_update_in: Annotated[str | None, typer.Option(help="A new promise (30m, 1h, `cadence`).")] = None,
    internal_note: Annotated[str | None, typer.Option(help="A new internal note.")] = None,
    texts: TextsOption = None,
    affects: AffectsOption = None,
    not_working: NotWorkingOption = None,
    since: SinceOption = None,
    workaround: WorkaroundOption = None,
    signer: SignerOption = None,
    report_by: ReportByOption = None,
    version: VersionOption = None,
    as_: AsOption = None,
) -> None:
    """Change what an open draft says (--message-fr and friends change one text, keeping the others;
    --affects and friends one part of the impact statement; an empty value removes it, `--signer ""`
    the signer, `--report-by ""` the report's date)."""
    from dispatcher.cli.compose import promise
    from dispatcher.cli.crisis_options import parse_report_by
    from dispatcher.cli.texts import merge_texts, parse_text_options, read_texts_file
    from dispatcher.comms.drafts import edit_draft, get_draft

    rt = runtime()
    current = get_draft(rt, draft_id)
    changes: dict[str, Any] = {}
    default = rt.settings.default_locale
    given = read_texts_file(texts) if texts is not None else {}
    for locale, fields in parse_text_options(list(ctx.args), default).items():
        given.setdefault(locale, {}).update(fields)
    message, extra = merge_texts(message, given, default)
    if extra:
        merged = {loc: t.model_dump(exclude_none=True) for loc, t in (current.texts or {}).items()}
        for locale, text in extra.items():
            merged.setdefault(locale, {}).update(text.model_dump(exclude_none=True))
        changes["texts"] = merged
    for name, value in (("message", message), ("status", status), ("internal_note", internal_note)):
        if value is not None:
            changes[name] = value
    if next_update_in is not None:
        changes["next_update_in"] = promise(rt, current.incident_id, next_update_in, rt.clock.now())
    parts = {"who": affects, "not_working": not_working, "since": since, "workaround": workaround}
    if any(value is not None for value in parts.values()):
        changes["impact_statement"] = _edited_statement(current, parts, rt.clock.now())
    if signer is not None:
        changes["signer"] = signer
    if report_by is not None:
        changes["report_by"] = parse_report_by(report_by, rt.clock.now())
    if not changes:
        raise typer.BadParameter("nothing to change: give --message, --status, --message-fr… or more")
    _summary(edit_draft(rt, draft_id, changes, as_ or default_actor(), version))


def _edited_statement(current: Draft, parts: dict[str, str | None], now: datetime) -> dict[str, Any]:
    """The draft's impact statement with the parts given replaced (an empty one removed)."""
    from dispatcher.cli.crisis_options import parse_since

    kept = current.impact_statement.model_dump() if current.impact_statement else {}
    for name, value in parts.items():
        if value is None:
            continue
        if name == "since":
            kept[name] = parse_since(value, now) if value.strip() else None
        else:
            kept[name] = value or None
    return kept


@app.command("publish")
@friendly_errors
def publish_(
    draft_id: Annotated[int, typer.Argument(help="Draft id.")],
    version: VersionOption = None,
    override_reason: Annotated[
        str | None, typer.Option(help="Publish despite guardrail errors; the reason is recorded.")
    ] = None,
    as_: AsOption = None,
    token: TokenOption = None,
    wait: Annotated[float, typer.Option(help="Embedded mode: wait this long for retries due soon.")] = 10.0,
) -> None:
    """Send a draft: it is published as any update (guardrails, approval, lifecycle), written by you
    (your personal token, --token or $TOCSIN_TOKEN, proves it where four eyes are asked for)."""
    from dispatcher.comms.drafts import publish_draft

    rt = runtime()
    who = identify(rt, as_, token)

    def act(queue: TaskQueue) -> Update | None:
        published = publish_draft(
            rt,
            draft_id,
            queue,
            who.name,
            publisher_token_id=who.token_id,
            version=version,
            override_reason=override_reason,
        )
        upd = published.update
        if upd.state is UpdateState.PENDING_APPROVAL:
            console.print(
                f"draft {draft_id} is update {update_ref(upd.id)}, waiting for approval by someone other "
                f"than {upd.author}: `tocsin approve {update_ref(upd.id)}` (nothing sent yet)",
                highlight=False,
            )
            return None
        console.print(f"published draft {draft_id} as update {update_ref(upd.id)}", highlight=False)
        return upd if upd.state in (UpdateState.PENDING, UpdateState.FANNED_OUT) else None

    deliver_now(rt, act, wait)


@app.command("discard")
@friendly_errors
def discard(
    draft_id: Annotated[int, typer.Argument(help="Draft id.")],
    version: VersionOption = None,
    as_: AsOption = None,
) -> None:
    """Throw a draft away (it stays listed with --all)."""
    from dispatcher.comms.drafts import discard_draft

    rt = runtime()
    _summary(discard_draft(rt, draft_id, as_ or default_actor(), version))
