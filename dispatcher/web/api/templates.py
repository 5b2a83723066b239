"""``/templates``: the message templates library, and filling one in for an incident."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path
from pydantic import BaseModel, ConfigDict, Field

from dispatcher.comms.message_templates import draft_from_template, library
from dispatcher.config.message_templates import LoadedTemplate
from dispatcher.domain.message_templates import TemplateVariable
from dispatcher.domain.models import IncidentStatus
from dispatcher.domain.update_texts import LocaleText
from dispatcher.web.api.auth import PublishToken, ReadToken, RuntimeDep
from dispatcher.web.api.problems import AUTH_PROBLEMS, NOT_FOUND

router = APIRouter(prefix="/templates", tags=["templates"], responses=AUTH_PROBLEMS)

TemplateName = Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9-]{0,63}$", description="The template's name.")]


class TemplateOut(BaseModel):
    name: str
    title: str
    description: str
    status: IncidentStatus
    next_update_in_seconds: int | None = Field(description="The promise; null: the severity's cadence.")
    pre_approved: bool = Field(description="Used as written, it needs no second person's approval.")
    audience: str
    variables: dict[str, TemplateVariable]
    texts: dict[str, LocaleText] = Field(description="Per locale: message, and sms, social, email texts.")
    starter: bool = Field(description="From the packaged starter set (not replaced by a file of yours).")


def _out(loaded: LoadedTemplate) -> TemplateOut:
    t = loaded.template
    return TemplateOut(
        name=t.name,
        title=t.title,
        description=t.description,
        status=t.status,
        next_update_in_seconds=None if t.next_update_in is None else int(t.next_update_in.total_seconds()),
        pre_approved=t.pre_approved,
        audience=t.audience,
        variables=t.variables,
        texts=t.texts,
        starter=loaded.starter,
    )


class FillRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    incident_id: int = Field(ge=1, le=2**31 - 1)
    vars: dict[str, str] | None = Field(default=None, description="`name`, or `name.fr` for one language.")


class Filled(BaseModel):
    """A template filled in for an incident: what a compose form starts from. Nothing is published."""

    status: IncidentStatus
    message: str
    texts: dict[str, LocaleText] | None
    next_update_at: datetime | None
    template: str


@router.get("", summary="The message templates, yours and the starter set")
def list_templates(rt: RuntimeDep, _token: ReadToken) -> list[TemplateOut]:
    return [_out(t) for _, t in sorted(library(rt).templates.items())]


@router.get("/{name}", summary="One message template", responses=NOT_FOUND)
def get_template(name: TemplateName, rt: RuntimeDep, _token: ReadToken) -> TemplateOut:
    return _out(library(rt).get(name))


@router.post(
    "/{name}/fill",
    summary="Fill a template in for an incident (its texts in every language); publishes nothing",
    responses=NOT_FOUND,
)
def fill_template(name: TemplateName, body: FillRequest, rt: RuntimeDep, token: PublishToken) -> Filled:
    draft = draft_from_template(rt, body.incident_id, name, body.vars or {}, author=f"api:{token.name}")
    return Filled(
        status=draft.status,
        message=draft.message,
        texts=draft.texts,
        next_update_at=draft.next_update_at,
        template=name,
    )
