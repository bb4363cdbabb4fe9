"""A real worker host run on the test's thread, with a fake supervisor played on another.

For tests of what a host sends and when (the event window, the order of
replies and events): real frames over an in-process ROUTER, no tree.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import zmq

from protocol.envelopes import encode_event
from protocol.internal import READY, REQ, EventDelivery, StopRequest, WorkerAssignment
from protocol.names import WorkerName
from services.runtime.host import WorkerHost

__all__ = [
    "SESSION",
    "FakeSupervisor",
    "cost_event",
    "cost_log_request",
    "gated_ledger_host",
    "host_signals",
    "play",
]

SESSION = "2026-11-30-230000"


def cost_event(seq: int, request_id: str) -> list[bytes]:
    """The frames of a `cost.logged` event as the ledger publishes it."""
    operation = {
        "timestamp": "2026-11-30T23:00:00.123456Z",
        "operation": "scene_generation",
        "model": "claude-sonnet-3.5",
        "input_tokens": 12450,
        "output_tokens": 3200,
        "cost": 0.08535,
        "priced": True,
        "session_id": SESSION,
        "request_id": request_id,
        "price_source": "genai-prices@0.2.3",
        "cache_read_tokens": 0,
        "cache_write_tokens": 0,
        "reasoning_tokens": 0,
        "provider": None,
    }
    return encode_event(
        "cost.logged", "cost_ledger", seq, "2026-11-30T23:00:00.2Z", {"operation": operation}
    )


def cost_log_request(token: int, request_id: str) -> list[bytes]:
    """The frames of a `cost.log` request as the supervisor forwards it to the ledger."""
    args = {
        "operation": "scene_generation",
        "model": "claude-sonnet-3.5",
        "input_tokens": 12450,
        "output_tokens": 3200,
    }
    request = {"v": 1, "id": request_id, "op": "cost.log", "args": args}
    return [REQ, token.to_bytes(8, "big"), json.dumps(request).encode()]


def gated_ledger_host(
    project: str,
    lifeline: int,
    endpoint: str,
    gate: threading.Event | None = None,
    entered: threading.Event | None = None,
) -> tuple[WorkerHost, FakeSupervisor]:
    """A real cost ledger host and its fake supervisor on `endpoint`.

    With `gate`, the ledger's first batch sets `entered` (if given) and waits for
    `gate`: what the supervisor sends meanwhile is queued and read in one go.
    """
    assignment = WorkerAssignment(
        name=WorkerName.COST_LEDGER,
        project=project,
        session_id=SESSION,
        backend=endpoint,
        settings={"ledger": {"prices_load_delay_s": 60.0}},
    )
    supervisor = FakeSupervisor(endpoint)
    host = WorkerHost(assignment, lifeline)
    if gate is not None:
        handle_batch = host.worker.handle_batch
        first = threading.Event()

        def held(calls: Any) -> Any:
            if not first.is_set():
                first.set()
                if entered is not None:
                    entered.set()
                gate.wait(10.0)
            return handle_batch(calls)

        host.worker.handle_batch = held  # type: ignore[method-assign]
    return host, supervisor


class FakeSupervisor:
    """The supervisor's side of one worker's DEALER: sends frames, reads what comes back."""

    def __init__(self, endpoint: str) -> None:
        context: zmq.Context[zmq.Socket[bytes]] = zmq.Context.instance()
        self.router: zmq.Socket[bytes] = context.socket(zmq.ROUTER)
        self.router.setsockopt(zmq.LINGER, 0)
        self.router.bind(endpoint)
        self.identity = b""

    def wait_ready(self) -> None:
        """Block until the worker's READY (and learn its routing id)."""
        while True:
            identity, kind, *_ = self.next_message(10.0)
            if kind == READY:
                self.identity = identity
                return

    def next_message(self, timeout_s: float) -> list[bytes]:
        """The next message from the worker, or AssertionError after `timeout_s`."""
        assert self.router.poll(int(timeout_s * 1000)), "the worker sent nothing"
        frames: list[bytes] = self.router.recv_multipart()
        return frames

    def send(self, frames: list[bytes]) -> None:
        """One message to the worker."""
        self.router.send_multipart([self.identity, *frames])

    def event(self, number: int, request_id: str) -> None:
        """Deliver one `cost.logged` event as `EVT number topic event`."""
        topic, body = cost_event(number, request_id)
        self.send(EventDelivery.pack(number, topic, body))

    def next_of(self, kind: bytes, timeout_s: float = 10.0) -> list[bytes]:
        """The frames after the routing id of the next message of `kind` (others skipped)."""
        deadline = time.monotonic() + timeout_s
        while True:
            message = self.next_message(max(0.0, deadline - time.monotonic()))
            if message[1] == kind:
                return message[1:]


@contextlib.contextmanager
def host_signals() -> Iterator[int]:
    """What a host run on the test's thread needs: its SIGTERM handler put back
    afterwards, and a lifeline pipe (its read end is yielded)."""
    saved = signal.getsignal(signal.SIGTERM)
    lifeline_r, lifeline_w = os.pipe()
    try:
        yield lifeline_r
    finally:
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGTERM, saved)
        os.close(lifeline_r)
        os.close(lifeline_w)


def play(
    host: WorkerHost, supervisor: FakeSupervisor, script: Callable[[FakeSupervisor], Any]
) -> Any:
    """Run `host` on this thread while `script` plays `supervisor` on another, then
    STOP it; what `script` returned (its exception is raised here)."""
    outcome: dict[str, Any] = {}

    def player() -> None:
        try:
            supervisor.wait_ready()
            outcome["result"] = script(supervisor)
        except BaseException as exc:  # reported on the test's thread
            outcome["error"] = exc
        finally:
            supervisor.send(StopRequest().frames())

    thread = threading.Thread(target=player)
    thread.start()
    try:
        assert host.run() == 0
    finally:
        thread.join(timeout=30)
        supervisor.router.close(linger=0)
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("result")
