"""The `data` of every event topic, one model per topic."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from protocol.base import Document, Money, ProjectPath, Timestamp
from protocol.costs import BudgetWarning, CostOperation, CostTotals
from protocol.envelopes import describe_validation_error
from protocol.errors import ErrorCode, ProtocolError
from protocol.names import RestartRule, Topic
from protocol.session import Preferences

__all__ = [
    "TOPIC_DATA",
    "CostLoggedData",
    "CostUnpricedData",
    "FileEventData",
    "HistoryUpdatedData",
    "PreferencesChangedData",
    "SessionRecoveredData",
    "SessionSaveFailedData",
    "SessionSavedData",
    "WorkerEventData",
    "parse_event_data",
]


class FileEventData(Document):
    """`file.*`: `dest_path` only on `file.moved`."""

    path: ProjectPath
    dest_path: ProjectPath | None = None


class WorkerEventData(Document):
    """`worker.started`, `worker.exited`, `worker.failed`."""

    name: str
    pid: int | None = None
    exit_code: int | None = None
    signal: str | None = None
    restarts: int = 0
    state: str | None = None
    reason: str | None = None
    rule: RestartRule | None = None
    """`worker.exited`, `worker.failed`: which rule decided what follows the exit."""
    restart_in_s: float | None = None
    """`worker.exited`: seconds until the restart (0: at once); null when none follows."""


class SessionSavedData(Document):
    """`session.saved`: the snapshot on disk is now at `revision`."""

    session_id: str
    saved_at: Timestamp
    revision: int
    reason: str = "interval"


class SessionSaveFailedData(Document):
    """`session.save_failed`: the journal still holds every change."""

    session_id: str
    attempt: int
    max_attempts: int
    error: str
    will_retry: bool


class SessionRecoveredData(Document):
    """`session.recovered`: an interrupted session was found at start."""

    session_id: str
    resumed: bool
    last_save_at: Timestamp | None = None
    interrupted_session_id: str | None = None
    files_changed: list[str] = []


class CostLoggedData(Document):
    """`cost.logged`."""

    operation: CostOperation
    totals: CostTotals
    cost: Money | None = None


class CostUnpricedData(Document):
    """`cost.unpriced`: a call on a model with no price was recorded."""

    operation: CostOperation
    message: str


class HistoryUpdatedData(Document):
    """`history.updated`."""

    session_id: str
    status: str


class PreferencesChangedData(Document):
    """`preferences.changed`: the preferences as they are now, durable in the journal.

    Published by the session writer once at its start and after every
    `preferences.set` that changed something, before that request's reply,
    so a request sent after the reply already sees them everywhere.
    Delivery to workers is at least once: apply it as a whole, idempotently.
    """

    session_id: str
    revision: int
    """The session journal's revision that holds these preferences."""
    preferences: Preferences


TOPIC_DATA: dict[Topic, type[Document]] = {
    Topic.SESSION_SAVED: SessionSavedData,
    Topic.SESSION_SAVE_FAILED: SessionSaveFailedData,
    Topic.SESSION_RECOVERED: SessionRecoveredData,
    Topic.COST_LOGGED: CostLoggedData,
    Topic.BUDGET_WARNING: BudgetWarning,
    Topic.COST_UNPRICED: CostUnpricedData,
    Topic.FILE_CREATED: FileEventData,
    Topic.FILE_MODIFIED: FileEventData,
    Topic.FILE_DELETED: FileEventData,
    Topic.FILE_MOVED: FileEventData,
    Topic.WORKER_STARTED: WorkerEventData,
    Topic.WORKER_EXITED: WorkerEventData,
    Topic.WORKER_FAILED: WorkerEventData,
    Topic.HISTORY_UPDATED: HistoryUpdatedData,
    Topic.PREFERENCES_CHANGED: PreferencesChangedData,
}


def parse_event_data(topic: str, data: dict[str, Any]) -> Document:
    """Validate an event's data against its topic's model."""
    try:
        model = TOPIC_DATA[Topic(topic)]
    except ValueError:
        raise ProtocolError(ErrorCode.BAD_REQUEST, f"unknown topic {topic!r}") from None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ProtocolError(ErrorCode.BAD_REQUEST, describe_validation_error(exc)) from None
