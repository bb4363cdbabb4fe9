"""`.session/archive/live.jsonl`: every event the live entry was built from.

An event is appended (written and fsynced) before `on_event` returns, and the
host acknowledges it only after that, so `kill -9` at any moment loses no
file and no operation the archiver had accepted: a restart replays this
journal. history.json is a snapshot written soon after, for people and
readers.

The journal holds one session. It begins with a `checkpoint` (the whole entry
and its de-duplication state), then `event`, `end` and `resume` records: the
models of `protocol.history_journal`, which also read the lines 0.1.0 wrote
(`k`/`at`). When a new session starts, or the journal grows past
`COMPACT_ABOVE_BYTES`, it is replaced atomically by a single checkpoint of
the current state.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Final

import orjson

from protocol.codec import dumps_line
from protocol.history_journal import (
    HistoryCheckpoint,
    HistoryEnd,
    HistoryEvent,
    HistoryResume,
    decode_history_journal_line,
)
from services.history.live import LiveSession
from services.store import AtomicJsonFile, JsonLinesLog, RetryPolicy

__all__ = [
    "COMPACT_ABOVE_BYTES",
    "JOURNAL_NAME",
    "EventLine",
    "JournalRecord",
    "LiveJournal",
    "Replay",
    "event_line",
]

JOURNAL_NAME: Final = "live.jsonl"
COMPACT_ABOVE_BYTES: Final = 1024 * 1024
"""Past this size (or twice its last checkpoint) the journal is rewritten as one
checkpoint: replay costs ~10 µs a record, so a restart stays well under 50 ms."""


EventLine = dict[str, Any]
"""An `event` record as the plain dict of its fields, in their order (`event_line`)."""

JournalRecord = HistoryEvent | HistoryResume | HistoryEnd | EventLine | bytes
"""What the archiver appends: a record's model, an event's line (its hot path), or
an `event` line already written, without its newline (`costline.CostLine`)."""


def event_line(key: str, topic: str, data: dict[str, Any], ts: datetime) -> EventLine:
    """An `event` record without its model: what the archiver journals per event.

    `dumps_line` writes it as the bytes of `HistoryEvent(key=..., ...)` (tested):
    validating the model and dumping it again cost ~7 us an event. The caller
    passes what the model would hold: a UTC `ts` and JSON-ready `data`.
    """
    return {"kind": "event", "key": key, "topic": topic, "data": data, "ts": ts}


def _line_form(record: JournalRecord) -> object:
    """What `dumps_line` writes for `record`: an `event` as the plain dict of its
    fields, in their order (the same bytes as the model's, without the model's
    dump of its data, ~3 us an event); other records, and any record holding
    fields from a newer version, as themselves."""
    if type(record) is bytes:
        return orjson.Fragment(record)  # written as it is
    if type(record) is HistoryEvent and not record.__pydantic_extra__:
        return event_line(record.key, record.topic, record.data, record.ts)
    return record


class Replay:
    """What a journal held: the session it rebuilds, if any, and what was odd."""

    def __init__(self, live: LiveSession | None, records: int, skipped: int) -> None:
        """`records` read, `skipped` of them (or of the lines) not usable."""
        self.live = live
        self.records = records
        self.skipped = skipped


class LiveJournal:
    """The archiver's append-only journal of the live session (one owner)."""

    def __init__(self, archive_dir: Path, *, retry: RetryPolicy | None = None) -> None:
        self.path = archive_dir / JOURNAL_NAME
        self.retry = retry
        # Clean a temp file a crashed rewrite left behind before opening.
        self._replacer = AtomicJsonFile(self.path, retry=retry, writer=True)
        self._log = JsonLinesLog(self.path)
        self._checkpoint_bytes = 0

    @property
    def size(self) -> int:
        """Bytes of complete records."""
        return self._log.size

    @property
    def repaired_bytes(self) -> int:
        """Bytes of a torn last record cut off at open (never acknowledged)."""
        return self._log.repair.removed_bytes if self._log.repair else 0

    def records(
        self,
    ) -> Iterator[HistoryCheckpoint | HistoryEvent | HistoryResume | HistoryEnd | None]:
        """Every complete line as its model, money exact (None for a line that is not one)."""
        for _offset, value in self._log.records(exact=True):
            try:
                yield decode_history_journal_line(value)
            except ValueError:
                yield None  # a record we cannot read is reported, never fatal

    def replay(self) -> Replay:
        """Rebuild the session this journal describes."""
        live: LiveSession | None = None
        count = skipped = 0
        for record in self.records():
            count += 1
            if isinstance(record, HistoryCheckpoint):
                live = LiveSession.from_checkpoint(record)
            elif record is not None and live is not None:
                live.apply(record)
            else:
                skipped += 1
        return Replay(live, count, skipped + len(self._log.bad_lines))

    def append(self, record: HistoryEvent | HistoryResume | HistoryEnd) -> None:
        """Append one record durably (raises OSError if the disk refuses)."""
        self._log.append(record)

    def append_many(self, records: Sequence[JournalRecord], *, fsync: bool = True) -> None:
        """Append records with one write (all or none on OSError); see `JsonLinesLog`."""
        self._log.append_many([_line_form(record) for record in records], fsync=fsync)

    def rewrite(self, live: LiveSession, at: datetime) -> None:
        """Replace the journal with one checkpoint of `live`, atomically."""
        outcome = self._replacer.save_bytes(dumps_line(live.checkpoint(at)))
        if not outcome.ok:
            raise OSError(f"could not rewrite {self.path}: {outcome.error}")
        self._log.close()
        self._log = JsonLinesLog(self.path)
        self._checkpoint_bytes = self._log.size

    @property
    def needs_compaction(self) -> bool:
        """True once the journal is both past the limit and twice its last checkpoint."""
        return self._log.size > max(COMPACT_ABOVE_BYTES, 2 * self._checkpoint_bytes)

    def close(self) -> None:
        """Close the file."""
        self._log.close()
