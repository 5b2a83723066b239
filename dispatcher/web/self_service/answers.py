"""What the public self-service pages answer, for ``/openapi.json`` and for the routes that build it.

A JSON request gets JSON (the models below) and ``application/problem+json`` errors; a form or a
browser gets a small ``text/html`` page with the same status. Links: a token that is not a link's shape
is a 422, a well-formed one that no address matches (altered, or the address is gone) a 404, an expired
one a 410. Too many requests: 429 with ``Retry-After`` (seconds).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from dispatcher.config.keys import Purpose
from dispatcher.web.api.problems import PROBLEM_JSON
from dispatcher.web.self_service.bodies import token_pattern

HTML = "text/html"
_PAGE: dict[str, Any] = {"schema": {"type": "string"}}
_PROBLEM: dict[str, Any] = {"schema": {"$ref": "#/components/schemas/Problem"}}
RETRY_AFTER: dict[str, Any] = {
    "Retry-After": {
        "description": "Seconds to wait before trying again.",
        "required": True,
        "schema": {"type": "string", "pattern": "^[1-9][0-9]*$"},
    }
}


class EmailPending(BaseModel):
    status: Literal["pending_confirmation"]
    email: str = Field(description="The address, as it will be stored; a confirmation link is on its way.")


class CodeSent(BaseModel):
    status: Literal["code_sent"]
    phone: str = Field(description="The number in E.164.")
    verify_token: str = Field(description="Send it with the code: POST /subscribe/verify?token=…")


class WebhookVerified(BaseModel):
    status: Literal["verified"]
    url: str
    secret: str = Field(description="The signing secret of every delivery to this URL, shown once.")
    manage_url: str


class PhoneVerified(BaseModel):
    status: Literal["verified"]
    phone: str
    manage_url: str


class ChosenPreferences(BaseModel):
    components: list[str]
    min_severity: str
    locale: str
    timezone: str | None
    quiet_start: str | None
    quiet_end: str | None


class Contact(BaseModel):
    id: int
    channel: str
    address: str
    receiving: bool = Field(description="Confirmed and not opted out: updates go there.")


class Managed(BaseModel):
    preferences: ChosenPreferences
    contacts: list[Contact]


def _content(*media: str) -> dict[str, Any]:
    content: dict[str, Any] = {}
    for kind in media:
        if kind == HTML:
            content[HTML] = _PAGE
        elif kind == PROBLEM_JSON:
            content[PROBLEM_JSON] = _PROBLEM
    return content  # a JSON model's own entry is FastAPI's (``model``)


def answer(description: str, *media: str, model: Any = None) -> dict[str, Any]:
    """A declared response: its media types (a page, a problem) and, for JSON, its ``model``."""
    found: dict[str, Any] = {"description": description, "content": _content(*media)}
    if model is not None:
        found["model"] = model  # FastAPI adds the model to the components
    return found


def limited(*media: str) -> dict[str, Any]:
    return {
        **answer("Too many requests from this client (or to this address).", *media),
        "headers": RETRY_AFTER,
    }


def link_answers(*media: str) -> dict[int | str, dict[str, Any]]:
    """The answers about the link in ``token``."""
    return {
        404: answer(
            "No address matches this link (altered, or the address is no longer subscribed).", *media
        ),
        410: answer("The link has expired: ask for a new one.", *media),
        422: answer("The token is not a link's (or a field breaks this description).", *media),
    }


BODY_ANSWERS: dict[int | str, dict[str, Any]] = {
    400: answer("The JSON body is not JSON (or nested too deep).", PROBLEM_JSON),
    413: answer("The body is larger than limits.max_body_bytes.", HTML, PROBLEM_JSON),
}


def token_parameter(purpose: Purpose, description: str) -> dict[str, Any]:
    return {
        "name": "token",
        "in": "query",
        "required": True,
        "description": description,
        "schema": {"type": "string", "pattern": token_pattern(purpose)},
    }
