"""Writing history.json (or history.json.gz) and moving old sessions to the archive.

Only the history archiver constructs a `HistoryStore`. A save keeps the
newest `keep` sessions in history.json and appends the rest to the archive
first (fsynced), so a crash between the two leaves a session in both places,
never in neither. When the indented document would pass
`compress_above_bytes`, it is written as history.json.gz instead and the
plain file removed (and back again when it shrinks); readers take whichever
is newer (`services.readonly.history`).
"""

from __future__ import annotations

import contextlib
import gzip
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from protocol.codec import dumps_pretty
from protocol.history import HistoryDocument, HistoryEntry
from services.history.archive import append_entries
from services.history.rebuild import rebuild_history
from services.readonly.history import newest_first, read_history_file
from services.runtime.paths import ProjectPaths
from services.store import AtomicJsonFile, FileOps, RetryPolicy, SaveOutcome, corrupt_name

__all__ = ["HistoryLoad", "HistorySave", "HistoryStore"]


@dataclass(frozen=True)
class HistoryLoad:
    """What the archiver found at start."""

    sessions: list[HistoryEntry]
    problem: str | None = None
    moved_to: Path | None = None
    rebuilt: str | None = None
    """For a corrupt file: what `services.history.rebuild` brought back."""


@dataclass(frozen=True)
class HistorySave:
    """What a save did: the sessions history.json now holds, and what moved out."""

    outcome: SaveOutcome
    kept: list[HistoryEntry]
    archived: list[HistoryEntry]
    compressed: bool
    archive_error: str | None = None


class HistoryStore:
    """history.json, history.json.gz and the archive, written by their one owner."""

    def __init__(
        self,
        paths: ProjectPaths,
        *,
        keep: int,
        compress_above_bytes: int,
        retry: RetryPolicy | None = None,
        ops: FileOps | None = None,
    ) -> None:
        self.paths = paths
        self.keep = keep
        self.compress_above_bytes = compress_above_bytes
        self.ops = ops or FileOps()
        self._plain = AtomicJsonFile(paths.history, retry=retry, ops=self.ops, writer=True)
        self._compressed = AtomicJsonFile(paths.history_gz, retry=retry, ops=self.ops, writer=True)

    def load(self) -> HistoryLoad:
        """Read the history; an unreadable file is moved aside (never overwritten)."""
        found = read_history_file(self.paths)
        if found.status != "corrupt" or found.source is None:
            return HistoryLoad(list(found.document.sessions))
        aside = corrupt_name(found.source, datetime.now(UTC))
        target: Path | None = aside
        try:
            found.source.rename(aside)
            self.ops.fsync_dir(found.source.parent)
        except OSError:
            target = None  # reported as corrupt all the same; the next save says more
        rebuilt = rebuild_history(self.paths)
        return HistoryLoad(
            rebuilt.sessions, problem=found.error, moved_to=target, rebuilt=rebuilt.summary()
        )

    def save(self, sessions: list[HistoryEntry], *, pinned: str | None = None) -> HistorySave:
        """Write `sessions` (archiving beyond `keep`); `pinned` always stays in history.json."""
        ordered = newest_first(sessions)
        kept = ordered[: self.keep]
        if pinned is not None and all(e.session_id != pinned for e in kept):
            live = [e for e in ordered if e.session_id == pinned]
            kept = newest_first(live + ordered[: max(0, self.keep - len(live))])
        kept_ids = {e.session_id for e in kept}
        older = [e for e in ordered if e.session_id not in kept_ids]
        archive_error = None
        if older:
            try:
                append_entries(self.paths.archive_dir, older, ops=self.ops)
            except OSError as exc:
                # Keep them in history.json: a longer file beats a lost session.
                archive_error = f"{type(exc).__name__}: {exc}"
                kept, older = ordered, []
        data = dumps_pretty(HistoryDocument(sessions=kept))
        compressed = len(data) > self.compress_above_bytes
        if compressed:
            outcome = self._compressed.save_bytes(gzip.compress(data, mtime=0))
            stale = self.paths.history
        else:
            outcome = self._plain.save_bytes(data)
            stale = self.paths.history_gz
        if outcome.ok and stale.exists():
            # Readers take the newer of the two, so a leftover is harmless.
            with contextlib.suppress(OSError):
                stale.unlink()
                self.ops.fsync_dir(stale.parent)
        return HistorySave(outcome, kept, older, compressed, archive_error)
