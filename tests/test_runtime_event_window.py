"""The worker host's event window: events held a few ms are handled and ACKed as one batch."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import zmq

from protocol.envelopes import encode_event
from protocol.internal import ACK, READY, REP, REQ, EventDelivery, StopRequest, WorkerAssignment
from protocol.names import WorkerName
from services.runtime.host import WorkerHost

SESSION = "2026-11-30-230000"
WINDOW_S = 0.5
"""Long enough that events sent back to back always fall inside one window here."""


def _cost_event(seq: int, request_id: str) -> list[bytes]:
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
        topic, body = _cost_event(number, request_id)
        self.send(EventDelivery.pack(number, topic, body))

    def next_of(self, kind: bytes, timeout_s: float = 10.0) -> list[bytes]:
        """The frames after the routing id of the next message of `kind` (others skipped)."""
        deadline = time.monotonic() + timeout_s
        while True:
            message = self.next_message(max(0.0, deadline - time.monotonic()))
            if message[1] == kind:
                return message[1:]


@pytest.fixture
def hosted(tmp_path: Path) -> Iterator[Callable[[Callable[[FakeSupervisor], Any]], Any]]:
    """Run a real archiver host on this thread while `script` plays the supervisor."""
    saved = signal.getsignal(signal.SIGTERM)
    lifeline_r, lifeline_w = os.pipe()

    def run(script: Callable[[FakeSupervisor], Any]) -> Any:
        endpoint = f"inproc://window-{id(script)}"
        supervisor = FakeSupervisor(endpoint)
        assignment = WorkerAssignment(
            name=WorkerName.HISTORY_ARCHIVER,
            project=str(tmp_path),
            session_id=SESSION,
            backend=endpoint,
            settings={"history": {"event_window_s": WINDOW_S}},
        )
        host = WorkerHost(assignment, lifeline_r)
        outcome: dict[str, Any] = {}

        def play() -> None:
            try:
                supervisor.wait_ready()
                outcome["result"] = script(supervisor)
            except BaseException as exc:  # reported on the test's thread
                outcome["error"] = exc
            finally:
                supervisor.send(StopRequest().frames())

        player = threading.Thread(target=play)
        player.start()
        try:
            assert host.run() == 0
        finally:
            player.join(timeout=30)
            supervisor.router.close(linger=0)
        if "error" in outcome:
            raise outcome["error"]
        return outcome.get("result")

    try:
        yield run
    finally:
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGTERM, saved)
        os.close(lifeline_r)
        os.close(lifeline_w)


def _acked(frames: list[bytes]) -> list[int]:
    return [int.from_bytes(number, "big") for number in frames[1:]]


def test_events_inside_the_window_are_acknowledged_together(hosted: Any) -> None:
    """Three events 50 ms apart, inside one window, come back as one ACK naming all three."""

    def script(supervisor: FakeSupervisor) -> list[int]:
        for number in (1, 2, 3):
            supervisor.event(number, f"r{number}")
            time.sleep(0.05)  # a gap the worker would otherwise see as three reads
        return _acked(supervisor.next_of(ACK))

    assert hosted(script) == [1, 2, 3]


def test_a_lone_event_is_acknowledged_when_its_window_ends(hosted: Any) -> None:
    """An event with nothing after it is not stuck: its ACK comes once the window is over."""

    def script(supervisor: FakeSupervisor) -> tuple[list[int], float]:
        sent = time.monotonic()
        supervisor.event(1, "r1")
        numbers = _acked(supervisor.next_of(ACK, timeout_s=5.0))
        return numbers, time.monotonic() - sent

    numbers, waited = hosted(script)
    assert numbers == [1]
    assert waited >= WINDOW_S * 0.9


def test_a_request_after_held_events_sees_them(hosted: Any) -> None:
    """`history.list` sent right after an event answers with that event's cost counted."""

    def script(supervisor: FakeSupervisor) -> tuple[list[int], Any]:
        supervisor.event(1, "r1")
        request = {"v": 1, "id": "h1", "op": "history.list", "args": {"limit": 1}}
        supervisor.send([REQ, b"\x01", json.dumps(request).encode()])
        numbers = _acked(supervisor.next_of(ACK))
        reply = json.loads(supervisor.next_of(REP)[2])
        return numbers, reply

    numbers, reply = hosted(script)
    assert numbers == [1]
    assert reply["ok"] is True
    assert reply["result"][0]["total_cost"] == 0.08535


def test_stop_hands_over_what_the_window_holds(hosted: Any, tmp_path: Path) -> None:
    """A STOP right after an event still journals and acknowledges it before the worker exits."""

    def script(supervisor: FakeSupervisor) -> None:
        supervisor.event(1, "r1")  # the fixture sends STOP at once after this

    hosted(script)
    journal = (tmp_path / ".session" / "archive" / "live.jsonl").read_text()
    assert '"request_id":"r1"' in journal
