"""What the public self-service pages take, as the server reads it and as ``/openapi.json`` states it.

One set of pydantic models validates every request body (JSON or an HTML form) and writes its
description, so the two cannot drift: a body that breaks the description (a type, a pattern, a length,
an enum, which address a channel needs) is a 422 naming the field; one that matches it but is refused by
what no schema knows (a component this page does not have, a phone number no country's plan has, a
webhook that does not answer its ping, a wrong code) is a 409.

Forms follow the browser's rules, stated in their own description: every value is text; a blank field
is a field left out (a browser posts its empty inputs); ``components`` and ``receiving`` may repeat and
``components`` may also list names separated by commas; any other field is given once. JSON takes no
``null``: leave a field out instead.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Sequence
from typing import Annotated, Any, Literal, TypeVar
from zoneinfo import available_timezones

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    JsonValue,
    StringConstraints,
    ValidationError,
    WithJsonSchema,
    model_validator,
)
from pydantic.json_schema import SkipJsonSchema

from dispatcher.audience.consent import MAX_COMPONENTS
from dispatcher.config.keys import CODES, Purpose
from dispatcher.domain.errors import InvalidInput
from dispatcher.domain.models import Severity

__all__ = [
    "BLANK",
    "FORM",
    "JSON",
    "BodyError",
    "ManageBody",
    "SignupBody",
    "VerifyBody",
    "declare_self_service_bodies",
    "described_body",
    "is_blank",
    "read_form",
    "read_json",
    "token_pattern",
    "validate",
]

JSON = "application/json"
FORM = "application/x-www-form-urlencoded"
_SPACES = "\t\n\r \xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
"""What ``str.strip()`` removes, less the control characters the request guard refuses before."""
BLANK = rf"^[{_SPACES}]*$"
NOT_BLANK = rf"[^{_SPACES}]"
LOCALE = r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8})*$"
CLOCK = r"^([01]?[0-9]|2[0-3]):[0-5][0-9]$"
ZONES: list[JsonValue] = list(sorted(available_timezones()))
PHONE = r"^\+?[0-9][0-9 ().-]{5,30}$"
"""Digits, spaces, dots, dashes and brackets, with or without + (a number without one is read in the
server's ``default_region``); whether a country's plan has the number is checked when it is used (409)."""
URL = r"^[hH][tT][tT][pP][sS]?://[^\s\x00-\x1f\x7f-\x9f]+$"
CODE = r"^[0-9 ]*[0-9][0-9 ]*$"
"""The six digits we texted; spaces between them are fine."""
MAX_COMPONENT = 100
_CONTROL = r"\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f"
"""The control characters the request guard refuses (``PLAIN_TEXT``): no pattern of ours lets one in."""
_NAME = rf"[^,{_SPACES}{_CONTROL}]([^,{_CONTROL}]{{0,{MAX_COMPONENT - 2}}}[^,{_SPACES}{_CONTROL}])?"
_PIECE = rf"[{_SPACES}]*({_NAME})?[{_SPACES}]*"
FORM_COMPONENTS = rf"^{_PIECE}(,{_PIECE})*$"
"""A form's ``components`` value: names separated by commas, each at most 100 characters once the
spaces around it are left out."""
_DIGITS = re.compile(r"[0-9]+")
ADDRESS_OF = {"email": "email", "sms": "phone", "webhook": "url"}
"""The field a form gives each channel's address in (JSON may use ``address`` instead)."""
_ADDRESS_SCHEMA: dict[str, dict[str, Any]] = {
    "email": {"type": "string", "format": "email", "maxLength": 320},
    "sms": {"type": "string", "pattern": PHONE},
    "webhook": {"type": "string", "pattern": URL, "maxLength": 500},
}


def token_pattern(purpose: Purpose) -> str:
    """What a link's token looks like: purpose code, contact point, expiry, HMAC-SHA256 (base64url)."""
    return rf"^{CODES[purpose]}\.[0-9]{{1,10}}\.[0-9]{{1,12}}\.[A-Za-z0-9_-]{{43}}$"


def is_blank(value: str) -> bool:
    return re.fullmatch(BLANK, value) is not None


def _no_nulls(data: Any) -> Any:
    if isinstance(data, dict):
        given_null = [name for name, value in data.items() if value is None]
        if given_null:
            raise ValueError(f"{given_null[0]}: null is not a value here; leave the field out")
    return data


def _drop_null_defaults(schema: dict[str, Any]) -> None:
    for prop in schema.get("properties", {}).values():
        if prop.get("default", ...) is None:
            del prop["default"]


_Clock = Annotated[str, StringConstraints(pattern=CLOCK)]
"""A constraint on the string itself: on the optional field, pydantic would leave it out of the schema."""


class PreferencesBody(BaseModel):
    """What a subscriber follows and how they are told (unset fields keep their defaults)."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra=lambda schema: _preference_rules(schema, JSON)
    )

    components: list[Annotated[str, Field(max_length=MAX_COMPONENT)]] = Field(
        default_factory=list,
        max_length=MAX_COMPONENTS,
        description="Components followed (the status page's names); empty: all of them.",
    )
    min_severity: Severity = Severity.MINOR
    locale: str = Field(default="en", max_length=20, pattern=LOCALE, description="e.g. en, fr, fr-CA.")
    timezone: str | SkipJsonSchema[None] = Field(
        default=None, json_schema_extra={"enum": ZONES}, description="IANA zone of the quiet hours."
    )
    quiet_start: _Clock | SkipJsonSchema[None] = Field(
        default=None, description="HH:MM; non-critical updates wait until quiet_end."
    )
    quiet_end: _Clock | SkipJsonSchema[None] = None

    @model_validator(mode="before")
    @classmethod
    def _refuse_null(cls, data: Any) -> Any:
        return _no_nulls(data)

    @model_validator(mode="after")
    def _known_zone(self) -> PreferencesBody:
        if self.timezone is not None and self.timezone not in ZONES:
            raise ValueError(f"timezone: {self.timezone!r} is not an IANA zone this server knows")
        return self

    @model_validator(mode="after")
    def _whole_quiet_hours(self) -> PreferencesBody:
        if (self.quiet_start is None) != (self.quiet_end is None):
            missing = "quiet_end" if self.quiet_end is None else "quiet_start"
            raise ValueError(f"{missing}: quiet hours need both quiet_start and quiet_end")
        return self

    def preferences(self) -> dict[str, Any]:
        return self.model_dump(include=set(PreferencesBody.model_fields), exclude_none=True)


_Text = str | SkipJsonSchema[None]


class SignupBody(PreferencesBody):
    """A signup: ``channel`` and ``address``, or the channel's own field (``email``, ``phone``, ``url``).
    Without ``channel``: sms when a ``phone`` is given, else webhook when a ``url`` is, else email."""

    model_config = ConfigDict(json_schema_extra=lambda schema: _signup_rules(schema, JSON))

    channel: Literal["email", "sms", "webhook"] | SkipJsonSchema[None] = None
    address: _Text = Field(default=None, description="The email address, phone number or webhook URL.")
    email: _Text = None
    phone: _Text = Field(default=None, description="e.g. +1 202 555 0100; without +, in the server's region.")
    url: _Text = Field(default=None, description="http(s); it must answer a signed verification ping.")

    @property
    def chosen(self) -> str:
        if self.channel is not None:
            return self.channel
        return "sms" if self.phone is not None else "webhook" if self.url is not None else "email"

    @model_validator(mode="after")
    def _address(self) -> SignupBody:
        own = ADDRESS_OF[self.chosen]
        field, value = ("address", self.address) if self.address is not None else (own, getattr(self, own))
        if value is None:
            raise ValueError(f"{own}: give the address to send {self.chosen} updates to")
        if self.chosen == "email":
            # ``format: email`` as JSON Schema validators check it; what email-validator refuses
            # besides (a reserved domain, a local part too long) is refused where it is stored (409).
            if len(value) > 320 or "@" not in value:
                raise ValueError(f"{field}: {value[:60]!r} is not an email address")
        elif self.chosen == "sms" and not re.fullmatch(PHONE, value):
            raise ValueError(f"{field}: {value!r} is not a phone number (digits, spaces, + . - ( ) only)")
        elif self.chosen == "webhook" and not (re.fullmatch(URL, value) and len(value) <= 500):
            raise ValueError(f"{field}: must be an http:// or https:// URL without spaces (500 characters)")
        return self

    @property
    def given_address(self) -> str:
        value = self.address if self.address is not None else getattr(self, ADDRESS_OF[self.chosen])
        assert isinstance(value, str)
        return value


def _given(name: str, media: str, value: dict[str, Any] | None = None) -> dict[str, Any]:
    """``name`` is given (in a form: not blank) and, when ``value`` says so, is such a value."""
    must: dict[str, Any] = copy.deepcopy(value or {})
    if media == FORM:  # a blank form field is a field left out
        must = {"allOf": [{"type": "string", "pattern": NOT_BLANK}, must]}
    return {"required": [name], "properties": {name: must}}


def _absent(name: str, media: str) -> dict[str, Any]:
    return {"not": _given(name, media)}


def _preference_rules(schema: dict[str, Any], media: str) -> None:
    """Quiet hours are whole (``PreferencesBody._whole_quiet_hours``)."""
    _drop_null_defaults(schema)
    ends = ("quiet_start", "quiet_end")
    schema["allOf"] = [
        {
            "description": "Quiet hours are whole: quiet_start and quiet_end both, or neither.",
            "anyOf": [
                {"allOf": [_given(end, media) for end in ends]},
                {"allOf": [_absent(end, media) for end in ends]},
            ],
        }
    ]


def _signup_rules(schema: dict[str, Any], media: str) -> None:
    """Which address each channel needs, as the server reads it (``SignupBody.chosen``, ``_address``)."""
    _preference_rules(schema, media)
    inferred = {
        "sms": [_given("phone", media)],
        "webhook": [_absent("phone", media), _given("url", media)],
        "email": [_absent("phone", media), _absent("url", media)],
    }
    branches = []
    for channel, own in ADDRESS_OF.items():
        address = _ADDRESS_SCHEMA[channel]
        named = {
            "anyOf": [
                _given("channel", media, {"const": channel}),
                {"allOf": [_absent("channel", media), *inferred[channel]]},
            ]
        }
        found = {
            "anyOf": [
                _given("address", media, address),
                {"allOf": [_absent("address", media), _given(own, media, address)]},
            ]
        }
        branches.append(
            {"description": f"{channel}: the address in `address`, else in `{own}`.", "allOf": [named, found]}
        )
    schema["anyOf"] = branches


class VerifyBody(BaseModel):
    """The code we texted."""

    model_config = ConfigDict(extra="forbid")

    code: str = Field(pattern=CODE, max_length=20, description="The six digits (spaces between are fine).")

    @model_validator(mode="before")
    @classmethod
    def _refuse_null(cls, data: Any) -> Any:
        return _no_nulls(data)


def _whole_number(value: Any) -> int:
    """JSON Schema's ``integer`` (``7`` or ``7.0``, never a bool or text), not negative."""
    whole = isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    if isinstance(value, bool) or not whole or value < 0:
        raise ValueError("must be a contact id (a whole number, 0 or more)")
    return int(value)


ContactId = Annotated[
    int, BeforeValidator(_whole_number), WithJsonSchema({"type": "integer", "minimum": 0})
]


class ManageBody(PreferencesBody):
    """``action=save`` (the default): keep these preferences and send only to the contacts in
    ``receiving`` (ids from the page; the others are opted out). ``action=stop``: opt every contact out.
    ``receiving`` left out of a JSON body leaves every contact as it is; a form posts no box that is not
    ticked, so a form without it stops every contact (the page's meaning of "none ticked")."""

    action: Literal["save", "stop"] | SkipJsonSchema[None] = None
    receiving: list[ContactId] | SkipJsonSchema[None] = Field(
        default=None,
        description=(
            "Ids of the contacts that keep getting updates; the others stop. Left out of a JSON body: "
            "every contact stays as it is. Left out of a form: none is ticked, every contact stops."
        ),
    )


MODELS: dict[str, type[BaseModel]] = {
    "SelfServiceSignup": SignupBody,
    "SelfServiceVerify": VerifyBody,
    "SelfServiceManage": ManageBody,
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _form_of(schema: dict[str, Any]) -> dict[str, Any]:
    """The form spelling of a JSON body's description: text everywhere, blank meaning left out."""
    form = {**schema, "properties": {}}
    for name, prop in schema["properties"].items():
        if name in LIST_FIELDS:  # one field or several: on the wire, one value is a list of one
            item = {"type": "string", "pattern": FORM_COMPONENTS if name == "components" else r"^[0-9]+$"}
            form["properties"][name] = {"anyOf": [item, {**prop, "items": item}]}
        elif name == "code":
            form["properties"][name] = prop  # required: a blank code is no code (its pattern says so)
        else:
            form["properties"][name] = {"anyOf": [prop, {"type": "string", "pattern": BLANK}]}
    if "anyOf" in schema:
        _signup_rules(form, FORM)
    elif "allOf" in schema:
        _preference_rules(form, FORM)
    return form


def declare_self_service_bodies(openapi: dict[str, Any]) -> dict[str, Any]:
    """Add the self-service bodies (JSON, and the form spelling ``…Form``) to the components."""
    schemas = openapi.setdefault("components", {}).setdefault("schemas", {})
    for name, model in MODELS.items():
        found = model.model_json_schema(ref_template="#/components/schemas/{model}")
        for inner, definition in found.pop("$defs", {}).items():
            schemas.setdefault(inner, definition)
        schemas[name] = found
        schemas[name + "Form"] = _form_of(found)
    return openapi


def described_body(name: str) -> dict[str, Any]:
    """An operation's ``requestBody``: the JSON body and its form spelling."""
    return {
        "required": True,
        "content": {JSON: {"schema": _ref(name)}, FORM: {"schema": _ref(name + "Form")}},
    }


def digits(value: str) -> bool:
    return _DIGITS.fullmatch(value) is not None


class BodyError(Exception):
    """The body breaks its description (422) or is not JSON at all (400); ``field`` names what."""

    def __init__(self, field: str, message: str, status: int = 422) -> None:
        super().__init__(f"{field}: {message}")
        self.field, self.status = field, status


LIST_FIELDS = ("components", "receiving")


def read_json(raw: bytes) -> dict[str, Any]:
    try:
        data = json.loads(raw or b"null")
    except ValueError:
        raise BodyError("body", "not valid JSON", 400) from None
    if not isinstance(data, dict):
        raise BodyError("body", "expected a JSON object")
    return data


def read_form(items: Sequence[tuple[str, Any]]) -> dict[str, Any]:
    """A form's fields as the models read them (see the module docstring)."""
    grouped: dict[str, list[str]] = {}
    for key, value in items:
        if not isinstance(value, str):
            raise BodyError(key, "a file is not expected here")
        grouped.setdefault(key, []).append(value)
    data: dict[str, Any] = {}
    for key, values in grouped.items():
        if key in LIST_FIELDS:
            data[key] = values
        elif len(values) > 1:
            raise BodyError(key, "give it once")
        elif not is_blank(values[0]):
            data[key] = values[0]
    if "components" in data:
        data["components"] = _form_components(data["components"])
    if "receiving" in data:
        wrong = [r for r in data["receiving"] if not digits(r)]
        if wrong:
            raise BodyError("receiving", f"{wrong[0]!r} is not a contact id")
        data["receiving"] = [int(r) for r in data["receiving"]]
    return data


def _form_components(raw: list[str]) -> list[str]:
    if len(raw) > MAX_COMPONENTS:
        raise BodyError("components", f"at most {MAX_COMPONENTS} fields, got {len(raw)}")
    for value in raw:
        if not re.fullmatch(FORM_COMPONENTS, value):
            raise BodyError("components", f"{value[:40]!r}…: a name is at most {MAX_COMPONENT} characters")
    names = list(dict.fromkeys(p.strip() for value in raw for p in value.split(",") if p.strip()))
    if len(names) > MAX_COMPONENTS:  # the description counts fields, not the names inside them
        raise InvalidInput(f"components: at most {MAX_COMPONENTS} names, got {len(names)}")
    return names


Body = TypeVar("Body", bound=BaseModel)


def _field(loc: Sequence[int | str]) -> str:
    """The top-level field and the list positions after it (``receiving.1``), without pydantic's
    names of the union member it tried (``channel.literal['email','sms','webhook']``)."""
    parts = [str(loc[0])] if loc else []
    for part in loc[1:]:
        if not isinstance(part, int):
            break
        parts.append(str(part))
    return ".".join(parts)


def validate(model: type[Body], data: dict[str, Any]) -> Body:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        message = str(err["msg"]).removeprefix("Value error, ")
        field = _field(err["loc"])
        if not field:  # a rule across fields names its own field: "email: …"
            head, sep, tail = message.partition(": ")
            field, message = (head, tail) if sep and " " not in head else ("body", message)
        raise BodyError(field, message) from None
