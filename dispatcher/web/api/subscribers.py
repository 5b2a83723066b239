"""``/subscribers``: create, read, change, delete, CSV import, preferences. Scope ``subscribers``.

Webhook signing secrets are never shown (they are generated when not given, as on import)."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path as FilePath
from typing import Annotated, Any
from zoneinfo import available_timezones

import phonenumbers
from email_validator import EmailNotValidError, validate_email
from fastapi import APIRouter, Path, Query, Request, Response
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    StringConstraints,
    field_validator,
    model_validator,
)
from pydantic.json_schema import SkipJsonSchema
from starlette.concurrency import run_in_threadpool

from channels.base import ChannelKind
from dispatcher.audience.csv_rows import COLUMNS
from dispatcher.audience.endpoints import EndpointCheck
from dispatcher.audience.importing import import_subscribers_file
from dispatcher.audience.subscribers import (
    change_subscriber,
    create_subscriber,
    delete_subscriber,
    get_subscriber,
    list_subscribers,
)
from dispatcher.domain.models import (
    ClockTime,
    ContactPoint,
    Severity,
    Subscriber,
    TimeZoneName,
    check_quiet_window,
)
from dispatcher.engine.runtime import Runtime
from dispatcher.web.api.auth import RuntimeDep, SubscribersToken
from dispatcher.web.api.idempotency import IdempotencyDep
from dispatcher.web.api.pagination import DEFAULT_LIMIT, Cursor, Limit, Page, decode_cursor, page_of
from dispatcher.web.api.problems import AUTH_PROBLEMS, NOT_FOUND, FieldError, ProblemError

router = APIRouter(prefix="/subscribers", tags=["subscribers"], responses=AUTH_PROBLEMS)

SubscriberId = Annotated[int, Path(ge=1, le=2**31 - 1, description="Subscriber id.")]
LOCALE = r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8})*$"
CLOCK = r"^([01]?[0-9]|2[0-3]):[0-5][0-9]$"
ZONES: list[JsonValue] = [*sorted(available_timezones()), None]
"""Every IANA zone this server knows (and null): the description lists exactly what it takes."""
PHONE = r"^\+[1-9][0-9]{6,14}$"
"""E.164's shape; whether a country's plan has the number is checked when it is used (409)."""
URL = r"^[hH][tT][tT][pP][sS]?://[^\s]+$"
_B64 = "[A-Za-z0-9+/]"
SECRET = (
    rf"^whsec_((?:{_B64}{{4}}){{8,20}}(?:{_B64}{{2}}==|{_B64}{{3}}=)?"
    rf"|(?:{_B64}{{4}}){{21}}(?:{_B64}{{2}}==)?)$"
)
"""whsec_ and the base64 (padded) of 24 to 64 bytes."""
_GIVEN = {"type": "string"}
QUIET_RULE: dict[str, Any] = {
    "description": "Quiet hours are whole: quiet_start and quiet_end both, or neither.",
    "anyOf": [
        {
            "required": ["quiet_start", "quiet_end"],
            "properties": {"quiet_start": _GIVEN, "quiet_end": _GIVEN},
        },
        {
            "not": {
                "anyOf": [
                    {"required": ["quiet_start"], "properties": {"quiet_start": _GIVEN}},
                    {"required": ["quiet_end"], "properties": {"quiet_end": _GIVEN}},
                ]
            }
        },
    ],
}


def _add_all_of(schema: dict[str, Any], *rules: dict[str, Any]) -> None:
    schema.setdefault("allOf", []).extend(rules)


CONTACT_RULES: dict[str, Any] = {
    "allOf": [
        {
            "description": "At least one of email, phone, webhook_url.",
            "anyOf": [
                {"required": [f], "properties": {f: _GIVEN}} for f in ("email", "phone", "webhook_url")
            ],
        },
        {
            "description": "A webhook_secret only with a webhook_url.",
            "anyOf": [
                {"not": {"required": ["webhook_secret"], "properties": {"webhook_secret": _GIVEN}}},
                {"required": ["webhook_url"], "properties": {"webhook_url": _GIVEN}},
            ],
        },
    ]
}


class ContactPointOut(BaseModel):
    channel: ChannelKind
    address: str
    opted_out: bool
    confirmed: bool


class Preferences(BaseModel):
    """What a subscriber is told about, where, and when."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra=lambda schema: _add_all_of(schema, QUIET_RULE)
    )

    channels: list[ChannelKind] | None = Field(
        default=None, description="Only these channels; null: every channel they have an address on."
    )
    components: list[Annotated[str, Field(max_length=100)]] = Field(
        default_factory=list, max_length=100, description="Components followed; empty: all."
    )
    min_severity: Severity = Severity.MINOR
    locale: str = Field(default="en", pattern=LOCALE)
    quiet_start: ClockTime | None = Field(
        default=None,
        json_schema_extra={"pattern": CLOCK},
        description="HH:MM; non-critical updates wait until quiet_end.",
    )
    quiet_end: ClockTime | None = Field(default=None, json_schema_extra={"pattern": CLOCK})
    timezone: TimeZoneName | None = Field(
        default=None, json_schema_extra={"enum": ZONES}, description="IANA zone of the quiet hours."
    )

    @model_validator(mode="after")
    def _both_ends(self) -> Preferences:
        if (self.quiet_start is None) != (self.quiet_end is None):
            check_quiet_window(self.quiet_start, self.quiet_end, by_field=True)
        return self

    def check_window(self) -> None:
        """Two ends that are the same time (``7:00`` and ``07:00``) make no window: refused (409) where
        the preferences are used, since the description cannot say which two strings name one time."""
        try:
            check_quiet_window(self.quiet_start, self.quiet_end, by_field=True)
        except ValueError as exc:
            raise _field_problem("quiet_end", str(exc), 409) from None


class PreferencesOut(Preferences):
    opted_out: dict[str, bool] = Field(description="Per channel the subscriber has an address on.")


class PreferencesIn(Preferences):
    opted_out: dict[ChannelKind, Annotated[bool, Field(strict=True)]] = Field(
        default_factory=dict, description="Opt out of (true) or back into (false) a channel."
    )


class SubscriberOut(BaseModel):
    id: int
    external_id: str | None
    name: str | None
    locale: str
    components: list[str]
    min_severity: Severity
    internal: bool
    region: str | None
    plan: str | None
    tags: list[str]
    channels: list[ChannelKind] | None
    quiet_start: str | None
    quiet_end: str | None
    timezone: str | None
    contact_points: list[ContactPointOut]


class Profile(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str | None = Field(default=None, max_length=200)
    external_id: str | None = Field(default=None, min_length=1, max_length=200)
    internal: bool = Field(default=False, strict=True, description="Staff: also gets internal updates.")
    region: str | None = Field(default=None, max_length=50)
    plan: str | None = Field(default=None, max_length=50)
    tags: list[Annotated[str, Field(max_length=50)]] = Field(default_factory=list, max_length=50)


class SubscriberIn(Preferences, Profile):
    """A new subscriber: at least one of email, phone, webhook_url."""

    model_config = ConfigDict(
        json_schema_extra=lambda schema: _add_all_of(schema, QUIET_RULE, *CONTACT_RULES["allOf"])
    )

    email: str | None = Field(default=None, max_length=320, json_schema_extra={"format": "email"})
    phone: str | None = Field(
        default=None,
        max_length=32,
        json_schema_extra={"pattern": PHONE},
        description="E.164, e.g. +447911123456; a number no country's plan has is refused (409).",
    )
    webhook_url: str | None = Field(
        default=None,
        max_length=2048,
        json_schema_extra={"pattern": URL},
        description="http(s); one that resolves to a private address is refused (409) unless allowed.",
    )
    webhook_secret: str | None = Field(
        default=None,
        max_length=200,
        json_schema_extra={"pattern": SECRET},
        description="whsec_ + base64 of 24-64 bytes; generated if absent.",
    )

    @field_validator("email")
    @classmethod
    def _email(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if "@" not in value:  # ``format: email`` as JSON Schema validators check it (422)
            raise ValueError("not an email address: it has no @")
        try:
            return validate_email(value, check_deliverability=False).normalized
        except EmailNotValidError:
            return value  # as described, refused by email-validator in ``subscriber`` (409)

    @field_validator("phone")
    @classmethod
    def _phone(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            number = phonenumbers.parse(value, None)
        except phonenumbers.NumberParseException:
            if re.fullmatch(PHONE, value):  # E.164's shape, but no country code has it
                return value  # refused in ``subscriber`` as a number no plan has (409)
            raise ValueError("not a phone number: write it as +<country code><number>") from None
        if not phonenumbers.is_valid_number(number):
            return value  # refused in ``subscriber``: written right, but no such number (409)
        return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)

    @field_validator("webhook_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not re.fullmatch(URL, value):
            raise ValueError("must be an http:// or https:// URL without spaces")
        return value

    @field_validator("webhook_secret")
    @classmethod
    def _secret(cls, value: str | None) -> str | None:
        if value is not None and not (re.fullmatch(SECRET, value) and _valid_secret(value)):
            raise ValueError("must be whsec_ followed by base64 of 24 to 64 bytes")
        return value

    @model_validator(mode="after")
    def _has_contact(self) -> SubscriberIn:
        if not (self.email or self.phone or self.webhook_url):
            raise ValueError("give at least one of email, phone, webhook_url")
        if self.webhook_secret is not None and not self.webhook_url:
            raise ValueError("webhook_secret given without a webhook_url")
        return self

    def subscriber(self, rt: Runtime) -> Subscriber:
        points = []
        if self.email:
            try:
                validate_email(self.email, check_deliverability=False)
            except EmailNotValidError as exc:
                raise _field_problem("email", f"not a valid email address: {exc}", 409) from None
            points.append(ContactPoint(channel=ChannelKind.EMAIL, address=self.email))
        if self.phone:
            if not _a_real_number(self.phone):
                raise _field_problem("phone", "not a valid phone number: no country's plan has it", 409)
            points.append(ContactPoint(channel=ChannelKind.SMS, address=self.phone))
        if self.webhook_url:
            unreachable = EndpointCheck(rt.settings).problem(self.webhook_url)
            if unreachable is not None:
                raise _field_problem("webhook_url", unreachable, 409)
            if self.webhook_secret and not _valid_secret(self.webhook_secret):
                raise _field_problem("webhook_secret", "must be whsec_ followed by base64 of 24 to 64 bytes")
            points.append(
                ContactPoint(
                    channel=ChannelKind.WEBHOOK, address=self.webhook_url, secret=self.webhook_secret
                )
            )
        contact = {"email", "phone", "webhook_url", "webhook_secret"}
        return Subscriber.model_validate({**self.model_dump(exclude=contact), "contact_points": points})


class SubscriberPatch(BaseModel):
    """Only the fields given change (contact points are added by creating, removed by deleting)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str | None = Field(default=None, max_length=200)
    external_id: str | None = Field(default=None, min_length=1, max_length=200)
    internal: Annotated[bool, Field(strict=True)] | SkipJsonSchema[None] = None
    region: str | None = Field(default=None, max_length=50)
    plan: str | None = Field(default=None, max_length=50)
    tags: (
        Annotated[list[Annotated[str, Field(max_length=50)]], Field(max_length=50)] | SkipJsonSchema[None]
    ) = None
    components: (
        Annotated[list[Annotated[str, Field(max_length=100)]], Field(max_length=100)] | SkipJsonSchema[None]
    ) = None
    min_severity: Severity | SkipJsonSchema[None] = None
    locale: Annotated[str, StringConstraints(pattern=LOCALE)] | SkipJsonSchema[None] = None


class ImportProblem(BaseModel):
    line: int = Field(description="Line in the file (the header is line 1).")
    column: str
    reason: str


class ImportOut(BaseModel):
    imported: int
    skipped: int = Field(description="Bad rows left out (with skip_invalid).")
    problems: list[ImportProblem]


def _valid_secret(secret: str) -> bool:
    import base64
    import binascii

    if not secret.startswith("whsec_"):
        return False
    try:
        key = base64.b64decode(secret[len("whsec_") :], validate=True)
    except (binascii.Error, ValueError):
        return False
    return 24 <= len(key) <= 64


def _a_real_number(phone: str) -> bool:
    try:
        return phonenumbers.is_valid_number(phonenumbers.parse(phone, None))
    except phonenumbers.NumberParseException:
        return False


def _field_problem(field: str, message: str, status: int = 422) -> ProblemError:
    """422 when the value breaks what the description says; 409 when it is as described but refused by
    what no schema states (the network, the numbering plans)."""
    return ProblemError(
        status,
        "invalid-input",
        f"{field}: {message}",
        title="Invalid input",
        errors=[FieldError(field=field, message=message)],
    )


def _out(s: Subscriber) -> SubscriberOut:
    """The subscriber as shown (webhook secrets are not: ``ContactPointOut`` has no field for them)."""
    return SubscriberOut.model_validate(s, from_attributes=True)


def _preferences(s: Subscriber) -> PreferencesOut:
    shown = s.model_dump(include=set(Preferences.model_fields))
    opted_out = {cp.channel.value: cp.opted_out for cp in s.contact_points}
    return PreferencesOut.model_validate({**shown, "opted_out": opted_out})


@router.get("", summary="Subscribers, oldest first (cursor pagination)")
def list_(
    rt: RuntimeDep, _token: SubscribersToken, limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None
) -> Page[SubscriberOut]:
    found = list_subscribers(rt, decode_cursor(cursor), limit + 1)
    return page_of([_out(s) for s in found], [s.id or 0 for s in found], limit)


@router.post(
    "", status_code=201, response_model=SubscriberOut, summary="Add one subscriber; Idempotency-Key supported"
)
def create(body: SubscriberIn, rt: RuntimeDep, token: SubscribersToken, idem: IdempotencyDep) -> Response:
    body.check_window()
    return idem.run(token, 201, lambda: _out(create_subscriber(rt, body.subscriber(rt))))


CSV_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "The CSV file (UTF-8, header line first); columns: " + ", ".join(COLUMNS) + ".",
        "content": {"text/csv": {"schema": {"type": "string", "pattern": r"[^\t\n\r ]"}}},
    }
}


@router.post(
    "/import",
    status_code=201,
    response_model=ImportOut,
    summary="Import a subscriber CSV: all rows or none (unless skip_invalid); bad rows are listed",
    openapi_extra=CSV_BODY,
)
async def import_(
    request: Request,
    rt: RuntimeDep,
    token: SubscribersToken,
    idem: IdempotencyDep,
    skip_invalid: Annotated[bool, Query(description="Import the good rows even when some are bad.")] = False,
    region: Annotated[
        str | None, Query(pattern=r"^[A-Za-z]{2}$", description="Region for numbers without +, e.g. GB.")
    ] = None,
) -> Response:
    raw = await request.body()
    limit = rt.settings.limits.max_import_bytes  # also enforced while the body is read (request_guard)
    if len(raw) > limit:
        raise _field_problem("body", f"larger than {limit} bytes (limits.max_import_bytes): split the file")
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:  # not text, as the description asks: refused even with skip_invalid
        line = raw.count(b"\n", 0, exc.start) + 1
        raise _field_problem("body", f"line {line} is not UTF-8 text: save the file as CSV UTF-8") from None
    chosen = (region or rt.settings.default_region).upper()
    return await run_in_threadpool(idem.run, token, 201, lambda: _import(rt, raw, chosen, skip_invalid))


def _import(rt: Runtime, raw: bytes, region: str, skip_invalid: bool) -> ImportOut:
    with tempfile.TemporaryDirectory(prefix="tocsin-import-") as folder:
        path = FilePath(folder) / "subscribers.csv"
        path.write_bytes(raw)
        outcome = import_subscribers_file(rt, path, region, skip_invalid)
    problems = [ImportProblem(line=p.line, column=p.column, reason=p.reason) for p in outcome.problems]
    if problems and not skip_invalid:
        # 409, not 422: the body is the text/csv its description asks for; its rows break rules that
        # no schema of a CSV string can state (columns, addresses, phone plans).
        raise ProblemError(
            409,
            "invalid-csv",
            f"{outcome.summary()}; nothing imported (fix them, or skip_invalid=true)",
            title="Invalid CSV",
            errors=[
                FieldError(field=f"line {p.line}" + (f".{p.column}" if p.column else ""), message=p.reason)
                for p in problems
            ],
        )
    return ImportOut(imported=outcome.imported, skipped=outcome.skipped, problems=problems)


@router.get("/{subscriber_id:int}", summary="One subscriber", responses=NOT_FOUND)
def get_(subscriber_id: SubscriberId, rt: RuntimeDep, _token: SubscribersToken) -> SubscriberOut:
    return _out(get_subscriber(rt, subscriber_id))


@router.patch(
    "/{subscriber_id:int}", summary="Change a subscriber's profile or preferences", responses=NOT_FOUND
)
def patch(
    subscriber_id: SubscriberId, body: SubscriberPatch, rt: RuntimeDep, _token: SubscribersToken
) -> SubscriberOut:
    changes = body.model_dump(exclude_unset=True)
    return _out(change_subscriber(rt, subscriber_id, changes))


@router.delete("/{subscriber_id:int}", status_code=204, summary="Delete a subscriber", responses=NOT_FOUND)
def delete(subscriber_id: SubscriberId, rt: RuntimeDep, _token: SubscribersToken) -> Response:
    delete_subscriber(rt, subscriber_id)
    return Response(status_code=204)


@router.get("/{subscriber_id:int}/preferences", summary="A subscriber's preferences", responses=NOT_FOUND)
def get_preferences(subscriber_id: SubscriberId, rt: RuntimeDep, _token: SubscribersToken) -> PreferencesOut:
    return _preferences(get_subscriber(rt, subscriber_id))


@router.put(
    "/{subscriber_id:int}/preferences", summary="Replace a subscriber's preferences", responses=NOT_FOUND
)
def put_preferences(
    subscriber_id: SubscriberId, body: PreferencesIn, rt: RuntimeDep, _token: SubscribersToken
) -> PreferencesOut:
    body.check_window()
    changes = body.model_dump(exclude={"opted_out"})
    return _preferences(change_subscriber(rt, subscriber_id, changes, body.opted_out))
