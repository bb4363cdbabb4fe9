"""Unit tests of the runtime's pure parts: lifecycle table, restart policy, stamping, transport."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from protocol.envelopes import decode_event
from protocol.names import WorkerState
from services.runtime.eventbus import stamp_event
from services.runtime.lifecycle import TRANSITIONS, IllegalTransition, Trigger, transition
from services.runtime.restarts import RestartPolicy
from services.runtime.transport import choose_transport, plan_endpoints


def test_worker_goes_running_only_after_ready() -> None:
    """A spawned worker is starting until it says READY, then running."""
    state = transition(WorkerState.STOPPED, Trigger.SPAWN)
    assert state is WorkerState.STARTING
    assert transition(state, Trigger.READY) is WorkerState.RUNNING


def test_crash_goes_to_backoff_and_stop_during_backoff_is_stopped() -> None:
    """A crash leads to back-off; stopping during back-off needs no process to kill."""
    assert transition(WorkerState.RUNNING, Trigger.EXIT) is WorkerState.BACKOFF
    assert transition(WorkerState.BACKOFF, Trigger.STOP) is WorkerState.STOPPED


def test_illegal_transition_fails_loudly() -> None:
    """READY from a stopped worker is a supervisor bug and raises."""
    with pytest.raises(IllegalTransition):
        transition(WorkerState.STOPPED, Trigger.READY)


def test_every_state_can_be_stopped() -> None:
    """Whatever a worker is doing, a stop is a legal request."""
    for state in WorkerState:
        assert (state, Trigger.STOP) in TRANSITIONS


def test_first_crash_restarts_at_once_then_backs_off_then_gives_up() -> None:
    """One-off crashes restart immediately; a crash loop doubles its wait and then fails."""
    policy = RestartPolicy(max_restarts=3, window_s=30, backoff_initial_s=0.1, backoff_max_s=5)
    assert policy.on_exit(0.0) == 0.0
    assert policy.on_exit(1.0) == pytest.approx(0.1)
    assert policy.on_exit(2.0) == pytest.approx(0.2)
    assert policy.on_exit(3.0) is None
    assert policy.total == 3


def test_restart_intensity_forgets_old_crashes() -> None:
    """Crashes older than the window no longer count toward giving up."""
    policy = RestartPolicy(max_restarts=2, window_s=10, backoff_initial_s=0.1, backoff_max_s=5)
    assert policy.on_exit(0.0) == 0.0
    assert policy.on_exit(1.0) is not None
    assert policy.on_exit(20.0) == 0.0


def test_backoff_is_capped() -> None:
    """Back-off never exceeds its maximum."""
    policy = RestartPolicy(max_restarts=50, window_s=1000, backoff_initial_s=1, backoff_max_s=3)
    delays = [policy.on_exit(float(i)) for i in range(10)]
    assert max(d for d in delays if d is not None) == 3


def test_stamped_event_is_a_valid_envelope() -> None:
    """The supervisor's byte-built envelope decodes as a contract event with its data intact."""
    data = json.dumps({"path": "manuscript/ch1.md"}).encode()
    body = stamp_event(b"file.modified", b"file_watcher", 41, b"2026-11-23T14:30:22Z", data)
    event = decode_event([b"file.modified", body])
    assert (event.topic, event.source, event.seq) == ("file.modified", "file_watcher", 41)
    assert event.data == {"path": "manuscript/ch1.md"}


def test_transport_is_ipc_unless_tcp_is_asked_for(tmp_path: Path) -> None:
    """ipc by default; tcp only on request, and the workers' link stays ipc even then."""
    assert choose_transport(None) == "ipc"
    assert choose_transport("tcp") == "tcp"
    tcp = plan_endpoints(tmp_path, "tcp")
    assert tcp.command.startswith("tcp://127.0.0.1:")
    assert tcp.backend == f"ipc://{tmp_path / 'workers.sock'}"
    assert plan_endpoints(tmp_path, "ipc").command == f"ipc://{tmp_path / 'command.sock'}"
