"""The service's log files, read as one stream: parsed, merged by time, followed.

`.session/logs/<source>.log` holds JSON lines (structlog) written by one
process each, rotated by size to `<source>.log.1` ... `.N`. A worker's crash
may add raw lines (a traceback printed before logging was set up); they keep
the time of the line before them, so they stay where they happened.

Following survives rotation the way `tail -F` does: a file whose inode
changed is read to its end through the old descriptor, then the new file is
read from its start, so no line is lost or shown twice.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import orjson

from protocol.base import parse_ts

__all__ = ["LOG_SOURCES", "LogFollower", "LogLine", "merged", "parse_line", "read_rotated"]

LOG_SOURCES = (
    "supervisor",
    "session_writer",
    "cost_ledger",
    "file_watcher",
    "history_archiver",
    "fork_server",
)
"""Every log file the service writes (console.log is not structured and is not merged)."""

_ROTATED = re.compile(r"\.log\.(\d+)$")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class LogLine:
    """One line of one source, with the time it is merged by."""

    source: str
    at: datetime
    fields: dict[str, Any]
    """The parsed JSON object, or `{"event": raw text}` for a raw line."""
    raw: str
    structured: bool


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return parse_ts(value)
    except ValueError:
        return None


def parse_line(source: str, text: str, previous: datetime) -> LogLine:
    """A line of `source`; raw lines take the time of the line before them."""
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError:
        data = None
    if isinstance(data, dict):
        moment = _parse_time(data.get("timestamp")) or previous
        return LogLine(source, moment, data, text, structured=True)
    return LogLine(source, previous, {"event": text}, text, structured=False)


def _files_of(logs_dir: Path, source: str) -> list[Path]:
    """A source's files, oldest first: `.log.N` ... `.log.1`, then `.log`."""
    rotated: list[tuple[int, Path]] = []
    for path in logs_dir.glob(f"{source}.log.*"):
        match = _ROTATED.search(path.name)
        if match:
            rotated.append((int(match.group(1)), path))
    files = [path for _, path in sorted(rotated, reverse=True)]
    current = logs_dir / f"{source}.log"
    if current.exists():
        files.append(current)
    return files


def read_rotated(logs_dir: Path, source: str) -> list[LogLine]:
    """Every line of a source's rotated files (`.log.N` ... `.log.1`), oldest first."""
    lines: list[LogLine] = []
    previous = _EPOCH
    rotated = [path for path in _files_of(logs_dir, source) if _ROTATED.search(path.name)]
    for path in rotated:
        with contextlib.suppress(FileNotFoundError):  # rotated away while we looked
            data = path.read_bytes()
            for raw in data.split(b"\n"):
                if raw.strip():
                    line = parse_line(source, raw.decode("utf-8", errors="replace"), previous)
                    previous = line.at
                    lines.append(line)
    return lines


def merged(per_source: Iterable[list[LogLine]]) -> list[LogLine]:
    """All lines in time order; equal times keep each file's own order (stable sort)."""
    everything = [line for lines in per_source for line in lines]
    everything.sort(key=lambda line: line.at)
    return everything


@dataclass
class _Tail:
    """One source's current file, open, with what was read of it."""

    path: Path
    handle: IO[bytes] | None = None
    inode: int = -1
    pending: bytes = b""
    previous: datetime = _EPOCH
    lines: list[LogLine] = field(default_factory=list)

    def _drain(self, source: str) -> None:
        if self.handle is None:
            return
        chunk = self.handle.read()
        if not chunk:
            return
        data = self.pending + chunk
        *complete, self.pending = data.split(b"\n")
        for raw in complete:
            if raw.strip():
                line = parse_line(source, raw.decode("utf-8", errors="replace"), self.previous)
                self.previous = line.at
                self.lines.append(line)

    def _read_skipped(self, source: str) -> None:
        """Read whole files that were created and rotated away between two polls.

        The old file is now `.log.K`; `.log.K-1` ... `.log.1` are newer and
        were never seen (a burst rotated more than once). When the old file
        is gone already, nothing can be placed safely and nothing is read.
        """
        rotated: list[Path] = []
        for index in range(1, 1000):
            candidate = self.path.with_name(f"{self.path.name}.{index}")
            try:
                inode = candidate.stat().st_ino
            except FileNotFoundError:
                return
            if inode == self.inode:
                break
            rotated.append(candidate)
        for path in reversed(rotated):  # oldest first
            with contextlib.suppress(FileNotFoundError):
                for raw in path.read_bytes().split(b"\n"):
                    if raw.strip():
                        line = parse_line(
                            source, raw.decode("utf-8", errors="replace"), self.previous
                        )
                        self.previous = line.at
                        self.lines.append(line)

    def poll(self, source: str) -> list[LogLine]:
        """Lines written since the last poll, across a rotation or truncation."""
        try:
            current = self.path.stat()
        except FileNotFoundError:
            current = None
        if self.handle is not None:
            if current is not None and current.st_ino == self.inode:
                if current.st_size < self.handle.tell():  # truncated in place
                    self.handle.seek(0)
                    self.pending = b""
                self._drain(source)
            else:  # rotated (renamed away) or removed: finish the old file first
                self._drain(source)
                self.handle.close()
                self._read_skipped(source)
                self.handle, self.inode, self.pending = None, -1, b""
        if self.handle is None and current is not None:
            with contextlib.suppress(FileNotFoundError):
                self.handle = self.path.open("rb")
                self.inode = os.fstat(self.handle.fileno()).st_ino
                self._drain(source)
        found, self.lines = self.lines, []
        return found

    def close(self) -> None:
        """Close the open file, if any."""
        if self.handle is not None:
            self.handle.close()
            self.handle = None


class LogFollower:
    """Every line of several sources: first what exists, then what is added, by time.

    Call `history()` once, then `poll()` as often as wanted: together they
    yield each line exactly once, across rotations.
    """

    def __init__(self, logs_dir: Path, sources: Iterable[str]) -> None:
        self._logs_dir = logs_dir
        self._tails = {source: _Tail(logs_dir / f"{source}.log") for source in sources}

    def history(self) -> list[LogLine]:
        """Every line written so far (rotated files, then the current ones), by time."""
        per_source: list[list[LogLine]] = []
        for source, tail in self._tails.items():
            older = read_rotated(self._logs_dir, source)
            if older:
                tail.previous = older[-1].at
            per_source.append(older + tail.poll(source))
        return merged(per_source)

    def poll(self) -> list[LogLine]:
        """What every source wrote since the last call, in time order."""
        return merged(tail.poll(source) for source, tail in self._tails.items())

    def close(self) -> None:
        """Close every file."""
        for tail in self._tails.values():
            tail.close()

    def __iter__(self) -> Iterator[str]:
        return iter(self._tails)
