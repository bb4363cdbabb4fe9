"""The worker host's event window: events held a few ms are handled and ACKed as one batch."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from protocol.internal import ACK, REP, REQ, EventBatch, WorkerAssignment
from protocol.names import WorkerName
from services.runtime.host import WorkerHost
from tests.host_harness import SESSION, FakeSupervisor, cost_event, host_signals, play

WINDOW_S = 0.5
"""Long enough that events sent back to back always fall inside one window here."""


@pytest.fixture
def hosted(tmp_path: Path) -> Iterator[Callable[[Callable[[FakeSupervisor], Any]], Any]]:
    """Run a real archiver host on this thread while `script` plays the supervisor."""
    with host_signals() as lifeline:

        def run(script: Callable[[FakeSupervisor], Any]) -> Any:
            endpoint = f"inproc://window-{id(script)}"
            assignment = WorkerAssignment(
                name=WorkerName.HISTORY_ARCHIVER,
                project=str(tmp_path),
                session_id=SESSION,
                backend=endpoint,
                settings={"history": {"event_window_s": WINDOW_S}},
            )
            supervisor = FakeSupervisor(endpoint)
            return play(WorkerHost(assignment, lifeline), supervisor, script)

        yield run


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


def test_several_events_in_one_evt_are_each_taken_and_acknowledged(hosted: Any) -> None:
    """An EVT carrying three events (one sent twice) is applied in order and ACKed by number."""

    def script(supervisor: FakeSupervisor) -> tuple[list[int], Any]:
        events = []
        for number in (1, 2, 3):
            topic, body = cost_event(number, f"r{number}")
            events.append((number, topic, body))
        supervisor.send(EventBatch.pack([events[0], events[1]]))
        supervisor.send(EventBatch.pack([events[1], events[2]]))  # 2 delivered again
        request = {"v": 1, "id": "h1", "op": "history.list", "args": {"limit": 1}}
        supervisor.send([REQ, b"\x01", json.dumps(request).encode()])
        numbers = _acked(supervisor.next_of(ACK))
        reply = json.loads(supervisor.next_of(REP)[2])
        return numbers, reply

    numbers, reply = hosted(script)
    assert numbers == [1, 2, 2, 3]
    assert reply["result"][0]["operations_count"] == {"scene_generation": 3}
    assert reply["result"][0]["total_cost"] == 0.25605
