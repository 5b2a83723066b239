"""Loading the configuration strictly: every problem named by file (or environment variable), table and
key, with the nearest valid key, and nothing silently dropped.

``load_settings()`` is what every interface calls at start-up. It raises one ``ConfigurationError``
listing every problem: unknown keys at any level ("did you mean `lease_seconds`?"), a key written under
the wrong table (TOML puts every key after ``[retry]`` into ``[retry]``), ``TOCSIN_*`` variables that
are no setting, unknown provider names, and provider options of the wrong shape.
"""

from __future__ import annotations

import os
import types
from collections.abc import Mapping, Sequence
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

from channels.base import ChannelKind
from dispatcher.config.names import UNKNOWN_PROVIDER, did_you_mean, nearest
from dispatcher.config.origin import ENV_DELIMITER, ENV_PREFIX, Sources, table_name
from dispatcher.config.providers import provider_problems
from dispatcher.config.settings import Settings, config_file_path
from dispatcher.domain.errors import ConfigurationError

NOT_SETTINGS = frozenset({"CONFIG", "USER", "TOKEN"})
"""``TOCSIN_CONFIG`` (which file), ``TOCSIN_USER`` (who you are) and ``TOCSIN_TOKEN`` (your personal
token, proving who you are when you approve): read, but not settings."""
NOT_SETTINGS_PREFIXES = ("TEST_", "BENCH_", "CHAOS_")
"""Read by the test suite and the benchmarks only."""


def load_settings() -> Settings:
    """The settings (environment, ``tocsin.toml``, defaults), or one ``ConfigurationError`` naming
    every problem found."""
    env = os.environ
    sources = Sources.read(config_file_path(), env)
    problems = unknown_environment(env)
    settings: Settings | None = None
    try:
        settings = Settings()
    except ValidationError as exc:
        problems.extend(explain(exc, sources))
    if settings is not None:
        problems.extend(provider_problems(settings, sources))
    if problems:
        raise ConfigurationError(summarise(problems))
    assert settings is not None
    return settings


def summarise(problems: Sequence[str]) -> str:
    """One problem on one line; several as a list under a count."""
    unique = list(dict.fromkeys(problems))
    if len(unique) == 1:
        return unique[0]
    return f"{len(unique)} configuration problems:\n  " + "\n  ".join(unique)


def unknown_environment(env: Mapping[str, str]) -> list[str]:
    """``TOCSIN_*`` variables that name no setting (pydantic-settings would ignore them)."""
    fields = sorted(Settings.model_fields)
    problems = []
    for name in sorted(env):
        upper = name.upper()
        if not upper.startswith(ENV_PREFIX):
            continue
        rest = upper[len(ENV_PREFIX) :]
        if rest in NOT_SETTINGS or rest.startswith(NOT_SETTINGS_PREFIXES):
            continue
        top = rest.split(ENV_DELIMITER, 1)[0].lower()
        if top not in Settings.model_fields:
            guess = nearest(top, fields)
            hint = f" (did you mean `{ENV_PREFIX}{guess.upper()}`?)" if guess else ""
            problems.append(f"environment: {name} is not a Tocsin setting{hint}")
    return problems


def explain(exc: ValidationError, sources: Sources) -> list[str]:
    """One line per error: where it was written, the table, the key, what is wrong, what was meant."""
    lines: list[str] = []
    for error in exc.errors():
        if error["type"] == UNKNOWN_PROVIDER:
            lines.extend(_unknown_providers(error["ctx"], sources))
        else:
            lines.append(_explain_one(error, sources))
    return lines


def _explain_one(error: Mapping[str, Any], sources: Sources) -> str:
    loc = [str(part) for part in error["loc"]]
    if loc and loc[0].isupper():  # named by its alias (TOCSIN_DATABASE_URL) wherever it came from
        loc[0] = loc[0].removeprefix(ENV_PREFIX).lower()
    kind = error["type"]
    if loc and loc[-1] == "[key]":  # a channel name that is none: [channels.emial]
        path, key = loc[:-2], loc[-2]
        channels = [k.value for k in ChannelKind]
        return (
            f"{sources.origin(loc[:-1])}: {table_name(path)} has no channel `{key}`"
            f"{did_you_mean(key, channels)}; channels: {', '.join(channels)}"
        )
    path, key = loc[:-1], (loc[-1] if loc else "")
    where = f"{sources.origin(loc)}: {table_name(path)}"
    if kind == "extra_forbidden":
        return where + _unknown_key(path, key)
    if kind == "missing":
        return f"{where} needs `{key}`"
    if not path:  # a top-level setting: its name says where it is
        return f"{sources.origin(loc)}: `{key}`: {_message(error)}"
    return f"{where} `{key}`: {_message(error)}"


def _message(error: Mapping[str, Any]) -> str:
    return str(error["msg"]).removeprefix("Value error, ")


def _unknown_key(path: Sequence[str], key: str) -> str:
    """`` has no setting `x` (did you mean `y`?)``, or where the key belongs instead."""
    text = f" has no setting `{key}`"
    if path and key in Settings.model_fields:
        return (
            f"{text}: `{key}` is a top-level setting; TOML puts every key written after "
            f"{table_name(path[:1])} into that table, so write it above the first [table]"
        )
    here = _fields_at(path)
    hint = did_you_mean(key, here)
    if not path and not hint:
        homes = [name for name, fields in _tables().items() if key in fields]
        if homes:
            return f"{text}: it belongs in [{homes[0]}]"
    return text + hint


def _unknown_providers(ctx: Mapping[str, Any], sources: Sources) -> list[str]:
    lines = []
    for problem in ctx["problems"]:
        path = str(problem["path"]).split(".")
        if ctx["table"]:
            lines.append(
                f"{sources.origin(path)}: {table_name(path)} names no provider{problem['hint']}; "
                f"known providers: {ctx['known']}"
            )
        else:
            lines.append(
                f"{sources.origin(path)}: {table_name(path[:-1])} `{path[-1]}`: unknown provider "
                f"`{problem['name']}`{problem['hint']}; known providers: {ctx['known']}"
            )
    return lines


def _model_of(annotation: Any) -> tuple[type[BaseModel] | None, bool]:
    """(the model a field holds, whether it is a mapping of such models)."""
    if get_origin(annotation) in (Union, types.UnionType):
        annotation = next((a for a in get_args(annotation) if a is not type(None)), None)
    keyed = get_origin(annotation) is dict
    if keyed:
        annotation = get_args(annotation)[1]
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation, keyed
    return None, keyed


def _fields_at(path: Sequence[str]) -> list[str]:
    """The valid keys of the table at ``path`` (empty when it holds free-form options)."""
    model: type[BaseModel] = Settings
    parts = list(path)
    while parts:
        info = model.model_fields.get(parts.pop(0))
        if info is None:
            return []
        inner, keyed = _model_of(info.annotation)
        if inner is None:
            return []
        if keyed:
            if not parts:
                return []
            parts.pop(0)
        model = inner
    return sorted(model.model_fields)


def _tables() -> dict[str, list[str]]:
    """Every table of plain settings and its keys (``retry`` → ``lease_seconds``, …)."""
    found = {}
    for name, info in Settings.model_fields.items():
        inner, keyed = _model_of(info.annotation)
        if inner is not None and not keyed:
            found[name] = sorted(inner.model_fields)
    return found
