"""Reading the history, for everyone: the client, `supervisor inspect`, the archiver.

Read-only: nothing here moves, repairs or locks a file, so it is safe beside
a running archiver and on a broken project. history.json may be plain or
compressed (`history.json.gz`, once it passed the size limit); readers do not
care which. If a crash left both, the newer one is the current one (the
archiver writes the new form before removing the old).
"""

from __future__ import annotations

import gzip
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import ValidationError

from protocol.codec import loads_exact
from protocol.history import HistoryDocument, HistoryEntry
from services.history.archive import read_archive
from services.runtime.paths import ProjectPaths

__all__ = [
    "HistoryRead",
    "history_source",
    "list_sessions",
    "merge_sessions",
    "newest_first",
    "parse_history",
    "read_history",
    "read_history_file",
]


@dataclass(frozen=True)
class HistoryRead:
    """What reading history.json found."""

    document: HistoryDocument
    status: Literal["ok", "missing", "corrupt"]
    source: Path | None = None
    error: str | None = None


def history_source(paths: ProjectPaths) -> Path | None:
    """The file that holds the history now: history.json or history.json.gz."""
    found: list[tuple[int, Path]] = []
    for path in (paths.history, paths.history_gz):
        try:
            found.append((path.stat().st_mtime_ns, path))
        except OSError:
            continue
    if not found:
        return None
    return max(found, key=lambda item: item[0])[1]


def parse_history(data: bytes, *, compressed: bool) -> HistoryDocument:
    """Parse history bytes; raises ValueError (or a subclass) when unreadable."""
    if compressed:
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as exc:
            raise ValueError(f"not a readable gzip file: {exc}") from None
    try:
        return HistoryDocument.model_validate(loads_exact(data))
    except ValidationError as exc:
        raise ValueError(str(exc).splitlines()[0]) from None


def read_history_file(paths: ProjectPaths) -> HistoryRead:
    """Read the current history file, saying what was found."""
    source = history_source(paths)
    if source is None:
        return HistoryRead(HistoryDocument(), "missing")
    try:
        data = source.read_bytes()
        document = parse_history(data, compressed=source.suffix == ".gz")
    except FileNotFoundError:
        return HistoryRead(HistoryDocument(), "missing")
    except (OSError, ValueError) as exc:
        return HistoryRead(HistoryDocument(), "corrupt", source, f"{type(exc).__name__}: {exc}")
    return HistoryRead(document, "ok", source)


def read_history(paths: ProjectPaths) -> HistoryDocument:
    """The history document (empty when missing or unreadable)."""
    return read_history_file(paths).document


def newest_first(entries: list[HistoryEntry]) -> list[HistoryEntry]:
    """Sessions ordered newest first (by start, then id)."""
    return sorted(entries, key=lambda e: (e.start_time, e.session_id), reverse=True)


def merge_sessions(
    recent: list[HistoryEntry], archived: list[HistoryEntry], limit: int | None
) -> list[HistoryEntry]:
    """`recent` (history.json) then archived sessions it does not hold, newest first."""
    have = {entry.session_id for entry in recent}
    merged = newest_first(list(recent) + [e for e in archived if e.session_id not in have])
    return merged if limit is None else merged[:limit]


def list_sessions(paths: ProjectPaths, limit: int | None = None) -> list[HistoryEntry]:
    """Sessions newest first: history.json's, and the archive's when `limit` asks for more."""
    recent = newest_first(list(read_history(paths).sessions))
    if limit is not None and limit <= len(recent):
        return recent[:limit]
    if limit is None:
        return recent
    return merge_sessions(recent, read_archive(paths.archive_dir).entries, limit)
