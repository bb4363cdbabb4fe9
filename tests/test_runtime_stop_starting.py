"""A worker still starting when the stop reaches it gets STOP at its READY, never an early SIGTERM.

A starting worker may not have installed its SIGTERM handler yet; a SIGTERM
then ends it without its final flush (the kill soak saw costs.json short of
the ledger: the cost ledger, restarted before its stop phase, was SIGTERMed
while it started). Fake children, sockets and clock (`runtime_fakes`).
"""

from __future__ import annotations

import signal

from runtime_fakes import Rig

from protocol.names import WorkerName, WorkerState

FW = WorkerName.FILE_WATCHER
SW = WorkerName.SESSION_WRITER
CL = WorkerName.COST_LEDGER


def _stop_frames(rig: Rig) -> list[bytes]:
    """The workers that got a STOP frame since the last call."""
    return sorted(message[0] for message in rig.backend.take())


def test_a_worker_starting_at_its_stop_phase_gets_stop_at_ready_and_no_signal() -> None:
    """The cost ledger, restarted just before its phase, is sent STOP once it says
    READY (so it flushes), and no signal at all."""
    rig = Rig(workers=(FW, SW, CL))
    rig.start_all()
    rig.backend.take()
    stop = rig.begin_staged_stop()
    assert _stop_frames(rig) == [b"file_watcher"]
    rig.crash(CL)  # restarted: its phase has not come
    assert rig.state(CL) is WorkerState.STARTING
    rig.crash(FW, returncode=0)
    assert not stop.advance(rig.clock.now)
    assert _stop_frames(rig) == [b"session_writer"], "the starting ledger is not sent STOP yet"
    assert rig.state(CL) is WorkerState.STOPPING
    rig.tick(rig.settings.supervisor.stop_grace_s + 0.5)  # a slow start under load
    assert not stop.advance(rig.clock.now)
    assert rig.child(CL).signals == [], "no SIGTERM before its handler can be there"
    rig.ready(CL)
    assert _stop_frames(rig) == [b"cost_ledger"], "STOP at its READY"
    rig.crash(CL, returncode=0)
    rig.crash(SW, returncode=0)
    assert stop.advance(rig.clock.now)
    assert rig.child(CL).signals == [] and len(rig.children[CL]) == 2


def test_a_worker_that_never_gets_ready_while_stopping_is_escalated_after_its_start_time() -> None:
    """A starting worker that never says READY gets SIGTERM only after ready_timeout_s
    plus the grace, then SIGKILL: a stop still ends."""
    rig = Rig(workers=(FW,))
    rig.start_all()
    rig.crash(FW)
    assert rig.state(FW) is WorkerState.STARTING
    rig.backend.take()
    stop = rig.begin_staged_stop()
    sup = rig.settings.supervisor
    assert _stop_frames(rig) == [] and rig.child(FW).signals == []
    assert not stop.advance(rig.clock.advance(sup.ready_timeout_s + sup.stop_grace_s - 0.1))
    assert rig.child(FW).signals == []
    assert not stop.advance(rig.clock.advance(0.2))
    assert rig.child(FW).signals == [signal.SIGTERM]
    assert not stop.advance(rig.clock.advance(sup.stop_grace_s + 0.1))
    assert rig.child(FW).signals == [signal.SIGTERM, signal.SIGKILL]
    rig.crash(FW)
    assert stop.advance(rig.clock.now)
