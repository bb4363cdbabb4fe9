"""The supervisor's own stalls must never count as a worker's silence.

When the supervisor does not run for a while (`kill -STOP`, a debugger, a
starved machine) every worker keeps beating, but the beats wait in socket
buffers that libzmq's I/O thread, stopped with us, has not read yet. Right
after the stall, draining the link finds nothing, and the workers look
silent for as long as we were away: in 5 of 11 trials of a 2-5 s STOP all
four healthy workers were killed for "missed heartbeats".

So the loop watches its own clock. A turn that took much longer than the
poll was allowed to sleep means we were not running, and each worker gets
back the whole turn, the time in which nothing of it was read (a message
would have ended the poll early, and the timers judge liveness before the
first read after the stall): its liveness clocks (`last_seen`,
`owed_since`) move forward by that much, never past now. That is no more
than a new window, and less whenever the worker had already been silent:
one that was hung before the stall is still found at once. A suspended laptop needs
nothing: the monotonic clock does not advance while the machine sleeps.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from protocol.names import WorkerState
from services.runtime.slots import WorkerSlot

__all__ = ["StallClock", "forgive_stall"]


class StallClock:
    """Measures how far each turn of the loop overran what it was allowed to take."""

    def __init__(self, tolerance_s: float) -> None:
        self.tolerance_s = tolerance_s
        """An overrun above this is a stall (the heartbeat interval: a beat could be missed)."""
        self._turn_at = time.monotonic()
        self._allowed_s = 0.0
        self.turn_s = 0.0
        """How long the turn that ended at the last `stalled_for` lasted, in all."""

    def will_wait(self, timeout_s: float) -> None:
        """The loop is about to sleep up to `timeout_s` (that part of the turn is no stall)."""
        self._allowed_s = timeout_s

    def stalled_for(self, now: float) -> float:
        """Seconds the turn ending at `now` overran, or 0 when within tolerance."""
        self.turn_s = now - self._turn_at
        overrun = self.turn_s - self._allowed_s
        self._turn_at = now
        self._allowed_s = 0.0
        return overrun if overrun > self.tolerance_s else 0.0


def forgive_stall(
    slots: Iterable[WorkerSlot], now: float, stalled_s: float, log: Any, *, unread_s: float
) -> None:
    """Give every worker back the `unread_s` seconds in which the supervisor, stalled
    for `stalled_s` of them, read nothing of it (`StallClock.turn_s`)."""
    for slot in slots:
        if slot.state is WorkerState.RUNNING:
            slot.last_seen = min(now, slot.last_seen + unread_s)
            if slot.owed_since is not None:
                slot.owed_since = min(now, slot.owed_since + unread_s)
        elif slot.state is WorkerState.STARTING and slot.ready_deadline is not None:
            slot.ready_deadline += unread_s
    log.warning("supervisor.stalled", seconds=round(stalled_s, 3))
