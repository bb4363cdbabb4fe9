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

from protocol.names import WorkerName, WorkerState
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
