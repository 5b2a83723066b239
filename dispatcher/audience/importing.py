"""Importing a subscriber CSV into the store: all rows or none (unless told to skip bad ones)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from channels._http.ssrf import BlockedDestination, DestinationPolicy
from channels.base import ChannelKind
from dispatcher.audience.csv_rows import RowProblem, parse_subscribers_csv
from dispatcher.audience.subscribers import find_conflicts, insert_subscribers
from dispatcher.domain.errors import InvalidInput
from dispatcher.domain.models import Subscriber
from dispatcher.engine.runtime import Runtime


@dataclass
class ImportOutcome:
    imported: int = 0
    skipped: int = 0
    problems: list[RowProblem] = field(default_factory=list)


def _unreachable_endpoints(rt: Runtime, subscribers: list[Subscriber]) -> dict[int, str]:
    """Webhook URLs the SSRF guard would refuse (credentials, private literal IPs…), by position."""
    allowed = rt.settings.provider_options("webhook").get("allow_destinations", [])
    policy = DestinationPolicy(allowed)
    refused: dict[int, str] = {}
    for index, subscriber in enumerate(subscribers):
        for point in subscriber.contact_points:
            if point.channel is ChannelKind.WEBHOOK:
                try:
                    policy.check_url(point.address)
                except BlockedDestination as exc:
                    refused[index] = f"not reachable by Tocsin: {exc.reason}"
    return refused


def import_subscribers_file(rt: Runtime, path: Path, region: str, skip_invalid: bool) -> ImportOutcome:
    """Validate every row (file and database conflicts), then insert in one transaction.

    With problems and no ``skip_invalid``, nothing is written and every problem is returned.
    """
    try:
        report = parse_subscribers_csv(path, region)
    except ValueError as exc:
        raise InvalidInput(str(exc)) from None
    outcome = ImportOutcome(problems=list(report.problems))
    unreachable = _unreachable_endpoints(rt, report.subscribers)
    outcome.problems += [RowProblem(report.lines[i], "webhook_url", why) for i, why in unreachable.items()]
    with rt.engine.begin() as conn:
        conflicts = find_conflicts(conn, report.subscribers)
        bad = {c.index for c in conflicts} | set(unreachable)
        outcome.problems += [RowProblem(report.lines[c.index], "", c.reason) for c in conflicts]
        outcome.problems.sort(key=lambda p: p.line)
        if outcome.problems and not skip_invalid:
            return outcome
        keep = [s for i, s in enumerate(report.subscribers) if i not in bad]
        insert_subscribers(conn, keep, rt.clock.now())
    outcome.imported = len(keep)
    outcome.skipped = report.rows_read - len(keep)
    return outcome
