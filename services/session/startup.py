"""How the session writer starts: load, replay, then begin, continue or resume a session.

Kept apart from the worker so the start-up rules read as one page:

* current.json holds `ctx.session_id` and the same owner (supervisor pid and
  host): the writer alone restarted (say after `kill -9`). Continue silently;
  the journal replay brought back every acknowledged change.
* current.json holds `ctx.session_id` but another owner: a new supervisor
  resumes the session. Record the new owner in the journal; if the session had
  no clean-end marker it was interrupted, so publish `session.recovered`
  with `resumed: true`.
* anything else: a new session begins (a `begin` record). If the previous
  session was never cleanly ended, publish `session.recovered` with
  `resumed: false` and its id, for the history and the UI.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from protocol.base import STORED_CONTEXT
from protocol.events import SessionRecoveredData
from protocol.names import Topic
from protocol.session import Preferences, SessionDocument
from services.session.recovery import files_changed_since
from services.session.replay import RememberedReply, replay
from services.session.state import new_document
from services.store import AtomicJsonFile

if TYPE_CHECKING:
    from services.session_writer import SessionWriter

__all__ = ["LoadedState", "StartDecision", "begin_or_continue", "load_state"]


@dataclass(frozen=True)
class LoadedState:
    """The state found on disk, after replaying the journal."""

    document: SessionDocument | None
    preferences: Preferences
    preferences_dirty: bool
    revision: int
    snapshot_revision: int
    replies: list[RememberedReply] = field(default_factory=list)
    activity_keys: list[str] = field(default_factory=list)
    replayed: int = 0


def _default_preferences(writer: SessionWriter) -> Preferences:
    settings = writer.ctx.settings
    # Clamped into the preferences' ranges: the operator's config may ask for
    # less (a 0.5 s test interval), but a preference never leaves its range.
    return Preferences.model_validate(
        {
            "autosave_interval_s": settings.autosave.interval_s,
            "budget_warning_fraction": settings.budget.warning_fraction,
            "confirm_above": settings.budget.confirm_above,
        },
        context=STORED_CONTEXT,
    )


def load_state(
    writer: SessionWriter, current: AtomicJsonFile, preferences_file: AtomicJsonFile
) -> LoadedState:
    """Load preferences and snapshot (moving a corrupt one aside), open and replay the journal."""
    log = writer.log
    loaded_prefs = preferences_file.load(Preferences)
    preferences = loaded_prefs.value or _default_preferences(writer)
    if loaded_prefs.status == "corrupt":
        log.error(
            "session.preferences_corrupt",
            moved_to=str(loaded_prefs.moved_to),
            error=loaded_prefs.error,
            action="defaults restored; copy your values back from the moved file",
        )
    loaded = current.load(SessionDocument)
    snapshot = loaded.value
    if loaded.status == "corrupt":
        log.error(
            "session.snapshot_corrupt",
            moved_to=str(loaded.moved_to),
            error=loaded.error,
            action="rebuilding the session from the journal",
        )
    contents = writer.journal.open()
    if contents.repair is not None:
        log.warning(
            "session.journal_tail_cut",
            offset=contents.repair.offset,
            removed_bytes=contents.repair.removed_bytes,
            note="a torn line is never acknowledged",
        )
    for path, bad in contents.bad_lines:
        log.error("session.journal_bad_line", segment=path.name, offset=bad.offset, error=bad.error)
    replayed = replay(
        snapshot, preferences, contents.records, project_name=writer.ctx.paths.project.name
    )
    for problem in replayed.problems:
        log.error("session.replay_problem", problem=problem)
    if loaded.status == "corrupt":
        log.error(
            "session.snapshot_rebuilt",
            from_start_record=replayed.rebuilt and not replayed.problems,
            session_id=replayed.document.session_id if replayed.document else None,
            replayed=replayed.applied,
        )
    document = replayed.document
    return LoadedState(
        document=document,
        preferences=replayed.preferences,
        preferences_dirty=loaded_prefs.status != "ok" or replayed.preferences != preferences,
        revision=replayed.revision,
        snapshot_revision=snapshot.revision if snapshot is not None else -1,
        replies=replayed.replies,
        activity_keys=replayed.activity_keys,
        replayed=replayed.applied,
    )


@dataclass(frozen=True)
class StartDecision:
    """What start-up does: a record to journal (or none), the document, events to publish."""

    record: dict[str, Any] | None
    document: SessionDocument
    events: list[tuple[str, Any]] = field(default_factory=list)


def _recovered(
    writer: SessionWriter, previous: SessionDocument, *, session_id: str, resumed: bool
) -> tuple[str, Any]:
    since = previous.last_saved_at or previous.created_at
    data = SessionRecoveredData(
        session_id=session_id,
        resumed=resumed,
        last_save_at=previous.last_saved_at,
        interrupted_session_id=None if resumed else previous.session_id,
        files_changed=files_changed_since(writer.ctx.paths, since),
    )
    return Topic.SESSION_RECOVERED.value, data


def begin_or_continue(writer: SessionWriter, previous: SessionDocument | None) -> StartDecision:
    """Apply the start-up rules of this module's docstring."""
    ctx = writer.ctx
    raw_owner = ctx.options.get("supervisor_pid")
    owner = int(raw_owner) if raw_owner is not None else None
    host = socket.gethostname()
    now = writer.clock()
    rev = writer.revision + 1
    if previous is not None and previous.session_id == ctx.session_id:
        if previous.ended_at is None and (previous.owner_pid, previous.host) == (owner, host):
            writer.log.info("session.continued", session_id=previous.session_id)
            return StartDecision(record=None, document=previous)
        record = {
            "kind": "owner",
            "rev": rev,
            "session_id": previous.session_id,
            "owner_pid": owner,
            "host": host,
            "ts": now,
        }
        document = previous.model_copy(
            update={"owner_pid": owner, "host": host, "ended_at": None, "revision": rev}
        )
        events = []
        if previous.ended_at is None:
            events.append(
                _recovered(writer, previous, session_id=previous.session_id, resumed=True)
            )
            writer.log.warning(
                "session.resumed_interrupted",
                session_id=previous.session_id,
                last_save_at=previous.last_saved_at.isoformat() if previous.last_saved_at else None,
            )
        else:
            writer.log.info("session.reopened", session_id=previous.session_id)
        return StartDecision(record=record, document=document, events=events)
    events = []
    if previous is not None and previous.ended_at is None and previous.owner_pid != owner:
        events.append(_recovered(writer, previous, session_id=ctx.session_id, resumed=False))
        writer.log.warning(
            "session.fresh_over_interrupted",
            interrupted=previous.session_id,
            session_id=ctx.session_id,
        )
    models = dict(writer.preferences.model_preferences)
    record = {
        "kind": "begin",
        "rev": rev,
        "session_id": ctx.session_id,
        "ts": now,
        "project_name": ctx.paths.project.name,
        "owner_pid": owner,
        "host": host,
        "model_preferences": models,
    }
    document = new_document(
        session_id=ctx.session_id,
        project_name=ctx.paths.project.name,
        created_at=now,
        revision=rev,
        model_preferences=models,
        owner_pid=owner,
        host=host,
    )
    writer.log.info("session.began", session_id=ctx.session_id)
    return StartDecision(record=record, document=document, events=events)
