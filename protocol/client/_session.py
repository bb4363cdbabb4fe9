"""`Session`: the seed's session API, asyncio, backed by the running service."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime
from pathlib import Path, PurePath
from typing import Any, TypeVar

from protocol.base import Document
from protocol.client._discovery import interrupted_snapshot
from protocol.client._events import EventStream
from protocol.client._seed_api import Connection, SeedAPI, notify
from protocol.client._transport import ServiceClient
from protocol.events import SessionRecoveredData, SessionSavedData, SessionSaveFailedData
from protocol.names import Op, Stage, Topic
from protocol.ops import SaveResult, SessionStatusResult, SignificantActionResult
from protocol.session import RecoveryNotice, SessionDocument

__all__ = ["SaveCallback", "SaveFailedCallback", "Session"]

SaveCallback = Callable[[SessionSavedData], Awaitable[None] | None]
"""Called with the data of each `session.saved` event."""
SaveFailedCallback = Callable[[SessionSaveFailedData], Awaitable[None] | None]
"""Called with the data of each `session.save_failed` event."""

_SaveCallbackT = TypeVar("_SaveCallbackT", bound=SaveCallback)
_SaveFailedCallbackT = TypeVar("_SaveFailedCallbackT", bound=SaveFailedCallback)


def _project_relative(project: Path, path: str | PurePath) -> str:
    # An editor knows absolute paths; the contract stores project-relative ones.
    candidate = PurePath(path)
    if candidate.is_absolute():
        for root in (project.absolute(), project.resolve()):
            try:
                return candidate.relative_to(root).as_posix()
            except ValueError:
                continue
    return candidate.as_posix() if isinstance(path, PurePath) else path


class Session(SeedAPI):
    """The seed's `Session`, asyncio, backed by the running service.

    Every change is a request whose `ok` reply means it is durable; `data` is
    then replaced by the session document the service returned. Replies are
    adopted only when their `revision` is not older than the one held, so
    concurrent calls finishing out of order never roll `data` back.

    Open with `await Session.open(project)`: before starting a service itself it
    reads current.json to learn whether the previous session was interrupted
    (see `was_interrupted`), then subscribes to the session's events and loads
    `data` with `session.get`. `close()` releases the sockets only (the session
    itself ends with `supervisor stop`).
    """

    _NAME = "session"
    _TOPICS = (Topic.SESSION_SAVED, Topic.SESSION_SAVE_FAILED, Topic.SESSION_RECOVERED)

    def __init__(
        self,
        client: ServiceClient,
        project_path: Path,
        data: SessionDocument,
        stream: EventStream,
        *,
        owns_client: bool,
        interrupted: SessionDocument | None,
        timeout_s: float,
        retries: int,
    ) -> None:
        """Use `Session.open`; this only wires already connected parts together."""
        self.project_path = project_path
        self._data = data
        self._interrupted = interrupted
        self._recovery: SessionRecoveredData | None = None
        self._last_save: datetime | None = data.last_saved_at
        self._on_save: list[SaveCallback] = []
        self._on_save_failed: list[SaveFailedCallback] = []
        # Last: it starts the event task, which reads the state set above.
        super().__init__(
            client, stream, owns_client=owns_client, timeout_s=timeout_s, retries=retries
        )

    @classmethod
    def _before_start(cls, project: Path) -> SessionDocument | None:
        # Read before the service starts: a running one rewrites current.json.
        return interrupted_snapshot(project)

    @classmethod
    async def _load(cls, connection: Connection) -> Session:
        return cls(
            connection.client,
            connection.project,
            await connection.ask(SessionDocument, Op.SESSION_GET),
            connection.stream,
            owns_client=connection.owns_client,
            interrupted=connection.interrupted,
            timeout_s=connection.timeout_s,
            retries=connection.retries,
        )

    # -- state held locally

    @property
    def data(self) -> SessionDocument:
        """The newest session document seen (from a reply or `load`)."""
        return self._data

    @property
    def session_id(self) -> str:
        """The id of the session the service is running."""
        return self._data.session_id

    @property
    def current_stage(self) -> Stage:
        """The stage in `data`."""
        return self._data.current_state.stage

    @property
    def model_preferences(self) -> dict[Stage, str]:
        """A copy of the per-stage model choices in `data`."""
        return dict(self._data.model_preferences)

    @property
    def last_save_time(self) -> datetime | None:
        """When the snapshot was last written (UTC), as far as this client has seen.

        Fed by `data`, `save`, `significant_action`, `status` and `session.saved`
        events; the newest wins. None before the first save.
        """
        return self._last_save

    @property
    def duration_minutes(self) -> float:
        """Minutes from the session's creation to its last activity, per `data`."""
        return (self._data.last_activity - self._data.created_at).total_seconds() / 60

    @property
    def recovery(self) -> SessionRecoveredData | None:
        """The `session.recovered` event, if this client saw one."""
        return self._recovery

    @property
    def recovery_notice(self) -> RecoveryNotice | None:
        """The interruption the service keeps as state until `ack_recovery` (from `data`).

        Unlike the `session.recovered` event, it cannot be missed: a client that
        connected after the service started still reads it here. Show it (last
        save, duration, files changed since), then call `ack_recovery`.
        """
        return self._data.recovery

    @property
    def interrupted_session(self) -> SessionDocument | None:
        """The interrupted session's last snapshot, if `open` found one before starting."""
        return self._interrupted

    def was_interrupted(self) -> bool:
        """True when the session before this service run ended without a clean stop.

        A crash, `kill -9` or power cut leaves current.json without `ended_at`
        and with an `owner_pid` that is gone; `open` checks exactly that before
        it starts the service (`interrupted_session` holds that snapshot).
        When the service was already running, the evidence is the notice the
        service keeps until it is acknowledged (`recovery_notice`), or its
        `session.recovered` event (`recovery`). The state itself is never
        lost: the resumed service serves it as `data`.
        """
        return (
            self._interrupted is not None
            or self._recovery is not None
            or self._data.recovery is not None
        )

    def _adopt(self, document: SessionDocument) -> SessionDocument:
        newer = (
            document.session_id != self._data.session_id or document.revision >= self._data.revision
        )
        if newer:
            self._data = document
            self._note_save(document.last_saved_at)
        return self._data

    def _note_save(self, saved_at: datetime | None) -> None:
        if saved_at is not None and (self._last_save is None or saved_at > self._last_save):
            self._last_save = saved_at

    # -- requests

    async def _document(self, op: Op, args: dict[str, Any] | None = None) -> SessionDocument:
        # The ops that answer with the whole document; adopting it keeps `data` current.
        return self._adopt(await self._ask(SessionDocument, op, args))

    async def load(self) -> SessionDocument:
        """Refresh `data` from the service (`session.get`) and return it."""
        return await self._document(Op.SESSION_GET)

    async def set_stage(self, stage: Stage | str) -> SessionDocument:
        """Move to another of the five stages."""
        return await self._document(Op.SESSION_SET_STAGE, {"stage": stage})

    async def set_screen(self, screen: str) -> SessionDocument:
        """Record the screen or view in front of the writer."""
        return await self._document(Op.SESSION_SET_SCREEN, {"screen": screen})

    async def set_breadcrumb(self, breadcrumb: Iterable[str]) -> SessionDocument:
        """Replace the breadcrumb trail."""
        return await self._document(Op.SESSION_SET_BREADCRUMB, {"breadcrumb": list(breadcrumb)})

    async def open_file(
        self, path: str | PurePath, cursor_line: int = 0, cursor_col: int = 0
    ) -> SessionDocument:
        """Record an open file and its cursor; an absolute path in the project becomes relative."""
        args = {
            "path": _project_relative(self.project_path, path),
            "cursor_line": cursor_line,
            "cursor_col": cursor_col,
        }
        return await self._document(Op.SESSION_OPEN_FILE, args)

    async def close_file(self, path: str | PurePath) -> SessionDocument:
        """Forget an open file."""
        args = {"path": _project_relative(self.project_path, path)}
        return await self._document(Op.SESSION_CLOSE_FILE, args)

    async def set_model_preference(self, stage: Stage | str, model: str) -> SessionDocument:
        """Choose the model for a stage."""
        args = {"stage": stage, "model": model}
        return await self._document(Op.SESSION_SET_MODEL_PREFERENCE, args)

    async def add_recent_query(self, query: str, source: str) -> SessionDocument:
        """Remember a question asked of a knowledge source (the service keeps the last 10)."""
        args = {"query": query, "source": source}
        return await self._document(Op.SESSION_ADD_RECENT_QUERY, args)

    async def significant_action(self, action: str) -> datetime | None:
        """Snapshot now because something important happened; returns when it was saved."""
        args = {"action": action}
        saved = await self._ask(SignificantActionResult, Op.SESSION_SIGNIFICANT_ACTION, args)
        self._note_save(saved.saved_at)
        return saved.saved_at

    async def save(self) -> bool:
        """Snapshot now if anything changed; False when there was nothing to write.

        Not needed for safety: every acknowledged change is already durable in
        the journal. It refreshes the human-readable current.json.
        """
        saved = await self._ask(SaveResult, Op.SESSION_SAVE)
        self._note_save(saved.saved_at)
        return saved.saved

    async def ack_recovery(self) -> SessionDocument:
        """Tell the service the person has seen the recovery notice; it is then cleared.

        Durable before it returns, and harmless when there is no notice.
        """
        return await self._document(Op.SESSION_ACK_RECOVERY)

    async def status(self) -> SessionStatusResult:
        """The service's view of saving, including the status-bar `indicator` text."""
        status = await self._ask(SessionStatusResult, Op.SESSION_STATUS)
        self._note_save(status.last_save_at)
        return status

    async def has_changes(self) -> bool:
        """True when changes are not yet in the current.json snapshot (`dirty`)."""
        return (await self.status()).dirty

    # -- events

    def on_save(self, callback: _SaveCallbackT) -> _SaveCallbackT:
        """Call `callback(SessionSavedData)` after each save; usable as a decorator.

        The callback may be a coroutine function. Callbacks run one after the
        other in the session's event task; an exception is logged and skipped.
        """
        self._on_save.append(callback)
        return callback

    def on_save_failed(self, callback: _SaveFailedCallbackT) -> _SaveFailedCallbackT:
        """Call `callback(SessionSaveFailedData)` when a snapshot failed; a decorator too.

        Nothing acknowledged is lost when a snapshot fails: the journal holds it.
        """
        self._on_save_failed.append(callback)
        return callback

    async def _handle_event(self, data: Document) -> None:
        if isinstance(data, SessionSavedData):
            self._note_save(data.saved_at)
            await notify(self._on_save, data)
        elif isinstance(data, SessionSaveFailedData):
            await notify(self._on_save_failed, data)
        elif isinstance(data, SessionRecoveredData):
            self._recovery = data
