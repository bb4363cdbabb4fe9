"""The live session's history entry, folded from the events it received.

Pure and deterministic: the same records applied in the same order give the
same entry, which is what lets the archiver rebuild the entry after `kill -9`
by replaying its journal. Records are `protocol.history_journal`'s models;
an event's `data` is the JSON the archiver validated when the event arrived.

Events arrive at least once; each is applied once. Duplicates are recognised
by the envelope (`source`, `seq`, `ts`: a re-delivery is the same envelope)
and, for `cost.logged`, by the operation's `request_id`, which is also how
operations found in the ledger but never delivered are told apart.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Final

from protocol.base import utc_now
from protocol.history import HistoryEntry, SessionStatusName
from protocol.history_journal import HistoryCheckpoint, HistoryEnd, HistoryEvent, HistoryResume

__all__ = [
    "SEEN_EVENTS_KEPT",
    "LiveSession",
    "cost_key",
    "duration_minutes",
    "finalized",
]

SEEN_EVENTS_KEPT: Final = 4096
"""Envelope keys remembered for de-duplication (re-deliveries come within seconds)."""

_HISTORY_FIELDS: Final = frozenset(HistoryEntry.model_fields)


def cost_key(operation: dict[str, Any]) -> str:
    """The identity of one priced call: its request id, else its full description."""
    request_id = operation.get("request_id")
    if isinstance(request_id, str) and request_id:
        return request_id
    parts = ("timestamp", "operation", "model", "input_tokens", "output_tokens")
    return "|".join(str(operation.get(part)) for part in parts)


def duration_minutes(start: datetime, end: datetime | None) -> float:
    """Minutes from start to end, one decimal, never negative."""
    if end is None:
        return 0.0
    return max(0.0, round((end - start).total_seconds() / 60, 1))


def finalized(
    entry: HistoryEntry, status: SessionStatusName, end_time: datetime | None
) -> HistoryEntry:
    """`entry` closed with `status` at `end_time` (its last known moment if None)."""
    end = end_time or entry.end_time or entry.start_time
    return entry.model_copy(
        update={
            "status": status,
            "end_time": end,
            "duration_minutes": duration_minutes(entry.start_time, end),
        }
    )


def _as_decimal(value: Any) -> Decimal:
    return value if isinstance(value, Decimal) else Decimal(str(value))


@dataclass
class LiveSession:
    """The entry being written, plus what de-duplication needs."""

    session_id: str
    start_time: datetime
    end_time: datetime | None = None
    status: SessionStatusName = "active"
    total_cost: Decimal = Decimal(0)
    unpriced_operations: int = 0
    files_created: dict[str, None] = field(default_factory=dict)
    files_modified: dict[str, None] = field(default_factory=dict)
    files_deleted: dict[str, None] = field(default_factory=dict)
    operations_count: dict[str, int] = field(default_factory=dict)
    cost_ids: set[str] = field(default_factory=set)
    cost_ids_complete: bool = True
    """False when the entry came from history.json alone: its operations' ids are unknown."""
    seen: deque[str] = field(default_factory=lambda: deque(maxlen=SEEN_EVENTS_KEPT))
    extra: dict[str, Any] = field(default_factory=dict)
    _seen_set: set[str] = field(default_factory=set, repr=False)

    # -- construction ----------------------------------------------------------------

    @classmethod
    def new(cls, session_id: str, start_time: datetime | None = None) -> LiveSession:
        """A session that starts now."""
        start = start_time or utc_now()
        return cls(session_id=session_id, start_time=start, end_time=start)

    @classmethod
    def from_entry(cls, entry: HistoryEntry, *, cost_ids_complete: bool = False) -> LiveSession:
        """Continue from a stored entry (ids of its operations are not known)."""
        return cls(
            session_id=entry.session_id,
            start_time=entry.start_time,
            end_time=entry.end_time,
            status=entry.status,
            total_cost=entry.total_cost,
            unpriced_operations=entry.unpriced_operations,
            files_created=dict.fromkeys(entry.files_created),
            files_modified=dict.fromkeys(entry.files_modified),
            files_deleted=dict.fromkeys(entry.files_deleted),
            operations_count=dict(entry.operations_count),
            cost_ids_complete=cost_ids_complete,
            extra=dict(entry.model_extra or {}),
        )

    def checkpoint(self, at: datetime) -> HistoryCheckpoint:
        """Everything needed to continue, as one journal record taken at `at`."""
        return HistoryCheckpoint(
            entry=self.to_entry(),
            cost_ids=sorted(self.cost_ids),
            cost_ids_complete=self.cost_ids_complete,
            seen=list(self.seen),
            ts=at,
        )

    @classmethod
    def from_checkpoint(cls, record: HistoryCheckpoint) -> LiveSession:
        """Rebuild from a `checkpoint` record."""
        live = cls.from_entry(record.entry, cost_ids_complete=record.cost_ids_complete)
        live.cost_ids = set(record.cost_ids)
        for key in record.seen:
            live.remember(key)
        return live

    # -- de-duplication --------------------------------------------------------------

    def has_seen(self, key: str) -> bool:
        """True if an event with this envelope key was applied."""
        return key in self._seen_set

    def remember(self, key: str) -> None:
        """Record an applied event's key, forgetting the oldest beyond the bound."""
        if key in self._seen_set:
            return
        if len(self.seen) == self.seen.maxlen:
            self._seen_set.discard(self.seen[0])
        self.seen.append(key)
        self._seen_set.add(key)

    # -- folding ---------------------------------------------------------------------

    def apply(self, record: HistoryEvent | HistoryResume | HistoryEnd) -> bool:
        """Apply one journal record after the checkpoint; True if the entry changed."""
        if isinstance(record, HistoryEvent):
            return self.apply_event(record.key, record.topic, record.data, record.ts)
        self.status = "ended" if isinstance(record, HistoryEnd) else "active"
        self.touch(record.ts)
        return True

    def apply_event(self, key: str, topic: str, data: dict[str, Any], ts: datetime) -> bool:
        """`apply` of the `event` record of these fields, without building it."""
        self.remember(key)
        changed = self._apply_event(topic, data)
        self.touch(ts)
        return changed

    def _apply_event(self, topic: str, data: dict[str, Any]) -> bool:
        if topic == "cost.logged":
            operation = data.get("operation")
            return isinstance(operation, dict) and self._cost(operation)
        path = data.get("path")
        if not isinstance(path, str):
            return False
        if topic == "file.created":
            self._created(path)
        elif topic == "file.modified":
            self._modified(path)
        elif topic == "file.deleted":
            self._deleted(path)
        elif topic == "file.moved":
            # A rename is the old name gone and the new one there: a file made
            # in this session simply carries its new name.
            dest = data.get("dest_path")
            self._deleted(path)
            if isinstance(dest, str):
                self._created(dest)
        else:
            return False
        return True

    def _created(self, path: str) -> None:
        if path in self.files_deleted:
            del self.files_deleted[path]
            self.files_modified[path] = None  # existed before the session: changed, not new
        elif path not in self.files_modified:
            self.files_created[path] = None

    def _modified(self, path: str) -> None:
        if path in self.files_created or path in self.files_modified:
            return
        self.files_deleted.pop(path, None)
        self.files_modified[path] = None

    def _deleted(self, path: str) -> None:
        if path in self.files_created:
            del self.files_created[path]  # made and removed within the session: nothing
            return
        self.files_modified.pop(path, None)
        self.files_deleted[path] = None

    def _cost(self, operation: dict[str, Any]) -> bool:
        key = cost_key(operation)
        if key in self.cost_ids:
            return False
        self.cost_ids.add(key)
        name = str(operation.get("operation") or "unknown")
        self.operations_count[name] = self.operations_count.get(name, 0) + 1
        cost = operation.get("cost")
        if cost is None:
            self.unpriced_operations += 1
        else:
            self.total_cost += _as_decimal(cost)
        return True

    def knows_cost(self, operation: dict[str, Any]) -> bool:
        """True if this operation is already counted."""
        return cost_key(operation) in self.cost_ids

    # -- output ----------------------------------------------------------------------

    def touch(self, moment: datetime) -> None:
        """The session was alive at `moment` (a heartbeat, not journaled)."""
        if self.end_time is None or moment > self.end_time:
            self.end_time = moment

    def to_entry(self) -> HistoryEntry:
        """The entry as history.json shows it."""
        extra = {key: value for key, value in self.extra.items() if key not in _HISTORY_FIELDS}
        return HistoryEntry(
            session_id=self.session_id,
            start_time=self.start_time,
            end_time=self.end_time,
            duration_minutes=duration_minutes(self.start_time, self.end_time),
            total_cost=self.total_cost,
            files_modified=list(self.files_modified),
            files_created=list(self.files_created),
            files_deleted=list(self.files_deleted),
            operations_count=dict(self.operations_count),
            unpriced_operations=self.unpriced_operations,
            status=self.status,
            **extra,
        )
