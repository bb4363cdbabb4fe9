"""A worker that dies right after READY never freezes the supervisor's loop.

The supervisor reads a worker's READY and hands it what waited for it
(requests and events). When the worker was SIGKILLed after sending READY, its
connection is gone and the ROUTER (`ROUTER_MANDATORY`) refuses every send.
Handing over used to put the refused item back and try again, forever: the
loop never turned again (the kill soak's "supervisor that stopped answering",
docs/benchmarks.md). These run the real `RequestRouter` and `EventBus` over a
real ROUTER whose worker has just gone.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog
import zmq

from config import load_settings
from protocol.names import WorkerName, WorkerState
from services.runtime.eventbus import EventBus
from services.runtime.restarts import RestartPolicy
from services.runtime.routing import RequestRouter
from services.runtime.slots import PendingRequest, WorkerSlot

_WORKER = WorkerName.COST_LEDGER


def _running_slot() -> WorkerSlot:
    policy = RestartPolicy(max_restarts=5, window_s=30, backoff_initial_s=0.1, backoff_max_s=1)
    slot = WorkerSlot(name=_WORKER, policy=policy)
    slot.state = WorkerState.RUNNING  # its READY was just read
    return slot


@pytest.fixture
def backend(tmp_path: Path) -> Iterator[zmq.Socket[bytes]]:
    """The supervisor's workers' ROUTER, after the worker said READY and died."""
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    router = context.socket(zmq.ROUTER)
    router.setsockopt(zmq.ROUTER_MANDATORY, 1)
    router.setsockopt(zmq.LINGER, 0)
    router.bind(f"ipc://{tmp_path / 'workers.sock'}")
    worker = context.socket(zmq.DEALER)
    worker.setsockopt(zmq.ROUTING_ID, _WORKER.value.encode())
    worker.connect(f"ipc://{tmp_path / 'workers.sock'}")
    worker.send(b"READY")
    assert router.poll(5000)
    router.recv_multipart()
    worker.close(linger=0)  # SIGKILLed right after its READY
    deadline = time.monotonic() + 5
    while True:  # wait until the ROUTER knows: a send then fails
        try:
            router.send_multipart([_WORKER.value.encode(), b"probe"], zmq.NOBLOCK)
        except zmq.ZMQError:
            break
        assert time.monotonic() < deadline, "the ROUTER never saw the worker go"
        time.sleep(0.005)
    yield router
    router.close(linger=0)
    context.term()


@pytest.mark.timeout(20)
def test_requests_for_a_worker_gone_after_ready_wait_in_order(
    backend: zmq.Socket[bytes],
) -> None:
    """Handing queued requests to a worker that died after READY returns at once and
    leaves them queued, in order, with a deadline (answered `unavailable` if it never
    comes back)."""
    slot = _running_slot()
    router = RequestRouter(
        backend,  # replies are not sent here
        backend,
        {_WORKER: slot},
        load_settings({}),
        supervisor_status=lambda: {},
        is_stopping=lambda: False,
        touch_timers=lambda: None,
    )
    for number in range(3):
        slot.queued.append(
            PendingRequest(
                token=number.to_bytes(8, "big"),
                route=[b"client", b""],
                request_id=f"r{number}",
                op="cost.log",
                payload=b"{}",
            )
        )
    router.flush(slot)
    assert [p.request_id for p in slot.queued] == ["r0", "r1", "r2"]
    assert slot.queued[0].deadline is not None and slot.queued[0].deliveries == 0
    assert slot.inflight == {}


@pytest.mark.timeout(20)
def test_events_for_a_worker_gone_after_ready_stay_buffered_in_order(
    backend: zmq.Socket[bytes],
) -> None:
    """Handing buffered events to a worker that died after READY returns at once and
    keeps them buffered, in order, for its replacement."""
    slot = _running_slot()
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context.instance()
    events = context.socket(zmq.XPUB)
    try:
        bus = EventBus(events, backend, [slot], structlog.get_logger())
        slot.events.extend((number, b"file.changed", b"{}") for number in (1, 2, 3))
        bus.flush(slot)
        assert [number for number, _, _ in slot.events] == [1, 2, 3]
        assert slot.unacked == {}
    finally:
        events.close(linger=0)
