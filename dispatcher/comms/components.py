"""Status page components: what the page lists, in which group and order, and a status set by hand.

A component's status on the page is the worse of what a person set here and what open public
incidents say of it (``dispatcher.engine.status_site``). Setting a status by hand is for the time
between incidents ("the EU region is degraded, we are watching it"); every change is kept with its
time in ``component_status_changes``, so the 90-day uptime history counts it too.

Names are unique ignoring case; the slug (``api``, ``eu-checkout``) names the component's page, badge
and feed on the static site and stays the same when the component is renamed.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator
from sqlalchemy import Connection, func, insert, select, update

from dispatcher.domain.components import STATUSES, clean_status, slugify
from dispatcher.domain.errors import InvalidInput, NotFound
from dispatcher.engine.runtime import Runtime
from dispatcher.store.schema import component_status_changes, components

__all__ = [
    "STATUSES",
    "Component",
    "ComponentDraft",
    "ComponentEdit",
    "clean_status",
    "create_component",
    "edit_component",
    "get_component",
    "list_components",
    "reorder_components",
    "set_component_status",
    "slugify",
]



def _not_a_bool(value: object) -> object:
    """JSON's ``true`` is no position (Python would read it as 1)."""
    if isinstance(value, bool):
        raise ValueError("a number, not true or false")
    return value

class ComponentDraft(BaseModel):
    """A new component."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str = Field(min_length=1, max_length=200)
    group: str | None = Field(default=None, max_length=200)
    description: str | None = Field(default=None, max_length=1000)
    # The bounds inside the Annotated: outside it, on the Optional, pydantic writes them into the JSON
    # schema as "ge"/"le", which no JSON Schema reader knows (the description would allow -1).
    position: Annotated[int, Field(ge=0, le=100_000), BeforeValidator(_not_a_bool)] | None = None
    """Where it goes; None: after the others."""

    @field_validator("group", "description")
    @classmethod
    def _blank_is_none(cls, value: str | None) -> str | None:
        return value or None


class ComponentEdit(BaseModel):
    """Changes to a component; fields left out stay as they are."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str | None = Field(default=None, min_length=1, max_length=200)
    group: str | None = Field(default=None, max_length=200)
    description: str | None = Field(default=None, max_length=1000)


class Component(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: int
    name: str
    slug: str
    group: str | None
    description: str | None
    position: int
    status: str
    """As set by hand (open incidents may make it look worse on the page)."""
    status_set_at: datetime | None
    status_set_by: str | None
    created_at: datetime
    updated_at: datetime


def _component(row: object) -> Component:
    m = row._mapping  # type: ignore[attr-defined]
    return Component(
        id=m["id"],
        name=m["name"],
        slug=m["slug"],
        group=m["group_name"],
        description=m["description"],
        position=m["position"],
        status=m["status"],
        status_set_at=m["status_set_at"],
        status_set_by=m["status_set_by"],
        created_at=m["created_at"],
        updated_at=m["updated_at"],
    )


def list_components(rt: Runtime) -> list[Component]:
    """Every component in page order: by position, then name."""
    with rt.engine.connect() as conn:
        rows = conn.execute(select(components).order_by(components.c.position, components.c.name))
        return [_component(r) for r in rows]


def _find(conn: Connection, key: str | int) -> Component:
    text = str(key).strip()
    match = (
        components.c.id == int(text)
        if text.isdigit()
        else (func.lower(components.c.name) == text.lower()) | (components.c.slug == text.lower())
    )
    row = conn.execute(select(components).where(match)).first()
    if row is None:
        raise NotFound(f"component: no component {text!r}")
    return _component(row)


def get_component(rt: Runtime, key: str | int) -> Component:
    """A component by id, name (any case) or slug; ``NotFound`` otherwise."""
    with rt.engine.connect() as conn:
        return _find(conn, key)


def _taken(conn: Connection, name: str, slug: str | None, but: int | None = None) -> None:
    same = func.lower(components.c.name) == name.lower()
    query = select(components.c.name).where(same if slug is None else same | (components.c.slug == slug))
    if but is not None:
        query = query.where(components.c.id != but)
    clash = conn.execute(query).scalar_one_or_none()
    if clash is not None:
        raise InvalidInput(f"name: {name!r} is taken by the component {clash!r}")


def create_component(rt: Runtime, draft: ComponentDraft) -> Component:
    """Add a component; ``InvalidInput`` when its name (or slug) is taken."""
    now = rt.clock.now()
    slug = slugify(draft.name)
    with rt.engine.begin() as conn:
        _taken(conn, draft.name, slug)
        position = draft.position
        if position is None:
            last = conn.execute(select(func.max(components.c.position))).scalar_one_or_none()
            position = 0 if last is None else int(last) + 1
        new_id = conn.execute(
            insert(components).returning(components.c.id),
            {
                "name": draft.name,
                "slug": slug,
                "group_name": draft.group,
                "description": draft.description,
                "position": position,
                "status": "operational",
                "created_at": now,
                "updated_at": now,
            },
        ).scalar_one()
        return _find(conn, new_id)


def edit_component(rt: Runtime, key: str | int, edit: ComponentEdit) -> Component:
    """Rename, regroup or describe a component (its slug, and so its page address, stays)."""
    with rt.engine.begin() as conn:
        found = _find(conn, key)
        values: dict[str, object] = {"updated_at": rt.clock.now()}
        if edit.name is not None and edit.name != found.name:
            _taken(conn, edit.name, None, but=found.id)
            values["name"] = edit.name
            # The hand-set history follows the component under its new name.
            conn.execute(
                update(component_status_changes)
                .where(component_status_changes.c.component == found.name)
                .values(component=edit.name)
            )
        if "group" in edit.model_fields_set:
            values["group_name"] = edit.group or None
        if "description" in edit.model_fields_set:
            values["description"] = edit.description or None
        conn.execute(update(components).where(components.c.id == found.id).values(**values))
        return _find(conn, found.id)


def reorder_components(rt: Runtime, order: list[str]) -> list[Component]:
    """Put the components named (ids, names or slugs) first, in that order; the others keep theirs
    after them."""
    with rt.engine.begin() as conn:
        chosen = [_find(conn, key) for key in order]
        ids = [c.id for c in chosen]
        if len(set(ids)) != len(ids):
            raise InvalidInput("order: a component is named twice")
        rest = conn.execute(
            select(components.c.id)
            .where(components.c.id.not_in(ids))
            .order_by(components.c.position, components.c.name)
        ).scalars()
        now = rt.clock.now()
        for position, component_id in enumerate([*ids, *rest]):
            conn.execute(
                update(components)
                .where(components.c.id == component_id)
                .values(position=position, updated_at=now)
            )
    return list_components(rt)


def set_component_status(
    rt: Runtime, key: str | int, status: str, actor: str | None = None, reason: str | None = None
) -> Component:
    """Set a component's status by hand from now on (kept in the history the uptime counts)."""
    chosen = clean_status(status)
    now = rt.clock.now()
    with rt.engine.begin() as conn:
        found = _find(conn, key)
        conn.execute(
            update(components)
            .where(components.c.id == found.id)
            .values(status=chosen, status_set_at=now, status_set_by=actor, updated_at=now)
        )
        if chosen != found.status:
            conn.execute(
                insert(component_status_changes),
                {
                    "component": found.name,
                    "status": chosen,
                    "effective_at": now,
                    "actor": actor,
                    "reason": reason,
                },
            )
        return _find(conn, found.id)
