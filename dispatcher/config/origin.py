"""Where a setting came from: ``tocsin.toml`` (named as the user gave it), an environment variable, or
the defaults, so an error can point at the line to fix rather than at a Python path."""

from __future__ import annotations

import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dispatcher.domain.errors import ConfigurationError

ENV_PREFIX = "TOCSIN_"
ENV_DELIMITER = "__"
UNPREFIXED = {"database_url": "DATABASE_URL", "redis_url": "REDIS_URL"}
"""Settings also read from these variables, as most platforms set them."""


@dataclass(frozen=True)
class Sources:
    """The configuration file's contents and the environment, as read for one load."""

    file: Path
    data: Mapping[str, Any] = field(default_factory=dict)
    env: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def read(cls, file: Path, env: Mapping[str, str]) -> Sources:
        """Parse ``file`` (absent: empty); a syntax error is a ``ConfigurationError`` naming the file."""
        if not file.exists():
            return cls(file, {}, env)
        try:
            data = tomllib.loads(file.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigurationError(f"{file}: not valid TOML: {exc}") from None
        except UnicodeDecodeError as exc:
            raise ConfigurationError(f"{file}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
        except OSError as exc:
            raise ConfigurationError(f"{file}: cannot be read: {exc.strerror or exc}") from None
        return cls(file, data, env)

    def origin(self, path: Sequence[str]) -> str:
        """``TOCSIN_RETRY__JITTER`` when the environment sets ``path`` (it wins over the file), else the
        file's name: it is where the value was written, or where it is missing."""
        upper = {name.upper(): name for name in self.env}
        for depth in range(len(path), 0, -1):
            name = ENV_PREFIX + ENV_DELIMITER.join(path[:depth]).upper()
            if name in upper:
                return upper[name]
        bare = UNPREFIXED.get(path[0]) if path else None
        if bare is not None and bare in upper:  # read without the prefix too
            return upper[bare]
        return str(self.file)


def table_name(path: Sequence[str]) -> str:
    """``[retry]``, ``[channels.email]``, or ``the top level``."""
    return f"[{'.'.join(path)}]" if path else "the top level"
