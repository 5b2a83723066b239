"""The providers a configuration uses, checked before anything is sent: each can carry its channel, and
its options have the right shape (a Twilio SID is ``AC`` + 32 hex digits, a SendGrid key starts with
``SG.``, from-addresses are addresses, URLs have a scheme), as the adapter's own ``Options`` model says.

Only the providers of enabled channels are checked: a disabled chat channel needs no rooms. Providers
handed to the runtime as objects (``build_runtime(adapters=…)``) are skipped: they are configured.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Mapping
from typing import Any

from pydantic import BaseModel, ValidationError

from channels import registry
from dispatcher.config.names import did_you_mean
from dispatcher.config.origin import Sources, table_name
from dispatcher.config.settings import Settings, config_file_path


def provider_problems(
    settings: Settings, sources: Sources | None = None, skip: Collection[str] = ()
) -> list[str]:
    """One line per problem with a provider of an enabled channel; empty when all can be built."""
    sources = sources or Sources(config_file_path(), {}, os.environ)
    problems: list[str] = []
    checked: set[str] = set()
    for kind in settings.enabled_channels():
        path = ["channels", kind.value, "providers"]
        for name in settings.channels[kind].providers:
            if name in skip:
                continue
            try:
                factory = registry.adapter_class(name)
            except registry.UnknownProvider:
                continue  # named by the settings' own check
            except ImportError as exc:  # a plugin whose package is broken
                problems.append(f"{sources.origin(path)}: provider `{name}` cannot be loaded: {exc}")
                continue
            if kind not in factory.capabilities.kinds:
                carries = ", ".join(sorted(k.value for k in factory.capabilities.kinds))
                problems.append(
                    f"{sources.origin(path)}: {table_name(path[:2])} `providers`: `{name}` carries "
                    f"{carries}, not {kind.value}"
                )
            if name not in checked:
                checked.add(name)
                problems.extend(_option_problems(name, factory, settings.provider_options(name), sources))
    return problems


def _option_problems(
    name: str, factory: registry.AdapterFactory, options: Mapping[str, Any], sources: Sources
) -> list[str]:
    found = getattr(factory, "Options", None)
    model = found if isinstance(found, type) and issubclass(found, BaseModel) else None
    try:
        if model is not None:
            model.model_validate(dict(options))
        else:  # a plugin without an Options model: building it is the only check there is
            factory.from_options(options).close()
    except ValidationError as exc:
        fields = sorted(model.model_fields) if model is not None else []
        return [_option_error(name, err, fields, sources) for err in exc.errors()]
    except (ValueError, TypeError) as exc:
        return [f"{sources.origin(['providers', name])}: {table_name(['providers', name])}: {exc}"]
    return []


def _option_error(name: str, error: Mapping[str, Any], fields: list[str], sources: Sources) -> str:
    loc = [str(part) for part in error["loc"]]
    path = ["providers", name, *loc]
    where = f"{sources.origin(path)}: {table_name(path[:2])}"
    key = ".".join(loc)
    if error["type"] == "extra_forbidden":
        return f"{where} has no setting `{key}`{did_you_mean(key, fields)}"
    if error["type"] == "missing":
        return f"{where} needs `{key}`"
    message = str(error["msg"]).removeprefix("Value error, ")
    return f"{where} `{key}`: {message}" if key else f"{where}: {message}"
