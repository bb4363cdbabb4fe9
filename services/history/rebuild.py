"""Rebuilding history.json after it was found corrupt or unreadable.

Three sources outlive history.json, and together they know every session:

* `history.json.prev` (or `.json.gz.prev`): the generation before the lost
  one, kept by every atomic save. It holds every session the lost file held
  except, at most, the newest changes of one save.
* the cost ledger (`.session/ledger/*.jsonl`, written by the cost ledger,
  read-only here with its own model, `protocol.ledger`): every priced or
  unpriced call, with its session id and time. A session the `.prev` misses
  (or knows less about) is rebuilt from its calls: first and last call as
  start and end, exact total, counts.
* the archive (`.session/archive/`): sessions older than the history keeps.
  They are not copied back (they are listed from the archive as before), and
  a session the archive holds is not invented again from the ledger.

The archiver's own journal is replayed by the archiver after this, as at
every start, and brings back the live or last session on top of the result.
Read-only: nothing here writes; the archiver saves what it returns.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from protocol.history import HistoryEntry
from protocol.ledger import LedgerOperation, decode_ledger_line
from services.history.live import duration_minutes
from services.readonly.history import parse_history, read_archive
from services.runtime.paths import ProjectPaths
from services.store import previous_name

__all__ = ["RebuiltHistory", "rebuild_history"]


@dataclass
class RebuiltHistory:
    """What a rebuild found, for the log and the console."""

    sessions: list[HistoryEntry]
    from_previous: int = 0
    from_ledger: int = 0
    sources: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One sentence for a person."""
        return (
            f"history rebuilt: {len(self.sessions)} sessions "
            f"({self.from_previous} from the previous generation, "
            f"{self.from_ledger} from the cost ledger); sources: "
            + (", ".join(self.sources) or "none")
        )


@dataclass
class _LedgerSession:
    first: datetime
    last: datetime
    total: Decimal = Decimal(0)
    unpriced: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    seen: set[str] = field(default_factory=set)

    def add(self, at: datetime, operation: str, cost: Any, request_id: str) -> None:
        if request_id in self.seen:
            return  # a re-sent request is one call
        self.seen.add(request_id)
        self.first, self.last = min(self.first, at), max(self.last, at)
        self.counts[operation] = self.counts.get(operation, 0) + 1
        if cost is None:
            self.unpriced += 1
        else:
            self.total += cost if isinstance(cost, Decimal) else Decimal(str(cost))

    @property
    def operations(self) -> int:
        return sum(self.counts.values())


def _previous(paths: ProjectPaths) -> list[HistoryEntry] | None:
    """The newest `.prev` that reads (plain or compressed: the form may have changed)."""
    found: list[tuple[int, list[HistoryEntry]]] = []
    for source, compressed in ((paths.history, False), (paths.history_gz, True)):
        prev = previous_name(source)
        with contextlib.suppress(OSError, ValueError):
            stamp = prev.stat().st_mtime_ns
            found.append(
                (stamp, list(parse_history(prev.read_bytes(), compressed=compressed).sessions))
            )
    return max(found, key=lambda item: item[0])[1] if found else None


def _ledger_sessions(paths: ProjectPaths) -> dict[str, _LedgerSession]:
    found: dict[str, _LedgerSession] = {}
    with contextlib.suppress(OSError):
        files = sorted(paths.ledger_dir.glob("*.jsonl"))
        for path in files:
            try:
                lines = path.read_bytes().splitlines()
            except OSError:
                continue
            for line in lines:
                _take(found, line)
    return found


def _take(found: dict[str, _LedgerSession], line: bytes) -> None:
    try:
        record = decode_ledger_line(line)
    except ValueError:
        return  # a torn tail or a bad line: the ledger's owner reports it
    if not isinstance(record, LedgerOperation):
        return
    at = record.ts
    entry = found.setdefault(record.session_id, _LedgerSession(first=at, last=at))
    entry.add(at, record.operation, record.cost, record.id)


def _with_costs(entry: HistoryEntry, calls: _LedgerSession) -> HistoryEntry:
    """`entry` with its money from the ledger when the ledger knows more calls."""
    if calls.operations <= sum(entry.operations_count.values()):
        return entry
    end = max(entry.end_time or entry.start_time, calls.last)
    return entry.model_copy(
        update={
            "total_cost": calls.total,
            "unpriced_operations": calls.unpriced,
            "operations_count": dict(calls.counts),
            "end_time": end,
            "duration_minutes": duration_minutes(entry.start_time, end),
        }
    )


def _from_ledger(session_id: str, calls: _LedgerSession) -> HistoryEntry:
    return HistoryEntry(
        session_id=session_id,
        start_time=calls.first,
        end_time=calls.last,
        duration_minutes=duration_minutes(calls.first, calls.last),
        total_cost=calls.total,
        operations_count=dict(calls.counts),
        unpriced_operations=calls.unpriced,
        # Whether it ended cleanly is not known any more; "interrupted" claims less.
        status="interrupted",
    )


def rebuild_history(paths: ProjectPaths) -> RebuiltHistory:
    """Every session the lost history.json held, from `.prev` and the ledger."""
    result = RebuiltHistory(sessions=[])
    previous = _previous(paths)
    by_id: dict[str, HistoryEntry] = {}
    if previous is not None:
        result.sources.append("history.json.prev")
        by_id = {entry.session_id: entry for entry in previous}
        result.from_previous = len(by_id)
    ledger = _ledger_sessions(paths)
    if ledger:
        result.sources.append("cost ledger")
    archived = {entry.session_id for entry in read_archive(paths.archive_dir).entries}
    for session_id, calls in ledger.items():
        if session_id in by_id:
            by_id[session_id] = _with_costs(by_id[session_id], calls)
        elif session_id not in archived:
            by_id[session_id] = _from_ledger(session_id, calls)
            result.from_ledger += 1
    result.sessions = sorted(
        by_id.values(), key=lambda e: (e.start_time, e.session_id), reverse=True
    )
    return result
