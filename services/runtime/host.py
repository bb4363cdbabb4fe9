"""The worker process: what runs inside every worker.

A worker process is either forked by the fork server (the usual way, a few
ms) or started as a fresh interpreter (`python -m services.runtime.host`).
Either way it imports the shared runtime, then waits on stdin for one JSON
line saying which worker to become, which the supervisor writes at once.

stdin is also the lifeline: the supervisor holds its write end and never
closes it while alive, so EOF means the supervisor is gone (even `kill -9`)
and the worker stops at once. PR_SET_PDEATHSIG is a second guard.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import queue
import signal
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import zmq
from pydantic import BaseModel

from config import Settings, load_settings
from protocol.base import utc_text
from protocol.codec import dumps
from protocol.envelopes import (
    Event,
    encode_error,
    encode_ok,
    encode_ok_json,
    read_request,
)
from protocol.errors import ErrorCode, ProtocolError
from protocol.internal import (
    MAX_TOPIC_CHARS,
    REP,
    REQ,
    TOKEN_BYTES,
    EventBatch,
    EventDelivery,
    Heartbeat,
    MalformedFrame,
    Published,
    StopRequest,
    WorkerAssignment,
    WorkerHello,
    WorkerPublish,
    WorkerRequest,
    decode_to_worker,
    publish_messages,
)
from protocol.ops import OP_BY_NAME, parse_args
from services.runtime import wire
from services.runtime.delivery import (
    Delivered,
    EventWindow,
    ack_frames,
    deliveries_of,
    read_event,
)
from services.runtime.frames import SNDMORE, frame_sender, messages, send_frames
from services.runtime.logs import configure_worker_logging
from services.runtime.paths import ProjectPaths
from services.runtime.registry import load_worker_class
from services.runtime.worker import Call, Outcome, Worker, WorkerContext

__all__ = ["WorkerHost", "main"]

_PR_SET_PDEATHSIG = 1
_MAX_DRAIN = 512


def _die_with_parent() -> None:
    # Linux only; the stdin lifeline covers other systems.
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


class _BeatSchedule:
    """When the host sends a heartbeat (the rule the supervisor judges by: `liveness`).

    Every `idle_heartbeat_s` while the worker owes nothing, every
    `heartbeat_interval_s` while it holds refused events (owed until a
    restart), and soon after its health changed, so `supervisor.status`
    shows it: health is looked at once per `heartbeat_interval_s` after
    activity, not on every message and never while nothing happens.
    Replies and ACKs are signs of life of their own, so a busy worker needs
    no beat to stay alive.
    """

    def __init__(self, settings: Settings, now: float, health: dict[str, Any]) -> None:
        self.busy_s = settings.supervisor.heartbeat_interval_s
        self.idle_s = settings.supervisor.idle_heartbeat_s
        self.last_beat = now
        self.sent_health = health
        self.check_at: float | None = None

    def _beat_at(self, owes: bool) -> float:
        return self.last_beat + (self.busy_s if owes else self.idle_s)

    def next_at(self, *, owes: bool) -> float:
        """The monotonic time of the next beat or health check."""
        beat_at = self._beat_at(owes)
        return beat_at if self.check_at is None else min(beat_at, self.check_at)

    def activity(self, now: float) -> None:
        """Something happened: look at the health soon (once, however much happens)."""
        if self.check_at is None:
            self.check_at = now + self.busy_s

    def due(
        self, now: float, *, owes: bool, health: Callable[[], dict[str, Any]]
    ) -> dict[str, Any] | None:
        """The health to send in a heartbeat now, or None when no beat is due."""
        checking = self.check_at is not None and now >= self.check_at
        beating = now >= self._beat_at(owes)
        if not (checking or beating):
            return None
        self.check_at = None
        current = health()
        if not beating and current == self.sent_health:
            return None
        self.last_beat, self.sent_health = now, current
        return current


class WorkerHost:
    """Runs one `Worker`: sockets, heartbeats, signals, batching, replies."""

    def __init__(self, assignment: WorkerAssignment, lifeline_fd: int) -> None:
        self.assignment = assignment
        self.settings: Settings = load_settings(assignment.settings)
        self.lifeline_fd = lifeline_fd
        self._zctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context.instance()
        self._dealer = self._zctx.socket(zmq.DEALER)
        self._dealer.setsockopt(zmq.ROUTING_ID, assignment.name.value.encode())
        # Both ends of this link are ours and drain continuously: no silent drops.
        self._dealer.setsockopt(zmq.SNDHWM, 0)
        self._dealer.setsockopt(zmq.RCVHWM, 0)
        self._dealer.setsockopt(zmq.LINGER, 2000)
        self._dealer.connect(assignment.backend)
        self._send = frame_sender(self._dealer)
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._callbacks: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._stopping = False
        self._stop_reason = ""
        self._owes_events = False
        """It refused an event (not ACKed): the supervisor holds it as owed until a
        restart, so this worker beats at the short interval from now on."""
        ctx = WorkerContext(
            name=assignment.name,
            paths=ProjectPaths.of(Path(assignment.project)),
            settings=self.settings,
            session_id=assignment.session_id,
            options=assignment.options,
            publish=self.publish,
            call_soon_threadsafe=self.call_soon_threadsafe,
            keep_alive=self.keep_alive,
        )
        self._beats: _BeatSchedule | None = None
        """Set at READY: before it, the supervisor's start-up timeout applies."""
        self.worker: Worker = load_worker_class(assignment.name)(ctx)
        self._reuse_results = self.worker.stable_results
        self._window = EventWindow(self.worker.event_window_s, limit=_MAX_DRAIN)
        self._poller = zmq.Poller()
        self._last_result: tuple[BaseModel, bytes] | None = None
        self._held_events: list[Published] | None = None
        """While a `replies_first` worker handles a batch: what it published."""

    # -- what the worker may call -------------------------------------------------

    def publish(self, topic: str, data: Any, *, minor: bool = False) -> None:
        """Send an event to the supervisor, which stamps `seq` and fans it out.

        `minor=True`: workers that want only significant events of this topic
        (`protocol.names.SIGNIFICANT_ONLY`) do not get it; clients still do.
        """
        # The frames of `WorkerPublish` without building the model (the per-event
        # path): topics are the worker's own `Topic` names, checked once here.
        if not 0 < len(topic) <= MAX_TOPIC_CHARS:
            raise ValueError(f"an event topic is 1 to {MAX_TOPIC_CHARS} characters: {topic!r}")
        event = (topic.encode(), utc_text().encode(), dumps(data), minor)
        if self._held_events is not None:  # a batch of a `replies_first` worker
            self._held_events.append(event)
            return
        send_frames(self._dealer, WorkerPublish.pack(*event))

    def keep_alive(self) -> None:
        """A heartbeat from inside a long piece of work (`WorkerContext.keep_alive`).

        It carries the health last sent (asking the worker for its health
        halfway through a request could show a state it is changing).
        """
        beats = self._beats
        if beats is not None:
            beats.last_beat = time.monotonic()
            send_frames(self._dealer, Heartbeat(health=beats.sent_health).frames())

    def call_soon_threadsafe(self, callback: Callable[[], None]) -> None:
        """Queue `callback` for the main thread and wake it."""
        self._callbacks.put(callback)
        with contextlib.suppress(BlockingIOError):
            self._wake_w.send(b"\x00")

    # -- the loop -----------------------------------------------------------------

    def _on_signal(self, signum: int, _frame: object) -> None:
        self._stopping = True
        self._stop_reason = signal.Signals(signum).name

    def run(self) -> int:
        """Start the worker, say READY, serve until told to stop; the exit code."""
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})  # blocked by `main`
        signal.set_wakeup_fd(self._wake_w.fileno(), warn_on_full_buffer=False)
        log = self.worker.log
        self.worker.start()
        hello = WorkerHello(pid=os.getpid(), name=self.assignment.name, health=self.worker.health())
        send_frames(self._dealer, hello.frames())
        log.info("worker.ready", **{**hello.health, "pid": hello.pid})
        beats = self._beats = _BeatSchedule(self.settings, time.monotonic(), hello.health)
        poller = self._poller  # the event window mutes the dealer on it (`_hold_events`)
        poller.register(self._dealer, zmq.POLLIN)
        poller.register(self.lifeline_fd, zmq.POLLIN)
        poller.register(self._wake_r.fileno(), zmq.POLLIN)
        extra = dict(self.worker.pollables())
        for fd in extra:
            poller.register(fd, zmq.POLLIN)
        while not self._stopping:
            now = time.monotonic()
            deadline = beats.next_at(owes=self._owes_events)
            wanted = self._next_deadline()
            if wanted is not None:
                deadline = min(deadline, wanted)
            timeout_ms = max(0, int((deadline - now) * 1000) + 1) if deadline > now else 0
            ready_fds = dict(poller.poll(timeout_ms))
            if self.lifeline_fd in ready_fds and not os.read(self.lifeline_fd, 4096):
                self._stopping, self._stop_reason = True, "supervisor gone"
                break
            if self._wake_r.fileno() in ready_fds:
                self._run_callbacks()
            if self._dealer in ready_fds:
                self._drain()
            for fd, callback in extra.items():
                if fd in ready_fds:
                    callback()
            self._timed_work(beats, active=bool(ready_fds))
        log.info("worker.stopping", reason=self._stop_reason)
        self._run_callbacks()
        if self._stop_reason == "supervisor gone":
            # Everything acknowledged is already durable; a final snapshot now
            # could race the worker of a new supervisor that took the lock.
            log.info("worker.abandoned")
        else:
            self._deliver_events([])  # what the event window still held
            self.worker.stop()
        self._dealer.close(linger=2000 if self._stop_reason != "supervisor gone" else 0)
        return 0

    def _timed_work(self, beats: _BeatSchedule, *, active: bool) -> None:
        """The worker's timers, then a heartbeat if one is due (the end of each turn)."""
        now = time.monotonic()
        if self._window.due(now):
            # The window is over: read what came meanwhile, then hand it all over.
            self._poller.register(self._dealer, zmq.POLLIN)
            self._drain()
            self._deliver_events([])
        wanted = self.worker.next_deadline()
        ticked = wanted is not None and now >= wanted
        if ticked:
            self.worker.tick(now)
        if active or ticked:
            beats.activity(now)
        health = beats.due(now, owes=self._owes_events, health=self.worker.health)
        if health is not None:
            # The beat carries the worker's health (e.g. a watcher that fell
            # back to polling), so `supervisor.status` shows it as it changes.
            send_frames(self._dealer, Heartbeat(health=health).frames())

    def _run_callbacks(self) -> None:
        with contextlib.suppress(BlockingIOError):
            while self._wake_r.recv(4096):
                pass
        while True:
            try:
                callback = self._callbacks.get_nowait()
            except queue.Empty:
                return
            callback()

    def _drain(self) -> None:
        """Read what is waiting; consecutive requests (and events) go as one batch.

        Batches are what make group commits possible: one fsync for all the
        mutations (or events) that arrived together. Order is kept: a batch of
        one kind is finished before anything of another kind is handled.
        """
        requests: list[tuple[bytes, Call]] = []
        events: list[Delivered] = []
        for frames in messages(self._dealer, _MAX_DRAIN, polled=True):
            if len(frames) == 3 and frames[0] == REQ and 1 <= len(frames[1]) <= TOKEN_BYTES:
                # The hot path, checked as `decode_to_worker` would, without a model.
                self._deliver_events(events)
                call = self._decode(frames[1], frames[2])
                if call is not None:
                    requests.append((frames[1], call))
                continue
            delivered = deliveries_of(frames)
            if delivered is not None:  # the other hot path (`EVT`), the same way
                self._answer(requests)
                events += delivered
                continue
            try:
                frame = decode_to_worker(frames)
            except MalformedFrame as exc:
                self.worker.log.warning("worker.malformed_frame", error=str(exc))
                continue
            if isinstance(frame, WorkerRequest):
                self._deliver_events(events)
                call = self._decode(frame.token, frame.request)
                if call is not None:
                    requests.append((frame.token, call))
                continue
            self._answer(requests)
            if isinstance(frame, EventDelivery):
                events.append((frame.number, frame.topic, frame.event))
                continue
            if isinstance(frame, EventBatch):
                events += [(one.number, one.topic, one.event) for one in frame.deliveries]
                continue
            self._deliver_events(events)
            if isinstance(frame, StopRequest):
                self._stopping, self._stop_reason = True, "asked by supervisor"
                break
        self._answer(requests)
        self._hold_events(events)

    def _decode(self, token: bytes, payload: bytes) -> Call | None:
        # The supervisor checked the envelope already; reading it again costs
        # ~2 us and keeps a worker safe on its own. The args are validated
        # here, once.
        try:
            request = read_request(
                payload,
                max_bytes=self.settings.protocol.max_frame_bytes,
                exact=self.worker.exact_numbers,
            )
            args = parse_args(request.op, request.args, request_id=request.id)
        except ProtocolError as exc:
            self._reply(token, encode_error(exc.request_id, exc.code, exc.message))
            return None
        return Call(id=request.id, op=OP_BY_NAME[request.op], args=args)

    def _answer(self, batch: list[tuple[bytes, Call]]) -> None:
        if not batch:
            return
        held = self._held_events = [] if self.worker.replies_first else None
        try:
            outcomes: list[Outcome] = self.worker.handle_batch([call for _, call in batch])
        except Exception as exc:
            self.worker.log.exception("worker.batch_failed", ops=[c.op.value for _, c in batch])
            error = ProtocolError(ErrorCode.INTERNAL, f"{self.assignment.name} failed: {exc}")
            outcomes = [error] * len(batch)
        finally:
            self._held_events = None
        for (token, call), outcome in zip(batch, outcomes, strict=True):
            if isinstance(outcome, ProtocolError):
                frame = encode_error(call.id, outcome.code, outcome.message)
            elif self._reuse_results and isinstance(outcome, BaseModel):
                frame = encode_ok_json(call.id, self._result_json(outcome))
            else:
                frame = encode_ok(call.id, outcome)
            self._reply(token, frame)
        if held:  # the replies are queued ahead of the events on the one connection
            # Several to a `PUBS` message: one for the supervisor to read and
            # dispatch instead of one per event.
            for frames in publish_messages(held):
                send_frames(self._dealer, frames)
        batch.clear()

    def _result_json(self, result: BaseModel) -> bytes:
        """The JSON of `result`, reused while the worker answers with the same object."""
        last = self._last_result
        if last is None or last[0] is not result:
            last = self._last_result = (result, dumps(result))
        return last[1]

    def _reply(self, token: bytes, frame: bytes) -> None:
        # `REP token reply` (`WorkerReply`), frame by frame, through the
        # backend's send (no `zmq.Socket.send` wrapper; see `frames`).
        send = self._send
        send(REP, SNDMORE)
        send(token, SNDMORE)
        send(frame, 0)

    def _next_deadline(self) -> float | None:
        """The worker's next deadline, or the end of the event window if sooner."""
        wanted = self.worker.next_deadline()
        ends = self._window.until
        if ends is None or (wanted is not None and wanted < ends):
            return wanted
        return ends

    def _hold_events(self, pending: list[Delivered]) -> None:
        """Hold what was just read in the event window (`EventWindow`), or hand it over.

        While a window is open the dealer is not polled: a request or STOP
        waits for its end (a few ms), and anything other than an event first
        hands over what is held, so order is kept. Empties `pending`.
        """
        opening = self._window.until is None
        if not self._window.keep(pending, time.monotonic()):
            self._deliver_events(pending)
        elif opening and self._window.until is not None:
            self._poller.register(self._dealer, 0)  # unregistered until the window ends

    def _deliver_events(self, pending: list[Delivered]) -> None:
        """Hand the held events and `pending` to the worker; ACK those it took (the
        rest are re-delivered to the next incarnation). Empties `pending`.

        One ACK message for the whole batch, sent once the worker returned,
        i.e. once what it took is durable (or, for `cost.logged` in the
        archiver, held by the ledger's fsynced line).
        """
        if self._window.release(pending):
            self._poller.register(self._dealer, zmq.POLLIN)
        if not pending:
            return
        try:
            taken = self.worker.on_deliveries(pending)
            if taken is None:
                numbers, taken = self._read_events(pending)
            else:
                numbers = [number for number, _topic, _body in pending]
        except Exception:
            self.worker.log.exception("worker.events_failed", count=len(pending))
            self._owes_events = True
            return
        finally:
            pending.clear()
        acked = [number for number, ok in zip(numbers, taken, strict=True) if ok]
        if len(acked) < len(numbers):
            self._owes_events = True
        if acked:
            send_frames(self._dealer, ack_frames(acked))

    def _read_events(self, pending: list[Delivered]) -> tuple[list[int], list[bool]]:
        """Read `pending` as `Event`s and hand them to `on_events`: the numbers of
        those read and whether each was taken (a malformed one is ACKed at once)."""
        numbers: list[int] = []
        events: list[Event] = []
        for number, topic, body in pending:
            try:
                events.append(read_event(topic, body))
            except ProtocolError:
                self.worker.log.exception("worker.event_malformed")
                # Re-delivering a malformed frame would only fail again.
                send_frames(self._dealer, ack_frames((number,)))
            else:
                numbers.append(number)
        return numbers, (self.worker.on_events(events) if events else [])


def main() -> int:
    """Entry point of every worker process."""
    # A SIGTERM before `WorkerHost.run` installs its handler would end the
    # worker without its final flush (a stop racing a restart): it waits,
    # blocked, and is handled as a clean stop once the handler is there.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    try:
        return _serve()
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})


def _serve() -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the supervisor's to handle
    _die_with_parent()
    expected = os.environ.get(wire.ENV_SUPERVISOR_PID)
    if expected is not None and os.getppid() != int(expected):
        return 0  # the supervisor died before we armed PDEATHSIG
    lifeline = sys.stdin.buffer.raw.fileno() if hasattr(sys.stdin.buffer, "raw") else 0
    line = _read_line(lifeline)
    if not line:
        return 0  # the supervisor went away before telling us what to be
    assignment = WorkerAssignment.parse(line)
    configure_worker_logging(assignment.name.value)
    host = WorkerHost(assignment, lifeline)
    try:
        return host.run()
    except Exception:
        host.worker.log.exception("worker.crashed")
        return 1


def _read_line(fd: int) -> bytes:
    # Unbuffered byte reads so nothing after the newline is swallowed by a buffer.
    data = bytearray()
    while not data.endswith(b"\n"):
        chunk = os.read(fd, 1)
        if not chunk:
            return b""
        data += chunk
    return bytes(data)


if __name__ == "__main__":
    sys.exit(main())
