"""`.session/archive/sessions-YYYY.jsonl.gz`: sessions older than history.json keeps.

One compressed JSON Lines file per year (of the session's start). Archiving
appends a new gzip member (a concatenation of gzip members is a valid gzip
file, `zcat` reads it whole), fsyncs it, and only then is history.json
rewritten without those sessions. A crash in between leaves a session in both
places, and a second archiving would append it again: readers keep one entry
per `session_id` (history.json's first, then the latest archived copy), so a
session is never lost and never shown twice.

A member torn by a crash mid-append is cut off before the next append (it was
never acknowledged: history.json still held those sessions).
"""

from __future__ import annotations

import contextlib
import gzip
import os
import zlib
from collections.abc import Iterable
from pathlib import Path
from typing import Final

from pydantic import ValidationError

from protocol.codec import dumps_line, loads_exact
from protocol.history import HistoryEntry
from services.store import FileOps, ensure_private_dir

__all__ = ["ARCHIVE_GLOB", "ArchiveRead", "append_entries", "archive_file", "read_archive"]

ARCHIVE_GLOB: Final = "sessions-*.jsonl.gz"


def archive_file(archive_dir: Path, entry: HistoryEntry) -> Path:
    """The yearly file `entry` belongs in."""
    return archive_dir / f"sessions-{entry.start_time.year:04d}.jsonl.gz"


def _complete_members(data: bytes) -> tuple[bytes, int]:
    """The decompressed content of every complete member, and where they end."""
    out: list[bytes] = []
    offset = 0
    while offset < len(data):
        decoder = zlib.decompressobj(wbits=31)
        try:
            chunk = decoder.decompress(data[offset:])
        except zlib.error:
            break
        if not decoder.eof:
            break  # torn: the member never ended
        out.append(chunk)
        offset = len(data) - len(decoder.unused_data)
    return b"".join(out), offset


def append_entries(
    archive_dir: Path, entries: Iterable[HistoryEntry], *, ops: FileOps | None = None
) -> int:
    """Append `entries` durably to their yearly files; returns how many were written."""
    ops = ops or FileOps()
    ensure_private_dir(archive_dir)
    by_file: dict[Path, list[HistoryEntry]] = {}
    for entry in entries:
        by_file.setdefault(archive_file(archive_dir, entry), []).append(entry)
    written = 0
    for path, group in sorted(by_file.items()):
        member = gzip.compress(b"".join(dumps_line(entry) for entry in group), mtime=0)
        existed = path.exists()
        fd = ops.open_append(path)
        try:
            size = os.fstat(fd).st_size
            if size:
                _content, good_end = _complete_members(path.read_bytes())
                if good_end < size:
                    ops.truncate(fd, good_end)
            ops.write_all(fd, member)
            ops.fsync(fd)
        finally:
            ops.close(fd)
        if not existed:
            ops.fsync_dir(archive_dir)
        written += len(group)
    return written


class ArchiveRead:
    """Archived sessions, one per id, newest first, and lines that did not parse."""

    def __init__(self, entries: list[HistoryEntry], bad_lines: int, torn_files: list[Path]) -> None:
        self.entries = entries
        self.bad_lines = bad_lines
        self.torn_files = torn_files


def read_archive(archive_dir: Path) -> ArchiveRead:
    """Every archived session (read-only; a torn tail is skipped, not repaired)."""
    latest: dict[str, HistoryEntry] = {}
    bad = 0
    torn: list[Path] = []
    with contextlib.suppress(FileNotFoundError, NotADirectoryError):
        files = sorted(archive_dir.glob(ARCHIVE_GLOB))
        for path in files:
            try:
                data = path.read_bytes()
            except OSError:
                continue
            content, good_end = _complete_members(data)
            if good_end < len(data):
                torn.append(path)
            for line in content.splitlines():
                if not line.strip():
                    continue
                try:
                    entry = HistoryEntry.model_validate(loads_exact(line))
                except (ValueError, ValidationError):
                    bad += 1
                    continue
                latest[entry.session_id] = entry  # a later copy wins
    entries = sorted(latest.values(), key=lambda e: (e.start_time, e.session_id), reverse=True)
    return ArchiveRead(entries, bad, torn)
