"""Rebuilding the ledger's state at start: a checkpoint and the tail after it.

Fast path: a checkpoint whose position the ledger still holds, then only the
records after that position (a few thousand at most: the ledger writes one
every `ledger.checkpoint_every_records`). Slow path (no checkpoint, or one that no
longer matches): the month files that can hold records of the current windows
(`LOOKBACK_DAYS`) - and always the newest - read from their first line; each
month file begins with the budget in force, so nothing older is needed for
totals, budget or warnings. Known limits of the slow path, by design: session
totals and idempotency ids older than those files are not rebuilt.

Both paths are used read-only by `supervisor inspect costs`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from services.cost.budget import BudgetLimits
from services.cost.ledger_files import BadRecord, LedgerFiles, Position, month_file_name
from services.cost.records import request_id_of
from services.cost.state import LedgerState
from services.cost.windows import LOOKBACK_DAYS

__all__ = ["Loaded", "load_state"]

ReplySink = Callable[[str, bytes], None]
"""Receives (request id, ledger line) for each replayed record that answered a request."""


@dataclass
class Loaded:
    """The rebuilt state and how it was rebuilt (for the log and the tests)."""

    state: LedgerState
    position: Position | None
    """The end of the last record read (None: the ledger is empty)."""
    checkpoint_used: bool = False
    checkpoint_problem: str | None = None
    replayed: int = 0
    files_read: list[str] = field(default_factory=list)


def _tail_files(
    files: LedgerFiles, start: Position | None, now: datetime
) -> list[tuple[Path, int]]:
    """The (file, offset) pairs to replay after `start` (or for a full rebuild)."""
    month_files = files.month_files()
    if start is not None:
        return [
            (p, start.offset if p.name == start.file else 0)
            for p in month_files
            if p.name >= start.file
        ]
    first_needed = month_file_name(now - timedelta(days=LOOKBACK_DAYS))
    needed = [p for p in month_files if p.name >= first_needed]
    if not needed and month_files:
        needed = month_files[-1:]
    return [(p, 0) for p in needed]


def load_state(
    files: LedgerFiles,
    *,
    session_id: str,
    zone: ZoneInfo,
    now: datetime,
    default_budget: BudgetLimits,
    on_reply: ReplySink | None = None,
) -> Loaded:
    """The state at the end of the ledger, windows as of `now` in `zone`."""
    checkpoint, problem = files.read_checkpoint()
    state: LedgerState | None = None
    start: Position | None = None
    if checkpoint is not None:
        start = files.checkpoint_position(checkpoint)
        if not files.holds(start):
            problem, start = "its position is no longer in the ledger", None
        else:
            try:
                state = LedgerState.from_checkpoint(
                    checkpoint.state(), session_id=session_id, zone=zone, now=now
                )
            except (KeyError, TypeError, ValueError, ArithmeticError) as exc:
                problem, start = f"unreadable state: {exc!r}", None
    loaded = Loaded(
        state=state
        or LedgerState(session_id=session_id, zone=zone, budget=default_budget, now=now),
        position=start,
        checkpoint_used=state is not None,
        checkpoint_problem=problem,
    )
    for path, offset in _tail_files(files, start, now):
        loaded.files_read.append(path.name)
        end = offset
        for line_end, record, line in files.records(path, offset):
            try:
                loaded.state.apply(record)
            except (KeyError, TypeError, ValueError, ArithmeticError) as exc:
                # A hand-edited line that parses but is not a record: kept, skipped, reported.
                files.bad_records.append(BadRecord(path.name, line_end - len(line), repr(exc)))
                continue
            loaded.replayed += 1
            request_id = request_id_of(record)
            if on_reply is not None and isinstance(request_id, str):
                on_reply(request_id, line)
            end = line_end
        loaded.position = files.position_at(path, end)
    loaded.state.prune(now)
    return loaded
