"""kill -9 of the archiver while `cost.log` flows: every logged call counted once."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import zmq
from service import RunningService, running_service

from protocol.codec import loads_exact
from services.readonly.history import read_history
from services.runtime.paths import ProjectPaths

pytestmark = pytest.mark.slow

ARGS = {"operation": "scene_generation", "model": "claude-sonnet-3.5", "input_tokens": 1200}
CLIENTS = 4
KILLS = 2


def exact_request(sock: zmq.Socket[bytes], request_id: str, op: str, args: Any) -> Any:
    """One request's reply, its amounts read as exact Decimals."""
    sock.send_multipart(
        [b"", json.dumps({"v": 1, "id": request_id, "op": op, "args": args}).encode()]
    )
    assert sock.poll(10_000), f"no reply to {request_id}"
    return loads_exact(sock.recv_multipart()[-1])


def wait_for(predicate: Any, timeout_s: float) -> bool:
    """Whether `predicate()` became true within `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def test_kill_9_of_the_archiver_mid_batch_loses_and_doubles_nothing(tmp_path: Path) -> None:
    """Calls logged while the archiver is killed twice are each in the session's entry once."""
    project = tmp_path / "novel"
    costs: list[Decimal] = []
    errors: list[BaseException] = []
    # No reconciliation with the ledger: only re-delivery may make up for a kill.
    with running_service(project, config={"history": {"reconcile_delay_s": 3600}}) as service:
        stop = threading.Event()

        def log_costs(client: int) -> None:
            sock = service.socket()
            for n in range(100_000):
                if stop.is_set():
                    return
                try:
                    args = {**ARGS, "output_tokens": n}
                    reply = exact_request(sock, f"c{client}-{n}", "cost.log", args)
                    assert reply["ok"], reply
                except BaseException as exc:
                    errors.append(exc)
                    return
                costs.append(reply["result"]["operation"]["cost"])

        threads = [threading.Thread(target=log_costs, args=(c,)) for c in range(CLIENTS)]
        for thread in threads:
            thread.start()
        for kill in range(KILLS):
            assert wait_for(lambda k=kill: len(costs) >= 60 * (k + 1) or errors, 30)
            before = service.wait_running("history_archiver")
            os.kill(before["pid"], signal.SIGKILL)  # events are always in flight under load
        assert wait_for(lambda: len(costs) >= 60 * (KILLS + 1) or errors, 30)
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
        assert not errors, errors
        assert service.wait_running("history_archiver")["restarts"] == KILLS
        assert wait_for(lambda: _counted(service) >= len(costs), 15), service.log_text()[-2000:]
    # Stopped cleanly: history.json is the final word, nothing counted twice.
    (entry,) = read_history(ProjectPaths.of(project)).sessions
    assert entry.status == "ended"
    assert entry.operations_count == {"scene_generation": len(costs)}
    assert entry.total_cost == sum(costs, Decimal(0))


def _counted(service: RunningService) -> int:
    """Operations in the live entry as `history.list` answers now."""
    reply = service.request("history.list", {"limit": 1})
    count: int = reply["result"][0]["operations_count"].get("scene_generation", 0)
    return count
