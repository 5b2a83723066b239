"""``/components``: the status page's components (create, edit, order, set a status by hand). A change
republishes the status site at once; the answer says where it went. Maintenance windows have their own
routes (``dispatcher.web.api.maintenance``)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path
from pydantic import BaseModel, ConfigDict, Field, field_validator
from starlette.concurrency import run_in_threadpool
from starlette.convertors import Convertor, register_url_convertor

from dispatcher.comms import components as parts
from dispatcher.comms.components import Component, ComponentDraft, ComponentEdit
from dispatcher.domain.components import STATUSES, clean_status
from dispatcher.domain.errors import InvalidInput
from dispatcher.engine.status_site import republish_site
from dispatcher.web.api.auth import PublishToken, ReadToken, RuntimeDep
from dispatcher.web.api.problems import AUTH_PROBLEMS, NOT_FOUND, problem_doc

router = APIRouter(tags=["components"], responses=AUTH_PROBLEMS)

class _Key(Convertor[str]):
    """A component key in a path, but never the literal ``order``: ``/components/order`` is the ordering
    (PUT), so ``PATCH /components/order`` is no edit of a component slugged ``order`` behind the
    description's back (address that one by id or name)."""

    regex = "(?!order/|order$)[^/]+"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("component_key", _Key())
NOT_A_KEY: dict[int | str, dict[str, Any]] = {
    405: problem_doc("`order` is the ordering's path, not a component key (use the component's id or name).")
}

ComponentKey = Annotated[
    str,
    Path(
        min_length=1,
        max_length=200,
        json_schema_extra={"not": {"const": "order"}},
        description="Component id, name or slug (not `order`, the ordering's own path).",
    ),
]


class StatusChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: str = Field(
        json_schema_extra={"enum": list(STATUSES)},
        description="operational, degraded_performance, partial_outage, major_outage or under_maintenance.",
    )
    reason: str | None = Field(default=None, max_length=1000)

    @field_validator("status")
    @classmethod
    def _known(cls, value: str) -> str:
        """One of the described statuses (people's spellings, ``degraded``, are still read): else 422."""
        try:
            return clean_status(value)
        except InvalidInput as exc:
            raise ValueError(str(exc).removeprefix("status: ")) from None


class Order(BaseModel):
    model_config = ConfigDict(extra="forbid")

    order: list[str] = Field(min_length=1, max_length=500, description="Ids, names or slugs, first first.")


class Changed(BaseModel):
    component: Component
    published: dict[str, str | None] = Field(
        description="Status site destination -> null when republished, else what went wrong."
    )


class Components(BaseModel):
    components: list[Component]
    published: dict[str, str | None] = Field(default_factory=dict)


@router.get("/components", summary="List the status page's components in page order")
def list_all(rt: RuntimeDep, _token: ReadToken) -> Components:
    return Components(components=parts.list_components(rt))


@router.post("/components", status_code=201, summary="Add a component")
async def create(rt: RuntimeDep, _token: PublishToken, body: ComponentDraft) -> Changed:
    made = await run_in_threadpool(parts.create_component, rt, body)
    return Changed(component=made, published=await run_in_threadpool(republish_site, rt))


@router.patch(
    "/components/{key:component_key}",
    responses=NOT_FOUND | NOT_A_KEY,
    summary="Rename, regroup or describe a component",
)
async def edit(rt: RuntimeDep, _token: PublishToken, key: ComponentKey, body: ComponentEdit) -> Changed:
    changed = await run_in_threadpool(parts.edit_component, rt, key, body)
    return Changed(component=changed, published=await run_in_threadpool(republish_site, rt))


@router.put(
    "/components/order", responses=NOT_FOUND, summary="Put components in this order (the rest follow)"
)
async def reorder(rt: RuntimeDep, _token: PublishToken, body: Order) -> Components:
    ordered = await run_in_threadpool(parts.reorder_components, rt, body.order)
    return Components(components=ordered, published=await run_in_threadpool(republish_site, rt))


@router.post(
    "/components/{key:component_key}/status",
    responses=NOT_FOUND | NOT_A_KEY,
    summary="Set a component's status by hand",
)
async def set_status(rt: RuntimeDep, token: PublishToken, key: ComponentKey, body: StatusChange) -> Changed:
    changed = await run_in_threadpool(
        parts.set_component_status, rt, key, body.status, token.name, body.reason
    )
    return Changed(component=changed, published=await run_in_threadpool(republish_site, rt))
