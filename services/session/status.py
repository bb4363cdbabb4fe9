"""What `session.status` says: the save state and the status-bar text, never a guess.

Computed on demand from a frozen `StatusView`: the auto-save's state and the
saver's live progress taken at one moment (a retry in flight shows as
`⚠ Auto-save failed — retrying (2/3)` at once, without waiting for the main
thread to hear about it). Pure: no worker, no thread, no clock of its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from protocol.ops import SessionStatusResult
from protocol.session import RecoveryNotice
from services.session.autosave import SaveState, indicator_text

__all__ = ["StatusView", "save_state", "session_status"]


@dataclass(frozen=True)
class StatusView:
    """Everything `session.status` depends on, read at one moment."""

    session_id: str
    revision: int
    snapshot_revision: int
    now: datetime
    dirty: bool
    """The snapshot is behind the journal."""
    round_failed: bool
    """The last finished round gave up (the next save point retries)."""
    last_error: str | None
    last_save_at: datetime | None
    interval_s: float
    max_attempts: int
    in_flight: bool
    """A round is being written right now."""
    failed_attempts: int
    """Failed tries of the round in flight (or of the last one)."""
    round_max_attempts: int
    round_error: str | None
    recovery: RecoveryNotice | None = None
    """An interruption the UI has not acknowledged yet."""


def save_state(view: StatusView) -> tuple[SaveState, int, int]:
    """(state, attempt to show, max attempts) for `view`."""
    in_flight, failed = view.in_flight, view.failed_attempts
    max_attempts = view.round_max_attempts or view.max_attempts
    if in_flight and 0 < failed < max_attempts:
        return SaveState.RETRYING, failed + 1, max_attempts
    if in_flight and failed == 0:
        return SaveState.SAVING, 0, max_attempts
    if view.dirty and (view.round_failed or in_flight):
        return SaveState.FAILED, max(failed, max_attempts), max_attempts
    if view.dirty:
        return SaveState.UNSAVED, 0, max_attempts
    return SaveState.SAVED, 0, max_attempts


def session_status(view: StatusView) -> SessionStatusResult:
    """The `session.status` result (extra fields: revisions and the interval in force)."""
    state, attempt, max_attempts = save_state(view)
    seconds: float | None = None
    if view.last_save_at is not None:
        elapsed = (view.now - view.last_save_at).total_seconds()
        seconds = round(max(0.0, elapsed), 1)
    last_error = view.last_error or view.round_error
    return SessionStatusResult.model_validate(
        {
            "session_id": view.session_id,
            "dirty": view.dirty,
            "last_save_at": view.last_save_at,
            "seconds_since_save": seconds,
            "indicator": indicator_text(
                state, seconds_since_save=seconds, attempt=attempt, max_attempts=max_attempts
            ),
            "state": state.value,
            "attempt": attempt,
            "max_attempts": max_attempts,
            "last_error": last_error if state in {SaveState.RETRYING, SaveState.FAILED} else None,
            "revision": view.revision,
            "snapshot_revision": view.snapshot_revision,
            "interval_s": view.interval_s,
            "recovery": view.recovery,
        }
    )
