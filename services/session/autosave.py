"""Writing the snapshot without blocking requests, and the indicator that tells the truth.

Every acknowledged change is already in the journal, so a snapshot never
decides whether work survives; it decides how fast a restart is and what a
person sees in current.json. It is written by one background thread
(`SnapshotSaver`) with the store's tenacity retries, so a slow or failing
disk never delays a reply. The thread reports each failed attempt and each
finished round through a queue that the worker's main thread drains; the main
thread alone publishes events and changes the session's state.

"Dirty" below means *the snapshot is behind the journal*, not that anything
could be lost.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path

from protocol.base import age_text
from protocol.session import Preferences, SessionDocument
from services.session.journal import drop_segments
from services.store import AtomicJsonFile, FileOps

__all__ = [
    "AttemptFailed",
    "Report",
    "SaveProgress",
    "SaveState",
    "SnapshotDone",
    "SnapshotJob",
    "SnapshotSaver",
    "age_text",
    "indicator_text",
]


class SaveState(StrEnum):
    """What the status bar shows, as `session.status` reports it in `state`."""

    SAVED = "saved"
    SAVING = "saving"
    UNSAVED = "unsaved"
    RETRYING = "retrying"
    FAILED = "failed"


def indicator_text(
    state: SaveState,
    *,
    seconds_since_save: float | None = None,
    attempt: int = 0,
    max_attempts: int = 0,
) -> str:
    """The status-bar text for `state` (docs/ui-integration.md lists every form)."""
    if state is SaveState.SAVING:
        return "◌ Saving…"
    if state is SaveState.UNSAVED:
        return "○ Unsaved changes"
    if state is SaveState.RETRYING:
        return f"⚠ Auto-save failed — retrying ({attempt}/{max_attempts})"
    if state is SaveState.FAILED:
        return "⚠ Auto-save failed — changes are safe in the journal; will retry"
    if seconds_since_save is None:
        return "● Up to date"
    return f"● Auto-saved {age_text(seconds_since_save)} ago"


@dataclass(frozen=True)
class SnapshotJob:
    """One snapshot to write: immutable, so the thread needs no lock to read it."""

    reason: str
    revision: int
    saved_at: datetime
    document: SessionDocument
    """Already carries `last_saved_at = saved_at`."""
    preferences: Preferences | None
    """Written first when it changed since the last good write, else None."""
    preferences_version: int
    obsolete_segments: tuple[Path, ...]
    """Journal segments to delete once the snapshot is on disk (compaction)."""
    action: str | None = None
    """The `session.significant_action` that asked for it, if one did."""


@dataclass(frozen=True)
class AttemptFailed:
    """One try failed and tenacity will try again shortly."""

    job: SnapshotJob
    file: str
    attempt: int
    max_attempts: int
    error: str


@dataclass(frozen=True)
class SnapshotDone:
    """A round finished: on disk (`ok`), or given up until the next save point."""

    job: SnapshotJob
    ok: bool
    attempts: int
    error: str | None = None
    file: str | None = None
    dropped: tuple[Path, ...] = ()
    drop_error: str | None = None


class SaveProgress:
    """The in-flight round as the thread sees it, readable at any moment under a lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.in_flight = False
        self.failed_attempts = 0
        self.max_attempts = 0
        self.last_error: str | None = None

    def begin(self, max_attempts: int) -> None:
        """A round starts."""
        with self._lock:
            self.in_flight, self.failed_attempts, self.max_attempts = True, 0, max_attempts

    def failed(self, attempt: int, max_attempts: int, error: str) -> None:
        """A try failed."""
        with self._lock:
            self.failed_attempts, self.max_attempts, self.last_error = attempt, max_attempts, error

    def end(self) -> None:
        """The round is over (its outcome is in the report queue)."""
        with self._lock:
            self.in_flight = False

    def read(self) -> tuple[bool, int, int, str | None]:
        """(in flight, failed attempts this round, max attempts, last error)."""
        with self._lock:
            return self.in_flight, self.failed_attempts, self.max_attempts, self.last_error


Report = AttemptFailed | SnapshotDone


class SnapshotSaver:
    """Writes snapshots one at a time, in a background thread or on request in the caller's.

    `notify` is called (from the thread) after each report; the worker passes
    a function that schedules `take_reports` on its main thread.
    """

    def __init__(
        self,
        *,
        current: AtomicJsonFile,
        preferences: AtomicJsonFile,
        journal_ops: FileOps | None = None,
        notify: Callable[[], None] = lambda: None,
    ) -> None:
        self.current = current
        self.preferences = preferences
        self.journal_ops = journal_ops or FileOps()
        self.notify = notify
        self.progress = SaveProgress()
        self._cond = threading.Condition()
        self._job: SnapshotJob | None = None
        self._busy = False
        self._closed = False
        self._reports: deque[Report] = deque()
        self._thread: threading.Thread | None = None

    @property
    def busy(self) -> bool:
        """A round is queued or being written."""
        with self._cond:
            return self._busy

    def submit(self, job: SnapshotJob) -> None:
        """Write `job` in the background; the caller checked `busy` first."""
        with self._cond:
            if self._busy or self._closed:
                raise RuntimeError("the saver is busy or closed")
            self._busy, self._job = True, job
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._loop, name="session-saver", daemon=True
                )
                self._thread.start()
            self._cond.notify_all()

    def run_now(self, job: SnapshotJob) -> SnapshotDone:
        """Write `job` in the calling thread, after any round in flight."""
        self.wait_idle()
        with self._cond:
            self._busy = True
        try:
            return self._write(job, background=False)
        finally:
            with self._cond:
                self._busy = False
                self._cond.notify_all()

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until no round is in flight; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._busy, timeout)

    def take_reports(self) -> list[Report]:
        """Everything reported since the last call, in order."""
        taken: list[Report] = []
        while self._reports:
            taken.append(self._reports.popleft())
        return taken

    def close(self, timeout: float = 5.0) -> None:
        """Finish the round in flight and stop the thread."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)

    def _loop(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._job is not None or self._closed)
                job, self._job = self._job, None
            if job is None:
                return
            try:
                self._write(job, background=True)
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()
                self.notify()

    def _write(self, job: SnapshotJob, *, background: bool) -> SnapshotDone:
        self.progress.begin(max(1, self.current.retry.attempts))
        try:
            done = self._write_files(job, background=background)
        except Exception as exc:  # a bug must not kill the thread silently
            done = SnapshotDone(job=job, ok=False, attempts=0, error=f"{type(exc).__name__}: {exc}")
        self._reports.append(done)
        self.progress.end()
        return done

    def _write_files(self, job: SnapshotJob, *, background: bool) -> SnapshotDone:
        def on_failure(file: str) -> Callable[[int, int, BaseException], None]:
            def report(attempt: int, max_attempts: int, error: BaseException) -> None:
                text = f"{type(error).__name__}: {error}"
                self.progress.failed(attempt, max_attempts, text)
                if attempt < max_attempts:
                    self._reports.append(AttemptFailed(job, file, attempt, max_attempts, text))
                    if background:
                        self.notify()

            return report

        if job.preferences is not None:
            outcome = self.preferences.save(
                job.preferences, on_attempt_failed=on_failure("preferences.json")
            )
            if not outcome.ok:
                return SnapshotDone(
                    job,
                    ok=False,
                    attempts=outcome.attempts,
                    error=outcome.error,
                    file="preferences.json",
                )
        outcome = self.current.save(job.document, on_attempt_failed=on_failure("current.json"))
        if not outcome.ok:
            return SnapshotDone(
                job, ok=False, attempts=outcome.attempts, error=outcome.error, file="current.json"
            )
        try:
            dropped = tuple(drop_segments(job.obsolete_segments, self.journal_ops))
        except OSError as exc:
            # The snapshot is good; the old segments simply wait for the next one.
            return SnapshotDone(job, ok=True, attempts=outcome.attempts, drop_error=str(exc))
        return SnapshotDone(job, ok=True, attempts=outcome.attempts, dropped=dropped)
