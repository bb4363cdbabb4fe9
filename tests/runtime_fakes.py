"""Fake children, sockets and clock for unit tests of the supervisor's rules.

The restart, routing and re-delivery rules run here exactly as in the real
supervisor (the same `WorkerSupervision`, `RequestRouter` and `EventBus`),
but no process is started: a "child" is a record of the signals it got, a
"socket" a list of the messages sent on it, and time moves only when a test
says so.
"""

from __future__ import annotations

import json
import signal
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

import structlog
import zmq

from config import Settings, load_settings
from protocol.envelopes import encode_request
from protocol.internal import WorkerHello, decode_to_worker
from protocol.names import WorkerName, WorkerState
from services.runtime.eventbus import EventBus
from services.runtime.liveness import note_owing
from services.runtime.restarts import RestartPolicy
from services.runtime.routing import RequestRouter
from services.runtime.slots import WorkerSlot
from services.runtime.stopping import StagedStop
from services.runtime.supervision import WorkerSupervision

_SNDMORE = int(zmq.SNDMORE)


class FakeClock:
    """Monotonic time that moves only when told to."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        """Move time forward; the new time."""
        self.now += seconds
        return self.now


@dataclass(eq=False)
class FakeChild:
    """A worker process that never ran: it records the signals sent to it."""

    pid: int
    started_mono: float
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    signals: list[int] = field(default_factory=list)

    def signal(self, signum: int) -> None:
        """Record the signal."""
        self.signals.append(signum)

    @property
    def killed(self) -> bool:
        """Whether it got SIGKILL."""
        return signal.SIGKILL in self.signals


class FakeSocket:
    """Records every multipart message sent on it."""

    def __init__(self) -> None:
        self.messages: list[list[bytes]] = []
        self._partial: list[bytes] = []

    def send(self, frame: bytes, flags: int = 0) -> None:
        """Collect frames until the last one of a message."""
        self._partial.append(bytes(frame))
        if not flags & _SNDMORE:
            self.messages.append(self._partial)
            self._partial = []

    def take(self) -> list[list[bytes]]:
        """The messages sent since the last call."""
        sent, self.messages = self.messages, []
        return sent


def request_frames(request_id: str, op: str, args: dict[str, Any] | None = None) -> list[bytes]:
    """What a DEALER client's request looks like on the ROUTER: identity, empty, request."""
    return [b"client-1", b"", encode_request(request_id, op, args)]


class Rig:
    """One supervisor's rules over fake children, sockets and clock."""

    def __init__(
        self,
        workers: tuple[WorkerName, ...] = (WorkerName.SESSION_WRITER, WorkerName.COST_LEDGER),
        overrides: dict[str, Any] | None = None,
    ) -> None:
        self.settings: Settings = load_settings(overrides or {})
        sup = self.settings.supervisor
        self.clock = FakeClock()
        self.frontend, self.backend, self.events = FakeSocket(), FakeSocket(), FakeSocket()
        self.slots = {
            name: WorkerSlot(
                name=name,
                policy=RestartPolicy.from_settings(sup),
            )
            for name in workers
        }
        self.children: dict[WorkerName, list[FakeChild]] = {name: [] for name in workers}
        self.stopping = False
        self.staged_stop: StagedStop | None = None
        """Set by a test that runs the service's staged stop (`begin_staged_stop`)."""
        self.settled_calls = 0
        self._pids = iter(range(5000, 9000))
        log = structlog.get_logger()
        self.bus = EventBus(
            cast(zmq.Socket[bytes], self.events),
            cast(zmq.Socket[bytes], self.backend),
            self.slots.values(),
            log,
        )
        self.router = RequestRouter(
            cast(zmq.Socket[bytes], self.frontend),
            cast(zmq.Socket[bytes], self.backend),
            self.slots,
            self.settings,
            supervisor_status=lambda: {"session_id": "s"},
            is_stopping=lambda: self.stopping,
            touch_timers=lambda: None,
            clock=self.clock,
        )
        self.supervision = WorkerSupervision(
            self.slots,
            sup,
            spawn=self._spawn,
            send_stop=self.send_stop,
            bus=self.bus,
            router=self.router,
            is_stopping=lambda: self.stopping,
            touch_timers=lambda: None,
            on_settled=self._settled,
            log=log,
            clock=self.clock,
            stop_reached=lambda name: (
                self.stopping and (self.staged_stop is None or self.staged_stop.reached(name))
            ),
        )
        self.router.restart_workers = self.supervision.restart_op

    def begin_staged_stop(self) -> StagedStop:
        """Begin the service's stop, phase by phase, as the supervisor does."""
        self.staged_stop = StagedStop(
            self.slots,
            self.settings.supervisor,
            send_stop=self.send_stop,
            fail_waiting=self.router.fail_waiting,
            touch_timers=lambda: None,
            log=self.supervision.log,
        )
        self.stopping = True
        self.staged_stop.begin(self.clock.now)
        return self.staged_stop

    def send_stop(self, slot: WorkerSlot) -> None:
        """The STOP frame to a running worker, recorded on the backend."""
        self.backend.send(slot.identity, _SNDMORE)
        self.backend.send(b"STOP")

    def _spawn(self, slot: WorkerSlot) -> FakeChild:
        child = FakeChild(pid=next(self._pids), started_mono=self.clock.now)
        self.children[slot.name].append(child)
        return child

    def _settled(self) -> None:
        self.settled_calls += 1

    # -- driving ----------------------------------------------------------------------

    def slot(self, name: WorkerName) -> WorkerSlot:
        """The slot of worker `name`."""
        return self.slots[name]

    def child(self, name: WorkerName) -> FakeChild:
        """The latest process of worker `name`."""
        return self.children[name][-1]

    def start_all(self) -> None:
        """Start every worker and let each say READY."""
        for slot in self.slots.values():
            self.supervision.start(slot, self.clock.now)
        for name in self.slots:
            self.ready(name)

    def ready(self, name: WorkerName) -> None:
        """The latest process of `name` says READY."""
        child = self.child(name)
        hello = WorkerHello(pid=child.pid, name=name, health={})
        self.supervision.on_ready(self.slot(name), hello, self.clock.now)

    def crash(self, name: WorkerName, returncode: int = -9) -> None:
        """The process of `name` dies (SIGKILL by default) and is reaped."""
        self.supervision.on_exit(self.slot(name), returncode, self.clock.now)

    def tick(self, seconds: float = 0.0) -> None:
        """Note who owes what now, move the clock and run the timers, as the loop does."""
        note_owing(self.slots.values(), self.clock.now)
        self.supervision.run_timers(self.clock.advance(seconds))

    def beat(self, name: WorkerName) -> None:
        """The worker sent something (a heartbeat): it is alive now."""
        self.slot(name).last_seen = self.clock.now

    # -- reading what happened --------------------------------------------------------

    def handed_requests(self, name: WorkerName) -> list[tuple[bytes, dict[str, Any]]]:
        """(token, request) of every REQ sent to worker `name` since the last call."""
        handed = []
        for message in self.backend.take():
            if message[0] != name.value.encode():
                continue
            frame = decode_to_worker(message[1:])
            request = getattr(frame, "request", None)
            if request is not None:
                handed.append((frame.token, json.loads(request)))  # type: ignore[union-attr]
        return handed

    def replies(self) -> list[dict[str, Any]]:
        """Every reply sent to clients since the last call."""
        return [json.loads(message[-1]) for message in self.frontend.take()]

    def published(self) -> list[dict[str, Any]]:
        """Every event published to clients since the last call."""
        return [json.loads(message[1]) for message in self.events.take()]

    def state(self, name: WorkerName) -> WorkerState:
        """The state of worker `name`."""
        return self.slot(name).state
