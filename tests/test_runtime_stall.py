"""A stall of the supervisor itself (kill -STOP, then -CONT) never restarts a healthy worker."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from tests.service import FAST_TIMINGS, running_service

STALL_S = 3.0
TRIALS = 3
_SUP = FAST_TIMINGS["supervisor"]
WATCH_S = 3 * _SUP["heartbeat_interval_s"] * _SUP["heartbeat_liveness"]
"""How long after -CONT a wrongful kill could still come: three liveness windows."""


def test_supervisor_stall_does_not_count_as_workers_silence(tmp_path: Path) -> None:
    """After each of three 3 s STOPs of the supervisor, every worker keeps its pid and restarts."""
    with running_service(tmp_path / "novel") as service:
        supervisor = service.process.pid
        sock = service.socket()
        first = {w["name"]: (w["pid"], w["restarts"]) for w in service.status()["workers"]}
        assert all(pid for pid, _ in first.values())
        log = service.project / ".session" / "logs" / "supervisor.log"
        for trial in range(TRIALS):
            os.kill(supervisor, signal.SIGSTOP)
            try:
                time.sleep(STALL_S)  # the stall itself is what is being tested
            finally:
                os.kill(supervisor, signal.SIGCONT)
            resumed = time.monotonic()
            while time.monotonic() - resumed < WATCH_S:
                status = service.request("supervisor.status", sock=sock)["result"]
                now = {w["name"]: (w["pid"], w["restarts"]) for w in status["workers"]}
                assert now == first, f"trial {trial + 1}: {first} became {now}"
            noticed = log.read_text().count('"supervisor.stalled"')
            assert noticed >= trial + 1, f"trial {trial + 1}: stall not noticed"
        assert '"worker.killing"' not in log.read_text()
