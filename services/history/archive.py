"""`.session/archive/sessions-YYYY.jsonl.gz`: sessions older than history.json keeps.

One compressed JSON Lines file per year (of the session's start). Archiving
appends a new gzip member (a concatenation of gzip members is a valid gzip
file, `zcat` reads it whole), fsyncs it, and only then is history.json
rewritten without those sessions. A crash in between leaves a session in both
places, and a second archiving would append it again: readers keep one entry
per `session_id` (history.json's first, then the latest archived copy), so a
session is never lost and never shown twice.

A member torn by a crash mid-append is cut off before the next append (it was
never acknowledged: history.json still held those sessions). Reading is
`services.readonly.history.read_archive` (re-exported here).
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Iterable
from pathlib import Path

from protocol.codec import dumps_line
from protocol.history import HistoryEntry
from services.readonly.history import ARCHIVE_GLOB, ArchiveRead, read_archive, whole_members
from services.store import FileOps, ensure_private_dir

__all__ = ["ARCHIVE_GLOB", "ArchiveRead", "append_entries", "archive_file", "read_archive"]


def archive_file(archive_dir: Path, entry: HistoryEntry) -> Path:
    """The yearly file `entry` belongs in."""
    return archive_dir / f"sessions-{entry.start_time.year:04d}.jsonl.gz"


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
                _content, good_end = whole_members(path.read_bytes())
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
