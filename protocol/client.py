"""The reference Python client: the one module of `protocol/` that does I/O.

It speaks the public contract (CONTRACT sections 3-5) and nothing more, so a
client in another language can be written from the same page and behave alike:

* `find_endpoints` / `ensure_service` - discovery through
  `.session/run/endpoints.json`, starting `supervisor start --detach` if asked.
* `ServiceClient` - one DEALER socket for requests (ids are idempotency keys,
  re-sent unchanged after a timeout) and SUB sockets for events (sequence
  numbers checked, so a missed event is counted instead of silently lost).
* `Session` and `CostTracker` - the seed's two APIs on top, asyncio.

It depends on the pure modules and never the reverse: nothing else in
`protocol/` imports it. Use one client from one event loop; it is not
thread-safe.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import os
import secrets
import socket as stdlib_socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from datetime import datetime
from decimal import Decimal
from pathlib import Path, PurePath
from types import TracebackType
from typing import Any, Final, Self, TypeVar

import zmq
import zmq.asyncio
from pydantic import BaseModel, ValidationError

from protocol.codec import loads, loads_exact
from protocol.costs import Budget, CostTotals
from protocol.envelopes import (
    DEFAULT_MAX_FRAME_BYTES,
    EndpointsFile,
    ErrorReply,
    Event,
    Reply,
    decode_event,
    decode_reply,
    describe_validation_error,
    encode_request,
)
from protocol.errors import ErrorCode, ProtocolError
from protocol.events import (
    CostLoggedData,
    SessionRecoveredData,
    SessionSavedData,
    SessionSaveFailedData,
    parse_event_data,
)
from protocol.names import Op, Stage, Topic
from protocol.ops import (
    CostEstimateResult,
    CostLogResult,
    CostWarningResult,
    SaveResult,
    SessionStatusResult,
    SignificantActionResult,
    parse_args,
)
from protocol.session import SessionDocument

__all__ = [
    "DEFAULT_REQUEST_TIMEOUT_S",
    "DEFAULT_RETRIES",
    "DEFAULT_START_TIMEOUT_S",
    "ClientClosed",
    "ClientError",
    "CostCallback",
    "CostTracker",
    "EventStream",
    "SaveCallback",
    "SaveFailedCallback",
    "ServiceClient",
    "ServiceError",
    "ServiceUnavailable",
    "Session",
    "endpoints_path",
    "ensure_service",
    "find_endpoints",
]

logger = logging.getLogger(__name__)

DEFAULT_REQUEST_TIMEOUT_S: Final = 5.0
"""How long one attempt of a request waits for its reply before re-sending."""
DEFAULT_RETRIES: Final = 3
"""Re-sends after the first attempt (so 4 attempts in all) before giving up."""
DEFAULT_START_TIMEOUT_S: Final = 10.0
"""How long `ensure_service` waits for a service it started to become ready."""
ENDPOINTS_POLL_S: Final = 0.05
"""How often `ensure_service` looks for endpoints.json while a start is under way."""
START_OUTPUT_TAIL_BYTES: Final = 4096
"""How much of a failed `supervisor start`'s output is quoted in the error."""

_RUN_DIR = PurePath(".session", "run")
_CURRENT_FILE = PurePath(".session", "current.json")
_RETRYABLE_CODES = frozenset({ErrorCode.UNAVAILABLE, ErrorCode.INTERNAL})

_ModelT = TypeVar("_ModelT", bound=BaseModel)
_DataT = TypeVar("_DataT")


# --------------------------------------------------------------------------- errors


class ClientError(Exception):
    """Base of everything this client raises on purpose."""


class ServiceUnavailable(ClientError):
    """Nothing answered: no service runs, it could not start, or every attempt timed out.

    Safe to retry a mutation with the same `request_id`: the service applies an
    id once, so a request that did arrive is not applied twice.
    """

    def __init__(self, message: str, *, request_id: str | None = None) -> None:
        super().__init__(message)
        self.request_id = request_id


class ServiceError(ClientError):
    """The request was refused with one of the contract's error codes.

    Usually the service said so. For the typed methods of `Session` and
    `CostTracker` the client checks the args with the same pure validators the
    service uses and raises this (`code` `invalid_args`) before sending, so a
    caller branches on `code` the same way either way. A reply whose result does
    not match the contract is reported as `internal`: the service's bug.
    """

    def __init__(self, code: ErrorCode, message: str, *, request_id: str | None = None) -> None:
        super().__init__(f"{code.value}: {message}")
        self.code = code
        self.message = message
        self.request_id = request_id

    @property
    def retryable(self) -> bool:
        """True when re-sending the same `request_id` later may succeed."""
        return self.code in _RETRYABLE_CODES

    def __repr__(self) -> str:
        return f"ServiceError({self.code.value!r}, {self.message!r})"


class ClientClosed(ClientError):
    """The client (or session) was closed by this program; it cannot be used again."""


# --------------------------------------------------------------------------- discovery


def endpoints_path(project: Path | str) -> Path:
    """Where the supervisor announces readiness for `project` (CONTRACT section 3)."""
    return Path(project) / _RUN_DIR / "endpoints.json"


def _pid_alive(pid: int) -> bool:
    # os.kill(0 or negative) would signal a whole process group: never a "yes".
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, it just belongs to someone else
    return True


def find_endpoints(project: Path | str) -> EndpointsFile | None:
    """The endpoints of the service running for `project`, or None if none runs.

    None when endpoints.json is missing, unreadable, or names a supervisor pid
    that is not alive (a file left behind by a crash, which is exactly when it
    is not removed). Fields this version does not know are ignored, so a newer
    supervisor's file still works.
    """
    path = endpoints_path(project)
    try:
        raw = loads(path.read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        logger.warning("ignoring unreadable %s: %s", path, exc)
        return None
    if not isinstance(raw, dict):
        logger.warning("ignoring %s: not a JSON object", path)
        return None
    known = {name: raw[name] for name in EndpointsFile.model_fields if name in raw}
    try:
        endpoints = EndpointsFile.model_validate(known)
    except ValidationError as exc:
        logger.warning("ignoring %s: %s", path, describe_validation_error(exc))
        return None
    if not _pid_alive(endpoints.supervisor_pid):
        return None
    return endpoints


def _wait_for_endpoints(project: Path, deadline: float) -> EndpointsFile | None:
    while True:
        found = find_endpoints(project)
        remaining = deadline - time.monotonic()
        if found is not None or remaining <= 0:
            return found
        time.sleep(min(ENDPOINTS_POLL_S, remaining))


def ensure_service(
    project: Path | str, *, start: bool = True, timeout_s: float = DEFAULT_START_TIMEOUT_S
) -> EndpointsFile:
    """Return the running service's endpoints, starting the service if asked.

    Runs `python -m supervisor start --project DIR --detach` with stdin closed
    (so an interrupted previous session is resumed, never prompted for) and its
    output in a temporary file rather than a pipe (the detached supervisor may
    keep the descriptor open for its whole life; a pipe would block us until it
    exits). A start that loses a race with another starter exits 1, so whatever
    the exit code, endpoints.json is awaited until `timeout_s`. Blocking: from
    asyncio use `await asyncio.to_thread(ensure_service, ...)`.

    Raises `ServiceUnavailable` when nothing runs and `start` is False, or when
    no ready service appeared in time (quoting the start command's output).
    """
    project = Path(project)
    found = find_endpoints(project)
    if found is not None:
        return found
    if not start:
        raise ServiceUnavailable(f"no session service runs for {project}")
    deadline = time.monotonic() + timeout_s
    command = [sys.executable, "-m", "supervisor", "start", "--project", str(project), "--detach"]
    with tempfile.TemporaryFile() as output:
        try:
            completed = subprocess.run(
                command,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                timeout=timeout_s,
                check=False,
            )
            outcome = f"exit code {completed.returncode}"
        except subprocess.TimeoutExpired:
            outcome = f"no answer within {timeout_s:g} s"
        except OSError as exc:
            raise ServiceUnavailable(f"could not run {' '.join(command)}: {exc}") from exc
        found = _wait_for_endpoints(project, deadline)
        if found is not None:
            return found
        output.seek(0)
        said = output.read()[-START_OUTPUT_TAIL_BYTES:].decode("utf-8", "replace").strip()
    raise ServiceUnavailable(
        f"the session service for {project} did not become ready within {timeout_s:g} s "
        f"({' '.join(command[1:])}: {outcome}){': ' + said if said else ''}"
    )


# --------------------------------------------------------------------------- transport


class EventStream(AsyncIterator[Event]):
    """Events from one SUB socket, as an async iterator, with gaps counted.

    The socket subscribes to every topic and filters by prefix here, not in
    ZeroMQ: `seq` rises by one per *source* across all its topics, so a filter
    in the socket would make every skipped topic look like a missed event.
    The first event seen from a source sets its baseline (what was published
    before we connected is not a gap). A `seq` that does not rise (the source
    restarted) resets the baseline without counting anything.

    Created connected by `ServiceClient.subscribe`, so no event published after
    that call returns is missed for want of a socket (allow the usual ZeroMQ
    join time of about a millisecond for the subscription to reach the service).
    """

    def __init__(
        self,
        context: zmq.asyncio.Context,
        endpoint: str,
        prefixes: tuple[str, ...],
        on_gap: Callable[[int], None],
    ) -> None:
        self._socket = context.socket(zmq.SUB)
        self._socket.setsockopt(zmq.LINGER, 0)
        # Unbounded: the default 1000 drops ~20% of a burst, silently (FIELD-NOTES).
        self._socket.setsockopt(zmq.RCVHWM, 0)
        self._socket.setsockopt(zmq.SUBSCRIBE, b"")
        self._socket.connect(endpoint)
        self._prefixes = prefixes
        self._on_gap = on_gap
        self._last_seq: dict[str, int] = {}
        self._closed = False
        self.gaps = 0
        """Events missed, as revealed by jumps in `seq`."""
        self.gaps_by_source: dict[str, int] = {}
        """`gaps`, per source."""
        self.malformed = 0
        """Frames that were not a valid event and were skipped."""

    @property
    def closed(self) -> bool:
        """True once `close` was called; iteration then stops."""
        return self._closed

    async def __anext__(self) -> Event:
        while True:
            frames = await self._receive()
            try:
                event = decode_event(frames)
            except ProtocolError as exc:
                self.malformed += 1
                logger.warning("skipping a malformed event: %s", exc.message)
                continue
            self._track(event)
            if not self._prefixes or event.topic.startswith(self._prefixes):
                return event

    async def _receive(self) -> list[bytes]:
        if self._closed:
            raise StopAsyncIteration
        try:
            return await self._socket.recv_multipart()
        except asyncio.CancelledError:
            # Closing the socket cancels its pending receive; that ends the
            # iteration. A cancellation of our own task must still propagate.
            task = asyncio.current_task()
            if self._closed and (task is None or task.cancelling() == 0):
                raise StopAsyncIteration from None
            raise
        except zmq.ZMQError:
            if self._closed:
                raise StopAsyncIteration from None
            raise

    def _track(self, event: Event) -> None:
        last = self._last_seq.get(event.source)
        if last is not None and event.seq > last + 1:
            missed = event.seq - last - 1
            self.gaps += missed
            self.gaps_by_source[event.source] = self.gaps_by_source.get(event.source, 0) + missed
            self._on_gap(missed)
            logger.warning("missed %d event(s) from %s", missed, event.source)
        self._last_seq[event.source] = event.seq

    def close(self) -> None:
        """Close the socket; a pending `__anext__` ends the iteration."""
        if not self._closed:
            self._closed = True
            self._socket.close(linger=0)


class ServiceClient:
    """Requests and events of one service, over pyzmq's asyncio sockets.

    Requests go through one DEALER socket (an empty delimiter frame, then the
    JSON frame, as CONTRACT section 4 allows), so several may be in flight at
    once; a background task matches replies to requests by `id` and drops any
    reply nobody waits for (a late answer to an attempt that had already timed
    out and been answered). Ids are `<prefix>-<counter>` with a random 64-bit
    prefix per client, so two clients never share an idempotency key.

    `project`, when given, lets a request that timed out re-read endpoints.json
    and reconnect if the service came back on another endpoint (tcp ports
    change across restarts; ipc paths do not).
    """

    def __init__(
        self,
        endpoints: EndpointsFile,
        *,
        project: Path | None = None,
        prefix: str | None = None,
        context: zmq.asyncio.Context | None = None,
    ) -> None:
        self.endpoints = endpoints
        """Where this client is connected; updated if it reconnects."""
        self.project = Path(project) if project is not None else None
        self.prefix = prefix or secrets.token_hex(8)
        """The random first part of every id this client makes."""
        self._context = context or zmq.asyncio.Context.instance()
        self._socket = self._command_socket(endpoints.command)
        self._counter = 0
        self._pending: dict[str, asyncio.Future[Reply]] = {}
        self._reader: asyncio.Task[None] | None = None
        self._streams: list[EventStream] = []
        self._gaps = 0
        self._closed = False
        self.dropped_replies = 0
        """Replies that matched no waiting request (stale re-send answers) or did not parse."""

    @classmethod
    async def connect(
        cls,
        project: Path | str,
        *,
        start: bool = True,
        start_timeout_s: float = DEFAULT_START_TIMEOUT_S,
    ) -> ServiceClient:
        """A client of `project`'s service, started first if `start` (see `ensure_service`)."""
        endpoints = await asyncio.to_thread(
            ensure_service, Path(project), start=start, timeout_s=start_timeout_s
        )
        return cls(endpoints, project=Path(project))

    def _command_socket(self, endpoint: str) -> zmq.asyncio.Socket:
        sock = self._context.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)  # closing never waits for an absent service
        sock.connect(endpoint)
        return sock

    @property
    def closed(self) -> bool:
        """True once `close` was called."""
        return self._closed

    @property
    def gaps(self) -> int:
        """Events missed, summed over every stream this client opened."""
        return self._gaps

    def new_request_id(self) -> str:
        """A fresh id: unique per logical request, kept for all its re-sends."""
        self._counter += 1
        return f"{self.prefix}-{self._counter:06d}"

    async def request(
        self,
        op: Op | str,
        args: dict[str, Any] | None = None,
        *,
        timeout_s: float = DEFAULT_REQUEST_TIMEOUT_S,
        retries: int = DEFAULT_RETRIES,
        request_id: str | None = None,
    ) -> Any:
        """Send one request and return its `result` (numbers with a fraction as Decimal).

        Each attempt waits `timeout_s`; after a timeout the *same* frame, with
        the same id, is sent again, up to `retries` more times. The service
        applies an id once and answers a re-send with the first result, so a
        mutation is never applied twice however many attempts it took. Pass
        `request_id` to continue an earlier logical request (for instance after
        `ServiceUnavailable`, or a restart of this program).

        Raises `ServiceError` for an error reply, `ServiceUnavailable` when the
        last attempt timed out, `ClientClosed` after `close`.
        """
        self._check_open()
        rid = request_id or self.new_request_id()
        frame = encode_request(rid, str(op), args)
        if len(frame) > DEFAULT_MAX_FRAME_BYTES:
            # The service would refuse it with an error it cannot address to
            # us (it does not read the id of an oversized frame): say it here.
            raise ServiceError(
                ErrorCode.BAD_REQUEST,
                f"request is {len(frame)} bytes; the limit is {DEFAULT_MAX_FRAME_BYTES} bytes",
                request_id=rid,
            )
        if rid in self._pending:
            raise ClientError(f"request id {rid!r} is already in flight")
        reply_future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self._pending[rid] = reply_future
        self._ensure_reader()
        try:
            reply = await self._attempts(rid, frame, reply_future, timeout_s, retries)
        finally:
            self._pending.pop(rid, None)
            reply_future.cancel()
        if isinstance(reply, ErrorReply):
            raise ServiceError(reply.error.code, reply.error.message, request_id=rid)
        return reply.result

    async def _attempts(
        self,
        rid: str,
        frame: bytes,
        reply_future: asyncio.Future[Reply],
        timeout_s: float,
        retries: int,
    ) -> Reply:
        attempts = max(retries, 0) + 1
        for attempt in range(1, attempts + 1):
            try:
                # The send is inside the timeout too: with the queue to an absent
                # service full, a DEALER send blocks.
                async with asyncio.timeout(timeout_s):
                    await self._socket.send_multipart([b"", frame])
                    return await asyncio.shield(reply_future)
            except TimeoutError:
                logger.info("no reply to %s (attempt %d of %d)", rid, attempt, attempts)
                self._check_open()
                self._follow_endpoints()
            except asyncio.CancelledError:
                # `close` cancels a send blocked on the socket; that is not a
                # cancellation of the caller, who should hear why it stopped.
                task = asyncio.current_task()
                if self._closed and (task is None or task.cancelling() == 0):
                    raise ClientClosed("the client was closed") from None
                raise
        raise ServiceUnavailable(
            f"no reply to request {rid} after {attempts} attempt(s) of {timeout_s:g} s "
            f"from {self.endpoints.command}",
            request_id=rid,
        )

    def _follow_endpoints(self) -> None:
        if self.project is None:
            return
        current = find_endpoints(self.project)
        if current is None or current.command == self.endpoints.command:
            return
        logger.info("service moved to %s; reconnecting", current.command)
        # ENOENT when the old endpoint was never reached; nothing to undo then.
        with contextlib.suppress(zmq.ZMQError):
            self._socket.disconnect(self.endpoints.command)
        self._socket.connect(current.command)
        self.endpoints = current

    def _ensure_reader(self) -> None:
        if self._reader is None or self._reader.done():
            self._reader = asyncio.get_running_loop().create_task(
                self._read_replies(), name=f"replies-{self.prefix}"
            )

    async def _read_replies(self) -> None:
        try:
            while True:
                frames = await self._socket.recv_multipart()
                self._deliver(frames)
        except zmq.ZMQError as exc:
            if not self._closed:
                logger.exception("command socket failed")
                for waiting in self._pending.values():
                    if not waiting.done():
                        waiting.set_exception(ServiceUnavailable(f"command socket failed: {exc}"))

    def _deliver(self, frames: list[bytes]) -> None:
        if len(frames) < 1 or any(frames[:-1]):
            self.dropped_replies += 1
            logger.warning("dropping a reply without the empty delimiter frame")
            return
        try:
            reply = decode_reply(frames[-1])
        except ProtocolError as exc:
            self.dropped_replies += 1
            logger.warning("dropping a malformed reply: %s", exc.message)
            return
        waiting = self._pending.get(reply.id)
        if waiting is None or waiting.done():
            self.dropped_replies += 1
            logger.debug("dropping a reply nobody waits for (id %r)", reply.id)
            return
        waiting.set_result(reply)

    def subscribe(self, prefixes: Iterable[str] | str = ()) -> EventStream:
        """A connected stream of the events whose topic starts with one of `prefixes`.

        No prefixes means every topic. Iterate it with `async for`; `close()` it
        when done (closing the client closes it too).
        """
        self._check_open()
        wanted = (prefixes,) if isinstance(prefixes, str) else tuple(str(p) for p in prefixes)
        stream = EventStream(self._context, self.endpoints.events, wanted, self._count_gap)
        self._streams = [*(kept for kept in self._streams if not kept.closed), stream]
        return stream

    def _count_gap(self, missed: int) -> None:
        self._gaps += missed

    def _check_open(self) -> None:
        if self._closed:
            raise ClientClosed("this client is closed")

    async def close(self) -> None:
        """Close every socket (LINGER 0); requests in flight raise `ClientClosed`."""
        if self._closed:
            return
        self._closed = True
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.wait({self._reader})
        for waiting in self._pending.values():
            if not waiting.done():
                waiting.set_exception(ClientClosed("the client was closed"))
        for stream in self._streams:
            stream.close()
        self._socket.close(linger=0)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()


# --------------------------------------------------------------------------- helpers


def _parse_result(model: type[_ModelT], result: Any, op: Op) -> _ModelT:
    try:
        return model.model_validate(result)
    except ValidationError as exc:
        raise ServiceError(
            ErrorCode.INTERNAL,
            f"the reply to {op.value} does not match the contract: "
            f"{describe_validation_error(exc)}",
        ) from None


def _checked_args(op: Op, args: dict[str, Any]) -> dict[str, Any]:
    # The same pure validator the service runs: a wrong stage fails here with
    # the service's own code and sentence, without a round trip.
    try:
        parse_args(op.value, args)
    except ProtocolError as exc:
        raise ServiceError(exc.code, exc.message) from None
    return args


async def _notify(callbacks: list[Callable[[_DataT], Any]], data: _DataT) -> None:
    for callback in list(callbacks):
        try:
            outcome = callback(data)
            if inspect.isawaitable(outcome):
                await outcome
        except Exception:
            # A broken UI callback must not stop the events that follow.
            logger.exception("event callback %r failed", callback)


class _EventFollower:
    """A background task that feeds one stream's events to a handler until closed."""

    def __init__(self, stream: EventStream, handle: Callable[[Event], Awaitable[None]]) -> None:
        self.stream = stream
        self._handle = handle
        self._task = asyncio.get_running_loop().create_task(self._run(), name="events")

    async def _run(self) -> None:
        try:
            async for event in self.stream:
                try:
                    await self._handle(event)
                except ProtocolError as exc:
                    logger.warning("skipping %s event: %s", event.topic, exc.message)
        except zmq.ZMQError:
            # Requests still work without events; say so rather than die silently.
            logger.exception("event stream failed; callbacks will not be called")

    async def close(self) -> None:
        self._task.cancel()
        await asyncio.wait({self._task})
        self.stream.close()


async def _client_for(
    project: Path, *, start_service: bool, start_timeout_s: float
) -> ServiceClient:
    endpoints = find_endpoints(project)
    if endpoints is None:
        if not start_service:
            raise ServiceUnavailable(f"no session service runs for {project}")
        endpoints = await asyncio.to_thread(
            ensure_service, project, start=True, timeout_s=start_timeout_s
        )
    return ServiceClient(endpoints, project=project)


def _interrupted_snapshot(project: Path) -> SessionDocument | None:
    """The last snapshot of a session that ended without a clean stop, if any.

    The rule of `SessionDocument`: no `ended_at` (only a clean stop sets it)
    and an `owner_pid` that no longer lives on this host. Only meaningful while
    no service runs, since a running one owns the document.
    """
    path = project / _CURRENT_FILE
    try:
        document = SessionDocument.model_validate(loads_exact(path.read_bytes()))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:  # ValidationError is a ValueError
        # The supervisor moves an unreadable file aside and says so; guessing
        # here would only add a second, vaguer message.
        logger.warning("cannot tell whether %s was interrupted: %s", path, exc)
        return None
    if document.ended_at is not None:
        return None
    same_host = document.host in (None, stdlib_socket.gethostname())
    if document.owner_pid is not None and same_host and _pid_alive(document.owner_pid):
        return None
    return document


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


# --------------------------------------------------------------------------- Session


SaveCallback = Callable[[SessionSavedData], Awaitable[None] | None]
"""Called with the data of each `session.saved` event."""
SaveFailedCallback = Callable[[SessionSaveFailedData], Awaitable[None] | None]
"""Called with the data of each `session.save_failed` event."""
CostCallback = Callable[[CostLoggedData], Awaitable[None] | None]
"""Called with the data of each `cost.logged` event."""

_SaveCallbackT = TypeVar("_SaveCallbackT", bound=SaveCallback)
_SaveFailedCallbackT = TypeVar("_SaveFailedCallbackT", bound=SaveFailedCallback)
_CostCallbackT = TypeVar("_CostCallbackT", bound=CostCallback)


class Session:
    """The seed's `Session`, asyncio, backed by the running service.

    Every change is a request whose `ok` reply means it is durable; `data` is
    then replaced by the session document the service returned. Replies are
    adopted only when their `revision` is not older than the one held, so
    concurrent calls finishing out of order never roll `data` back. Open with
    `await Session.open(project)`; `close()` releases the sockets only (the
    session itself ends with `supervisor stop`).
    """

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
        self.client = client
        """The service client this session talks through (shareable with a `CostTracker`)."""
        self.project_path = project_path
        self._data = data
        self._owns_client = owns_client
        self._interrupted = interrupted
        self._recovery: SessionRecoveredData | None = None
        self._timeout_s = timeout_s
        self._retries = retries
        self._last_save: datetime | None = data.last_saved_at
        self._on_save: list[SaveCallback] = []
        self._on_save_failed: list[SaveFailedCallback] = []
        self._closed = False
        self._events = _EventFollower(stream, self._handle_event)

    @classmethod
    async def open(
        cls,
        project_path: Path | str,
        *,
        start_service: bool = True,
        client: ServiceClient | None = None,
        timeout_s: float = DEFAULT_REQUEST_TIMEOUT_S,
        retries: int = DEFAULT_RETRIES,
        start_timeout_s: float = DEFAULT_START_TIMEOUT_S,
    ) -> Session:
        """Connect to `project_path`'s service (starting it if needed) and load the session.

        Before starting a service itself it reads current.json to learn whether
        the previous session was interrupted (see `was_interrupted`). Events are
        subscribed before the first `session.get`, so nothing falls between the
        snapshot and the stream. `timeout_s`/`retries` apply to every request.
        """
        project = Path(project_path)
        interrupted: SessionDocument | None = None
        owns_client = client is None
        if client is None:
            if find_endpoints(project) is None:
                interrupted = _interrupted_snapshot(project)
            client = await _client_for(
                project, start_service=start_service, start_timeout_s=start_timeout_s
            )
        stream = client.subscribe(
            [Topic.SESSION_SAVED, Topic.SESSION_SAVE_FAILED, Topic.SESSION_RECOVERED]
        )
        try:
            result = await client.request(Op.SESSION_GET, timeout_s=timeout_s, retries=retries)
            data = _parse_result(SessionDocument, result, Op.SESSION_GET)
        except BaseException:
            stream.close()
            if owns_client:
                await client.close()
            raise
        return cls(
            client,
            project,
            data,
            stream,
            owns_client=owns_client,
            interrupted=interrupted,
            timeout_s=timeout_s,
            retries=retries,
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
    def interrupted_session(self) -> SessionDocument | None:
        """The interrupted session's last snapshot, if `open` found one before starting."""
        return self._interrupted

    def was_interrupted(self) -> bool:
        """True when the session before this service run ended without a clean stop.

        A crash, `kill -9` or power cut leaves current.json without `ended_at`
        and with an `owner_pid` that is gone; `open` checks exactly that before
        it starts the service (`interrupted_session` holds that snapshot).
        When the service was already running, the evidence is its
        `session.recovered` event (`recovery`), which only a client connected
        at the time sees; `supervisor start` reports it to the person anyway.
        The state itself is never lost: the resumed service serves it as `data`.
        """
        return self._interrupted is not None or self._recovery is not None

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

    async def _call(self, op: Op, args: dict[str, Any] | None = None) -> Any:
        if self._closed:
            raise ClientClosed("this session is closed")
        checked = _checked_args(op, args or {})
        return await self.client.request(
            op, checked, timeout_s=self._timeout_s, retries=self._retries
        )

    async def _mutate(self, op: Op, args: dict[str, Any]) -> SessionDocument:
        result = await self._call(op, args)
        return self._adopt(_parse_result(SessionDocument, result, op))

    async def load(self) -> SessionDocument:
        """Refresh `data` from the service (`session.get`) and return it."""
        result = await self._call(Op.SESSION_GET)
        return self._adopt(_parse_result(SessionDocument, result, Op.SESSION_GET))

    async def set_stage(self, stage: Stage | str) -> SessionDocument:
        """Move to another of the five stages."""
        return await self._mutate(Op.SESSION_SET_STAGE, {"stage": stage})

    async def set_screen(self, screen: str) -> SessionDocument:
        """Record the screen or view in front of the writer."""
        return await self._mutate(Op.SESSION_SET_SCREEN, {"screen": screen})

    async def set_breadcrumb(self, breadcrumb: Iterable[str]) -> SessionDocument:
        """Replace the breadcrumb trail."""
        return await self._mutate(Op.SESSION_SET_BREADCRUMB, {"breadcrumb": list(breadcrumb)})

    async def open_file(
        self, path: str | PurePath, cursor_line: int = 0, cursor_col: int = 0
    ) -> SessionDocument:
        """Record an open file and its cursor; an absolute path in the project becomes relative."""
        args = {
            "path": _project_relative(self.project_path, path),
            "cursor_line": cursor_line,
            "cursor_col": cursor_col,
        }
        return await self._mutate(Op.SESSION_OPEN_FILE, args)

    async def close_file(self, path: str | PurePath) -> SessionDocument:
        """Forget an open file."""
        args = {"path": _project_relative(self.project_path, path)}
        return await self._mutate(Op.SESSION_CLOSE_FILE, args)

    async def set_model_preference(self, stage: Stage | str, model: str) -> SessionDocument:
        """Choose the model for a stage."""
        args = {"stage": stage, "model": model}
        return await self._mutate(Op.SESSION_SET_MODEL_PREFERENCE, args)

    async def add_recent_query(self, query: str, source: str) -> SessionDocument:
        """Remember a question asked of a knowledge source (the service keeps the last 10)."""
        args = {"query": query, "source": source}
        return await self._mutate(Op.SESSION_ADD_RECENT_QUERY, args)

    async def significant_action(self, action: str) -> datetime | None:
        """Snapshot now because something important happened; returns when it was saved."""
        result = await self._call(Op.SESSION_SIGNIFICANT_ACTION, {"action": action})
        saved = _parse_result(SignificantActionResult, result, Op.SESSION_SIGNIFICANT_ACTION)
        self._note_save(saved.saved_at)
        return saved.saved_at

    async def save(self) -> bool:
        """Snapshot now if anything changed; False when there was nothing to write.

        Not needed for safety: every acknowledged change is already durable in
        the journal. It refreshes the human-readable current.json.
        """
        result = await self._call(Op.SESSION_SAVE)
        saved = _parse_result(SaveResult, result, Op.SESSION_SAVE)
        self._note_save(saved.saved_at)
        return saved.saved

    async def status(self) -> SessionStatusResult:
        """The service's view of saving, including the status-bar `indicator` text."""
        result = await self._call(Op.SESSION_STATUS)
        status = _parse_result(SessionStatusResult, result, Op.SESSION_STATUS)
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

    async def _handle_event(self, event: Event) -> None:
        data = parse_event_data(event.topic, event.data)
        if isinstance(data, SessionSavedData):
            self._note_save(data.saved_at)
            await _notify(self._on_save, data)
        elif isinstance(data, SessionSaveFailedData):
            await _notify(self._on_save_failed, data)
        elif isinstance(data, SessionRecoveredData):
            self._recovery = data

    @property
    def event_gaps(self) -> int:
        """Session events this session missed (seen through `seq` jumps)."""
        return self._events.stream.gaps

    async def close(self) -> None:
        """Stop following events and release the client if this session opened it."""
        if self._closed:
            return
        self._closed = True
        await self._events.close()
        if self._owns_client:
            await self.client.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()


# --------------------------------------------------------------------------- CostTracker


class _Unset:
    """Marks an argument left out, which `cost.set_budget` treats unlike `None`."""

    def __repr__(self) -> str:
        return "UNSET"


_UNSET: Final = _Unset()


class CostTracker:
    """The seed's `CostTracker`, asyncio, backed by the service's cost ledger.

    Money is `Decimal` end to end (the reply is parsed with exact numbers).
    `session_total` is the last total this client saw, from a reply or a
    `cost.logged` event of any client; it never costs a round trip.
    """

    def __init__(
        self,
        client: ServiceClient,
        totals: CostTotals,
        stream: EventStream,
        *,
        owns_client: bool,
        timeout_s: float,
        retries: int,
    ) -> None:
        """Use `CostTracker.open`; this only wires already connected parts together."""
        self.client = client
        """The service client this tracker talks through."""
        self._totals = totals
        self._owns_client = owns_client
        self._timeout_s = timeout_s
        self._retries = retries
        self._on_update: list[CostCallback] = []
        self._closed = False
        self._events = _EventFollower(stream, self._handle_event)

    @classmethod
    async def open(
        cls,
        project_path: Path | str,
        *,
        start_service: bool = True,
        client: ServiceClient | None = None,
        timeout_s: float = DEFAULT_REQUEST_TIMEOUT_S,
        retries: int = DEFAULT_RETRIES,
        start_timeout_s: float = DEFAULT_START_TIMEOUT_S,
    ) -> CostTracker:
        """Connect (starting the service if needed), subscribe to `cost.logged`, read the totals."""
        owns_client = client is None
        if client is None:
            client = await _client_for(
                Path(project_path), start_service=start_service, start_timeout_s=start_timeout_s
            )
        stream = client.subscribe([Topic.COST_LOGGED])
        try:
            result = await client.request(Op.COST_TOTALS, timeout_s=timeout_s, retries=retries)
            totals = _parse_result(CostTotals, result, Op.COST_TOTALS)
        except BaseException:
            stream.close()
            if owns_client:
                await client.close()
            raise
        return cls(
            client, totals, stream, owns_client=owns_client, timeout_s=timeout_s, retries=retries
        )

    @property
    def session_total(self) -> Decimal:
        """Dollars spent in this session, as last seen."""
        return self._totals.session_total

    @property
    def last_totals(self) -> CostTotals:
        """Every total, as last seen (no round trip; `totals()` asks)."""
        return self._totals

    async def _call(self, op: Op, args: dict[str, Any] | None = None) -> Any:
        if self._closed:
            raise ClientClosed("this cost tracker is closed")
        checked = _checked_args(op, args or {})
        return await self.client.request(
            op, checked, timeout_s=self._timeout_s, retries=self._retries
        )

    async def log_operation(
        self, operation: str, model: str, input_tokens: int, output_tokens: int
    ) -> CostLogResult:
        """Record an LLM call that happened; priced exactly, or flagged unpriced, never dropped."""
        args = {
            "operation": operation,
            "model": model,
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
        }
        result = await self._call(Op.COST_LOG, args)
        logged = _parse_result(CostLogResult, result, Op.COST_LOG)
        self._totals = logged.totals
        return logged

    async def estimate(
        self, model: str, input_tokens: int, output_tokens: int = 0
    ) -> CostEstimateResult:
        """What a call would cost, and the budget warning it would trigger.

        Raises `ServiceError` with code `unknown_model` for a model with no price.
        """
        args = {"model": model, "input_tokens": input_tokens, "output_tokens": output_tokens}
        result = await self._call(Op.COST_ESTIMATE, args)
        return _parse_result(CostEstimateResult, result, Op.COST_ESTIMATE)

    async def get_estimated_cost(
        self, model: str, input_tokens: int, output_tokens: int = 0
    ) -> Decimal:
        """The seed's estimate: just the dollars (see `estimate` for the warning)."""
        return (await self.estimate(model, input_tokens, output_tokens)).cost

    async def should_warn_budget(self) -> str | None:
        """The most severe budget warning now (from 80% of a limit), or None."""
        result = await self._call(Op.COST_WARNING)
        return _parse_result(CostWarningResult, result, Op.COST_WARNING).warning

    async def totals(self) -> CostTotals:
        """Ask the service for every total."""
        result = await self._call(Op.COST_TOTALS)
        self._totals = _parse_result(CostTotals, result, Op.COST_TOTALS)
        return self._totals

    async def reset_session(self) -> CostTotals:
        """Start the session's cost count again from zero; day/week/month totals stay."""
        result = await self._call(Op.COST_RESET_SESSION)
        self._totals = _parse_result(CostTotals, result, Op.COST_RESET_SESSION)
        return self._totals

    async def set_budget(
        self,
        *,
        daily_limit: Decimal | int | _Unset | None = _UNSET,
        weekly_limit: Decimal | int | _Unset | None = _UNSET,
        monthly_limit: Decimal | int | _Unset | None = _UNSET,
        warnings_enabled: bool | _Unset = _UNSET,
    ) -> Budget:
        """Change limits: a left-out argument is unchanged, `None` removes that limit."""
        given = {
            "daily_limit": daily_limit,
            "weekly_limit": weekly_limit,
            "monthly_limit": monthly_limit,
            "warnings_enabled": warnings_enabled,
        }
        args = {name: value for name, value in given.items() if not isinstance(value, _Unset)}
        result = await self._call(Op.COST_SET_BUDGET, args)
        return _parse_result(Budget, result, Op.COST_SET_BUDGET)

    def on_update(self, callback: _CostCallbackT) -> _CostCallbackT:
        """Call `callback(CostLoggedData)` after each operation any client logs; a decorator too."""
        self._on_update.append(callback)
        return callback

    async def _handle_event(self, event: Event) -> None:
        data = parse_event_data(event.topic, event.data)
        if isinstance(data, CostLoggedData):
            self._totals = data.totals
            await _notify(self._on_update, data)

    @property
    def event_gaps(self) -> int:
        """Cost events this tracker missed (seen through `seq` jumps)."""
        return self._events.stream.gaps

    async def close(self) -> None:
        """Stop following events and release the client if this tracker opened it."""
        if self._closed:
            return
        self._closed = True
        await self._events.close()
        if self._owns_client:
            await self.client.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()
