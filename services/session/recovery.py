"""Was the previous session interrupted? Read-only answers for `supervisor start`.

A session was interrupted when it has no clean-end marker (`ended_at`) and
the process that owned it is gone. The pid matters, as in Vim and Emacs: a
"clean exit" flag alone lies after a reboot or a `kill -9`, and a pid alone
lies when the number was reused, so the owner only counts as alive when that
pid lives *and* holds this project's supervisor lock.

Nothing here writes or moves a file: the CLI may call it while another
process owns the session's files.
"""

from __future__ import annotations

import contextlib
import os
import socket
from dataclasses import dataclass
from datetime import UTC, datetime

from protocol.session import Preferences, SessionDocument
from protocol.session_journal import JournalBegin
from services.readonly.history import read_history
from services.readonly.liveness import pid_alive
from services.readonly.tree import scan_project
from services.runtime.lock import SupervisorLock, read_lock_pid
from services.runtime.paths import ProjectPaths
from services.session.journal import read_journal
from services.session.replay import replay
from services.store import read_document

__all__ = [
    "PreviousSession",
    "files_changed_since",
    "inspect_previous",
    "new_session_id",
    "owner_is_live",
    "pid_alive",
    "previous_document",
]

_CONSISTENT_READS = 3

_UNLISTED_SUFFIXES = (".swp", ".swo", ".swx", ".tmp", ".bak", ".orig", ".part", ".crdownload")


@dataclass(frozen=True)
class PreviousSession:
    """The last session of a project as its files tell it."""

    session_id: str
    interrupted: bool
    ended_at: datetime | None
    last_save_at: datetime | None
    last_activity: datetime | None
    created_at: datetime
    duration_minutes: float
    files_changed: list[str]


def owner_is_live(paths: ProjectPaths, pid: int | None, host: str | None = None) -> bool:
    """The recorded owner is a live supervisor of this project (pid alive, lock held by it).

    The caller itself never counts: a process asks about the *previous*
    session, so finding its own pid recorded means the number was reused
    (after a reboot, say) by the very supervisor now starting.
    """
    if pid is None or pid == os.getpid():
        return False
    if not SupervisorLock(paths.lock).is_held_elsewhere():
        return False
    holder = read_lock_pid(paths.lock)
    if holder is not None and holder != pid:
        return False
    if host is not None and host != socket.gethostname():
        return True  # another machine's pid cannot be checked here; the held lock says enough
    return pid_alive(pid)


def previous_document(paths: ProjectPaths) -> SessionDocument | None:
    """current.json with the journal replayed onto it, read-only; None if there is none.

    A live writer may snapshot and compact between our two reads; if the
    snapshot changed meanwhile we read again, so the answer is never a stale
    snapshot missing the segments that were just deleted.
    """
    replayed = None
    for _ in range(_CONSISTENT_READS):
        outcome = read_document(paths.current, SessionDocument)
        document = outcome.value if outcome.status == "ok" else None
        records = read_journal(paths.journal_dir)
        again = read_document(paths.current, SessionDocument)
        replayed = replay(document, Preferences(), records, project_name=paths.project.name)
        if again.value == document:
            break
    return replayed.document if replayed is not None else None


def _unlisted(name: str) -> bool:
    # Stricter than the watcher's rules (which see each save happen): a
    # leftover hidden file, probe, backup or partial download is not news
    # worth a question at start.
    return (
        name.startswith((".", "#"))
        or name.endswith("~")
        or name == "4913"  # Vim's probe file
        or name.lower().endswith(_UNLISTED_SUFFIXES)
    )


def files_changed_since(paths: ProjectPaths, since: datetime) -> list[str]:
    """Project-relative paths of the writer's files in the watched folders modified after `since`.

    The tree is walked as the file watcher walks it (`services.readonly.tree`):
    symbolic links are never followed, so nothing outside the project is read.
    """
    cutoff_ns = round(since.timestamp() * 1_000_000) * 1000
    return sorted(
        path
        for path, stat in scan_project(paths.project).files.items()
        if stat.mtime_ns > cutoff_ns and not any(map(_unlisted, path.split("/")[1:]))
    )


def inspect_previous(paths: ProjectPaths) -> PreviousSession | None:
    """Describe the last session (snapshot plus journal), or None when there was none."""
    document = previous_document(paths)
    if document is None:
        return None
    interrupted = document.ended_at is None and not owner_is_live(
        paths, document.owner_pid, document.host
    )
    end = document.ended_at or document.last_activity
    duration = max(0.0, (end - document.created_at).total_seconds() / 60)
    since = document.last_saved_at or document.created_at
    return PreviousSession(
        session_id=document.session_id,
        interrupted=interrupted,
        ended_at=document.ended_at,
        last_save_at=document.last_saved_at,
        last_activity=document.last_activity,
        created_at=document.created_at,
        duration_minutes=round(duration, 2),
        files_changed=files_changed_since(paths, since),
    )


def _taken_ids(paths: ProjectPaths) -> set[str]:
    taken = {entry.session_id for entry in read_history(paths).sessions}
    current = read_document(paths.current, SessionDocument)
    if current.value is not None:
        taken.add(current.value.session_id)
    taken.update(
        record.session_id
        for record in read_journal(paths.journal_dir)
        if isinstance(record, JournalBegin)
    )
    with contextlib.suppress(OSError):
        taken.update(entry.name.split(".", 1)[0] for entry in os.scandir(paths.archive_dir))
    return taken


def new_session_id(paths: ProjectPaths, now: datetime | None = None) -> str:
    """`YYYY-MM-DD-HHMMSS` in local time, with `-2`, `-3`... if that id was already used.

    A naive `now` is taken as local time; an aware one is converted to it.
    """
    moment = now if now is not None else datetime.now(UTC)
    local = moment.astimezone() if moment.tzinfo is not None else moment
    base = local.strftime("%Y-%m-%d-%H%M%S")
    taken = _taken_ids(paths)
    candidate, counter = base, 1
    while candidate in taken:
        counter += 1
        candidate = f"{base}-{counter}"
    return candidate
