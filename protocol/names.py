"""Names that are promises: ops, topics, stages, workers and their states.

Every string a client in another language must spell exactly lives here, so a
rename is one diff in one file and the JSON Schemas follow it.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final

__all__ = [
    "MUTATING_OPS",
    "OP_OWNER",
    "PROTOCOL_VERSION",
    "RESTART_ALL",
    "SIGNIFICANT_ONLY",
    "WORKER_SUBSCRIPTIONS",
    "Op",
    "RestartRule",
    "Stage",
    "Topic",
    "WorkerName",
    "WorkerState",
    "owner_of",
]

PROTOCOL_VERSION: Final = 1


class Stage(StrEnum):
    """The five stages of the writing workflow (the seed's)."""

    CREATION = "creation"
    WRITING = "writing"
    ENHANCING = "enhancing"
    ANALYZING = "analyzing"
    SCORING = "scoring"


class WorkerName(StrEnum):
    """The worker processes the supervisor runs, one OS process each."""

    SESSION_WRITER = "session_writer"
    COST_LEDGER = "cost_ledger"
    FILE_WATCHER = "file_watcher"
    HISTORY_ARCHIVER = "history_archiver"


class WorkerState(StrEnum):
    """What `supervisor.status` says of a worker."""

    STARTING = "starting"
    RUNNING = "running"
    BACKOFF = "backoff"
    FAILED = "failed"
    STOPPING = "stopping"
    STOPPED = "stopped"


class RestartRule(StrEnum):
    """Which rule decided what follows a worker's exit (`worker.exited`'s `rule`)."""

    STABLE_RUN = "stable_run"
    """It had served for at least `stable_s`: restarted at once."""
    FIRST_CRASH = "first_crash"
    """The first quick crash after a quiet period or a stable run: restarted at once."""
    BACKOFF = "backoff"
    """Another quick crash: a crash loop, restarted after `restart_in_s`."""
    INTENSITY = "intensity"
    """More than `max_restarts` in `restart_window_s`: failed, no restart."""
    STOPPING = "stopping"
    """It was being stopped (the service stops): no restart."""
    REQUESTED = "requested"
    """`supervisor.restart` stopped it: started again at once."""


RESTART_ALL: Final = "all"
"""`supervisor.restart`'s `worker` meaning every worker."""


class Op(StrEnum):
    """Every op of the command channel (docs/protocol.md)."""

    SESSION_GET = "session.get"
    SESSION_STATUS = "session.status"
    SESSION_SET_STAGE = "session.set_stage"
    SESSION_SET_SCREEN = "session.set_screen"
    SESSION_SET_BREADCRUMB = "session.set_breadcrumb"
    SESSION_OPEN_FILE = "session.open_file"
    SESSION_CLOSE_FILE = "session.close_file"
    SESSION_SET_MODEL_PREFERENCE = "session.set_model_preference"
    SESSION_ADD_RECENT_QUERY = "session.add_recent_query"
    SESSION_SIGNIFICANT_ACTION = "session.significant_action"
    SESSION_SAVE = "session.save"
    SESSION_ACK_RECOVERY = "session.ack_recovery"
    PREFERENCES_GET = "preferences.get"
    PREFERENCES_SET = "preferences.set"
    COST_LOG = "cost.log"
    COST_ESTIMATE = "cost.estimate"
    COST_TOTALS = "cost.totals"
    COST_WARNING = "cost.warning"
    COST_SET_BUDGET = "cost.set_budget"
    COST_RESET_SESSION = "cost.reset_session"
    COST_SERIES = "cost.series"
    HISTORY_LIST = "history.list"
    SUPERVISOR_STATUS = "supervisor.status"
    SUPERVISOR_RESTART = "supervisor.restart"


class Topic(StrEnum):
    """Every topic of the event channel (docs/protocol.md)."""

    SESSION_SAVED = "session.saved"
    SESSION_SAVE_FAILED = "session.save_failed"
    SESSION_RECOVERED = "session.recovered"
    COST_LOGGED = "cost.logged"
    BUDGET_WARNING = "budget.warning"
    COST_UNPRICED = "cost.unpriced"
    FILE_CREATED = "file.created"
    FILE_MODIFIED = "file.modified"
    FILE_DELETED = "file.deleted"
    FILE_MOVED = "file.moved"
    WORKER_STARTED = "worker.started"
    WORKER_EXITED = "worker.exited"
    WORKER_FAILED = "worker.failed"
    HISTORY_UPDATED = "history.updated"
    PREFERENCES_CHANGED = "preferences.changed"


MUTATING_OPS: frozenset[Op] = frozenset(
    {
        Op.SESSION_SET_STAGE,
        Op.SESSION_SET_SCREEN,
        Op.SESSION_SET_BREADCRUMB,
        Op.SESSION_OPEN_FILE,
        Op.SESSION_CLOSE_FILE,
        Op.SESSION_SET_MODEL_PREFERENCE,
        Op.SESSION_ADD_RECENT_QUERY,
        Op.SESSION_SIGNIFICANT_ACTION,
        Op.SESSION_SAVE,
        Op.SESSION_ACK_RECOVERY,
        Op.PREFERENCES_SET,
        Op.COST_LOG,
        Op.COST_SET_BUDGET,
        Op.COST_RESET_SESSION,
    }
)
"""Ops whose `ok` reply promises a durable change; their `id` is an idempotency key."""

OP_OWNER: dict[str, WorkerName | None] = {
    "session.": WorkerName.SESSION_WRITER,
    "preferences.": WorkerName.SESSION_WRITER,
    "cost.": WorkerName.COST_LEDGER,
    "history.": WorkerName.HISTORY_ARCHIVER,
    "supervisor.": None,
}
"""Op prefix to the worker that answers it; `None` means the supervisor itself."""

WORKER_SUBSCRIPTIONS: dict[WorkerName, tuple[str, ...]] = {
    WorkerName.SESSION_WRITER: ("file.", "cost.logged"),
    WorkerName.COST_LEDGER: ("preferences.changed",),
    WorkerName.FILE_WATCHER: (),
    WorkerName.HISTORY_ARCHIVER: ("session.", "file.", "cost.logged"),
}
"""Topic prefixes each worker receives (docs/protocol.md)."""


SIGNIFICANT_ONLY: dict[WorkerName, frozenset[str]] = {
    WorkerName.SESSION_WRITER: frozenset({Topic.COST_LOGGED.value}),
}
"""Topics a worker receives only when the publisher marks the event significant.

The session writer acts on `cost.logged` only above the confirm threshold (it
saves the snapshot at once); the ledger, which knows the cost and reads the
same preference, marks the others minor and the supervisor does not deliver
them there. Every subscriber of the public event socket still gets all.
"""


def owner_of(op: str) -> WorkerName | None:
    """Return the worker that owns `op` by prefix.

    Raises `KeyError` for an op no prefix matches; the supervisor turns that
    into `unknown_op` without bothering any worker.
    """
    # Every prefix is one word and its dot: one dict lookup, on every request.
    word, dot, _rest = op.partition(".")
    return OP_OWNER[word + dot]
