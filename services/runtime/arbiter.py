"""The supervisor's loop: one poller over sockets, child pidfds and timers.

Single-threaded on purpose: a plain `zmq.Poller` loop (an asyncio loop costs
~65 us a round trip, measured) sees the command ROUTER, the workers' ROUTER,
every child's pidfd and stderr, and a signal wake-up socket. The event socket
is a PUB that is only written to: it reads its subscriptions itself.
Everything that happens to a worker is decided in order, so there are no
races between "a command arrived" and "a child died".

This module owns the sockets and the loop, and wires the parts together:
the restart rules (`supervision`), request routing (`routing`), event
fan-out (`eventbus`), the staged stop (`stopping`), the fork server
(`forkkeeper`) and the children's descriptors (`childtable`). The frames
from the workers are decoded by `protocol.internal`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import socket
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

import structlog
import zmq
from zmq.backend import zmq_poll

from config import Settings
from protocol.envelopes import EndpointsFile
from protocol.internal import (
    ACK,
    PUB,
    PUBS,
    REP,
    EventAck,
    Heartbeat,
    MalformedFrame,
    Published,
    StopRequest,
    WorkerAssignment,
    WorkerHello,
    WorkerPublish,
    WorkerPublishBatch,
    WorkerReply,
    ack_numbers,
    decode_from_worker,
    plain_publish,
    plain_publish_batch,
)
from protocol.names import WorkerName
from protocol.ops import SupervisorStatus
from services.runtime.children import ChildProcess, become_subreaper, spawn_host
from services.runtime.childtable import ChildTable
from services.runtime.descriptors import DescriptorSet
from services.runtime.eventbus import MAX_SUBSCRIPTION_BYTES, EventBus
from services.runtime.forkkeeper import ForkServerKeeper
from services.runtime.forkserver import ForkServer
from services.runtime.frames import messages, send_frames
from services.runtime.liveness import busy_window_s, note_owing
from services.runtime.paths import ProjectPaths
from services.runtime.restarts import RestartPolicy
from services.runtime.routing import RequestRouter
from services.runtime.slots import WorkerSlot, all_settled
from services.runtime.stall import StallClock, forgive_stall
from services.runtime.stopping import STOP_PHASES, StagedStop
from services.runtime.supervision import WorkerSupervision
from services.runtime.transport import Endpoints
from services.runtime.wire import MAX_WORKER_FRAME_BYTES
from services.store import AtomicJsonFile
from services.store.fileops import RunFileOps

__all__ = ["STOP_PHASES", "Supervisor"]

_MAX_DRAIN = 1024


def _plain_events(kind: bytes, body: list[bytes]) -> list[Published] | None:
    """The events of a `PUB` or `PUBS` message that needs no model (`plain_publish`,
    `plain_publish_batch`), in order; None for anything else."""
    if kind == PUB:
        return [(body[1], body[2], body[3], len(body) == 5)] if plain_publish(body) else None
    return plain_publish_batch(body) if kind == PUBS else None


class Supervisor:
    """Owns every worker process and the public sockets of one project."""

    def __init__(
        self,
        paths: ProjectPaths,
        settings: Settings,
        endpoints: Endpoints,
        *,
        session_id: str,
        worker_settings: dict[str, Any],
        worker_options: dict[str, Any],
        workers: Iterable[WorkerName] = tuple(WorkerName),
        fork_server: ForkServer | None = None,
    ) -> None:
        self.paths = paths
        self.settings = settings
        self.session_id = session_id
        self.worker_settings = worker_settings
        self.worker_options = worker_options
        self.log = structlog.get_logger().bind(component="supervisor")
        sup = settings.supervisor
        self.slots: dict[WorkerName, WorkerSlot] = {
            name: WorkerSlot(
                name=name,
                policy=RestartPolicy.from_settings(sup),
            )
            for name in workers
        }
        self._by_identity = {slot.identity: slot for slot in self.slots.values()}
        self._later: list[tuple[bytes, bytes, bytes, bytes, bool]] = []
        """Events read in this turn, fanned out once its requests are forwarded
        (`_dispatch`): (topic, source, ts, data, minor)."""
        self._timers_at = 0.0
        """Monotonic time of the next timer check; 0 forces one (set on any change)."""
        self._stall = StallClock(tolerance_s=settings.supervisor.heartbeat_interval_s)
        self._busy_window_s = busy_window_s(settings.supervisor)
        self.started_at = datetime.now(UTC)
        self.ready = False
        self.on_ready: Callable[[], None] | None = None
        self._stop_requested = ""
        # Workers forked by the fork server are its grandchildren; adopting
        # orphans makes them ours, so we reap them and get their exit status.
        self._subreaper = become_subreaper()
        self._zctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context.instance()
        self._poller = zmq.Poller()
        self._descriptors = DescriptorSet()
        self.children = ChildTable(self._descriptors, paths.logs_dir, settings.logging)
        hwm = settings.protocol.event_hwm
        self.frontend = self._socket(
            zmq.ROUTER,
            endpoints.command,
            MAXMSGSIZE=settings.protocol.hard_frame_bytes,
            **endpoints.public_options(),
        )
        # The workers' link: both ends are ours and drain continuously, so no
        # limit (a full queue would block or drop silently); MANDATORY makes a
        # send to a vanished worker fail loudly instead of vanishing.
        self.backend = self._socket(
            zmq.ROUTER,
            endpoints.backend,
            ROUTER_HANDOVER=1,
            ROUTER_MANDATORY=1,
            SNDHWM=0,
            RCVHWM=0,
            MAXMSGSIZE=MAX_WORKER_FRAME_BYTES,
        )
        self.events = self._socket(
            zmq.PUB,
            endpoints.events,
            SNDHWM=hwm,
            MAXMSGSIZE=MAX_SUBSCRIPTION_BYTES,
            **endpoints.public_options(),
        )
        self.endpoints = dataclasses.replace(
            endpoints,
            command=self._last_endpoint(self.frontend),
            events=self._last_endpoint(self.events),
            backend=self._last_endpoint(self.backend),
        )
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._wake_fd = self._wake_r.fileno()
        self.bus = EventBus(
            self.events,
            self.backend,
            self.slots.values(),
            self.log,
            began_owing=self._began_owing,
        )
        self.router = RequestRouter(
            self.frontend,
            self.backend,
            self.slots,
            settings,
            supervisor_status=self.status,
            is_stopping=lambda: self.stopping,
            touch_timers=self._touch_timers,
            began_owing=self._began_owing,
        )
        self.supervision = WorkerSupervision(
            self.slots,
            sup,
            spawn=self._spawn,
            send_stop=self._send_stop,
            bus=self.bus,
            router=self.router,
            is_stopping=lambda: self.stopping,
            touch_timers=self._touch_timers,
            on_settled=self._become_ready,
            log=self.log,
            stop_reached=lambda name: self.stopping and self.staged_stop.reached(name),
        )
        self.router.restart_workers = self.supervision.restart_op
        self.staged_stop = StagedStop(
            self.slots,
            sup,
            send_stop=self._send_stop,
            fail_waiting=self.router.fail_waiting,
            touch_timers=self._touch_timers,
            log=self.log,
        )
        self.fork_servers = ForkServerKeeper(
            self.children,
            sup,
            cwd=paths.project,
            touch_timers=self._touch_timers,
            log=self.log,
        )
        # The event socket is a PUB, not polled: it handles subscriptions
        # itself (each poll of a ZeroMQ socket costs two mailbox checks). The
        # children's descriptors and the wake-up socket wait in one epoll set.
        for sock in (self.frontend, self.backend):
            self._poller.register(sock, zmq.POLLIN)
        self._descriptors.register(self._wake_fd, zmq.POLLIN)
        self._poller.register(self._descriptors.fileno(), zmq.POLLIN)
        if fork_server is not None and self._subreaper:
            self.fork_servers.adopt(fork_server)
        elif fork_server is not None:
            fork_server.close()

    def _socket(self, kind: int, endpoint: str, **options: int | bytes) -> zmq.Socket[bytes]:
        # Options must be set before bind: libzmq applies them to new connections only.
        sock: zmq.Socket[bytes] = self._zctx.socket(kind)
        sock.setsockopt(zmq.LINGER, 0)
        for name, value in options.items():
            sock.setsockopt(getattr(zmq, name), value)
        sock.bind(endpoint)
        return sock

    @staticmethod
    def _last_endpoint(sock: zmq.Socket[bytes]) -> str:
        value = sock.getsockopt(zmq.LAST_ENDPOINT)
        return value.decode() if isinstance(value, bytes) else str(value)

    @property
    def stopping(self) -> bool:
        """Whether the service is stopping (no restarts, requests refused)."""
        return self.staged_stop.active

    # -- lifecycle ----------------------------------------------------------------

    def install_signal_handlers(self) -> None:
        """SIGTERM, SIGINT and SIGHUP ask for a clean stop; the loop wakes at once."""
        signal.set_wakeup_fd(self._wake_w.fileno(), warn_on_full_buffer=False)
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, self._on_signal)

    def _on_signal(self, signum: int, _frame: object) -> None:
        self.request_stop(signal.Signals(signum).name)

    def request_stop(self, reason: str) -> None:
        """Begin a clean stop at the next turn of the loop."""
        self._stop_requested = reason or "requested"

    def run(self) -> int:
        """Start every worker, serve until stopped, stop them all; the exit code."""
        now = time.monotonic()
        for slot in self.slots.values():
            self.supervision.start(slot, now)
        # The loop turns twice per request: what it does besides the routing
        # is kept to attribute reads and one clock reading per turn.
        monotonic = time.monotonic
        # `zmq_poll` itself, on the poller's own list (changed in place by
        # `register`): `Poller.poll`'s Python wrapper cost ~0.4 us a turn.
        poll, polled = zmq_poll, self._poller.sockets
        stall = self._stall
        fork_servers = self.fork_servers
        try:
            while True:
                if self._stop_requested or self.staged_stop.active:
                    if self._stop_requested and not self.stopping:
                        self._begin_stop()
                    if self.stopping and self.staged_stop.advance(monotonic()):
                        break
                now = monotonic()
                stalled_s = stall.stalled_for(now)
                if stalled_s:  # we were not running: no worker was silent meanwhile
                    forgive_stall(
                        self.slots.values(), now, stalled_s, self.log, unread_s=stall.turn_s
                    )
                if now >= self._timers_at:
                    try:
                        self._run_timers(now)
                    except Exception:
                        self.log.exception("supervisor.timer_error")
                    self._timers_at = self._next_deadline(now)
                timeout = max(0, int((self._timers_at - now) * 1000) + 1)
                stall.will_wait(timeout / 1000)
                ready = poll(polled, timeout)
                try:
                    self._dispatch(ready)
                    if fork_servers.spare_wanted:
                        self._refill_spare()
                except Exception:
                    # A supervisor bug must not take every worker down with it.
                    self.log.exception("supervisor.loop_error")
        finally:
            self._shutdown()
        return 0

    def _dispatch(self, ready: list[tuple[Any, int]]) -> None:
        # Replies before requests; descriptors (children, the wake-up socket)
        # are rare and come last.
        backend = frontend = descriptors = False
        for item, _ in ready:
            if item is self.frontend:
                frontend = True
            elif item is self.backend:
                backend = True
            else:
                descriptors = True
        # A turn's events are fanned out after its requests are forwarded: the
        # requests that a burst of replies brought back do not wait while the
        # events that came with those replies are stamped and delivered
        # (docs/benchmarks.md, "Why the rate lagged the CPU"). A reply still
        # follows every event its worker published before it.
        try:
            if backend:
                self._drain_backend(polled=True, defer_events=True)
            if frontend:
                self.router.drain(polled=True)
        finally:
            self._fan_out_later()
        if descriptors:
            self._on_descriptors([fd for fd, _ in self._descriptors.poll(0)])

    def _on_descriptors(self, fds: list[int]) -> None:
        if self._wake_fd in fds:
            with contextlib.suppress(BlockingIOError):
                while self._wake_r.recv(4096):
                    pass
        for fd in fds:
            entry = self.children.get(fd)  # gone if its sibling fd already reaped the child
            if entry is not None:
                self._on_child_ready(entry[0], entry[1], fd)

    # -- processes --------------------------------------------------------------------

    def _spawn(self, slot: WorkerSlot) -> ChildProcess:
        """A process for `slot`'s worker (forked, or cold), told what to become."""
        child = self.fork_servers.fork(time.monotonic())
        if child is None:
            child = spawn_host(cwd=self.paths.project)
        self.children.add(child, slot)
        assignment = WorkerAssignment(
            name=slot.name,
            project=str(self.paths.project),
            session_id=self.session_id,
            backend=self.endpoints.backend,
            settings=self.worker_settings,
            options=self.worker_options,
        )
        try:
            child.assign(assignment.line())
        except OSError as exc:  # it died already: its pidfd reports the exit
            self.log.warning("worker.assign_failed", worker=slot.name.value, error=str(exc))
        return child

    def _refill_spare(self) -> None:
        # Only when every worker runs (or failed): a fork now would hold up a
        # starting worker's READY and requests for its duration.
        if self.stopping or not all_settled(self.slots.values()):
            return
        self.fork_servers.refill(time.monotonic())

    def _send_stop(self, slot: WorkerSlot) -> None:
        with contextlib.suppress(zmq.ZMQError):
            send_frames(self.backend, [slot.identity, *StopRequest().frames()])

    def _on_child_ready(self, child: ChildProcess, slot: WorkerSlot | None, fd: int) -> None:
        for line in child.read_stderr():
            self.children.log(slot, line)
        if fd != child.pidfd:
            return
        returncode = child.reap()
        if returncode is None:
            return
        for line in child.read_stderr():
            self.children.log(slot, line)
        if self.fork_servers.owns(child):
            self.fork_servers.on_exit(returncode, time.monotonic(), retry=not self.stopping)
            return
        self.children.remove(child)
        child.close()
        self.fork_servers.forget(child)
        if slot is not None and slot.child is child:
            self.supervision.on_exit(slot, returncode, time.monotonic())

    def _become_ready(self) -> None:
        self.ready = True
        document = EndpointsFile(
            command=self.endpoints.command,
            events=self.endpoints.events,
            supervisor_pid=os.getpid(),
            session_id=self.session_id,
            started_at=self.started_at,
            **self.endpoints.announced(),
        )
        outcome = AtomicJsonFile(self.paths.endpoints, ops=RunFileOps()).save(document)
        if not outcome.ok:
            self.log.error("endpoints.write_failed", error=outcome.error)
        self.log.info("supervisor.ready", **self.endpoints.describe())
        if self.on_ready is not None:
            self.on_ready()

    def status(self) -> SupervisorStatus:
        """What `supervisor.status` answers."""
        return SupervisorStatus(
            session_id=self.session_id,
            workers=self.supervision.worker_statuses(time.monotonic()),
            supervisor_pid=os.getpid(),
            started_at=self.started_at,
            project=str(self.paths.project),
            fork_server_pid=self.fork_servers.server.child.pid
            if self.fork_servers.server is not None
            else None,
        )

    # -- the workers' link ----------------------------------------------------------

    def _fan_out_later(self) -> None:
        """Fan out the events `_drain_backend` held, in the order they came."""
        later = self._later
        if not later:
            return
        self._later = []
        self.bus.fan_out_many(later)  # a worker's share of them in one EVT message

    def _drain_backend(self, *, polled: bool = False, defer_events: bool = False) -> None:
        """Handle what the workers sent. `defer_events`: hold plain events for
        `_fan_out_later` (the caller's), sending those held before any reply or
        other frame, so that nothing overtakes an event of the same worker."""
        by_identity = self._by_identity
        later = self._later
        for frames in messages(self.backend, _MAX_DRAIN, polled=polled):
            slot = by_identity.get(frames[0])
            if slot is None:
                continue
            now = time.monotonic()
            slot.last_seen = now
            kind = frames[1] if len(frames) > 1 else b""
            if kind == REP and len(frames) == 4:
                # The hot path: a reply passes through as bytes, found by its
                # token alone (an unknown or odd token matches nothing).
                if later:
                    self._fan_out_later()
                    later = self._later
                pending = slot.inflight.pop(frames[2], None)
                if pending is not None:
                    self.router.reply(pending.route, frames[3])
                    if not slot.inflight and not slot.unacked:
                        slot.owed_since = None
                continue
            body = frames[1:]
            events = _plain_events(kind, body)
            if events is not None:  # an event's frames are its bytes: forwarded without a model
                source = frames[0]
                later += [(topic, source, ts, data, minor) for topic, ts, data, minor in events]
                if not defer_events:
                    self._fan_out_later()
                    later = self._later
                continue
            numbers = ack_numbers(body) if kind == ACK else None
            if numbers is not None:  # of events fanned out in earlier turns
                self._acknowledged(slot, numbers)
                continue
            if later:
                self._fan_out_later()
                later = self._later
            self._on_worker_frame(slot, frames, now)

    @staticmethod
    def _acknowledged(slot: WorkerSlot, numbers: Iterable[int]) -> None:
        for number in numbers:
            slot.unacked.pop(number, None)
        if not slot.unacked and not slot.inflight:
            slot.owed_since = None

    def _on_worker_frame(self, slot: WorkerSlot, frames: list[bytes], now: float) -> None:
        """Everything from a worker but a well-formed reply: decoded and checked."""
        try:
            frame = decode_from_worker(frames[1:])
        except MalformedFrame as exc:
            self.log.warning("worker.malformed_frame", worker=slot.name.value, error=str(exc))
            return
        if isinstance(frame, WorkerReply):
            pending = slot.inflight.pop(frame.token, None)
            if pending is not None:
                self.router.reply(pending.route, frame.reply)
        elif isinstance(frame, WorkerPublish | WorkerPublishBatch):
            for event in frame.events if isinstance(frame, WorkerPublishBatch) else (frame,):
                self.bus.fan_out(
                    event.topic.encode(),
                    frames[0],
                    event.ts.encode(),
                    event.data,
                    minor=event.minor,
                )
        elif isinstance(frame, EventAck):
            self._acknowledged(slot, frame.numbers)
        elif isinstance(frame, Heartbeat):
            slot.health = frame.health
        elif isinstance(frame, WorkerHello):
            self.supervision.on_ready(slot, frame, now)

    # -- timers -------------------------------------------------------------------

    def _touch_timers(self) -> None:
        """Something changed a deadline: check timers on the next turn of the loop."""
        self._timers_at = 0.0

    def _next_deadline(self, now: float) -> float:
        # Timers are checked when due, not on every message: under load the
        # loop turns once per message and this scan would cost more than the
        # routing itself. Anything that sets a deadline calls `_touch_timers`;
        # heartbeat deadlines only move later, so a stale one just wakes early,
        # except when a worker begins to owe (`_note_owing` brings them forward).
        deadline = self.supervision.next_deadline(now)
        retry_at = self.fork_servers.retry_at
        return deadline if retry_at is None else min(deadline, retry_at)

    def _run_timers(self, now: float) -> None:
        # Read what the workers sent first: after anything that held the loop
        # (a slow fork, a disk stall) their heartbeats are queued, not missed.
        self._drain_backend()
        self.bus.tend()
        self.children.reap_strays()
        self.supervision.run_timers(now)
        if not self.stopping:
            self.fork_servers.run_timer(now)
        note_owing(self.slots.values(), now)

    def _began_owing(self, slot: WorkerSlot) -> None:
        """`slot`'s worker was just handed work while it owed nothing: it is judged
        by the short window from now, so the timers are due by then (an idle
        loop may be asleep for the long one)."""
        now = time.monotonic()
        slot.owed_since = now
        self._timers_at = min(self._timers_at, now + self._busy_window_s)

    # -- stopping -------------------------------------------------------------------

    def _begin_stop(self) -> None:
        self.fork_servers.cancel_retry()
        self.log.info("supervisor.stopping", reason=self._stop_requested)
        with contextlib.suppress(FileNotFoundError):
            self.paths.endpoints.unlink()
        self.staged_stop.begin(time.monotonic())

    def _shutdown(self) -> None:
        """Reap everything, whatever happened; nothing is left running."""
        self.fork_servers.release()
        self.children.end_all(self.settings.supervisor.stop_grace_s)
        with contextlib.suppress(FileNotFoundError):
            self.paths.endpoints.unlink()
        for sock in (self.frontend, self.backend, self.events):
            sock.close(linger=0)
        self._descriptors.close()
        self.log.info("supervisor.stopped")
