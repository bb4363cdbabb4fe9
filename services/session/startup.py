"""How the session writer starts: load, replay, then begin, continue or resume a session.

Kept apart from the worker so the start-up rules read as one page:

* current.json holds `facts.session_id` and the same owner (supervisor pid and
  host): the writer alone restarted (say after `kill -9`). Continue silently;
  the journal replay brought back every acknowledged change.
* current.json holds `facts.session_id` but another owner: a new supervisor
  resumes the session. Record the new owner in the journal; if the session had
  no clean-end marker it was interrupted, so publish `session.recovered`
  with `resumed: true`.
* anything else: a new session begins (a `begin` record). If the previous
  session was never cleanly ended, publish `session.recovered` with
  `resumed: false` and its id, for the history and the UI.

Whenever an interruption is found, the document also gets a `recovery`
notice (what the UI shows: last save, duration, files changed since), kept
until a client sends `session.ack_recovery`; an unacknowledged notice carries
over into the next session. The event only announces it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from config import Settings
from protocol.base import STORED_CONTEXT
from protocol.events import SessionRecoveredData
from protocol.names import Topic
from protocol.session import Preferences, RecoveryNotice, SessionDocument
from protocol.session_journal import JournalBegin, JournalOwner
from services.runtime.paths import ProjectPaths
from services.session.journal import SessionJournal
from services.session.recovery import files_changed_since
from services.session.replay import RememberedReply, replay
from services.session.state import new_document
from services.store import AtomicJsonFile

__all__ = [
    "LoadedState",
    "StartDecision",
    "StartFacts",
    "begin_or_continue",
    "default_preferences",
    "load_state",
]


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


def default_preferences(settings: Settings) -> Preferences:
    """The preferences of a project that has none yet, seeded from defaults.toml.

    Clamped into the preferences' ranges: the operator's config may ask for
    less (a 0.5 s test interval); a preference never leaves its range.
    """
    return Preferences.model_validate(
        {
            "autosave_interval_s": settings.autosave.interval_s,
            "budget_warning_fraction": settings.budget.warning_fraction,
            "confirm_above": settings.budget.confirm_above,
        },
        context=STORED_CONTEXT,
    )


def load_state(
    journal: SessionJournal,
    current: AtomicJsonFile,
    preferences_file: AtomicJsonFile,
    *,
    defaults: Preferences,
    project_name: str,
    log: Any,
) -> LoadedState:
    """Load preferences and snapshot (moving a corrupt one aside), open and replay the journal.

    `defaults` are the preferences of a project that has none yet (or whose
    file is corrupt).
    """
    loaded_prefs = preferences_file.load(Preferences)
    preferences = loaded_prefs.value or defaults
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
    contents = journal.open()
    if contents.repair is not None:
        log.warning(
            "session.journal_tail_cut",
            offset=contents.repair.offset,
            removed_bytes=contents.repair.removed_bytes,
            note="a torn line is never acknowledged",
        )
    for path, bad in contents.bad_lines:
        log.error("session.journal_bad_line", segment=path.name, offset=bad.offset, error=bad.error)
    replayed = replay(snapshot, preferences, contents.records, project_name=project_name)
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

    record: JournalBegin | JournalOwner | None
    document: SessionDocument
    events: list[tuple[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class StartFacts:
    """Who starts the writer, when, and where: everything the rules compare against."""

    session_id: str
    """The session the supervisor asked for."""
    owner_pid: int | None
    """The supervisor's pid (None when run without one, as in tests)."""
    host: str
    now: datetime
    revision: int
    """The revision after loading; a start record takes the next one."""
    model_preferences: dict[Any, str]
    """The writer's model choices, copied into a new session."""
    paths: ProjectPaths


def _recovered(
    facts: StartFacts, previous: SessionDocument, *, session_id: str, resumed: bool
) -> tuple[RecoveryNotice, tuple[str, Any]]:
    """The notice the document keeps until acknowledged, and the event announcing it."""
    since = previous.last_saved_at or previous.created_at
    changed = files_changed_since(facts.paths, since)
    notice = RecoveryNotice(
        interrupted_session_id=previous.session_id,
        resumed=resumed,
        detected_at=facts.now,
        started_at=previous.created_at,
        last_activity=previous.last_activity,
        duration_s=max(0.0, (previous.last_activity - previous.created_at).total_seconds()),
        last_save_at=previous.last_saved_at,
        files_changed=changed,
    )
    data = SessionRecoveredData(
        session_id=session_id,
        resumed=resumed,
        last_save_at=previous.last_saved_at,
        interrupted_session_id=None if resumed else previous.session_id,
        files_changed=changed,
    )
    return notice, (Topic.SESSION_RECOVERED.value, data)


def begin_or_continue(
    previous: SessionDocument | None, facts: StartFacts, *, log: Any
) -> StartDecision:
    """Apply the start-up rules of this module's docstring."""
    owner, host, now = facts.owner_pid, facts.host, facts.now
    rev = facts.revision + 1
    project_name = facts.paths.project.name
    if previous is not None and previous.session_id == facts.session_id:
        if previous.ended_at is None and (previous.owner_pid, previous.host) == (owner, host):
            log.info("session.continued", session_id=previous.session_id)
            return StartDecision(record=None, document=previous)
        owner_record = JournalOwner(
            rev=rev, session_id=previous.session_id, owner_pid=owner, host=host, ts=now
        )
        update: dict[str, Any] = {
            "owner_pid": owner,
            "host": host,
            "ended_at": None,
            "revision": rev,
        }
        events = []
        if previous.ended_at is None:
            notice, event = _recovered(
                facts, previous, session_id=previous.session_id, resumed=True
            )
            update["recovery"] = notice
            events.append(event)
            log.warning(
                "session.resumed_interrupted",
                session_id=previous.session_id,
                last_save_at=previous.last_saved_at.isoformat() if previous.last_saved_at else None,
            )
        else:
            log.info("session.reopened", session_id=previous.session_id)
        document = previous.model_copy(update=update)
        return StartDecision(record=owner_record, document=document, events=events)
    events = []
    # A notice nobody acknowledged yet carries over into the next session.
    interrupted: RecoveryNotice | None = previous.recovery if previous is not None else None
    if previous is not None and previous.ended_at is None and previous.owner_pid != owner:
        interrupted, event = _recovered(facts, previous, session_id=facts.session_id, resumed=False)
        events.append(event)
        log.warning(
            "session.fresh_over_interrupted",
            interrupted=previous.session_id,
            session_id=facts.session_id,
        )
    models = dict(facts.model_preferences)
    record = JournalBegin(
        rev=rev,
        session_id=facts.session_id,
        ts=now,
        project_name=project_name,
        owner_pid=owner,
        host=host,
        model_preferences=models,
    )
    document = new_document(
        session_id=facts.session_id,
        project_name=project_name,
        created_at=now,
        revision=rev,
        model_preferences=models,
        owner_pid=owner,
        host=host,
    )
    if interrupted is not None:
        document = document.model_copy(update={"recovery": interrupted})
    log.info("session.began", session_id=facts.session_id)
    return StartDecision(record=record, document=document, events=events)
