"""Drafts: save, list, edit, discard and publish drafts of an update, so one person can prepare what
another sends (``dispatcher.domain.drafts``).

Publishing a draft publishes an update written by whoever sends it (the approval rules see that
person), with the draft's promise counted from now. It carries the idempotency key ``draft:<id>``, so
two people pressing "send" at once publish one update. Two people editing at once cannot overwrite
each other: an edit names the version it was made on and is refused if the draft changed since.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select, update

from dispatcher.comms import languages
from dispatcher.comms.incidents import get_incident
from dispatcher.comms.publish import Published, check_report_by, publish, signer_of
from dispatcher.domain.audiences import check_audience
from dispatcher.domain.crisis import ImpactStatement
from dispatcher.domain.drafts import Draft, DraftContent, DraftState
from dispatcher.domain.errors import InvalidInput, NotFound
from dispatcher.domain.models import UpdateDraft
from dispatcher.engine.runtime import Runtime
from dispatcher.engine.task_queue import TaskQueue
from dispatcher.store.schema import drafts


class DraftConflict(InvalidInput):
    """The draft changed since the version an edit was made on, or is no longer open (HTTP 409)."""

    http_status = 409


def _columns(content: DraftContent, rt: Runtime, incident_id: int) -> dict[str, Any]:
    """The columns of ``content``, checked as publishing would check them (audience, texts, signer)."""
    check_audience(rt.policy, content.audience)
    signer_of(rt.policy.policy, content.signer)
    check_report_by(content.report_by, content.status, rt.clock.now())
    probe = UpdateDraft(
        incident_id=incident_id, status=content.status, message=content.message, texts=content.texts
    )
    texts = languages.checked_texts(rt, probe)
    promise = content.next_update_in
    return {
        "status": content.status.value,
        "message": content.message,
        "texts": languages.stored_texts(texts),
        "next_update_in": None if promise is None else int(promise.total_seconds()),
        "audience": str(content.audience),
        "channels": None if content.channels is None else [c.value for c in content.channels],
        "internal_note": content.internal_note,
        "impact": {k: v.value for k, v in content.impact.items()} if content.impact else None,
        "template": content.template,
        "template_vars": content.template_vars,
        "impact_statement": _stored_statement(content.impact_statement),
        "signer": content.signer,
        "report_by": content.report_by,
    }


def _stored_statement(statement: ImpactStatement | None) -> dict[str, Any] | None:
    """As the update will store it (JSON, times in ISO form, what is not said left out)."""
    return None if statement is None else statement.model_dump(mode="json", exclude_none=True)


def _from_row(row: Any) -> Draft:
    values = dict(row)
    values["texts"] = languages.loaded_texts(values.get("texts"))
    return Draft.model_validate(values)


def _get(conn: Connection, draft_id: int) -> Draft:
    row = conn.execute(select(drafts).where(drafts.c.id == draft_id)).mappings().first()
    if row is None:
        raise NotFound(f"no draft {draft_id}")
    return _from_row(row)


def save_draft(rt: Runtime, incident_id: int, content: DraftContent, author: str | None) -> Draft:
    """A new open draft of an update to ``incident_id``."""
    get_incident(rt, incident_id)
    now = rt.clock.now()
    values = {
        **_columns(content, rt, incident_id),
        "incident_id": incident_id,
        "state": DraftState.OPEN.value,
        "author": author,
        "updated_by": author,
        "created_at": now,
        "updated_at": now,
        "version": 1,
    }
    with rt.engine.begin() as conn:
        row = conn.execute(drafts.insert().values(**values).returning(*drafts.c)).mappings().one()
    return _from_row(row)


def get_draft(rt: Runtime, draft_id: int) -> Draft:
    with rt.engine.connect() as conn:
        return _get(conn, draft_id)


def list_drafts(
    rt: Runtime, incident_id: int | None = None, state: DraftState | None = DraftState.OPEN
) -> list[Draft]:
    """Drafts, newest first (of one incident, in one state; ``None``: any)."""
    query = select(drafts).order_by(drafts.c.id.desc())
    if incident_id is not None:
        query = query.where(drafts.c.incident_id == incident_id)
    if state is not None:
        query = query.where(drafts.c.state == state.value)
    with rt.engine.connect() as conn:
        return [_from_row(r) for r in conn.execute(query).mappings()]


def _change(rt: Runtime, draft_id: int, version: int | None, values: dict[str, Any]) -> Draft:
    """Write ``values`` to an open draft (at ``version`` when given), bumping its version."""
    with rt.engine.begin() as conn:
        current = _get(conn, draft_id)
        if current.state is not DraftState.OPEN:
            raise DraftConflict(f"draft {draft_id} is {current.state.value}: it can no longer change")
        if version is not None and version != current.version:
            raise DraftConflict(
                f"draft {draft_id} changed since version {version} (now version {current.version}, "
                f"by {current.updated_by or 'someone'}): reload it and edit again"
            )
        row = (
            conn.execute(
                update(drafts)
                .where(drafts.c.id == draft_id, drafts.c.version == current.version)
                .values(**values, version=current.version + 1, updated_at=rt.clock.now())
                .returning(*drafts.c)
            )
            .mappings()
            .first()
        )
    if row is None:  # another edit won the race between our read and our write
        raise DraftConflict(f"draft {draft_id} changed while you edited it: reload it and edit again")
    return _from_row(row)


def edit_draft(
    rt: Runtime, draft_id: int, changes: dict[str, Any], editor: str | None, version: int | None = None
) -> Draft:
    """Change some of an open draft's content (``changes``: ``DraftContent`` fields)."""
    current = get_draft(rt, draft_id)
    unknown = sorted(set(changes) - set(DraftContent.model_fields))
    if unknown:
        raise InvalidInput(f"{unknown[0]}: not something a draft says")
    kept = current.model_dump(include=set(DraftContent.model_fields))
    content = DraftContent.model_validate({**kept, **changes})
    values = {**_columns(content, rt, current.incident_id), "updated_by": editor}
    return _change(rt, draft_id, version, values)


def discard_draft(rt: Runtime, draft_id: int, by: str | None, version: int | None = None) -> Draft:
    return _change(rt, draft_id, version, {"state": DraftState.DISCARDED.value, "updated_by": by})


def update_of(draft: Draft, publisher: str | None, now: datetime, **more: Any) -> UpdateDraft:
    """The update a draft becomes when ``publisher`` sends it at ``now``."""
    return UpdateDraft(
        incident_id=draft.incident_id,
        status=draft.status,
        message=draft.message,
        texts=draft.texts,
        next_update_at=None if draft.next_update_in is None else now + draft.next_update_in,
        audience=draft.audience,
        channels=draft.channels,
        internal_note=draft.internal_note,
        impact=draft.impact,
        template=draft.template,
        template_vars=draft.template_vars,
        impact_statement=draft.impact_statement,
        signer=draft.signer,
        report_by=draft.report_by,
        author=publisher,
        idempotency_key=f"draft:{draft.id}",
        **more,
    )


def publish_draft(
    rt: Runtime,
    draft_id: int,
    queue: TaskQueue,
    publisher: str | None,
    *,
    publisher_token_id: int | None = None,
    version: int | None = None,
    override_reason: str | None = None,
    publish_at: datetime | None = None,
) -> Published:
    """Publish an open draft as ``publisher`` (guardrails, approval and lifecycle as for any update);
    the draft is marked published with the update's id. A refused publish leaves it open.
    ``publisher_token_id``: the token that proved who sends it (four eyes compare tokens, not names)."""
    draft = get_draft(rt, draft_id)
    if draft.state is DraftState.PUBLISHED and draft.published_update_id is not None:
        raise DraftConflict(f"draft {draft_id} was already published as update {draft.published_update_id}")
    if draft.state is not DraftState.OPEN:
        raise DraftConflict(f"draft {draft_id} is {draft.state.value}")
    if version is not None and version != draft.version:
        raise DraftConflict(
            f"draft {draft_id} changed since version {version} (now version {draft.version}): "
            "read it again before sending"
        )
    start = publish_at or rt.clock.now()
    published = publish(
        rt,
        update_of(
            draft,
            publisher,
            start,
            override_reason=override_reason,
            publish_at=publish_at,
            author_token_id=publisher_token_id,
        ),
        queue,
    )
    with rt.engine.begin() as conn:
        conn.execute(
            update(drafts)
            .where(drafts.c.id == draft_id, drafts.c.state == DraftState.OPEN.value)
            .values(
                state=DraftState.PUBLISHED.value,
                published_update_id=published.update.id,
                published_by=publisher,
                updated_at=rt.clock.now(),
            )
        )
    return published
