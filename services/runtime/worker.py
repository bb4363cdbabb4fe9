"""What every worker is: the base class the four workers extend.

A worker is a plain, single-threaded object driven by its host process
(`services.runtime.host`): it loads its state in `start`, answers batches of
requests in `handle_batch`, reacts to events in `on_event`, does timed work in
`tick`, and flushes in `stop`. The host owns the sockets, heartbeats and
signals, so a worker's code is about its files and nothing else.

Batches exist for durability at speed: a worker appends every mutation of a
batch to its log and fsyncs once before any reply (a group commit).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

import structlog

from config import Settings
from protocol.base import Message
from protocol.envelopes import Event
from protocol.errors import ErrorCode, ProtocolError
from protocol.names import Op, WorkerName
from services.runtime.paths import ProjectPaths

__all__ = ["Call", "Outcome", "Publish", "ReplyCache", "Worker", "WorkerContext"]

Outcome = Any
"""A result to send back, or a `ProtocolError` instance to answer with."""


class Publish(Protocol):
    """How a worker publishes an event (see `WorkerHost.publish`)."""

    def __call__(self, topic: str, data: Any, *, minor: bool = False) -> None: ...


@dataclass(frozen=True)
class Call:
    """One request, already decoded and with its args validated by the host."""

    id: str
    op: Op
    args: Message


@dataclass
class WorkerContext:
    """What the host gives a worker: where, who, settings, and how to talk."""

    name: WorkerName
    paths: ProjectPaths
    settings: Settings
    session_id: str
    options: dict[str, Any]
    """Start options from the supervisor, e.g. `resume`, `interval_s`."""
    publish: Publish
    """Publish an event: `publish(topic, data, minor=False)`; main thread only."""
    call_soon_threadsafe: Callable[[Callable[[], None]], None]
    """Run a callback on the worker's main thread (from any thread)."""
    log: Any = field(default_factory=structlog.get_logger)
    keep_alive: Callable[[], None] = field(default=lambda: None)
    """Tell the supervisor this worker is still at work; main thread only.

    For the rare wait that may outlast the supervisor's window for a worker
    that owes a reply (1.5 s by default), such as a price waiting for
    genai-prices to load on a busy machine: each call is a sign of life."""


class Worker:
    """Base class of a worker process's logic."""

    name: ClassVar[WorkerName]
    exact_numbers: ClassVar[bool] = False
    """Parse numbers with a fraction in requests as Decimal (money in args)."""
    stable_results: ClassVar[bool] = False
    """Results are frozen models replaced, never changed in place: the host may
    reuse the JSON of a result it encoded last (`session.get` answered twice)."""
    replies_first: ClassVar[bool] = False
    """The events a batch publishes go out after its replies, not before: no
    request needs to see them first, and the supervisor then routes the replies
    before it fans the events out (the cost ledger: docs/benchmarks.md, "Why the
    rate lagged the CPU"). False for a worker whose events must be seen by the
    next request (the session writer's `preferences.changed`)."""
    event_window_s: float = 0.0
    """How long the host may hold delivered events, counted from the first one
    held, so that those arriving meanwhile are handled with it as one batch
    (one `on_events`, one ACK). 0: each read's events are handed over at once.
    Held events are not acknowledged, so nothing is lost if the worker dies."""

    def __init__(self, ctx: WorkerContext) -> None:
        self.ctx = ctx
        self.log = ctx.log

    def start(self) -> None:
        """Load state from disk; the worker says READY only after this returns."""

    def handle_batch(self, calls: Sequence[Call]) -> list[Outcome]:
        """Answer calls that arrived together; override to group-commit."""
        outcomes: list[Outcome] = []
        for call in calls:
            try:
                outcomes.append(self.handle(call))
            except ProtocolError as exc:
                outcomes.append(exc)
        return outcomes

    def handle(self, call: Call) -> Any:
        """Answer one call; raise `ProtocolError` for a client's mistake."""
        raise ProtocolError(
            ErrorCode.UNKNOWN_OP,
            f"{self.name} does not answer {call.op.value!r}",
            request_id=call.id,
        )

    def on_event(self, event: Event) -> None:
        """React to an event of a subscribed topic (docs/protocol.md).

        Raise to refuse it (e.g. its effect could not be made durable): it is
        then not acknowledged and the supervisor re-delivers it.
        """

    def on_events(self, events: Sequence[Event]) -> list[bool]:
        """React to events that arrived together; True for each one taken.

        The default calls `on_event` for each; override to make a whole batch
        durable with one fsync (a group commit, as for requests).
        """
        taken: list[bool] = []
        for event in events:
            try:
                self.on_event(event)
            except Exception:
                self.log.exception("worker.event_failed", topic=event.topic)
                taken.append(False)
            else:
                taken.append(True)
        return taken

    def on_deliveries(self, deliveries: Sequence[tuple[int, bytes, bytes]]) -> list[bool] | None:
        """Take events as delivered (`number`, topic, envelope bytes); True for each taken.

        For a worker that reads the events it cares about straight from their
        bytes (the history archiver's `cost.logged`). None, the default: the
        host reads each one (`services.runtime.delivery.read_event`) and calls
        `on_events`.
        """
        return None

    def next_deadline(self) -> float | None:
        """The monotonic time `tick` should next run, or None for never."""
        return None

    def tick(self, now: float) -> None:
        """Do timed work; called at or after `next_deadline`."""

    def pollables(self) -> list[tuple[int, Callable[[], None]]]:
        """Extra file descriptors to watch, with what to do when readable."""
        return []

    def health(self) -> dict[str, Any]:
        """Extra facts for the READY message and logs."""
        return {}

    def stop(self) -> None:
        """Flush and close on a clean stop (not called after SIGKILL, by nature)."""


class ReplyCache:
    """The last N outcomes by request id: a re-sent id gets the first answer.

    The durable part of idempotency is each worker's (its journal or ledger
    records the ids it applied); this cache makes the common case - a re-send
    seconds later - answer exactly what the first reply said.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._entries: OrderedDict[str, Outcome] = OrderedDict()

    def get(self, request_id: str) -> Outcome | None:
        """The remembered outcome, or None."""
        return self._entries.get(request_id)

    def __contains__(self, request_id: object) -> bool:
        return request_id in self._entries

    def put(self, request_id: str, outcome: Outcome) -> None:
        """Remember an outcome, forgetting the oldest beyond capacity."""
        self._entries[request_id] = outcome
        self._entries.move_to_end(request_id)
        while len(self._entries) > self.capacity:
            self._entries.popitem(last=False)
