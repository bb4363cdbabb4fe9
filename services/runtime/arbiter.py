"""The supervisor's loop: one poller over sockets, child pidfds and timers.

Single-threaded on purpose: a plain `zmq.Poller` loop (an asyncio loop costs
~65 us a round trip, measured) sees the command ROUTER, the workers' ROUTER,
the event XPUB, every child's pidfd and stderr, and a signal wake-up socket.
Everything that happens to a worker is decided here, in order, so there are
no races between "a command arrived" and "a child died".
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

from config import Settings
from protocol.codec import dumps, loads
from protocol.envelopes import EndpointsFile
from protocol.names import Topic, WorkerName, WorkerState
from protocol.ops import SupervisorStatus, WorkerStatus
from services.runtime import wire
from services.runtime.children import ChildProcess, become_subreaper, describe_exit, spawn_host
from services.runtime.childtable import ChildTable
from services.runtime.eventbus import MAX_SUBSCRIPTION_BYTES, EventBus
from services.runtime.forkserver import ForkServer, ForkServerError
from services.runtime.frames import readable, recv_frames, send_frames
from services.runtime.lifecycle import Trigger
from services.runtime.paths import ProjectPaths
from services.runtime.restarts import RestartPolicy
from services.runtime.routing import RequestRouter
from services.runtime.slots import WorkerSlot
from services.runtime.stall import StallClock, forgive_stall
from services.runtime.transport import Endpoints
from services.store import AtomicJsonFile

__all__ = ["STOP_PHASES", "Supervisor"]

STOP_PHASES: tuple[tuple[WorkerName, ...], ...] = (
    (WorkerName.FILE_WATCHER,),
    (WorkerName.SESSION_WRITER, WorkerName.COST_LEDGER),
    (WorkerName.HISTORY_ARCHIVER,),
)
"""Stop order: sources of events first, so the archiver hears the last ones."""

_MAX_DRAIN = 1024


def _health(slot: WorkerSlot) -> dict[str, Any]:
    try:
        value = loads(slot.health)
    except ValueError:
        return {}
    if not isinstance(value, dict):
        return {}
    value.pop("pid", None)
    value.pop("name", None)
    return value


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
                policy=RestartPolicy(
                    max_restarts=sup.max_restarts,
                    window_s=sup.restart_window_s,
                    backoff_initial_s=sup.backoff_initial_s,
                    backoff_max_s=sup.backoff_max_s,
                ),
            )
            for name in workers
        }
        self._by_identity = {slot.identity: slot for slot in self.slots.values()}
        self._timers_at = 0.0
        """Monotonic time of the next timer check; 0 forces one (set on any change)."""
        self._stall = StallClock(tolerance_s=settings.supervisor.heartbeat_interval_s)
        self.started_at = datetime.now(UTC)
        self.ready = False
        self.on_ready: Callable[[], None] | None = None
        self.stopping = False
        self._stop_requested = ""
        self._phase = 0
        self._fork_server: ForkServer | None = None
        self._fork_server_at: float | None = None
        self._fork_server_failures = 0
        # Workers forked by the fork server are its grandchildren; adopting
        # orphans makes them ours, so we reap them and get their exit status.
        self._subreaper = become_subreaper()
        self._zctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context.instance()
        self._poller = zmq.Poller()
        self.children = ChildTable(self._poller, paths.logs_dir, settings.logging)
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
            MAXMSGSIZE=wire.MAX_WORKER_FRAME_BYTES,
        )
        self.events = self._socket(
            zmq.XPUB,
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
        self.bus = EventBus(self.events, self.backend, self.slots.values(), self.log)
        self.router = RequestRouter(
            self.frontend,
            self.backend,
            self.slots,
            settings,
            supervisor_status=self.status,
            is_stopping=lambda: self.stopping,
            touch_timers=self._touch_timers,
        )
        for sock in (self.frontend, self.backend, self.events):
            self._poller.register(sock, zmq.POLLIN)
        self._poller.register(self._wake_r.fileno(), zmq.POLLIN)
        if fork_server is not None and self._subreaper:
            self._adopt_fork_server(fork_server)
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
            self._start(slot, now)
        try:
            while True:
                if self._stop_requested and not self.stopping:
                    self._begin_stop()
                if self.stopping and self._advance_stop(time.monotonic()):
                    break
                now = time.monotonic()
                stalled_s = self._stall.stalled_for(now)
                if stalled_s:  # we were not running: no worker was silent meanwhile
                    forgive_stall(self.slots.values(), now, stalled_s, self.log)
                if now >= self._timers_at:
                    try:
                        self._run_timers(now)
                    except Exception:
                        self.log.exception("supervisor.timer_error")
                    self._timers_at = self._next_deadline(now)
                timeout = max(0, int((self._timers_at - now) * 1000) + 1)
                self._stall.will_wait(timeout / 1000)
                ready = dict(self._poller.poll(timeout))
                try:
                    self._dispatch(ready)
                except Exception:
                    # A supervisor bug must not take every worker down with it.
                    self.log.exception("supervisor.loop_error")
        finally:
            self._shutdown()
        return 0

    def _dispatch(self, ready: dict[Any, int]) -> None:
        if self.backend in ready:
            self._drain_backend()
        if self.frontend in ready:
            self.router.drain()
        if self.events in ready:
            self.bus.drain_subscriptions()
        if self._wake_r.fileno() in ready:
            with contextlib.suppress(BlockingIOError):
                while self._wake_r.recv(4096):
                    pass
        for fd in [fd for fd in ready if isinstance(fd, int)]:
            entry = self.children.get(fd)  # gone if its sibling fd already reaped the child
            if entry is not None:
                self._on_child_ready(entry[0], entry[1], fd)

    # -- workers: start, ready, exit ------------------------------------------------

    def _assignment(self, name: WorkerName) -> bytes:
        return dumps(
            {
                "name": name.value,
                "project": str(self.paths.project),
                "session_id": self.session_id,
                "backend": self.endpoints.backend,
                "settings": self.worker_settings,
                "options": self.worker_options,
            }
        )

    def _start(self, slot: WorkerSlot, now: float) -> None:
        child = self._fork()
        if child is None:
            child = spawn_host(cwd=self.paths.project)
        self.children.add(child, slot)
        slot.child = child
        slot.move(Trigger.SPAWN)
        try:
            child.assign(self._assignment(slot.name))
        except OSError as exc:  # it died already: its pidfd reports the exit
            self.log.warning("worker.assign_failed", worker=slot.name.value, error=str(exc))
        slot.restart_at = None
        slot.ready_deadline = now + self.settings.supervisor.ready_timeout_s
        slot.kill_reason = None
        self._touch_timers()
        self.log.info("worker.spawned", worker=slot.name.value, pid=child.pid)

    def _fork(self) -> ChildProcess | None:
        """A worker host forked from the fork server, or None to spawn one cold."""
        server = self._fork_server
        if server is None:
            return None
        try:
            return server.fork()
        except ForkServerError as exc:
            self.log.warning("fork_server.unusable", error=str(exc))
            self._drop_fork_server(time.monotonic())
            return None

    def _adopt_fork_server(self, server: ForkServer) -> None:
        self._fork_server = server
        self.children.add(server.child, None)

    def _drop_fork_server(self, now: float) -> None:
        server, self._fork_server = self._fork_server, None
        if server is None:
            return
        self.children.remove(server.child)
        server.close(kill=True)  # it may be stuck, not dead: never leave it behind
        self._fork_server_failures += 1
        if self._fork_server_failures <= 5 and not self.stopping:
            self._fork_server_at = now + 0.5 * self._fork_server_failures
            self._touch_timers()

    def _on_ready(self, slot: WorkerSlot, body: bytes) -> None:
        if slot.state is not WorkerState.STARTING:
            return  # a READY racing a stop or a kill: the exit will tell
        slot.move(Trigger.READY)
        slot.ready_deadline = None
        slot.started_at = slot.child.started_at if slot.child else datetime.now(UTC)
        pid = slot.child.pid if slot.child else None
        self.log.info("worker.ready", worker=slot.name.value, pid=pid)
        self.bus.publish_own(
            Topic.WORKER_STARTED,
            {
                "name": slot.name.value,
                "pid": pid,
                "restarts": slot.policy.total,
                "state": "running",
            },
        )
        self.router.flush(slot)
        self.bus.flush(slot)
        if not self.ready and all(
            s.state in {WorkerState.RUNNING, WorkerState.FAILED} for s in self.slots.values()
        ):
            self._become_ready()

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
        outcome = AtomicJsonFile(self.paths.endpoints).save(document)
        if not outcome.ok:
            self.log.error("endpoints.write_failed", error=outcome.error)
        self.log.info("supervisor.ready", **self.endpoints.describe())
        if self.on_ready is not None:
            self.on_ready()

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
        if self._fork_server is not None and child is self._fork_server.child:
            self.log.warning("fork_server.exited", returncode=returncode)
            self._drop_fork_server(time.monotonic())
            return
        self.children.remove(child)
        child.close()
        if slot is not None and slot.child is child:
            self._on_exit(slot, child, returncode, time.monotonic())

    def _on_exit(self, slot: WorkerSlot, child: ChildProcess, returncode: int, now: float) -> None:
        code, sig = describe_exit(returncode)
        slot.ready_deadline = None
        slot.child = None
        slot.last_exit = f"signal {sig}" if sig else f"exit {code}"
        if slot.kill_reason:
            slot.last_exit += f" ({slot.kill_reason})"
        data: dict[str, Any] = {
            "name": slot.name.value,
            "pid": child.pid,
            "exit_code": code,
            "signal": sig,
            "restarts": slot.policy.total,
            "reason": slot.kill_reason,
        }
        if slot.state is WorkerState.STOPPING:
            slot.move(Trigger.EXIT)
            self.bus.publish_own(Topic.WORKER_EXITED, {**data, "state": slot.state.value})
            self.router.fail_waiting(slot, "the service is stopping")
            return
        delay = slot.policy.on_exit(now)
        self.log.warning(
            "worker.exited",
            worker=slot.name.value,
            pid=child.pid,
            exit_code=code,
            signal=sig,
            reason=slot.kill_reason,
            restart_in_s=delay,
        )
        if delay is None:
            slot.move(Trigger.GIVE_UP)
            self.bus.publish_own(Topic.WORKER_EXITED, {**data, "state": slot.state.value})
            sup = self.settings.supervisor
            message = (
                f"{slot.name.value} failed: it crashed more than {sup.max_restarts} times in "
                f"{sup.restart_window_s:g} s; see .session/logs/{slot.name.value}.log"
            )
            self.log.error("worker.failed", worker=slot.name.value, message=message)
            self.bus.publish_own(
                Topic.WORKER_FAILED, {**data, "state": "failed", "reason": message}
            )
            self.router.fail_waiting(slot, message)
            if not self.ready and all(
                s.state in {WorkerState.RUNNING, WorkerState.FAILED} for s in self.slots.values()
            ):
                self._become_ready()
            return
        slot.move(Trigger.EXIT)
        self.bus.publish_own(Topic.WORKER_EXITED, {**data, "state": slot.state.value})
        slot.requeue_after_crash(now + self.settings.supervisor.request_wait_s)
        slot.restart_at = now + delay
        self._touch_timers()
        if delay == 0 and not self.stopping:
            self._start(slot, now)

    def status(self) -> SupervisorStatus:
        """What `supervisor.status` answers."""
        now = time.monotonic()
        workers = [
            WorkerStatus(
                name=slot.name.value,
                pid=slot.child.pid if slot.child else None,
                state=slot.state,
                restarts=slot.policy.total,
                started_at=slot.started_at if slot.state is WorkerState.RUNNING else None,
                uptime_s=round(now - slot.child.started_mono, 3)
                if slot.child and slot.state is WorkerState.RUNNING
                else None,
                last_exit=slot.last_exit,
                health=_health(slot),
            )
            for slot in self.slots.values()
        ]
        return SupervisorStatus(
            session_id=self.session_id,
            workers=workers,
            supervisor_pid=os.getpid(),
            started_at=self.started_at,
            project=str(self.paths.project),
        )

    # -- the workers' link ----------------------------------------------------------

    def _drain_backend(self) -> None:
        for _ in range(_MAX_DRAIN):
            if not readable(self.backend):
                return
            frames = recv_frames(self.backend)
            if len(frames) < 2:
                continue
            slot = self._by_identity.get(frames[0])
            if slot is None:
                continue
            slot.last_seen = time.monotonic()
            kind = frames[1]
            if kind == wire.REP and len(frames) == 4:
                pending = slot.inflight.pop(frames[2], None)
                if pending is not None:
                    self.router.reply(pending.route, frames[3])
            elif kind == wire.PUB and len(frames) in (5, 6):
                minor = len(frames) == 6 and frames[5] == wire.MINOR
                self.bus.fan_out(frames[2], frames[0], frames[3], frames[4], minor=minor)
            elif kind == wire.ACK:
                for number in frames[2:]:
                    slot.unacked.pop(int.from_bytes(number, "big"), None)
            elif kind == wire.HB and len(frames) == 3:
                slot.health = frames[2]
            elif kind == wire.READY:
                slot.health = frames[2] if len(frames) > 2 else b"{}"
                self._on_ready(slot, slot.health)

    # -- timers -------------------------------------------------------------------

    def _liveness_s(self) -> float:
        sup = self.settings.supervisor
        return sup.heartbeat_interval_s * sup.heartbeat_liveness

    def _touch_timers(self) -> None:
        """Something changed a deadline: check timers on the next turn of the loop."""
        self._timers_at = 0.0

    def _next_deadline(self, now: float) -> float:
        # Timers are checked when due, not on every message: under load the
        # loop turns once per message and this scan would cost more than the
        # routing itself. Anything that sets a deadline calls `_touch_timers`;
        # heartbeat deadlines only move later, so a stale one just wakes early.
        deadlines: list[float] = [now + 1.0]
        for slot in self.slots.values():
            # Only the deadline of the state the worker is in counts: a stale
            # one from an earlier state would make the loop spin.
            state = slot.state
            if state is WorkerState.BACKOFF and slot.restart_at is not None:
                deadlines.append(slot.restart_at)
            elif state is WorkerState.STARTING and slot.ready_deadline is not None:
                deadlines.append(slot.ready_deadline)
            elif state is WorkerState.STOPPING and slot.stop_deadline is not None:
                deadlines.append(slot.stop_deadline)
            elif state is WorkerState.RUNNING:
                deadlines.append(slot.last_seen + self._liveness_s())
            deadlines.extend(p.deadline for p in slot.queued if p.deadline is not None)
        if self._fork_server_at is not None:
            deadlines.append(self._fork_server_at)
        return min(deadlines)

    def _run_timers(self, now: float) -> None:
        # Read what the workers sent first: after anything that held the loop
        # (a slow fork, a disk stall) their heartbeats are queued, not missed.
        self._drain_backend()
        self.children.reap_strays()
        for slot in self.slots.values():
            if slot.state is WorkerState.BACKOFF and slot.restart_at is not None:
                if now >= slot.restart_at and not self.stopping:
                    self._start(slot, now)
            elif slot.state is WorkerState.STARTING and slot.ready_deadline is not None:
                if now >= slot.ready_deadline:
                    self._kill(slot, "not ready in time")
            elif slot.state is WorkerState.RUNNING and now - slot.last_seen > self._liveness_s():
                self._kill(slot, "missed heartbeats")
            self.router.expire(slot, now)
        if self._fork_server_at is not None and now >= self._fork_server_at:
            self._fork_server_at = None
            if self._fork_server is None and not self.stopping:
                self._adopt_fork_server(ForkServer.start(cwd=self.paths.project))

    def _kill(self, slot: WorkerSlot, reason: str) -> None:
        if slot.child is None or slot.kill_reason:
            return
        slot.kill_reason = reason
        slot.ready_deadline = None
        self._touch_timers()
        self.log.warning(
            "worker.killing", worker=slot.name.value, pid=slot.child.pid, reason=reason
        )
        slot.child.signal(signal.SIGKILL)

    # -- stopping -------------------------------------------------------------------

    def _begin_stop(self) -> None:
        self.stopping = True
        self._fork_server_at = None
        self.log.info("supervisor.stopping", reason=self._stop_requested)
        with contextlib.suppress(FileNotFoundError):
            self.paths.endpoints.unlink()
        self._phase = 0
        self._stop_phase(time.monotonic())

    def _stop_phase(self, now: float) -> None:
        self._touch_timers()
        grace = self.settings.supervisor.stop_grace_s
        for name in STOP_PHASES[self._phase]:
            slot = self.slots.get(name)
            if slot is None:
                continue
            slot.restart_at = None
            if slot.state is WorkerState.RUNNING and slot.child is not None:
                with contextlib.suppress(zmq.ZMQError):
                    send_frames(self.backend, [slot.identity, wire.STOP])
            elif slot.state is WorkerState.STARTING and slot.child is not None:
                slot.child.signal(signal.SIGTERM)
            slot.move(Trigger.STOP)
            slot.stop_deadline = now + grace if slot.state is WorkerState.STOPPING else None
            if slot.state is not WorkerState.STOPPING:
                self.router.fail_waiting(slot, "the service is stopping")

    def _advance_stop(self, now: float) -> bool:
        """Escalate overdue stops; True once every phase is done."""
        while True:
            phase = [self.slots[n] for n in STOP_PHASES[self._phase] if n in self.slots]
            for slot in phase:
                if (
                    slot.state is WorkerState.STOPPING
                    and slot.stop_deadline
                    and now >= slot.stop_deadline
                ):
                    slot.stop_signals += 1
                    sig = signal.SIGTERM if slot.stop_signals == 1 else signal.SIGKILL
                    self.log.warning(
                        "worker.stop_escalated", worker=slot.name.value, signal=sig.name
                    )
                    if slot.child is not None:
                        slot.child.signal(sig)
                    slot.stop_deadline = now + self.settings.supervisor.stop_grace_s
                    self._touch_timers()
            if any(slot.state is WorkerState.STOPPING for slot in phase):
                return False
            if self._phase + 1 >= len(STOP_PHASES):
                return True
            self._phase += 1
            self._stop_phase(now)

    def _shutdown(self) -> None:
        """Reap everything, whatever happened; nothing is left running."""
        if self._fork_server is not None:
            with contextlib.suppress(OSError):
                self._fork_server.control.close()
        self.children.end_all(self.settings.supervisor.stop_grace_s)
        with contextlib.suppress(FileNotFoundError):
            self.paths.endpoints.unlink()
        for sock in (self.frontend, self.backend, self.events):
            sock.close(linger=0)
        self.log.info("supervisor.stopped")
