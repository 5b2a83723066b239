"""Importing a subscriber CSV into the store: all rows or none (unless told to skip bad ones)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from channels.base import ChannelKind
from dispatcher.audience.csv_rows import RowProblem, parse_subscribers_csv
from dispatcher.audience.endpoints import EndpointCheck
from dispatcher.audience.subscribers import find_conflicts, insert_subscribers
from dispatcher.domain.errors import InvalidInput
from dispatcher.domain.models import Subscriber
from dispatcher.engine.runtime import Runtime


@dataclass
class ImportOutcome:
    imported: int = 0
    skipped: int = 0
    """Rows left out (``skip_invalid``): the bad rows, each counted once however many problems it has."""
    problems: list[RowProblem] = field(default_factory=list)

    @property
    def bad_rows(self) -> int:
        """Rows with at least one problem (a row may carry several)."""
        return len({p.line for p in self.problems})

    def summary(self) -> str:
        """``4 bad row(s), 6 problem(s)``."""
        return f"{self.bad_rows} bad row(s), {len(self.problems)} problem(s)"


def _unreachable_endpoints(rt: Runtime, subscribers: list[Subscriber]) -> dict[int, str]:
    """Webhook URLs sending would refuse (credentials, loopback or private hosts…), by position."""
    check = EndpointCheck(rt.settings)
    refused: dict[int, str] = {}
    for index, subscriber in enumerate(subscribers):
        for point in subscriber.contact_points:
            if point.channel is ChannelKind.WEBHOOK:
                problem = check.problem(point.address)
                if problem is not None:
                    refused[index] = problem
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
