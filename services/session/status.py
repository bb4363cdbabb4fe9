"""What `session.status` says: the save state and the status-bar text, never a guess.

Computed on demand from the auto-save's state and the saver's live progress
(a retry in flight shows as `⚠ Auto-save failed — retrying (2/3)` at once,
without waiting for the main thread to hear about it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from protocol.ops import SessionStatusResult
from services.session.autosave import SaveState, indicator_text

if TYPE_CHECKING:
    from services.session.saving import AutoSave

__all__ = ["save_state", "session_status"]


def save_state(autosave: AutoSave) -> tuple[SaveState, int, int]:
    """(state, attempt to show, max attempts) right now."""
    in_flight, failed, max_attempts, _ = autosave.saver.progress.read()
    max_attempts = max_attempts or autosave.max_attempts
    if in_flight and 0 < failed < max_attempts:
        return SaveState.RETRYING, failed + 1, max_attempts
    if in_flight and failed == 0:
        return SaveState.SAVING, 0, max_attempts
    if autosave.dirty and (autosave.round_failed or in_flight):
        return SaveState.FAILED, max(failed, max_attempts), max_attempts
    if autosave.dirty:
        return SaveState.UNSAVED, 0, max_attempts
    return SaveState.SAVED, 0, max_attempts


def session_status(autosave: AutoSave) -> SessionStatusResult:
    """The `session.status` result (extra fields: revisions and the interval in force)."""
    writer = autosave.writer
    state, attempt, max_attempts = save_state(autosave)
    seconds: float | None = None
    if autosave.last_save_at is not None:
        elapsed = (writer.clock() - autosave.last_save_at).total_seconds()
        seconds = round(max(0.0, elapsed), 1)
    last_error = autosave.last_error or autosave.saver.progress.read()[3]
    return SessionStatusResult.model_validate(
        {
            "session_id": writer.document.session_id,
            "dirty": autosave.dirty,
            "last_save_at": autosave.last_save_at,
            "seconds_since_save": seconds,
            "indicator": indicator_text(
                state, seconds_since_save=seconds, attempt=attempt, max_attempts=max_attempts
            ),
            "state": state.value,
            "attempt": attempt,
            "max_attempts": max_attempts,
            "last_error": last_error if state in {SaveState.RETRYING, SaveState.FAILED} else None,
            "revision": writer.revision,
            "snapshot_revision": autosave.saved_rev,
            "interval_s": autosave.interval_s,
        }
    )
