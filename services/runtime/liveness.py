"""Is a running worker alive? The one place the supervisor judges it.

A worker's loop sends a heartbeat every `heartbeat_interval_s`, and anything
it sends counts as a sign of life (`WorkerSlot.last_seen`). A worker silent
for `heartbeat_interval_s x heartbeat_liveness` is hung (a deadlock, SIGSTOP,
a disk that never answers) and is killed with SIGKILL, then restarted like
any crash. Both the verdict and the time it is next due live here, so a
change to the rule is one change.
"""

from __future__ import annotations

from config import SupervisorSettings
from protocol.names import WorkerState
from services.runtime.slots import WorkerSlot

__all__ = ["MISSED_HEARTBEATS", "judge_liveness", "liveness_deadline"]

MISSED_HEARTBEATS = "missed heartbeats"
"""The kill reason, shown in `last_exit` and `worker.exited`."""


def _window_s(settings: SupervisorSettings) -> float:
    return settings.heartbeat_interval_s * settings.heartbeat_liveness


def liveness_deadline(slot: WorkerSlot, settings: SupervisorSettings) -> float:
    """The monotonic time after which a silent running worker is judged hung."""
    return slot.last_seen + _window_s(settings)


def judge_liveness(slot: WorkerSlot, now: float, settings: SupervisorSettings) -> str | None:
    """Why a running worker must be killed now, or None while it is alive."""
    if slot.state is not WorkerState.RUNNING:
        return None
    if now - slot.last_seen > _window_s(settings):
        return MISSED_HEARTBEATS
    return None
