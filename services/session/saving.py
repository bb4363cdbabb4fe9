"""When the snapshot is written, and what happened when it was: the writer's auto-save.

Save points are the interval (preference `autosave_interval_s`, or
`supervisor start --interval`) and significant actions (stage or model
change, preferences, a file created or modified, an expensive call, an
explicit `session.save` / `session.significant_action`). At a save point the
snapshot is written only when it is behind the journal ("dirty"); after a
final failure nothing is lost (the journal keeps every change) and the next
save point simply tries again.

Everything here runs on the worker's main thread; the disk work happens in
`SnapshotSaver`'s thread, whose reports are applied by `take_reports`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from protocol.events import SessionSavedData, SessionSaveFailedData
from protocol.names import Topic
from protocol.session import Preferences, SessionDocument
from services.session.autosave import (
    AttemptFailed,
    Report,
    SnapshotDone,
    SnapshotJob,
    SnapshotSaver,
)
from services.session.status import StatusView
from services.store import AtomicJsonFile, FileOps

__all__ = ["AutoSave", "SaveTiming", "SavedSession"]


class SavedSession(Protocol):
    """What the auto-save reads from the session it saves, and tells back to it.

    The session writer satisfies it; a test can pass anything with these
    members. The auto-save never sees the worker itself.
    """

    @property
    def document(self) -> SessionDocument:
        """The session document as it is in memory now."""
        ...

    @property
    def preferences(self) -> Preferences:
        """The preferences as they are in memory now."""
        ...

    @property
    def revision(self) -> int:
        """The last journal revision applied (durable between batches)."""
        ...

    @property
    def preferences_version(self) -> int:
        """Counts preference changes, so a snapshot writes preferences.json only when needed."""
        ...

    def start_segment(self, now: datetime) -> list[Path]:
        """Rotate the journal; return the segments a snapshot at `revision` makes obsolete."""
        ...

    def note_saved(self, saved_at: datetime) -> None:
        """A snapshot reached the disk: the document now says when."""
        ...


@dataclass(frozen=True)
class SaveTiming:
    """The schedule's numbers and clocks (settings `autosave.*`)."""

    interval_s: float
    max_replay_records: int
    """Snapshot once the journal holds this many records beyond it (bounds a restart)."""
    clock: Callable[[], datetime]
    monotonic: Callable[[], float]


class AutoSave:
    """The save schedule and the truth about the last save, for one session."""

    def __init__(
        self,
        session: SavedSession,
        *,
        current: AtomicJsonFile,
        preferences: AtomicJsonFile,
        journal_ops: FileOps,
        timing: SaveTiming,
        publish: Callable[[str, Any], None],
        call_soon_threadsafe: Callable[[Callable[[], None]], None],
        log: Any,
        snapshot_revision: int,
        last_save_at: datetime | None,
    ) -> None:
        self.session = session
        self.timing = timing
        self.publish = publish
        self.log = log
        self.saver = SnapshotSaver(
            current=current,
            preferences=preferences,
            journal_ops=journal_ops,
            notify=lambda: call_soon_threadsafe(self.take_reports),
        )
        self.saved_rev = snapshot_revision
        self.preferences_saved_version = 0
        self.last_save_at = last_save_at
        self.round_failed = False
        self.last_error: str | None = None
        self.interval_s = float(timing.interval_s)
        self.next_at = 0.0
        self._wanted: str | None = None

    @property
    def max_attempts(self) -> int:
        """Tries per round (settings `store.attempts`)."""
        return max(1, self.saver.current.retry.attempts)

    @property
    def dirty(self) -> bool:
        """The snapshot is behind the journal (nothing is at risk: the journal has it)."""
        session = self.session
        return (
            session.revision > self.saved_rev
            or session.preferences_version > self.preferences_saved_version
        )

    def reschedule(self, interval_s: float | None = None) -> None:
        """Take a new interval (if given) and count it from now."""
        if interval_s is not None:
            self.interval_s = float(interval_s)
        self.next_at = self.timing.monotonic() + self.interval_s

    def check_journal_size(self) -> None:
        """A save point of its own: a long journal makes a slow restart."""
        if self.session.revision - self.saved_rev >= self.timing.max_replay_records:
            self.snapshot("journal_size")

    def next_due(self) -> float | None:
        """The interval save point while the snapshot is behind; None while it is not.

        An idle writer has no timer at all. A change after a quiet spell longer
        than the interval finds its save point passed and is snapshotted at
        once; the points then follow the interval again.
        """
        return self.next_at if self.dirty else None

    def due(self, now: float) -> None:
        """The interval save point: snapshot if behind (also retries a failed round)."""
        if now >= self.next_at:
            self.next_at = now + self.interval_s
            self.snapshot("interval")

    def snapshot(
        self, reason: str, *, sync: bool = False, action: str | None = None
    ) -> SnapshotDone | None:
        """Start a snapshot (background) or write it now (`sync`); None if nothing to save.

        Call only between journal commits: the snapshot claims the writer's
        revision, so every change it holds must already be in the journal.

        The journal rotates first, so the segments the snapshot covers can be
        deleted whole once it is on disk. While a round is in flight a
        background request is remembered and runs when that round ends.
        """
        session = self.session
        self.take_reports()
        if self.saver.busy:
            if not sync:
                self._wanted = self._wanted or reason
                return None
            self.saver.wait_idle()
            self.take_reports()
        if not self.dirty:
            return None
        now = self.timing.clock()
        try:
            obsolete = session.start_segment(now)
        except OSError as exc:
            self.log.warning("session.journal_rotate_failed", error=str(exc))
            obsolete = []
        version = session.preferences_version
        job = SnapshotJob(
            reason=reason,
            revision=session.revision,
            saved_at=now,
            document=session.document.model_copy(update={"last_saved_at": now}),
            preferences=session.preferences if version > self.preferences_saved_version else None,
            preferences_version=version,
            obsolete_segments=tuple(obsolete),
            action=action,
        )
        self._wanted = None
        if not sync:
            self.saver.submit(job)
            return None
        done = self.saver.run_now(job)
        self.take_reports()
        return done

    def take_reports(self, *, start_waiting: bool = True) -> None:
        """Apply what the saver reported: state, events, then a save that waited its turn.

        `start_waiting=False` inside a batch: a snapshot must never start while
        changes are applied in memory but not yet committed to the journal.
        """
        for report in self.saver.take_reports():
            self._apply(report)
        if start_waiting and self._wanted is not None and not self.saver.busy:
            reason, self._wanted = self._wanted, None
            self.snapshot(reason)

    def _apply(self, report: Report) -> None:
        publish = self.publish
        session_id = report.job.document.session_id
        data: dict[str, Any]
        if isinstance(report, AttemptFailed):
            self.log.warning(
                "session.save_attempt_failed",
                file=report.file,
                attempt=report.attempt,
                max_attempts=report.max_attempts,
                error=report.error,
            )
            data = {
                "session_id": session_id,
                "attempt": report.attempt,
                "max_attempts": report.max_attempts,
                "error": report.error,
                "will_retry": True,
                "final": False,
                "file": report.file,
            }
            publish(Topic.SESSION_SAVE_FAILED.value, SessionSaveFailedData.model_validate(data))
            return
        job = report.job
        if report.ok:
            self.saved_rev = max(self.saved_rev, job.revision)
            if job.preferences is not None:
                self.preferences_saved_version = max(
                    self.preferences_saved_version, job.preferences_version
                )
            self.last_save_at = job.saved_at
            self.round_failed, self.last_error = False, None
            self.session.note_saved(job.saved_at)
            if report.drop_error is not None:
                self.log.warning("session.compaction_deferred", error=report.drop_error)
            data = {
                "session_id": session_id,
                "saved_at": job.saved_at,
                "revision": job.revision,
                "reason": job.reason,
            }
            if job.action is not None:
                data["action"] = job.action
            publish(Topic.SESSION_SAVED.value, SessionSavedData.model_validate(data))
            return
        self.round_failed, self.last_error = True, report.error
        self.log.error(
            "session.save_failed",
            file=report.file,
            attempts=report.attempts,
            error=report.error,
            journal="every acknowledged change is safe in the journal",
            next_retry_in_s=self.interval_s,
        )
        data = {
            "session_id": session_id,
            "attempt": report.attempts,
            "max_attempts": self.max_attempts,
            "error": report.error or "unknown error",
            "will_retry": True,
            "final": True,
            "file": report.file,
            "next_retry_in_s": self.interval_s,
        }
        publish(Topic.SESSION_SAVE_FAILED.value, SessionSaveFailedData.model_validate(data))

    def status_view(self) -> StatusView:
        """The facts `session.status` is computed from, as of now."""
        in_flight, failed, max_attempts, error = self.saver.progress.read()
        session = self.session
        return StatusView(
            session_id=session.document.session_id,
            revision=session.revision,
            snapshot_revision=self.saved_rev,
            now=self.timing.clock(),
            dirty=self.dirty,
            round_failed=self.round_failed,
            last_error=self.last_error,
            last_save_at=self.last_save_at,
            interval_s=self.interval_s,
            max_attempts=self.max_attempts,
            in_flight=in_flight,
            failed_attempts=failed,
            round_max_attempts=max_attempts,
            round_error=error,
            recovery=session.document.recovery,
        )

    def close(self, timeout: float) -> None:
        """Let the round in flight finish, apply its report, stop the thread."""
        self.saver.wait_idle(timeout)
        self.take_reports()
        self.saver.close(timeout)
