"""What the seed's two APIs, `Session` and `CostTracker`, share.

Each is opened the same way (connect unless given a client, subscribe to its
topics, then read its first state), checks its args with the service's own
validators before sending, parses replies against the contract, feeds its
events to callbacks from one background task, and closes the same way.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Self, TypeVar

import zmq
from pydantic import BaseModel, ValidationError

from protocol.base import Document
from protocol.client._closing import AsyncClosing
from protocol.client._defaults import (
    DEFAULT_REQUEST_TIMEOUT_S,
    DEFAULT_RETRIES,
    DEFAULT_START_TIMEOUT_S,
)
from protocol.client._discovery import ensure_service, find_endpoints
from protocol.client._errors import ClientClosed, ServiceError, ServiceUnavailable
from protocol.client._events import EventStream
from protocol.client._transport import ServiceClient
from protocol.envelopes import describe_validation_error
from protocol.errors import ErrorCode, ProtocolError
from protocol.events import parse_event_data
from protocol.names import Op, Topic
from protocol.ops import parse_args
from protocol.session import SessionDocument

__all__ = ["Connection", "SeedAPI", "notify"]

logger = logging.getLogger(__name__)

_ModelT = TypeVar("_ModelT", bound=BaseModel)
_DataT = TypeVar("_DataT")


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


async def notify(callbacks: list[Callable[[_DataT], Any]], data: _DataT) -> None:
    """Call each callback with `data` in turn, awaiting those that return an awaitable."""
    for callback in list(callbacks):
        try:
            outcome = callback(data)
            if inspect.isawaitable(outcome):
                await outcome
        except Exception:
            # A broken UI callback must not stop the events that follow.
            logger.exception("event callback %r failed", callback)


class _EventFollower:
    """A background task that feeds one stream's event data to a handler until closed."""

    def __init__(self, stream: EventStream, handle: Callable[[Document], Awaitable[None]]) -> None:
        self.stream = stream
        self._handle = handle
        self._task = asyncio.get_running_loop().create_task(self._run(), name="events")

    async def _run(self) -> None:
        try:
            async for event in self.stream:
                try:
                    await self._handle(parse_event_data(event.topic, event.data))
                except ProtocolError as exc:
                    logger.warning("skipping %s event: %s", event.topic, exc.message)
        except zmq.ZMQError:
            # Requests still work without events; say so rather than die silently.
            logger.exception("event stream failed; callbacks will not be called")

    async def close(self) -> None:
        self._task.cancel()
        await asyncio.wait({self._task})
        self.stream.close()


@dataclass(frozen=True)
class Connection:
    """What `SeedAPI.open` has connected, handed to a subclass's `_load` to finish."""

    client: ServiceClient
    owns_client: bool
    stream: EventStream
    """Already subscribed to the subclass's `_TOPICS`."""
    project: Path
    interrupted: SessionDocument | None
    """What `_before_start` found; None when a service was already running."""
    timeout_s: float
    retries: int

    async def ask(self, model: type[_ModelT], op: Op) -> _ModelT:
        """Send `op` without args and parse its result as `model`."""
        result = await self.client.request(op, timeout_s=self.timeout_s, retries=self.retries)
        return _parse_result(model, result, op)


class SeedAPI(AsyncClosing):
    """Typed requests to the service and its events, for `Session` and `CostTracker`.

    A subclass names itself in `_NAME` (for the `ClientClosed` message), lists
    the topics it follows in `_TOPICS`, reads its first state and builds itself
    from a `Connection` in `_load`, and handles its events' data in
    `_handle_event`.
    """

    _NAME: ClassVar[str]
    _TOPICS: ClassVar[tuple[Topic, ...]]

    def __init__(
        self,
        client: ServiceClient,
        stream: EventStream,
        *,
        owns_client: bool,
        timeout_s: float,
        retries: int,
    ) -> None:
        self.client = client
        """The service client this talks through (one can serve a `Session` and a `CostTracker`)."""
        self._owns_client = owns_client
        self._timeout_s = timeout_s
        self._retries = retries
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
    ) -> Self:
        """Connect to `project_path`'s service (starting it if needed) and read the state.

        Events are subscribed before the first request, so nothing falls between
        that state and the stream. `timeout_s`/`retries` apply to every request.
        Pass `client=` to share one `ServiceClient` (which closing this then
        leaves open); without one, `start_service=False` raises
        `ServiceUnavailable` instead of starting a service.
        """
        project = Path(project_path)
        owns_client = client is None
        interrupted: SessionDocument | None = None
        if client is None:
            endpoints = find_endpoints(project)
            if endpoints is None:
                interrupted = cls._before_start(project)
                if not start_service:
                    raise ServiceUnavailable(f"no session service runs for {project}")
                endpoints = await asyncio.to_thread(
                    ensure_service, project, start=True, timeout_s=start_timeout_s
                )
            client = ServiceClient(endpoints, project=project)
        stream = client.subscribe(cls._TOPICS)
        connection = Connection(
            client, owns_client, stream, project, interrupted, timeout_s, retries
        )
        try:
            return await cls._load(connection)
        except BaseException:
            stream.close()
            if owns_client:
                await client.close()
            raise

    @classmethod
    def _before_start(cls, project: Path) -> SessionDocument | None:
        # For what `.session/` tells only before a service starts: a running one owns it.
        return None

    @classmethod
    async def _load(cls, connection: Connection) -> Self:
        raise NotImplementedError

    async def _call(self, op: Op, args: dict[str, Any] | None = None) -> Any:
        if self._closed:
            raise ClientClosed(f"this {self._NAME} is closed")
        checked = _checked_args(op, args or {})
        return await self.client.request(
            op, checked, timeout_s=self._timeout_s, retries=self._retries
        )

    async def _ask(
        self, model: type[_ModelT], op: Op, args: dict[str, Any] | None = None
    ) -> _ModelT:
        return _parse_result(model, await self._call(op, args), op)

    async def _handle_event(self, data: Document) -> None:
        raise NotImplementedError

    @property
    def event_gaps(self) -> int:
        """Events of its topics this missed (seen through `seq` jumps)."""
        return self._events.stream.gaps

    async def close(self) -> None:
        """Stop following events and release the client if this opened it."""
        if self._closed:
            return
        self._closed = True
        await self._events.close()
        if self._owns_client:
            await self.client.close()
