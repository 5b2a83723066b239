"""Ids a person cannot mix up: incidents are ``inc-3``, updates ``upd-7``.

Both are plain integers in the store, so "1" can be incident 1 or update 1, and ``tocsin status 1``
(an update) next to ``tocsin incident show 1`` (an incident) invites the wrong one. Everything a person
reads carries the prefix; everything a person types may carry it, and a prefix of the other kind is an
error that says which id the command takes. A bare number is still read as the kind the command takes,
so scripts written before the prefixes keep working.
"""

from __future__ import annotations

import re
from enum import StrEnum


class IdKind(StrEnum):
    INCIDENT = "incident"
    UPDATE = "update"


PREFIXES = {IdKind.INCIDENT: "inc", IdKind.UPDATE: "upd"}
_WHERE = {IdKind.INCIDENT: "`tocsin incident list`", IdKind.UPDATE: "`tocsin incident show inc-N`"}
_MAX_ID = 2**31 - 1
"""The store's ids are 32-bit: anything larger names nothing and would overflow PostgreSQL."""
_ID = re.compile(r"^(?:([a-z]+)-?)?(\d{1,12})$")


def incident_ref(incident_id: int) -> str:
    """``inc-3``: an incident's id as people see it."""
    return f"{PREFIXES[IdKind.INCIDENT]}-{incident_id}"


def update_ref(update_id: int) -> str:
    """``upd-7``: an update's id as people see it."""
    return f"{PREFIXES[IdKind.UPDATE]}-{update_id}"


def ref(kind: IdKind, number: int) -> str:
    return f"{PREFIXES[kind]}-{number}"


def parse_any(text: str) -> tuple[IdKind | None, int]:
    """``inc-3`` → (incident, 3), ``upd-7`` → (update, 7), ``7`` → (None, 7); ``ValueError`` otherwise."""
    match = _ID.match(text.strip().lower())
    by_prefix = {prefix: kind for kind, prefix in PREFIXES.items()}
    if match is None or (match.group(1) is not None and match.group(1) not in by_prefix):
        raise ValueError(f"{text.strip()!r} is not an id; write an incident as inc-3, an update as upd-7")
    number = int(match.group(2))
    if not 1 <= number <= _MAX_ID:
        raise ValueError(f"{text.strip()!r}: ids run from 1 to {_MAX_ID}")
    return (by_prefix[match.group(1)] if match.group(1) else None), number


def parse_id(text: str, want: IdKind) -> int:
    """The number of an id of kind ``want`` (``inc-3`` or ``3`` for an incident); an id of the other
    kind is a ``ValueError`` that says which one was given and which one is wanted."""
    kind, number = parse_any(text)
    if kind is not None and kind is not want:
        raise ValueError(
            f"{ref(kind, number)} is an {kind.value} id, but this takes an {want.value} id "
            f"({PREFIXES[want]}-N; see {_WHERE[want]})"
        )
    return number
