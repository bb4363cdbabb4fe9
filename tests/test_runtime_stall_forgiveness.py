"""After a stall of the supervisor, each worker gets back the stalled time, and no more."""

from __future__ import annotations

import structlog

from config import load_settings
from protocol.names import WorkerName, WorkerState
from services.runtime.liveness import MISSED_HEARTBEATS, judge_liveness
from services.runtime.restarts import RestartPolicy
from services.runtime.slots import PendingRequest, WorkerSlot
from services.runtime.stall import forgive_stall

_SETTINGS = load_settings().supervisor
_BUSY_S = _SETTINGS.heartbeat_interval_s * _SETTINGS.heartbeat_liveness
_IDLE_S = _SETTINGS.idle_heartbeat_s + _BUSY_S


def _running(last_seen: float, owed_since: float | None = None) -> WorkerSlot:
    policy = RestartPolicy(max_restarts=5, window_s=30, backoff_initial_s=0.1, backoff_max_s=1)
    slot = WorkerSlot(name=WorkerName.COST_LEDGER, policy=policy, state=WorkerState.RUNNING)
    slot.last_seen, slot.owed_since = last_seen, owed_since
    return slot


def test_a_worker_owing_a_reply_keeps_the_window_it_had_when_the_stall_began() -> None:
    """Silent 0.5 s before a 3 s stall: after it, it may stay silent for the rest of its window."""
    began, stalled = 100.0, 3.0
    slot = _running(last_seen=began - 0.5, owed_since=began - 0.5)
    slot.inflight[b"t"] = PendingRequest(
        token=b"t", route=[], request_id="r", op="cost.log", payload=b"{}"
    )
    now = began + stalled
    forgive_stall([slot], now, stalled, structlog.get_logger(), unread_s=stalled)
    assert judge_liveness(slot, now, _SETTINGS) is None
    assert judge_liveness(slot, now + _BUSY_S - 0.5 - 0.01, _SETTINGS) is None
    assert judge_liveness(slot, now + _BUSY_S - 0.5 + 0.01, _SETTINGS) == MISSED_HEARTBEATS


def test_a_worker_silent_long_before_the_stall_gets_no_new_window() -> None:
    """An idle worker already past its window before a stall is still judged hung right after."""
    began, stalled = 1000.0, 2.0
    slot = _running(last_seen=began - _IDLE_S - 5.0)
    now = began + stalled
    forgive_stall([slot], now, stalled, structlog.get_logger(), unread_s=stalled)
    assert judge_liveness(slot, now, _SETTINGS) == MISSED_HEARTBEATS


def test_forgiveness_never_moves_a_clock_past_now() -> None:
    """A sign of life just before a long stall counts from now, not from the future."""
    slot = _running(last_seen=99.9, owed_since=99.9)
    forgive_stall([slot], 100.0, 30.0, structlog.get_logger(), unread_s=30.5)
    assert slot.last_seen == 100.0
    assert slot.owed_since == 100.0
