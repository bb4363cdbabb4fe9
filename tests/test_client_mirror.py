"""The mirrored view converges to the service's state even when events are lost."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from service import running_service

from protocol.client import Mirror, ServiceClient
from protocol.client._mirror import worker_entries
from protocol.envelopes import EndpointsFile, Event

pytestmark = pytest.mark.slow

BURST = 10_000
CHEAP = {"operation": "burst", "model": "gemini-flash", "input_tokens": 3, "output_tokens": 1}


async def _state(client: ServiceClient) -> dict[str, Any]:
    return {
        "session": await client.request("session.get"),
        "costs": await client.request("cost.totals"),
        "workers": worker_entries(await client.request("supervisor.status")),
    }


async def _burst_then_converge(endpoints: EndpointsFile) -> tuple[Mirror, dict[str, Any]]:
    client = ServiceClient(endpoints)
    gate = asyncio.Event()

    async def slow_reader(event: Event) -> None:
        await gate.wait()  # reads nothing while the burst passes: queues overflow

    mirror = Mirror(client, receive_hwm=1, on_event=slow_reader)
    try:
        mirror_started = asyncio.create_task(mirror.start())
        gate.set()
        await mirror_started
        gate.clear()
        for start in range(0, BURST, 500):
            await asyncio.gather(*(client.request("cost.log", CHEAP) for _ in range(500)))
            stage = ("writing", "enhancing")[start // 500 % 2]
            await client.request("session.set_stage", {"stage": stage})
        gate.set()
        # The next event from each source reveals what was lost after it.
        await client.request("cost.log", CHEAP)
        await client.request("session.set_stage", {"stage": "scoring"})
        deadline = time.monotonic() + 20
        while True:
            state = await _state(client)
            view = {
                "session": mirror.view.session,
                "costs": mirror.view.costs,
                "workers": mirror.view.workers,
            }
            if view == state or time.monotonic() > deadline:
                return mirror, {"view": view, "state": state}
            await asyncio.sleep(0.05)
    finally:
        await mirror.close()
        await client.close()


def test_a_mirror_that_lost_events_converges_to_the_service_state(tmp_path: Path) -> None:
    """10,000 events pass a subscriber with a tiny queue: it sees gaps and still ends equal."""
    # A tiny queue on the service's side too (a SUB's own limit alone is absorbed by
    # the publisher's 100,000), and the default heartbeat tolerance: this test is about
    # the view, and the burst must not get workers killed on a busy machine.
    config = {
        "protocol": {"event_hwm": 20},
        "supervisor": {"heartbeat_interval_s": 0.5, "heartbeat_liveness": 6},
    }
    with running_service(tmp_path / "project", config=config) as service:
        endpoints = EndpointsFile.model_validate(service.endpoints)
        mirror, outcome = asyncio.run(_burst_then_converge(endpoints))
    assert mirror.gaps > 0, "the burst was meant to overflow the queues"
    for part in ("costs", "workers", "session"):
        assert outcome["view"][part] == outcome["state"][part], part
    assert outcome["state"]["costs"]["unpriced_operations"] == 0
    assert outcome["state"]["session"]["current_state"]["stage"] == "scoring"
