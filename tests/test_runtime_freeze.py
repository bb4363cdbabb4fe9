"""A real tree whose worker dies right after READY keeps answering (the soak's freeze).

The kill soak caught the supervisor's loop spinning forever in
`RequestRouter.flush` / `EventBus.flush` (py-spy, docs/benchmarks.md): a
worker said READY and was SIGKILLed before the supervisor read it, and the
request that waited for it was refused and retried without end. Here the
same happens on purpose, with signals instead of luck:

1. the fork server and the cost ledger are killed: the ledger starts cold,
   and a new fork server starts; both are SIGSTOPped mid-import (the
   ledger once more just after its imports, so little is left of its start);
2. a `cost.log` waits for the starting ledger;
3. the file watcher is killed: its restart waits on the stopped fork
   server's first fork (up to 5 s), so the supervisor reads nothing;
4. meanwhile the ledger goes on, says READY, and is SIGKILLed;
5. the fork server goes on: the supervisor reads that READY from a dead
   worker. It must answer `supervisor.status` at once and the `cost.log`
   once the ledger is back.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
import zmq

from bench.service_tree import ServiceTree

pytestmark = pytest.mark.slow

T = TypeVar("T")

_ATTEMPTS = 6
"""Each step is a condition, but the READY can still miss its window (a slow
cold start on a loaded machine): try again, and say so if it never fit."""


def _until(probe: Callable[[], T | None], timeout_s: float, what: str) -> T:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = probe()
        if found is not None:
            return found
        time.sleep(0.005)
    raise AssertionError(f"timed out waiting for {what}")


class _Client:
    """A DEALER that keeps every reply by id (requests and answers interleave)."""

    def __init__(self, tree: ServiceTree) -> None:
        self.socket = tree.context.socket(zmq.DEALER)
        self.socket.setsockopt(zmq.LINGER, 0)
        endpoints = json.loads((tree.project / ".session/run/endpoints.json").read_text())
        self.socket.connect(endpoints["command"])
        self.replies: dict[str, dict[str, Any]] = {}

    def send(self, request_id: str, op: str, args: dict[str, Any] | None = None) -> None:
        frame = {"v": 1, "id": request_id, "op": op, "args": args or {}}
        self.socket.send_multipart([b"", json.dumps(frame).encode()])

    def reply(self, request_id: str, timeout_s: float) -> dict[str, Any] | None:
        """The reply to `request_id` if it comes within `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        while request_id not in self.replies:
            left = deadline - time.monotonic()
            if left <= 0 or not self.socket.poll(int(left * 1000) + 1):
                return None
            reply = json.loads(self.socket.recv_multipart()[-1])
            self.replies[reply["id"]] = reply
        return self.replies[request_id]

    def status(self, request_id: str, timeout_s: float = 10.0) -> dict[str, Any]:
        self.send(request_id, "supervisor.status")
        reply = self.reply(request_id, timeout_s)
        assert reply is not None, f"supervisor.status unanswered in {timeout_s:g} s"
        result: dict[str, Any] = reply["result"]
        return result


def _worker(status: dict[str, Any], name: str) -> tuple[int | None, str]:
    entry = next(w for w in status["workers"] if w["name"] == name)
    return entry["pid"], entry["state"]


def _threads(pid: int) -> int:
    """How many threads `pid` runs (0 once it is gone)."""
    with contextlib.suppress(OSError, StopIteration):
        status = Path(f"/proc/{pid}/status").read_text()
        return int(next(line for line in status.splitlines() if line.startswith("Threads:"))[8:])
    return 0


def _wrote_ready(pid: int) -> bool:
    """Whether a worker the supervisor cannot read (stopped) has logged its READY.

    Reads the worker's stderr pipe through /proc (the supervisor, its reader,
    is blocked): the host logs `worker.ready` right after sending READY.
    """
    seen = b""
    with contextlib.suppress(OSError):
        fd = os.open(f"/proc/{pid}/fd/2", os.O_RDONLY | os.O_NONBLOCK)
        try:
            with contextlib.suppress(BlockingIOError):
                while chunk := os.read(fd, 65536):
                    seen += chunk
        finally:
            os.close(fd)
    return b'"worker.ready"' in seen


def _blocked(client: _Client, number: int, watcher: int) -> str | None:
    """The id of a status request the supervisor holds (blocked in a fork), or None if
    it answered after handling the watcher's exit (the fork did not wait)."""
    for turn in range(100):
        probe = f"s{number}-probe-{turn}"
        client.send(probe, "supervisor.status")
        reply = client.reply(probe, 0.3)
        if reply is None:
            return probe
        pid, state = _worker(reply["result"], "file_watcher")
        if pid != watcher and state != "backoff":  # restarted without waiting
            return None
    return None


def _attempt(tree: ServiceTree, client: _Client, number: int) -> str:
    """One run of the scenario: "hit" if the supervisor read a READY from a dead worker,
    else why the window was missed."""
    status = client.status(f"s{number}-0")
    old_server = status["fork_server_pid"]
    old_ledger, _ = _worker(status, "cost_ledger")
    assert old_server and old_ledger
    os.kill(old_server, signal.SIGKILL)
    os.kill(old_ledger, signal.SIGKILL)

    def cold_ledger_and_new_server() -> tuple[int, int] | None:
        now = client.status(f"s{number}-{time.monotonic_ns()}")
        pid, state = _worker(now, "cost_ledger")
        server = now["fork_server_pid"]
        fresh = pid is not None and pid != old_ledger and server not in (None, old_server)
        if state == "starting" and pid is not None and fresh:
            return pid, int(server)
        return None

    ledger, server = _until(cold_ledger_and_new_server, 20, "a cold ledger and a new fork server")
    os.kill(server, signal.SIGSTOP)
    os.kill(ledger, signal.SIGSTOP)
    try:
        # Let it import and open its socket (zmq's threads appear), then hold it
        # again: from there to READY is only its own start.
        os.kill(ledger, signal.SIGCONT)
        with contextlib.suppress(AssertionError):
            _until(lambda: _threads(ledger) >= 3 or None, 20, "the ledger's zmq threads")
        os.kill(ledger, signal.SIGSTOP)
        if _worker(client.status(f"s{number}-1"), "cost_ledger") != (ledger, "starting"):
            return "the ledger was READY before it stopped"
        args = {"operation": "draft", "model": "gpt-4", "input_tokens": 10, "output_tokens": 3}
        client.send(f"cost-{number}", "cost.log", args)
        client.status(f"s{number}-2")  # the cost.log is queued for the ledger by now
        watcher, _ = _worker(client.status(f"s{number}-3"), "file_watcher")
        assert watcher
        os.kill(watcher, signal.SIGKILL)  # its restart waits on the stopped fork server
        probe = _blocked(client, number, watcher)
        if probe is None:
            return "the fork server was ready before it stopped: no wait"
        os.kill(ledger, signal.SIGCONT)
        deadline = time.monotonic() + 4.0  # the fork's wait is 5 s at most
        while not _wrote_ready(ledger):
            if time.monotonic() > deadline:
                return "the ledger started too slowly for the wait"
            time.sleep(0.005)
        os.kill(ledger, signal.SIGKILL)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(ledger, signal.SIGCONT)
        with contextlib.suppress(ProcessLookupError):
            os.kill(server, signal.SIGCONT)
    answered = client.reply(probe, 15.0)
    assert answered is not None, "the supervisor stopped answering after a READY from a dead worker"
    logged = (tree.project / ".session/logs/supervisor.log").read_text()
    if '"worker.gone_after_ready"' not in logged:
        return "the READY was dropped with the connection"
    cost = client.reply(f"cost-{number}", 15.0)
    assert cost is not None and cost["ok"], cost
    return "hit"


@pytest.mark.timeout(240)
def test_a_ready_from_a_worker_killed_at_once_does_not_freeze_the_supervisor(
    tmp_path: Path,
) -> None:
    """The supervisor reads a READY from a ledger SIGKILLed right after sending it, with
    a cost.log waiting: it keeps answering at once, and the cost.log is answered by the
    ledger's next incarnation."""
    tree = ServiceTree(
        tmp_path / "novel",
        config={
            "supervisor": {
                "max_restarts": 10_000,
                "restart_window_s": 1.0,
                "spare_worker": False,
                "fork_server_retry_s": 0.05,
                "fork_server_max_failures": 100,
                "request_wait_s": 30.0,
            }
        },
    )
    tree.start(timeout_s=120)  # a loaded machine starts slowly
    client = _Client(tree)
    try:
        outcomes: list[str] = []
        for number in range(_ATTEMPTS):
            outcomes.append(_attempt(tree, client, number))
            if outcomes[-1] == "hit":
                break
    finally:
        client.socket.close(linger=0)
        tree.stop()
    assert outcomes[-1] == "hit", f"the scenario never fitted its window: {outcomes}"
