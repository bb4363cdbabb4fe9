"""The supervisor's record of each worker: state, process, and what waits for it."""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any, Protocol

from protocol.names import WorkerName, WorkerState
from services.runtime.lifecycle import Trigger, transition
from services.runtime.restarts import RestartPolicy

__all__ = ["PendingRequest", "WorkerProcess", "WorkerSlot", "all_settled", "restart_hint"]


class WorkerProcess(Protocol):
    """What the supervision rules need of a worker's process (a `ChildProcess`,
    or a fake one in unit tests)."""

    pid: int
    started_mono: float
    started_at: datetime

    def signal(self, signum: int) -> None:
        """Send a signal, ignoring a process that is already gone."""


@dataclass(eq=False, slots=True)
class PendingRequest:
    """A client request on its way to (or inside) a worker."""

    token: bytes
    route: list[bytes]
    """Frames to put before the reply: the client's routing id, and the empty
    delimiter when the client sent one (REQ, or DEALER per the contract)."""
    request_id: str
    op: str
    payload: bytes
    deadline: float | None = None
    """Monotonic time after which a request still waiting gets `unavailable`."""
    deliveries: int = 0


@dataclass(eq=False)
class WorkerSlot:
    """One supervised worker across all its incarnations."""

    name: WorkerName
    policy: RestartPolicy
    state: WorkerState = WorkerState.STOPPED
    child: WorkerProcess | None = None
    started_at: datetime | None = None
    last_seen: float = 0.0
    """Monotonic time of the latest frame from the running worker: a sign of life."""
    owed_since: float | None = None
    """When it began to owe a reply or an ACK (None: it owes nothing); see `liveness`."""
    ready_deadline: float | None = None
    restart_at: float | None = None
    stop_deadline: float | None = None
    stop_signals: int = 0
    stop_when_ready: bool = False
    """Asked to stop while starting: it gets STOP at its READY (never an early SIGTERM)."""
    queued: deque[PendingRequest] = field(default_factory=deque)
    inflight: dict[bytes, PendingRequest] = field(default_factory=dict)
    events: deque[tuple[int, bytes, bytes]] = field(default_factory=deque)
    """Events waiting for the worker to be running: (number, topic, body)."""
    unacked: OrderedDict[int, tuple[bytes, bytes]] = field(default_factory=OrderedDict)
    """Events sent but not yet acknowledged, re-delivered after a crash."""
    last_exit: str | None = None
    kill_reason: str | None = None
    restart_requested: bool = False
    """A `supervisor.restart` stops this worker: start it again once it exited."""
    running_since: float | None = None
    """Monotonic time of its READY (None unless running): the stable-run rule's clock."""
    health: dict[str, Any] = field(default_factory=dict)
    """The worker's latest health report, from READY and heartbeats."""

    @cached_property
    def identity(self) -> bytes:
        """The routing id the worker's DEALER uses (read per message: kept)."""
        return self.name.value.encode()

    def move(self, trigger: Trigger) -> WorkerState:
        """Apply a lifecycle trigger (illegal ones raise: a supervisor bug)."""
        self.state = transition(self.state, trigger)
        return self.state

    def requeue_after_crash(self, deadline: float) -> None:
        """Put in-flight work back in front of the queue for the next incarnation."""
        retry = sorted(self.inflight.values(), key=lambda pending: pending.token)
        self.inflight.clear()
        for pending in reversed(retry):
            self.queued.appendleft(pending)
        for pending in self.queued:
            if pending.deadline is None or pending.deadline > deadline:
                pending.deadline = deadline
        for number in reversed(list(self.unacked)):
            topic, body = self.unacked[number]
            self.events.appendleft((number, topic, body))
        self.unacked.clear()


def all_settled(slots: Iterable[WorkerSlot]) -> bool:
    """Whether every worker is running or failed: the service is then ready.

    A failed worker does not hold the others back (docs/protocol.md): its
    requests are answered `unavailable` at once.
    """
    return all(slot.state in {WorkerState.RUNNING, WorkerState.FAILED} for slot in slots)


def restart_hint(name: WorkerName) -> str:
    """The end of every message about a failed worker: where to look, what to run."""
    return (
        f"`supervisor logs {name.value}` shows why and "
        f"`supervisor restart {name.value}` brings it back"
    )
