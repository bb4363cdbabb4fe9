"""The life of a supervised worker: every legal transition in one table.

Everything that changes a worker's state goes through `transition`, so an
illegal move (a READY from a worker we are stopping, say) fails loudly in
tests instead of leaving the supervisor confused.
"""

from __future__ import annotations

from enum import StrEnum

from protocol.names import WorkerState

__all__ = ["TRANSITIONS", "IllegalTransition", "Trigger", "transition"]


class Trigger(StrEnum):
    """What happened to a worker."""

    SPAWN = "spawn"  # a process was started (spawned or forked) for it
    READY = "ready"  # it said READY
    EXIT = "exit"  # its process ended (any cause): back-off if it was serving, stopped if stopping
    RESTART_DUE = "restart_due"  # back-off elapsed
    GIVE_UP = "give_up"  # restart intensity exceeded
    STOP = "stop"  # the supervisor is stopping it
    STOPPED = "stopped"  # its process ended while stopping
    RESET = "reset"  # `supervisor.restart` of a failed worker: it may start again


S = WorkerState
T = Trigger

TRANSITIONS: dict[tuple[WorkerState, Trigger], WorkerState] = {
    (S.STOPPED, T.SPAWN): S.STARTING,
    (S.STARTING, T.READY): S.RUNNING,
    (S.STARTING, T.EXIT): S.BACKOFF,
    (S.RUNNING, T.EXIT): S.BACKOFF,
    (S.BACKOFF, T.SPAWN): S.STARTING,
    (S.BACKOFF, T.RESTART_DUE): S.BACKOFF,
    (S.STARTING, T.GIVE_UP): S.FAILED,
    (S.RUNNING, T.GIVE_UP): S.FAILED,
    (S.BACKOFF, T.GIVE_UP): S.FAILED,
    (S.STARTING, T.STOP): S.STOPPING,
    (S.RUNNING, T.STOP): S.STOPPING,
    (S.BACKOFF, T.STOP): S.STOPPED,
    (S.FAILED, T.STOP): S.FAILED,
    (S.STOPPED, T.STOP): S.STOPPED,
    (S.STOPPING, T.STOP): S.STOPPING,
    (S.STOPPING, T.STOPPED): S.STOPPED,
    (S.STOPPING, T.EXIT): S.STOPPED,
    (S.STOPPING, T.READY): S.STOPPING,
    (S.FAILED, T.RESET): S.STOPPED,
}
"""(state, trigger) -> new state. Anything missing is illegal."""


class IllegalTransition(RuntimeError):
    """A trigger that makes no sense in the current state: a supervisor bug."""


def transition(state: WorkerState, trigger: Trigger) -> WorkerState:
    """The state after `trigger`, or `IllegalTransition`."""
    try:
        return TRANSITIONS[(state, trigger)]
    except KeyError:
        raise IllegalTransition(f"{trigger.value} is not legal in state {state.value}") from None
