"""What an API token may do. A plain enum, so the ``tocsin`` command line reads it without the models."""

from __future__ import annotations

import enum


class Scope(enum.StrEnum):
    READ = "read"
    PUBLISH = "publish"
    SUBSCRIBERS = "subscribers"
    ADMIN = "admin"
