"""The session writer's journal: JSON Lines segments in `.session/journal/`.

Every acknowledged change is a line here, fsynced before its reply; the
snapshot (current.json) is only a faster place to start from. Segments are
numbered (`000001.jsonl`, `000002.jsonl`...); appends go to the newest. Before
a snapshot the writer *rotates* to a new segment, so once the snapshot is on
disk every older segment is wholly covered by it and is simply deleted
(compaction). Nothing is ever rewritten in place.

Every line is one of `protocol.session_journal`'s models (`JournalLine`,
keyed on `kind`), encoded and decoded with them. The first line of a segment
is its header; the other kinds are replayed in order by
`services.session.replay`::

    {"kind": "segment", "segment": 3, "base_rev": 41, "ts": "...Z",
     "carried": [{"id": "c1-17", "op": "session.set_stage", "rev": 40}, ...],
     "activity": ["file_watcher:17:2026-...Z", ...]}
    {"kind": "begin", "rev": 42, "session_id": "...", "ts": "...", "project_name": "...",
     "owner_pid": 4242, "host": "box", "model_preferences": {...}}
    {"kind": "op", "rev": 43, "session_id": "...", "id": "c1-19",
     "op": "session.set_stage", "args": {"stage": "writing"}, "ts": "...Z"}
    {"kind": "activity", "rev": 44, "session_id": "...", "key": "file_watcher:17",
     "topic": "file.modified", "path": "manuscript/ch1.md", "ts": "...Z"}
    {"kind": "owner", "rev": 45, "session_id": "...", "owner_pid": 4243, "host": "box", "ts": "..."}
    {"kind": "end", "rev": 46, "session_id": "...", "ts": "...Z"}

`rev` is one counter for the whole journal, across sessions: current.json
at revision R accounts for every line up to R. `carried` keeps the recent
request ids of the segments a compaction deletes, so a re-sent id is still
applied only once after compaction and a restart; `activity` does the same for
the keys of events already recorded (events are delivered at least once).

A torn last line (a crash mid-write) is cut by the store when the newest
segment is opened, and ignored in older ones: it was never acknowledged,
because acknowledgement follows the fsync of the whole line.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from protocol.session_journal import (
    CarriedReply,
    JournalLine,
    JournalSegment,
    decode_journal_line,
)
from services.store import BadLine, FileOps, JsonLinesLog, TailRepair, ensure_private_dir

__all__ = [
    "SEGMENT_SUFFIX",
    "JournalContents",
    "SegmentRead",
    "SessionJournal",
    "drop_segments",
    "list_segments",
    "read_journal",
    "read_segment",
    "segment_name",
]

SEGMENT_SUFFIX = ".jsonl"


def segment_name(number: int) -> str:
    """`000042.jsonl`: zero-padded so a plain listing sorts in order."""
    return f"{number:06d}{SEGMENT_SUFFIX}"


def _number(path: Path) -> int | None:
    stem = path.name[: -len(SEGMENT_SUFFIX)] if path.name.endswith(SEGMENT_SUFFIX) else ""
    return int(stem) if stem.isdigit() else None


def list_segments(folder: Path) -> list[Path]:
    """The segment files of `folder`, oldest first (nothing if it does not exist)."""
    try:
        entries = list(folder.iterdir())
    except FileNotFoundError:
        return []
    numbered = [(n, entry) for entry in entries if (n := _number(entry)) is not None]
    return [entry for _, entry in sorted(numbered)]


@dataclass(frozen=True)
class SegmentRead:
    """What a read-only pass over one segment found."""

    records: list[JournalLine]
    torn_bytes: int = 0
    """Bytes after the last newline: a write cut by a crash, never acknowledged."""
    bad_lines: list[BadLine] = field(default_factory=list)


def read_segment(path: Path) -> SegmentRead:
    """Parse one segment without changing it (for readers such as `inspect`)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return SegmentRead(records=[])
    records: list[JournalLine] = []
    bad: list[BadLine] = []
    cut = data.rfind(b"\n") + 1
    offset = 0
    for line in data[:cut].splitlines(keepends=True):
        if line.strip():
            try:
                records.append(decode_journal_line(line))
            except (ValueError, UnicodeDecodeError) as exc:
                bad.append(BadLine(offset=offset, error=str(exc).splitlines()[0]))
        offset += len(line)
    return SegmentRead(records=records, torn_bytes=len(data) - cut, bad_lines=bad)


def read_journal(folder: Path) -> list[JournalLine]:
    """Every record of every segment, oldest first, read-only."""
    records: list[JournalLine] = []
    for path in list_segments(folder):
        records.extend(read_segment(path).records)
    return records


def drop_segments(paths: Iterable[Path], ops: FileOps | None = None) -> list[Path]:
    """Delete segments a snapshot covers; one folder fsync makes the deletions durable."""
    dropped: list[Path] = []
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
            dropped.append(path)
    if dropped:
        (ops or FileOps()).fsync_dir(dropped[0].parent)
    return dropped


@dataclass(frozen=True)
class JournalContents:
    """What `SessionJournal.open` found on disk."""

    records: list[JournalLine]
    segments: list[Path]
    repair: TailRepair | None = None
    bad_lines: list[tuple[Path, BadLine]] = field(default_factory=list)
    torn: list[tuple[Path, int]] = field(default_factory=list)


class SessionJournal:
    """The segments of one project's journal; only the newest is open for appends.

    Owned by the session writer's main thread; the saver thread only deletes
    segments that `rotate` declared obsolete, which no one appends to.
    """

    def __init__(self, folder: Path, *, ops: FileOps | None = None) -> None:
        self.folder = folder
        self.ops = ops or FileOps()
        self._log: JsonLinesLog | None = None
        self._number = 0

    @property
    def segment(self) -> Path | None:
        """The segment appends go to, or None before the first `rotate`."""
        return self._log.path if self._log is not None else None

    def open(self) -> JournalContents:
        """Open the newest segment (cutting a torn tail) and read every record."""
        ensure_private_dir(self.folder)
        segments = list_segments(self.folder)
        records: list[JournalLine] = []
        bad: list[tuple[Path, BadLine]] = []
        torn: list[tuple[Path, int]] = []
        for path in segments[:-1]:
            read = read_segment(path)
            records.extend(read.records)
            bad.extend((path, line) for line in read.bad_lines)
            if read.torn_bytes:
                torn.append((path, read.torn_bytes))
        repair = None
        if segments:
            newest = segments[-1]
            self._log = JsonLinesLog(newest, ops=self.ops)  # cuts a torn tail
            self._number = _number(newest) or 0
            repair = self._log.repair
            read = read_segment(newest)
            records.extend(read.records)
            bad.extend((newest, line) for line in read.bad_lines)
        return JournalContents(
            records=records, segments=segments, repair=repair, bad_lines=bad, torn=torn
        )

    def append_many(self, records: Sequence[JournalLine]) -> None:
        """Append records with one write and one fsync: durable when this returns."""
        if self._log is None:
            raise RuntimeError("the journal has no open segment; rotate first")
        self._log.append_many(records)

    def rotate(
        self,
        *,
        base_rev: int,
        carried: Sequence[CarriedReply],
        created_at: datetime,
        activity: Sequence[str] = (),
    ) -> list[Path]:
        """Start a new segment (header fsynced) and return the segments now behind it.

        The returned segments hold nothing above `base_rev`; they may be
        deleted once a snapshot at `base_rev` or later is on disk.
        """
        number = (
            max(self._number, max((_number(p) or 0 for p in list_segments(self.folder)), default=0))
            + 1
        )
        path = self.folder / segment_name(number)
        log = JsonLinesLog(path, ops=self.ops)
        try:
            header = JournalSegment(
                segment=number,
                base_rev=base_rev,
                ts=created_at,
                carried=list(carried),
                activity=list(activity),
            )
            log.append(header)
        except BaseException:
            log.close()
            with contextlib.suppress(OSError):
                path.unlink()
            raise
        if self._log is not None:
            self._log.close()
        self._log, self._number = log, number
        return [p for p in list_segments(self.folder) if (_number(p) or 0) < number]

    def close(self) -> None:
        """Close the open segment."""
        if self._log is not None:
            self._log.close()
            self._log = None
