"""Events from the service's PUB socket, as an async iterator with gaps counted."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable

import zmq
import zmq.asyncio

from protocol.envelopes import Event, decode_event
from protocol.errors import ProtocolError

__all__ = ["EventStream"]

logger = logging.getLogger(__name__)


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
        *,
        curve: dict[int, bytes] | None = None,
    ) -> None:
        self._socket = context.socket(zmq.SUB)
        for option, value in (curve or {}).items():  # the service's keys over tcp
            self._socket.setsockopt(option, value)
        self._socket.setsockopt(zmq.LINGER, 0)
        # Unbounded: the default 1000 drops ~20% of a burst, silently (measured).
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
