"""Who an update goes to: ``public``, ``internal``, or a segment named in the policy.

* ``internal`` — staff and support (``subscribers.internal``).
* ``public`` — every subscriber whose preferences match, staff included.
* a segment (``[segments.<name>]`` in ``policy.toml``) — the subscribers in it, plus staff: the people
  who answer customers should see every word the customers are told.

Staff get each update first: the fan-out streams an audience in *passes*, the internal subscribers'
pass before the others, and hands the internal batches to the queue before any public batch is
written. That costs one extra index scan of a channel's contact points per update, nothing per row.

A subscriber is in a segment when it matches every non-empty field of the segment:

* ``regions`` / ``plans`` — the subscriber's region / plan is one of them (checked in SQL);
* ``tags`` — the subscriber has at least one of the tags;
* ``components`` — the subscriber follows at least one of them; a subscriber following everything
  (no components chosen) follows these too.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from dispatcher.domain.errors import InvalidInput
from dispatcher.domain.models import Audience
from dispatcher.domain.policy import LoadedPolicy, Policy, Segment

__all__ = ["AudiencePass", "audience_passes", "check_audience", "in_segment"]


def check_audience(loaded: LoadedPolicy, audience: Audience | str) -> Audience:
    """The audience, if the policy knows it; ``InvalidInput`` naming an unknown segment."""
    try:
        name = Audience(audience)
    except ValueError:
        raise InvalidInput(
            f"audience: {audience!r} is not an audience: use public, internal or a segment name"
        ) from None
    if not name.is_segment:
        return name
    segments = loaded.policy.segments
    if name.value not in segments:
        known = ", ".join(sorted(segments)) or "none defined"
        where = loaded.path or "the built-in policy"
        raise InvalidInput(
            f"audience: no segment named {name.value!r} in {where} (segments: {known}; or public, internal)"
        )
    return name


@dataclass(frozen=True)
class AudiencePass:
    """One sweep over a channel's contact points: the subscribers it keeps."""

    internal: bool | None
    """Only staff (True), only non-staff (False), or both (None)."""
    segment: Segment | None = None
    """Non-staff must also be in this segment."""


STAFF_MARK = "+staff"
"""Appended to a delivery row's locale when the row is a staff member's copy of a public or segment
update that has an internal note: the note is rendered for those rows only."""


def staff_locale(locale: str) -> str:
    return f"{locale}{STAFF_MARK}"


def split_staff(locale: str) -> tuple[str, bool]:
    """``("fr", True)`` for ``"fr+staff"``; ``("fr", False)`` for ``"fr"``."""
    if locale.endswith(STAFF_MARK):
        return locale[: -len(STAFF_MARK)], True
    return locale, False


def audience_passes(policy: Policy, audience: Audience | str) -> list[AudiencePass]:
    """The passes that reach ``audience``, staff first."""
    audience = Audience(audience)
    if audience is Audience.INTERNAL:
        return [AudiencePass(internal=True)]
    if audience is Audience.PUBLIC:
        return [AudiencePass(internal=True), AudiencePass(internal=False)]
    segment = policy.segments.get(audience.value)
    if segment is None:  # the policy changed since publishing: nobody outside staff is sure to be in it
        return [AudiencePass(internal=True)]
    return [AudiencePass(internal=True), AudiencePass(internal=False, segment=segment)]


def _json_list(text: str | None) -> list[str]:
    """A JSON list column read as text; ``None``/``null``/``[]`` are all empty."""
    if text in (None, "", "null", "[]"):
        return []
    value = json.loads(text) if isinstance(text, str) else text
    return [str(v) for v in value] if isinstance(value, list) else []


def in_segment(
    segment: Segment,
    *,
    components: Sequence[str],
    region: str | None,
    plan: str | None,
    tags: Sequence[str],
) -> bool:
    """Whether a subscriber with these facts is in ``segment`` (see the module docstring)."""
    if segment.regions and region not in segment.regions:
        return False
    if segment.plans and plan not in segment.plans:
        return False
    if segment.tags and not set(segment.tags).intersection(tags):
        return False
    return not (segment.components and components and not set(segment.components).intersection(components))


def segment_row_match(
    segment: Segment, components: str | None, region: str | None, plan: str | None, tags: str | None
) -> bool:
    """``in_segment`` for a fan-out row whose JSON columns were read as text."""
    return in_segment(
        segment,
        components=_json_list(components) if segment.components else (),
        region=region,
        plan=plan,
        tags=_json_list(tags) if segment.tags else (),
    )
