"""A worker host SIGTERMed while it starts still starts, says READY and stops cleanly.

Before the host installed its handler, a SIGTERM ended it with no final flush
(the kill soak's costs.json short of the ledger: a stop racing a restarted
cost ledger). The host now blocks SIGTERM from its first line until the
handler is there. A real host process, with this test as its supervisor.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import zmq

from protocol.internal import WorkerAssignment, WorkerHello, decode_from_worker
from protocol.names import WorkerName
from services.runtime.children import child_environment

_SIGTERM_BIT = 1 << (signal.SIGTERM - 1)


def _blocks_sigterm(pid: int) -> bool:
    """Whether `pid`'s main thread has SIGTERM blocked (its SigBlk mask in /proc)."""
    with contextlib.suppress(OSError, StopIteration, ValueError):
        status = Path(f"/proc/{pid}/status").read_text()
        mask = next(line for line in status.splitlines() if line.startswith("SigBlk:"))
        return bool(int(mask.split()[1], 16) & _SIGTERM_BIT)
    return False


@pytest.mark.timeout(120)
def test_a_sigterm_before_the_handler_is_a_clean_stop_after_ready(tmp_path: Path) -> None:
    """SIGTERM reaches a cost-ledger host before it was told what to be: it still says
    READY, then stops cleanly (exit 0, `worker.stopping` for SIGTERM), not killed."""
    project = tmp_path / "novel"
    project.mkdir()
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    backend = context.socket(zmq.ROUTER)
    backend.setsockopt(zmq.LINGER, 0)
    endpoint = f"ipc://{tmp_path / 'workers.sock'}"
    backend.bind(endpoint)
    host = subprocess.Popen(
        [sys.executable, "-m", "services.runtime.host"],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        cwd=project,
        env=child_environment(),  # this test is its supervisor (its parent)
    )
    try:
        assert host.stdin is not None and host.stderr is not None
        deadline = time.monotonic() + 30
        while not _blocks_sigterm(host.pid):  # its first line ran: a SIGTERM now must wait
            assert host.poll() is None, "the host exited before it was told what to be"
            assert time.monotonic() < deadline, "the host never blocked SIGTERM while starting"
            time.sleep(0.01)
        host.send_signal(signal.SIGTERM)
        assignment = WorkerAssignment(
            name=WorkerName.COST_LEDGER,
            project=str(project),
            session_id="s-sigterm",
            backend=endpoint,
        )
        host.stdin.write(assignment.line())
        host.stdin.flush()
        assert backend.poll(60_000), "no READY"
        assert isinstance(decode_from_worker(backend.recv_multipart()[1:]), WorkerHello)
        code = host.wait(timeout=60)
        stderr = host.stderr.read().decode(errors="replace")
    finally:
        if host.poll() is None:
            host.kill()
            host.wait()
        backend.close(linger=0)
        context.term()
    assert code == 0, f"ended by the signal ({code}): {stderr[-2000:]}"
    assert '"worker.ready"' in stderr and '"reason": "SIGTERM"' in stderr, stderr[-2000:]
