"""``/policy``: the severity policy in force, and checking a candidate policy file before deploying it.

Checking answers 200 for any text it was sent, ``valid: false`` with ``errors`` naming each key when the
file is not TOML or not a policy: the check ran and found problems, which is its answer, not a request
it refused. Only a body that is not a policy file at all (empty, not UTF-8, too large) is refused.
"""

from __future__ import annotations

import hashlib
import tomllib
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field, ValidationError

from dispatcher.domain.policy import Policy
from dispatcher.web.api.auth import ReadToken, RuntimeDep
from dispatcher.web.api.problems import AUTH_PROBLEMS, FieldError, ProblemError, field_errors

router = APIRouter(prefix="/policy", tags=["policy"], responses=AUTH_PROBLEMS)

MAX_POLICY_BYTES = 256 * 1024


class PolicyOut(BaseModel):
    version: str = Field(
        description="The file's `version`, else sha256:<12 hex> of it; `builtin` without one."
    )
    path: str | None = Field(description="The file it was read from; null for the built-in defaults.")
    policy: Policy


class PolicyCheck(BaseModel):
    valid: bool
    version: str | None = Field(
        description="The version updates would record under this policy; null when it is not valid."
    )
    policy: Policy | None = Field(description="The policy as Tocsin reads it; null when it is not valid.")
    errors: list[FieldError] = Field(
        default_factory=list,
        description="Why it is not valid: each key that is wrong (`body` when it is not TOML at all).",
    )


BLANK = "\t\n\r "
NOT_BLANK = r"[^\t\n\r ]"
"""Some character other than TOML's whitespace and newlines (spelled out: regex engines differ on \\s)."""
TOML_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "A policy.toml, as text.",
        "content": {
            "application/toml": {"schema": {"type": "string", "pattern": NOT_BLANK}},
            "text/plain": {"schema": {"type": "string", "pattern": NOT_BLANK}},
        },
    }
}


def _invalid(detail: str, errors: list[FieldError]) -> ProblemError:
    return ProblemError(422, "invalid-policy", detail, title="Invalid policy", errors=errors)


@router.get("", summary="The severity policy in force and its version")
def get_policy(rt: RuntimeDep, _token: ReadToken) -> PolicyOut:
    loaded = rt.policy
    return PolicyOut(
        version=loaded.version, path=None if loaded.path is None else str(loaded.path), policy=loaded.policy
    )


@router.post(
    "/check", summary="Validate a policy.toml (sent as the body); changes nothing", openapi_extra=TOML_BODY
)
async def check_policy(request: Request, _token: ReadToken) -> PolicyCheck:
    raw = await request.body()
    if len(raw) > MAX_POLICY_BYTES:
        raise _invalid(
            "body: the policy is larger than 256 KiB", [FieldError(field="body", message="too large")]
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise _invalid("body: not UTF-8 text", [FieldError(field="body", message="not UTF-8 text")]) from None
    if not text.strip(BLANK):
        raise _invalid("body: send the policy.toml to check", [FieldError(field="body", message="empty")])
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        return _not_valid([FieldError(field="body", message=f"not valid TOML ({exc})")])
    try:
        policy = Policy.model_validate(data)
    except ValidationError as exc:
        return _not_valid(
            [
                FieldError(field=e.field if e.field != "body" else "(top level)", message=e.message)
                for e in field_errors(exc.errors())
            ]
        )
    version = policy.version or "sha256:" + hashlib.sha256(text.encode()).hexdigest()[:12]
    return PolicyCheck(valid=True, version=version, policy=policy)


def _not_valid(errors: list[FieldError]) -> PolicyCheck:
    return PolicyCheck(valid=False, version=None, policy=None, errors=errors)
