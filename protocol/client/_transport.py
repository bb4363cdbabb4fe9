"""Requests and events of one service over pyzmq's asyncio sockets (docs/protocol.md)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import zmq
import zmq.asyncio

from protocol.client._closing import AsyncClosing
from protocol.client._curve import apply_curve, curve_options
from protocol.client._defaults import (
    DEFAULT_REQUEST_TIMEOUT_S,
    DEFAULT_RETRIES,
    DEFAULT_START_TIMEOUT_S,
)
from protocol.client._discovery import ensure_service, find_endpoints
from protocol.client._errors import ClientClosed, ClientError, ServiceError, ServiceUnavailable
from protocol.client._events import EventStream
from protocol.envelopes import (
    DEFAULT_MAX_FRAME_BYTES,
    EndpointsFile,
    ErrorReply,
    Reply,
    decode_reply,
    encode_request,
)
from protocol.errors import ErrorCode, ProtocolError
from protocol.names import Op

__all__ = ["ServiceClient"]

logger = logging.getLogger(__name__)


class ServiceClient(AsyncClosing):
    """Requests and events of one service, over pyzmq's asyncio sockets.

    Requests go through one DEALER socket (an empty delimiter frame, then the
    JSON frame, as docs/protocol.md allows), so several may be in flight at
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
        self._curve = curve_options(endpoints)
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
        apply_curve(sock, self._curve)
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
            # The service would refuse it anyway (bad_request up to 16 MiB, a
            # dropped connection beyond): save the round trip and say it here.
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
        try:
            self._curve = curve_options(current)  # new keys at every start
        except ServiceUnavailable as exc:
            logger.info("cannot follow the service yet: %s", exc)
            return
        # ENOENT when the old endpoint was never reached; nothing to undo then.
        with contextlib.suppress(zmq.ZMQError):
            self._socket.disconnect(self.endpoints.command)
        apply_curve(self._socket, self._curve)
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
        stream = EventStream(
            self._context, self.endpoints.events, wanted, self._count_gap, curve=self._curve
        )
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
