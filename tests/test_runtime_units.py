"""Unit tests of the runtime's pure parts: lifecycle table, restart policy, stamping, transport."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from protocol.envelopes import decode_event
from protocol.names import RestartRule, WorkerState
from services.runtime.eventbus import stamp_event
from services.runtime.lifecycle import TRANSITIONS, IllegalTransition, Trigger, transition
from services.runtime.restarts import RestartDecision, RestartPolicy
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
    assert policy.on_exit(0.0) == RestartDecision(0.0, RestartRule.FIRST_CRASH)
    assert policy.on_exit(1.0) == RestartDecision(pytest.approx(0.1), RestartRule.BACKOFF)
    assert policy.on_exit(2.0) == RestartDecision(pytest.approx(0.2), RestartRule.BACKOFF)
    assert policy.on_exit(3.0) == RestartDecision(None, RestartRule.INTENSITY)
    assert policy.total == 3


def test_restart_intensity_forgets_old_crashes() -> None:
    """Crashes older than the window no longer count toward giving up."""
    policy = RestartPolicy(max_restarts=2, window_s=10, backoff_initial_s=0.1, backoff_max_s=5)
    assert policy.on_exit(0.0).delay_s == 0.0
    assert policy.on_exit(1.0).delay_s is not None
    assert policy.on_exit(20.0) == RestartDecision(0.0, RestartRule.FIRST_CRASH)


def test_backoff_is_capped() -> None:
    """Back-off never exceeds its maximum."""
    policy = RestartPolicy(max_restarts=50, window_s=1000, backoff_initial_s=1, backoff_max_s=3)
    delays = [policy.on_exit(float(i)).delay_s for i in range(10)]
    assert max(d for d in delays if d is not None) == 3


def test_a_worker_that_served_longer_than_stable_s_restarts_at_once_every_time() -> None:
    """Kills of a worker that had been serving for seconds never back off (issue 13)."""
    policy = RestartPolicy(
        max_restarts=5, window_s=30, backoff_initial_s=0.1, backoff_max_s=5, stable_s=1.0
    )
    decisions = [policy.on_exit(2.0 * i, ran_s=1.9) for i in range(5)]
    assert decisions[0] == RestartDecision(0.0, RestartRule.STABLE_RUN)
    assert all(d == RestartDecision(0.0, RestartRule.STABLE_RUN) for d in decisions)


def test_the_intensity_limit_still_stops_stable_runs_that_die_too_often() -> None:
    """Even restarts at once count: the sixth death within the window marks the worker failed."""
    policy = RestartPolicy(
        max_restarts=5, window_s=30, backoff_initial_s=0.1, backoff_max_s=5, stable_s=1.0
    )
    for i in range(5):
        assert policy.on_exit(2.0 * i, ran_s=1.5).delay_s == 0.0
    assert policy.on_exit(10.0, ran_s=1.5) == RestartDecision(None, RestartRule.INTENSITY)


def test_quick_deaths_after_a_stable_run_back_off_again() -> None:
    """A stable run resets the loop: the next quick crash is at once, the one after backs off."""
    policy = RestartPolicy(
        max_restarts=10, window_s=30, backoff_initial_s=0.1, backoff_max_s=5, stable_s=1.0
    )
    assert policy.on_exit(0.0, ran_s=None).rule is RestartRule.FIRST_CRASH
    assert policy.on_exit(0.5, ran_s=0.2).rule is RestartRule.BACKOFF
    assert policy.on_exit(5.0, ran_s=4.0).rule is RestartRule.STABLE_RUN
    assert policy.on_exit(5.3, ran_s=0.3) == RestartDecision(0.0, RestartRule.FIRST_CRASH)
    assert policy.on_exit(5.4, ran_s=None) == RestartDecision(
        pytest.approx(0.1), RestartRule.BACKOFF
    )


def test_reset_forgets_the_intensity_count() -> None:
    """After a reset (supervisor.restart of a failed worker) the worker gets its restarts back."""
    policy = RestartPolicy(max_restarts=1, window_s=30, backoff_initial_s=0.1, backoff_max_s=5)
    policy.on_exit(0.0)
    assert policy.on_exit(0.1).rule is RestartRule.INTENSITY
    policy.reset()
    assert policy.on_exit(0.2) == RestartDecision(0.0, RestartRule.FIRST_CRASH)


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


def test_every_op_has_an_owner_and_unknown_prefixes_have_none() -> None:
    """Each op routes by its prefix to one worker (or the supervisor); other names raise."""
    from protocol.names import OP_OWNER, Op, WorkerName, owner_of

    assert owner_of("session.get") is WorkerName.SESSION_WRITER
    assert owner_of("preferences.set") is WorkerName.SESSION_WRITER
    assert owner_of("cost.log") is WorkerName.COST_LEDGER
    assert owner_of("history.list") is WorkerName.HISTORY_ARCHIVER
    assert owner_of("supervisor.restart") is None
    for op in Op:
        assert owner_of(op.value) is OP_OWNER[op.value.split(".")[0] + "."]
    for unknown in ("nothing.here", "session", "", "sessions.get", ".get"):
        with pytest.raises(KeyError):
            owner_of(unknown)
