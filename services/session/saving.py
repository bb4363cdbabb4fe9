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

from datetime import datetime
from typing import TYPE_CHECKING, Any

from protocol.events import SessionSavedData, SessionSaveFailedData
from protocol.names import Topic
from services.session.autosave import (
    AttemptFailed,
    Report,
    SnapshotDone,
    SnapshotJob,
    SnapshotSaver,
)
from services.store import AtomicJsonFile

if TYPE_CHECKING:
    from services.session_writer import SessionWriter

__all__ = ["MAX_REPLAY_RECORDS", "AutoSave"]

MAX_REPLAY_RECORDS = 2000
"""Snapshot once the journal holds this many records beyond it: replay costs about
25 µs a record, so this bounds the replay part of a restart to about 50 ms."""


class AutoSave:
    """The save schedule and the truth about the last save, for one writer."""

    def __init__(
        self,
        writer: SessionWriter,
        *,
        current: AtomicJsonFile,
        preferences: AtomicJsonFile,
        snapshot_revision: int,
        last_save_at: datetime | None,
    ) -> None:
        self.writer = writer
        ctx = writer.ctx
        self.saver = SnapshotSaver(
            current=current,
            preferences=preferences,
            journal_ops=writer.journal.ops,
            notify=lambda: ctx.call_soon_threadsafe(self.take_reports),
        )
        self.saved_rev = snapshot_revision
        self.preferences_saved_version = 0
        self.last_save_at = last_save_at
        self.round_failed = False
        self.last_error: str | None = None
        self.interval_s = float(ctx.settings.autosave.interval_s)
        self.next_at = 0.0
        self._wanted: str | None = None

    @property
    def max_attempts(self) -> int:
        """Tries per round (settings `store.attempts`)."""
        return max(1, self.saver.current.retry.attempts)

    @property
    def dirty(self) -> bool:
        """The snapshot is behind the journal (nothing is at risk: the journal has it)."""
        writer = self.writer
        return (
            writer.revision > self.saved_rev
            or writer.preferences_version > self.preferences_saved_version
        )

    def reschedule(self, interval_s: float | None = None) -> None:
        """Take a new interval (if given) and count it from now."""
        if interval_s is not None:
            self.interval_s = float(interval_s)
        self.next_at = self.writer.monotonic() + self.interval_s

    def check_journal_size(self) -> None:
        """A save point of its own: a long journal makes a slow restart."""
        if self.writer.revision - self.saved_rev >= MAX_REPLAY_RECORDS:
            self.snapshot("journal_size")

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
        writer = self.writer
        self.take_reports()
        if self.saver.busy:
            if not sync:
                self._wanted = self._wanted or reason
                return None
            self.saver.wait_idle()
            self.take_reports()
        if not self.dirty:
            return None
        now = writer.clock()
        try:
            obsolete = writer.journal.rotate(
                base_rev=writer.revision,
                carried=writer.memory.carried_ids(),
                created_at=now,
                activity=writer.memory.carried_activity(),
            )
        except OSError as exc:
            writer.log.warning("session.journal_rotate_failed", error=str(exc))
            obsolete = []
        version = writer.preferences_version
        job = SnapshotJob(
            reason=reason,
            revision=writer.revision,
            saved_at=now,
            document=writer.document.model_copy(update={"last_saved_at": now}),
            preferences=writer.preferences if version > self.preferences_saved_version else None,
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
        writer = self.writer
        publish = writer.ctx.publish
        session_id = report.job.document.session_id
        data: dict[str, Any]
        if isinstance(report, AttemptFailed):
            writer.log.warning(
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
            writer.note_saved(job.saved_at)
            if report.drop_error is not None:
                writer.log.warning("session.compaction_deferred", error=report.drop_error)
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
        writer.log.error(
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

    def close(self, timeout: float) -> None:
        """Let the round in flight finish, apply its report, stop the thread."""
        self.saver.wait_idle(timeout)
        self.take_reports()
        self.saver.close(timeout)
