"""Stopping workers: the staged stop of the whole service, and the escalation.

A stop asks first (a STOP frame: the worker finishes what it was handed,
flushes and exits), waits `stop_grace_s`, then sends SIGTERM, waits again,
then SIGKILL. The whole service stops in phases (`STOP_PHASES`): the sources
of events first, so the archiver hears the last ones before it stops.
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Mapping
from typing import Any

from config import SupervisorSettings
from protocol.names import WorkerName, WorkerState
from services.runtime.lifecycle import Trigger
from services.runtime.slots import WorkerSlot

__all__ = ["STOP_PHASES", "StagedStop", "ask_to_stop", "escalate_overdue", "stop_reached_ready"]

STOP_PHASES: tuple[tuple[WorkerName, ...], ...] = (
    (WorkerName.FILE_WATCHER,),
    (WorkerName.SESSION_WRITER, WorkerName.COST_LEDGER),
    (WorkerName.HISTORY_ARCHIVER,),
)
"""Stop order: sources of events first, so the archiver hears the last ones."""

SendStop = Callable[[WorkerSlot], None]
"""Sends the STOP frame to a running worker."""


def ask_to_stop(
    slot: WorkerSlot, now: float, settings: SupervisorSettings, send_stop: SendStop
) -> None:
    """Begin stopping one worker: STOP now if it runs, at its READY if it is starting.

    A starting worker may not have installed its SIGTERM handler yet: a
    SIGTERM then would end it without its final flush (costs.json short of
    the ledger in the kill soak). So it gets the STOP frame once it says
    READY (`stop_reached_ready`), and the escalation waits for a start
    (`ready_timeout_s`) plus the grace. A worker with no process (in
    back-off, failed, stopped) is stopped at once.
    """
    slot.restart_at = None
    slot.ready_deadline = None
    grace_s = settings.stop_grace_s
    slot.stop_when_ready = False
    if slot.state is WorkerState.RUNNING and slot.child is not None:
        send_stop(slot)
    elif slot.state is WorkerState.STARTING and slot.child is not None:
        slot.stop_when_ready = True
        grace_s += settings.ready_timeout_s
    slot.move(Trigger.STOP)
    slot.stop_signals = 0
    slot.stop_deadline = now + grace_s if slot.state is WorkerState.STOPPING else None


def stop_reached_ready(
    slot: WorkerSlot, now: float, settings: SupervisorSettings, send_stop: SendStop
) -> bool:
    """A stopping worker said READY: send the STOP it waited for; True if one went."""
    if not slot.stop_when_ready or slot.state is not WorkerState.STOPPING:
        return False
    slot.stop_when_ready = False
    send_stop(slot)
    slot.stop_deadline = now + settings.stop_grace_s
    return True


def escalate_overdue(slot: WorkerSlot, now: float, settings: SupervisorSettings, log: Any) -> bool:
    """SIGTERM, then SIGKILL, a stopping worker past its grace; True if a signal went."""
    if slot.state is not WorkerState.STOPPING or slot.stop_deadline is None:
        return False
    if now < slot.stop_deadline:
        return False
    slot.stop_signals += 1
    sig = signal.SIGTERM if slot.stop_signals == 1 else signal.SIGKILL
    log.warning("worker.stop_escalated", worker=slot.name.value, signal=sig.name)
    if slot.child is not None:
        slot.child.signal(sig)
    slot.stop_deadline = now + settings.stop_grace_s
    return True


class StagedStop:
    """The stop of the whole service, phase by phase."""

    def __init__(
        self,
        slots: Mapping[WorkerName, WorkerSlot],
        settings: SupervisorSettings,
        *,
        send_stop: SendStop,
        fail_waiting: Callable[[WorkerSlot, str], None],
        touch_timers: Callable[[], None],
        log: Any,
    ) -> None:
        self.slots = slots
        self.settings = settings
        self._send_stop = send_stop
        self._fail_waiting = fail_waiting
        self._touch_timers = touch_timers
        self.log = log
        self.active = False
        self.phase = 0

    def begin(self, now: float) -> None:
        """Stop the first phase's workers (later phases follow in `advance`)."""
        self.active = True
        self.phase = 0
        self._stop_phase(now)

    def _stop_phase(self, now: float) -> None:
        self._touch_timers()
        for name in STOP_PHASES[self.phase]:
            slot = self.slots.get(name)
            if slot is None:
                continue
            slot.restart_requested = False
            ask_to_stop(slot, now, self.settings, self._send_stop)
            if slot.state is not WorkerState.STOPPING:
                self._fail_waiting(slot, "the service is stopping")

    def reached(self, name: WorkerName) -> bool:
        """Whether the stop has come to worker `name` (its phase was asked to stop).

        Until then a worker that dies is restarted like any crash: its phase
        must find it running, so that it finishes and flushes (costs.json, the
        checkpoint, the session document) instead of leaving them behind.
        """
        if not self.active:
            return True
        for index, names in enumerate(STOP_PHASES):
            if name in names:
                return index <= self.phase
        return True

    def advance(self, now: float) -> bool:
        """Escalate overdue stops and move to the next phase; True once all are done."""
        while True:
            phase = [self.slots[n] for n in STOP_PHASES[self.phase] if n in self.slots]
            for slot in phase:
                if escalate_overdue(slot, now, self.settings, self.log):
                    self._touch_timers()
            if any(slot.state is WorkerState.STOPPING for slot in phase):
                return False
            if self.phase + 1 >= len(STOP_PHASES):
                return True
            self.phase += 1
            self._stop_phase(now)
