"""A mirrored view of the service's state that always converges (the zguide's Clone pattern).

Events are hints, the command channel is the truth. A subscriber loses events
silently when it falls behind, and one that connects late never sees what
came before; `seq` only says *that* something was missed. So `Mirror`:

1. subscribes first, then snapshots with `session.get`, `cost.totals` and
   `supervisor.status` (what it mirrors);
2. applies each later event: `cost.logged` carries complete totals,
   `session.saved` with a higher revision means "read the session again",
   `worker.*` means "read the workers again";
3. on a gap in any source's `seq` (the subscriber's queue overflowed, which
   drops every source's events alike), or a fall (the supervisor restarted),
   reads everything again. Events older than a snapshot are dropped.

`view` holds `session`, `costs` and `workers`; `workers` keeps, per worker,
the fields that change only with an event (name, pid, state, restarts,
last_exit), not the ever-growing `uptime_s`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import zmq
import zmq.asyncio

from protocol.client._transport import ServiceClient
from protocol.envelopes import Event, decode_event
from protocol.errors import ProtocolError

__all__ = ["OWNED_BY", "Mirror", "MirroredView"]

logger = logging.getLogger(__name__)

OWNED_BY = {"session_writer": "session", "cost_ledger": "costs", "supervisor": "workers"}
"""Which part of the view each event source owns."""

_READS = {"session": "session.get", "costs": "cost.totals", "workers": "supervisor.status"}
_WORKER_FIELDS = ("name", "pid", "state", "restarts", "last_exit")


def worker_entries(status: dict[str, Any]) -> list[dict[str, Any]]:
    """The mirrored fields of each worker in a `supervisor.status` result."""
    return [{key: worker.get(key) for key in _WORKER_FIELDS} for worker in status["workers"]]


@dataclass
class MirroredView:
    """The state a mirror holds: each part as the service answered it (money as Decimal)."""

    session: dict[str, Any] | None = None
    costs: dict[str, Any] | None = None
    workers: list[dict[str, Any]] | None = None
    snapshot_at: dict[str, datetime] = field(default_factory=dict)


class Mirror:
    """Keeps `view` equal to the service's state, re-reading whatever events could not tell.

    `receive_hwm` is the SUB socket's receive queue (0, unbounded, unless a
    test wants to force losses). `on_event`, if given, is awaited before each
    event is applied: a slow consumer, or a test's gate.
    """

    def __init__(
        self,
        client: ServiceClient,
        *,
        receive_hwm: int = 0,
        on_event: Callable[[Event], Awaitable[None]] | None = None,
        context: zmq.asyncio.Context | None = None,
    ) -> None:
        self.client = client
        self.view = MirroredView()
        self.gaps = 0
        """Events missed, as `seq` revealed."""
        self.rereads = 0
        """Reads of a part of the state (snapshots included)."""
        self.last_error: BaseException | None = None
        """The last failed re-read that an event asked for (the next gap or refresh retries)."""
        self._on_event = on_event
        self._socket = (context or zmq.asyncio.Context.instance()).socket(zmq.SUB)
        self._socket.setsockopt(zmq.LINGER, 0)
        self._socket.setsockopt(zmq.RCVHWM, receive_hwm)  # before connect: read at connect
        self._socket.setsockopt(zmq.SUBSCRIBE, b"")
        self._socket.connect(client.endpoints.events)
        self._last_seq: dict[str, int] = {}
        self._reading: asyncio.Task[None] | None = None
        self._refreshing: dict[str, asyncio.Task[None]] = {}
        self._again: set[str] = set()
        self._closed = False

    async def start(self) -> Mirror:
        """Start reading events, then take the first snapshot."""
        self._reading = asyncio.get_running_loop().create_task(self._read(), name="mirror-events")
        await self.refresh()
        return self

    async def refresh(self, parts: tuple[str, ...] = tuple(_READS)) -> None:
        """Read the given parts of the state again (all by default)."""
        await asyncio.gather(*(self._reread(part) for part in parts))

    def _reread(self, part: str) -> asyncio.Task[None]:
        running = self._refreshing.get(part)
        if running is not None and not running.done():
            self._again.add(part)  # one more read after this one: it may predate the news
            return running
        task = asyncio.get_running_loop().create_task(self._read_part(part))
        task.add_done_callback(self._note_failure)
        self._refreshing[part] = task
        return task

    def _note_failure(self, task: asyncio.Task[None]) -> None:
        """Keep a failed re-read that nobody awaits (an event asked for it) as `last_error`."""
        if task.cancelled():
            return
        error = task.exception()
        if error is not None and not self._closed:
            self.last_error = error
            logger.warning("mirror: a re-read failed: %s", error)

    async def _read_part(self, part: str) -> None:
        while True:
            self._again.discard(part)
            sent_at = datetime.now(UTC)
            result = await self.client.request(_READS[part])
            self.rereads += 1
            if part == "workers":
                self.view.workers = worker_entries(result)
            else:
                setattr(self.view, part, result)
            self.view.snapshot_at[part] = sent_at
            if part not in self._again:
                return

    async def _read(self) -> None:
        while not self._closed:
            try:
                frames = await self._socket.recv_multipart()
            except (zmq.ZMQError, asyncio.CancelledError):
                if self._closed:
                    return
                raise
            try:
                event = decode_event(frames)
            except ProtocolError as exc:
                logger.warning("mirror: skipping a malformed event: %s", exc.message)
                continue
            if self._on_event is not None:
                await self._on_event(event)
            self._track(event)
            self._apply(event)

    def _track(self, event: Event) -> None:
        last = self._last_seq.get(event.source)
        self._last_seq[event.source] = event.seq
        if last is None or event.seq == last + 1:
            return
        if event.seq > last + 1:
            # Our queue overflowed, and it drops every source's events alike, the
            # last ones too (no later event of theirs may ever show it): so a gap
            # anywhere means reading everything again, not only this source's part.
            self.gaps += event.seq - last - 1
        else:  # the supervisor restarted: its counters start again at 0
            self._last_seq = {event.source: event.seq}
        self._reread_all()

    def _reread_all(self) -> None:
        for part in _READS:
            self._reread(part)

    def _apply(self, event: Event) -> None:
        part = OWNED_BY.get(event.source)
        if part is None or getattr(self.view, part) is None:
            return
        if event.ts < self.view.snapshot_at.get(part, event.ts):
            return  # published before the snapshot was asked for: already in it
        data = event.data
        if event.topic == "cost.logged":
            self.view.costs = data["totals"]
        elif event.topic == "session.saved" and self.view.session is not None:
            revision = self.view.session["revision"]
            if data["revision"] > revision:
                self._reread("session")
            elif data["revision"] == revision:
                self.view.session["last_saved_at"] = data["saved_at"]
        elif event.topic.startswith("worker."):
            self._reread("workers")

    async def close(self) -> None:
        """Stop reading events and wait for reads in progress."""
        self._closed = True
        self._socket.close(linger=0)
        if self._reading is not None:
            self._reading.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reading
        for task in self._refreshing.values():
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await task
