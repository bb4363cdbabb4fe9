"""Is a running worker alive? The one place the supervisor judges it.

Liveness is judged on demand, so an idle tree sleeps:

- A worker that **owes** something (a request in flight, `slot.inflight`, or
  an event it has not acknowledged, `slot.unacked`) must show a sign of life
  within `heartbeat_interval_s x heartbeat_liveness` (1.5 s by default) of
  the later of: when it began to owe (`slot.owed_since`), and its last sign
  of life (`slot.last_seen`; anything it sends counts). A reply or an ACK is
  such a sign, so a busy worker needs no heartbeat; one that owes and stays
  silent (a deadlock, SIGSTOP, a disk that never answers) is killed with
  SIGKILL and restarted like any crash, its requests handed to the
  replacement.
- A worker that owes nothing beats every `idle_heartbeat_s` (30 s by
  default) and is judged against that plus the short window: an idle hung
  worker is found within ~31.5 s, when it matters less, and idle workers
  cost the machine almost nothing.

The worker's host beats at the short interval while it holds refused events
(which the supervisor keeps as owed until a restart), so both sides agree
on which window applies. The router and the event bus note the moment a
worker begins to owe (the supervisor's `began_owing`, which also brings the
timers forward to the short window), and a reply or an ACK that leaves it
owing nothing ends the clock; `note_owing` at every timer run is the
catch-all for the rarer paths (a crash's requeue, a stop's refusals). The verdict, the
time it is next due, and the bookkeeping live here, so a change to the rule
is one change.
"""

from __future__ import annotations

from collections.abc import Iterable

from config import SupervisorSettings
from protocol.names import WorkerState
from services.runtime.slots import WorkerSlot

__all__ = [
    "MISSED_HEARTBEATS",
    "busy_window_s",
    "idle_window_s",
    "judge_liveness",
    "liveness_deadline",
    "note_nothing",
    "note_owing",
]

MISSED_HEARTBEATS = "missed heartbeats"
"""The kill reason, shown in `last_exit` and `worker.exited`."""


def busy_window_s(settings: SupervisorSettings) -> float:
    """How long a worker that owes something may stay silent."""
    return settings.heartbeat_interval_s * settings.heartbeat_liveness


def idle_window_s(settings: SupervisorSettings) -> float:
    """How long a worker that owes nothing may stay silent: one idle beat, plus the short window."""
    return settings.idle_heartbeat_s + busy_window_s(settings)


def note_owing(slots: Iterable[WorkerSlot], now: float) -> bool:
    """Start (or end) each worker's owing clock; True when one began to owe just now.

    Called by the loop after each turn that may have handed out work; the
    caller then makes sure its timers are due no later than the short window.
    """
    began = False
    for slot in slots:
        if slot.inflight or slot.unacked:
            if slot.owed_since is None:
                slot.owed_since = now
                began = True
        elif slot.owed_since is not None:
            slot.owed_since = None
    return began


def note_nothing(slot: WorkerSlot) -> None:
    """A `began_owing` hook that does nothing (routers and buses without a loop)."""


def liveness_deadline(slot: WorkerSlot, settings: SupervisorSettings, now: float) -> float:
    """The monotonic time after which a silent running worker is judged hung."""
    if slot.inflight or slot.unacked:
        # Not yet noted (handed out during this very turn): it began to owe now.
        since = now if slot.owed_since is None else slot.owed_since
        return max(slot.last_seen, since) + busy_window_s(settings)
    return slot.last_seen + idle_window_s(settings)


def judge_liveness(slot: WorkerSlot, now: float, settings: SupervisorSettings) -> str | None:
    """Why a running worker must be killed now, or None while it is alive."""
    if slot.state is not WorkerState.RUNNING:
        return None
    if now > liveness_deadline(slot, settings, now):
        return MISSED_HEARTBEATS
    return None
