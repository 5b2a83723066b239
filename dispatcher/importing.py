"""Importing a subscriber CSV into the store: all rows or none (unless told to skip bad ones)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from dispatcher.errors import InvalidInput
from dispatcher.runtime import Runtime
from dispatcher.subscriber_import import RowProblem, parse_subscribers_csv
from dispatcher.subscribers import find_conflicts, insert_subscribers


@dataclass
class ImportOutcome:
    imported: int = 0
    skipped: int = 0
    problems: list[RowProblem] = field(default_factory=list)


def import_subscribers_file(rt: Runtime, path: Path, region: str, skip_invalid: bool) -> ImportOutcome:
    """Validate every row (file and database conflicts), then insert in one transaction.

    With problems and no ``skip_invalid``, nothing is written and every problem is returned.
    """
    try:
        report = parse_subscribers_csv(path, region)
    except ValueError as exc:
        raise InvalidInput(str(exc)) from None
    outcome = ImportOutcome(problems=list(report.problems))
    with rt.engine.begin() as conn:
        conflicts = find_conflicts(conn, report.subscribers)
        bad = {c.index for c in conflicts}
        outcome.problems += [RowProblem(report.lines[c.index], "", c.reason) for c in conflicts]
        outcome.problems.sort(key=lambda p: p.line)
        if outcome.problems and not skip_invalid:
            return outcome
        keep = [s for i, s in enumerate(report.subscribers) if i not in bad]
        insert_subscribers(conn, keep, rt.clock.now())
    outcome.imported = len(keep)
    outcome.skipped = report.rows_read - len(keep)
    return outcome
