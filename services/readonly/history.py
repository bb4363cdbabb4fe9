"""Reading the history the archiver owns, for everyone: recovery, `supervisor inspect`,
the archiver itself.

Read-only: nothing here moves, repairs or locks a file, so it is safe beside
a running archiver and on a broken project. history.json may be plain or
compressed (`history.json.gz`, once it passed the size limit); readers do not
care which. If a crash left both, the newer one is the current one (the
archiver writes the new form before removing the old). Sessions older than
history.json keeps are in the yearly `archive/sessions-YYYY.jsonl.gz`
(`read_archive`), one `HistoryEntry` a line in gzip members; a member torn by
a crash is skipped here and cut by the archiver before its next append.
"""

from __future__ import annotations

import contextlib
import gzip
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

from pydantic import ValidationError

from protocol.codec import loads_exact
from protocol.history import HistoryDocument, HistoryEntry
from protocol.history_journal import decode_archive_line
from services.runtime.paths import ProjectPaths

__all__ = [
    "ARCHIVE_GLOB",
    "ArchiveRead",
    "HistoryRead",
    "history_source",
    "list_sessions",
    "merge_sessions",
    "newest_first",
    "parse_history",
    "read_archive",
    "read_history",
    "read_history_file",
    "whole_members",
]

ARCHIVE_GLOB: Final = "sessions-*.jsonl.gz"


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


def whole_members(data: bytes) -> tuple[bytes, int]:
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
            content, good_end = whole_members(data)
            if good_end < len(data):
                torn.append(path)
            for line in content.splitlines():
                if not line.strip():
                    continue
                try:
                    entry = decode_archive_line(line)
                except ValueError:
                    bad += 1
                    continue
                latest[entry.session_id] = entry  # a later copy wins
    entries = sorted(latest.values(), key=lambda e: (e.start_time, e.session_id), reverse=True)
    return ArchiveRead(entries, bad, torn)
