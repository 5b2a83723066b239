"""Find adapters by provider name: the built-ins plus any registered under the ``tocsin.channels``
entry point group, so a user can add a provider without forking."""

from __future__ import annotations

import functools
import importlib
from collections.abc import Mapping
from importlib.metadata import entry_points
from typing import Any, Protocol

from pydantic import ValidationError

from channels.base import Adapter, Capabilities

BUILTIN: dict[str, str] = {
    "outbox": "channels.outbox:OutboxAdapter",
    "sendgrid": "channels.sendgrid:SendGridAdapter",
    "smtp": "channels.smtp:SmtpAdapter",
    "webhook": "channels.webhook:WebhookAdapter",
    "twilio": "channels.twilio:TwilioAdapter",
    "x": "channels.x:XAdapter",
    "apprise": "channels.chat:ChatAdapter",
    "statuspage": "channels.statuspage.adapter:StatusPageAdapter",
    "memory": "channels.memory:MemoryAdapter",
}

ENTRY_POINT_GROUP = "tocsin.channels"


class AdapterFactory(Protocol):
    name: str
    capabilities: Capabilities

    def from_options(self, options: Mapping[str, Any]) -> Adapter: ...


class UnknownProvider(LookupError):
    pass


class InvalidProviderOptions(ValueError):
    pass


def _import(target: str) -> AdapterFactory:
    module_name, _, attr = target.partition(":")
    factory: AdapterFactory = getattr(importlib.import_module(module_name), attr)
    return factory


@functools.cache
def available() -> dict[str, str]:
    """Provider name -> import target, entry points overriding nothing built in."""
    found = {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}
    return {**found, **BUILTIN}


@functools.cache
def adapter_class(name: str) -> AdapterFactory:
    targets = available()
    if name not in targets:
        known = ", ".join(sorted(targets))
        raise UnknownProvider(f"unknown provider {name!r} (known: {known})")
    return _import(targets[name])


def create(name: str, options: Mapping[str, Any]) -> Adapter:
    """Build the adapter ``name`` from its options, with a clear error naming any bad option."""
    factory = adapter_class(name)
    try:
        return factory.from_options(options)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or name}: {err['msg']}" for err in exc.errors()
        )
        raise InvalidProviderOptions(f"provider {name!r}: {problems}") from None
