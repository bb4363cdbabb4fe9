"""The supervisor's event fan-out: seq per source, subscriptions, minor events."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
import zmq

from protocol.internal import MAX_EVENTS_PER_EVT
from protocol.names import WorkerName, WorkerState
from services.runtime.delivery import deliveries_of
from services.runtime.eventbus import EventBus
from services.runtime.restarts import RestartPolicy
from services.runtime.slots import WorkerSlot


def _slot(name: WorkerName) -> WorkerSlot:
    policy = RestartPolicy(max_restarts=5, window_s=30, backoff_initial_s=0.1, backoff_max_s=1)
    slot = WorkerSlot(name=name, policy=policy)
    slot.state = WorkerState.RUNNING
    return slot


@pytest.fixture
def wired(tmp_path: Path) -> Iterator[tuple[EventBus, dict[WorkerName, zmq.Socket[bytes]]]]:
    """An EventBus over real sockets, with a DEALER per subscribing worker."""
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    backend = context.socket(zmq.ROUTER)
    backend.setsockopt(zmq.ROUTER_MANDATORY, 1)
    backend.bind(f"ipc://{tmp_path / 'b.sock'}")
    events = context.socket(zmq.XPUB)
    events.bind(f"ipc://{tmp_path / 'e.sock'}")
    names = (WorkerName.SESSION_WRITER, WorkerName.HISTORY_ARCHIVER, WorkerName.COST_LEDGER)
    slots = [_slot(name) for name in names]
    dealers: dict[WorkerName, zmq.Socket[bytes]] = {}
    for slot in slots:
        dealer = context.socket(zmq.DEALER)
        dealer.setsockopt(zmq.ROUTING_ID, slot.identity)
        dealer.connect(f"ipc://{tmp_path / 'b.sock'}")
        dealer.send(b"hello")  # the ROUTER learns the identity
        dealers[slot.name] = dealer
    for _ in slots:
        assert backend.poll(2000)
        backend.recv_multipart()
    yield EventBus(events, backend, slots, structlog.get_logger()), dealers
    for sock in [backend, events, *dealers.values()]:
        sock.close(linger=0)
    context.term()


def _received(dealer: zmq.Socket[bytes], wait_ms: int = 200) -> list[dict[str, Any]]:
    found = []
    deadline = time.monotonic() + wait_ms / 1000
    while time.monotonic() < deadline:
        if dealer.poll(20):
            frames = dealer.recv_multipart()
            found.append(json.loads(frames[3]))
    return found


def test_minor_cost_events_skip_the_session_writer_only(
    wired: tuple[EventBus, dict[WorkerName, zmq.Socket[bytes]]],
) -> None:
    """A minor cost.logged reaches the archiver but not the session writer; a major one both."""
    bus, dealers = wired
    data = json.dumps({"cost": 0.01}).encode()
    bus.fan_out(b"cost.logged", b"cost_ledger", b"2026-11-24T00:00:00Z", data, minor=True)
    assert len(_received(dealers[WorkerName.HISTORY_ARCHIVER])) == 1
    assert _received(dealers[WorkerName.SESSION_WRITER]) == []
    bus.fan_out(b"cost.logged", b"cost_ledger", b"2026-11-24T00:00:01Z", data)
    assert len(_received(dealers[WorkerName.SESSION_WRITER])) == 1
    assert _received(dealers[WorkerName.COST_LEDGER]) == []  # the source never hears itself


def test_seq_rises_by_one_per_source(
    wired: tuple[EventBus, dict[WorkerName, zmq.Socket[bytes]]],
) -> None:
    """Each source's events are numbered 0, 1, 2... whatever their topic."""
    bus, dealers = wired
    for path in ("a.md", "b.md"):
        body = json.dumps({"path": f"manuscript/{path}"}).encode()
        bus.fan_out(b"file.created", b"file_watcher", b"2026-11-24T00:00:00Z", body)
    seqs = [event["seq"] for event in _received(dealers[WorkerName.HISTORY_ARCHIVER])]
    assert seqs == [0, 1]


def _messages(dealer: zmq.Socket[bytes], wait_ms: int = 200) -> list[list[bytes]]:
    """Every message `dealer` received within `wait_ms`, as frames."""
    found = []
    deadline = time.monotonic() + wait_ms / 1000
    while time.monotonic() < deadline:
        if dealer.poll(20):
            found.append(dealer.recv_multipart())
    return found


def _cost_events(
    count: int, *, minor: bool = False
) -> list[tuple[bytes, bytes, bytes, bytes, bool]]:
    """`count` cost.logged events of the ledger as `fan_out_many` takes them."""
    return [
        (b"cost.logged", b"cost_ledger", b"2026-11-24T00:00:00Z", b'{"n":%d}' % n, minor)
        for n in range(count)
    ]


def test_events_fanned_out_together_reach_a_worker_in_one_message(
    wired: tuple[EventBus, dict[WorkerName, zmq.Socket[bytes]]],
) -> None:
    """A turn's events go to each worker as one EVT, numbered and ordered as if sent alone."""
    bus, dealers = wired
    bus.fan_out_many(_cost_events(3, minor=True))
    messages = _messages(dealers[WorkerName.HISTORY_ARCHIVER])
    assert len(messages) == 1
    deliveries = deliveries_of(messages[0])
    assert deliveries is not None
    assert [json.loads(body)["data"]["n"] for _, _, body in deliveries] == [0, 1, 2]
    assert [json.loads(body)["seq"] for _, _, body in deliveries] == [0, 1, 2]
    numbers = [number for number, _, _ in deliveries]
    assert numbers == sorted(numbers) and len(set(numbers)) == 3
    slot = next(s for s in bus.slots if s.name is WorkerName.HISTORY_ARCHIVER)
    assert list(slot.unacked) == numbers  # each kept until its own ACK
    assert _messages(dealers[WorkerName.SESSION_WRITER]) == []  # minor: not for it
    assert _messages(dealers[WorkerName.COST_LEDGER]) == []  # the source never hears itself


def test_a_large_share_is_split_into_bounded_messages(
    wired: tuple[EventBus, dict[WorkerName, zmq.Socket[bytes]]],
) -> None:
    """More events than one EVT may carry go in several messages, still in order."""
    bus, dealers = wired
    bus.fan_out_many(_cost_events(MAX_EVENTS_PER_EVT + 5))
    messages = _messages(dealers[WorkerName.HISTORY_ARCHIVER], wait_ms=400)
    assert [len(m) for m in messages] == [1 + 3 * MAX_EVENTS_PER_EVT, 1 + 3 * 5]
    bodies = [body for m in messages for _, _, body in deliveries_of(m) or []]
    assert [json.loads(body)["data"]["n"] for body in bodies] == list(range(MAX_EVENTS_PER_EVT + 5))


def test_events_for_a_restarting_worker_wait_and_come_in_order(
    wired: tuple[EventBus, dict[WorkerName, zmq.Socket[bytes]]],
) -> None:
    """Events fanned out together while a worker restarts are buffered, then delivered in order."""
    bus, dealers = wired
    slot = next(s for s in bus.slots if s.name is WorkerName.HISTORY_ARCHIVER)
    slot.state = WorkerState.STARTING
    bus.fan_out_many(_cost_events(4))
    assert len(slot.events) == 4 and not slot.unacked
    assert _messages(dealers[WorkerName.HISTORY_ARCHIVER]) == []
    slot.state = WorkerState.RUNNING
    bus.flush(slot)
    messages = _messages(dealers[WorkerName.HISTORY_ARCHIVER])
    assert len(messages) == 1 and not slot.events
    bodies = [body for _, _, body in deliveries_of(messages[0]) or []]
    assert [json.loads(body)["data"]["n"] for body in bodies] == [0, 1, 2, 3]
