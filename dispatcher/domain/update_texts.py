"""An update's words in several languages and for several channels, and which of them a reader gets.

An update is written first in the organisation's default language (``message``). It may also carry,
per locale, a ``message`` in that language and short texts of its own for SMS (``sms``) and X
(``social``) and a longer body for email (``email``); for the default language only those channel
texts. Every text is stored with the update and never changes once published.

A reader gets the most specific text there is for their locale (``fr-CA``, then ``fr``) and channel
(the SMS text, else the locale's message). A reader whose language has no text at all gets the default
language's, and the layout says so in the reader's own language (``fallback``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
)

from channels.base import ChannelKind
from dispatcher.domain.locales import LOCALE_PATTERN, locale_candidates
from dispatcher.domain.text_safety import refuse_control_characters

__all__ = ["CHANNEL_TEXTS", "LocaleText", "PickedText", "check_locale_texts", "normalise_locale", "pick_text"]


class LocaleText(BaseModel):
    """One language's words for an update (every field optional; see the module docstring)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    message: str | None = Field(default=None, min_length=1, max_length=4000)
    sms: str | None = Field(default=None, min_length=1, max_length=1000)
    """A short text for SMS, in place of the message."""
    social: str | None = Field(default=None, min_length=1, max_length=1000)
    """A short text for X (social), in place of the message."""
    email: str | None = Field(default=None, min_length=1, max_length=20000)
    """A longer body for email, in place of the message."""

    @field_validator("message", "sms", "social", "email")
    @classmethod
    def _no_control_characters(cls, value: str | None) -> str | None:
        return None if value is None else refuse_control_characters(value)

    @model_serializer(mode="wrap")
    def _given_only(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """Only the texts given: ``{"message": …}``, never ``"sms": null``."""
        return {k: v for k, v in handler(self).items() if v is not None}

    def for_channel(self, channel: ChannelKind) -> str | None:
        field = CHANNEL_TEXTS.get(channel)
        own = getattr(self, field) if field else None
        return own if own is not None else self.message

    def items(self) -> list[tuple[str, str]]:
        """(field, text) of every text given."""
        given = ((name, getattr(self, name)) for name in type(self).model_fields)
        return [(name, value) for name, value in given if value is not None]


CHANNEL_TEXTS: dict[ChannelKind, str] = {
    ChannelKind.SMS: "sms",
    ChannelKind.SOCIAL: "social",
    ChannelKind.EMAIL: "email",
}
"""Which channels may carry a text of their own, and its field."""


def normalise_locale(tag: str) -> str:
    """``fr_ca`` -> ``fr-CA``; ``ValueError`` naming a tag that is not a locale."""
    candidates = locale_candidates(tag.strip())
    if not candidates:
        raise ValueError(f"{tag!r} is not a locale tag such as en, fr or fr-CA")
    return candidates[0]


def check_locale_texts(texts: dict[str, LocaleText], default_locale: str) -> dict[str, LocaleText]:
    """The texts keyed by normalised locale; ``ValueError`` naming what is wrong.

    Another language needs its ``message`` (a channel text alone would leave its email or webhook
    readers with another language's words); the default language's message is the update's own."""
    default = normalise_locale(default_locale)
    cleaned: dict[str, LocaleText] = {}
    for tag, text in texts.items():
        if not LOCALE_PATTERN.match(tag.strip()):
            raise ValueError(f"texts: {tag!r} is not a locale tag such as fr or fr-CA")
        locale = normalise_locale(tag)
        if locale in cleaned:
            raise ValueError(f"texts: {locale} is given twice")
        if locale == default and text.message is not None:
            raise ValueError(f"texts.{locale}.message: the {locale} message is the update's message itself")
        if locale != default and text.message is None:
            raise ValueError(f"texts.{locale}.message: a text in {locale} needs its message")
        if text.items():
            cleaned[locale] = text
    return cleaned


@dataclass(frozen=True)
class PickedText:
    text: str
    locale: str
    """The language the text is in."""
    fallback: bool = False
    """The reader's language had no text: this is the default language's."""


def pick_text(
    message: str,
    texts: dict[str, LocaleText] | None,
    default_locale: str,
    reader_locale: str | None,
    channel: ChannelKind,
) -> PickedText:
    """The text a reader in ``reader_locale`` gets on ``channel`` (see the module docstring)."""
    texts = texts or {}
    default = normalise_locale(default_locale)
    default_language = default.split("-")[0]
    own = texts.get(default)
    default_text = (own.for_channel(channel) if own else None) or message
    for candidate in locale_candidates(reader_locale or ""):
        given = texts.get(candidate)
        if given is not None and given.message is not None:
            return PickedText(given.for_channel(channel) or given.message, candidate)
        if candidate in (default, default_language):
            return PickedText(default_text, default)
    language = (locale_candidates(reader_locale or "") or [""])[-1]
    for locale, given in sorted(texts.items()):  # fr-CA's text for a reader who said only "fr"
        if given.message is not None and locale.split("-")[0] == language:
            return PickedText(given.for_channel(channel) or given.message, locale)
    if not reader_locale or not locale_candidates(reader_locale):
        return PickedText(default_text, default)
    return PickedText(default_text, default, fallback=True)
