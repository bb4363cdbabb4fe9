"""Liveness judged on demand, on a real tree: quick when a worker owes, patient when idle."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from service import RunningService, running_service

from services.readonly.liveness import pid_alive

BEAT_S = 0.1
LIVENESS = 5
BUSY_WINDOW_S = BEAT_S * LIVENESS
"""How long a worker that owes a reply may stay silent in these trees (0.5 s)."""


def _config(idle_heartbeat_s: float) -> dict[str, dict[str, float]]:
    return {
        "supervisor": {
            "heartbeat_interval_s": BEAT_S,
            "heartbeat_liveness": LIVENESS,
            "idle_heartbeat_s": idle_heartbeat_s,
        }
    }


def _replaced(service: RunningService, name: str, pid: int, timeout_s: float) -> dict[str, object]:
    """Wait until worker `name` runs with another pid than `pid`; its status entry."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        entry = service.worker(name)  # answered by the supervisor: no worker is asked
        if entry["state"] == "running" and entry["pid"] not in (None, pid):
            return entry
        time.sleep(0.02)
    raise AssertionError(f"{name} (pid {pid}) not replaced within {timeout_s} s")


def test_a_stopped_worker_that_owes_a_reply_is_replaced_within_the_short_window(
    tmp_path: Path,
) -> None:
    """SIGSTOP, then a request: the worker is killed after the short window, not the idle one,
    and its replacement answers the request."""
    idle_s = 30.0  # only the short window can explain a quick kill
    with running_service(tmp_path / "novel", config=_config(idle_s)) as service:
        pid = service.wait_running("session_writer")["pid"]
        os.kill(pid, signal.SIGSTOP)
        try:
            sent = time.monotonic()
            reply = service.request("session.get", timeout_s=idle_s / 2)
            answered_s = time.monotonic() - sent
        finally:
            if pid_alive(pid):
                os.kill(pid, signal.SIGKILL)
        assert reply["ok"], reply
        entry = service.worker("session_writer")
        assert entry["pid"] != pid
        assert "missed heartbeats" in str(entry["last_exit"])
        assert BUSY_WINDOW_S <= answered_s < BUSY_WINDOW_S + 5.0, answered_s


def test_a_stopped_idle_worker_is_found_within_the_idle_window(tmp_path: Path) -> None:
    """SIGSTOP of a worker nobody asks anything: it is replaced within one idle beat and the
    short window (plus the start of its replacement)."""
    idle_s = 1.0
    with running_service(tmp_path / "novel", config=_config(idle_s)) as service:
        pid = service.wait_running("cost_ledger")["pid"]
        os.kill(pid, signal.SIGSTOP)
        stopped = time.monotonic()
        entry = _replaced(service, "cost_ledger", pid, timeout_s=idle_s + BUSY_WINDOW_S + 5.0)
        assert "missed heartbeats" in str(entry["last_exit"])
        assert time.monotonic() - stopped >= BUSY_WINDOW_S
        assert not pid_alive(pid)


def test_idle_healthy_workers_are_never_killed(tmp_path: Path) -> None:
    """Idle workers beating only every idle interval keep their pids over many intervals."""
    idle_s = 0.3
    watch_s = 3.0  # ten idle intervals: a wrong window would have killed by then
    with running_service(tmp_path / "novel", config=_config(idle_s)) as service:
        first = {w["name"]: w["pid"] for w in service.status()["workers"]}
        assert all(first.values())
        end = time.monotonic() + watch_s
        while time.monotonic() < end:
            now = {w["name"]: w["pid"] for w in service.status()["workers"]}
            assert now == first
            time.sleep(0.1)
        assert service.request("session.get")["ok"]
        assert service.request("cost.totals")["ok"]
        log = (service.project / ".session" / "logs" / "supervisor.log").read_text()
        assert '"worker.killing"' not in log


def test_a_change_of_health_reaches_the_status_without_waiting_for_the_idle_beat(
    tmp_path: Path,
) -> None:
    """A mutation moves the session writer's revision; `supervisor.status` shows it within
    moments, though the next idle heartbeat is 30 s away."""
    with running_service(tmp_path / "novel", config=_config(30.0)) as service:
        before = service.wait_running("session_writer")["health"]["revision"]
        reply = service.request("session.set_stage", {"stage": "writing"})
        assert reply["ok"], reply
        deadline = time.monotonic() + 5.0
        health = service.worker("session_writer")["health"]
        while health["revision"] == before and time.monotonic() < deadline:
            time.sleep(0.02)
            health = service.worker("session_writer")["health"]
        assert health["revision"] > before


def test_a_cost_waiting_for_genai_prices_to_load_is_not_taken_for_a_hang(
    tmp_path: Path,
) -> None:
    """A cost.log right after start waits for genai-prices (~0.1 s or more) beyond a 0.05 s
    window: the ledger says it is still working, and the call is answered and priced by
    genai-prices."""
    beat_s, liveness = 0.01, 5  # the load itself (~0.1 s) outlasts this window
    config = {
        "supervisor": {"heartbeat_interval_s": beat_s, "heartbeat_liveness": liveness},
        "ledger": {"prices_load_delay_s": 60.0},  # only the request can start the load
    }
    with running_service(tmp_path / "novel", config=config) as service:
        service.wait_running("cost_ledger")
        # Each incarnation of the old ledger loaded genai-prices silently for
        # longer than the window, was killed, and the retried request killed the
        # next: the client got `internal` ("cost_ledger crashed 3 times"). The
        # reply is the promise checked: on a badly loaded machine a 50 ms window
        # can also be missed by the scheduler, and that kill is still answered.
        reply = service.request(
            "cost.log",
            {
                "operation": "scene_generation",
                "model": "claude-sonnet-4-5",
                "input_tokens": 1000,
                "output_tokens": 200,
            },
        )
        assert reply["ok"], reply
        assert str(reply["result"]["operation"]["price_source"]).startswith("genai-prices@"), reply
