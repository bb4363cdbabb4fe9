"""Frames between the supervisor and its workers (internal, not the public protocol).

Each worker holds one DEALER connected to the supervisor's backend ROUTER,
with its worker name as routing id. One connection carries everything, so a
worker's events queue on it even before the connection completes (a PUB
socket would drop them: the slow-joiner problem) and requests, replies,
heartbeats and events keep their order.

worker -> supervisor: READY hello | HB beat | REP token reply | PUB topic ts data [MINOR]
                      | PUBS (topic ts data flag)... | ACK number...
supervisor -> worker: REQ token request | EVT number topic event | STOP
(each kind is a frozen model in `protocol.internal`, with its JSON Schema)

Events to workers are delivered at least once: the supervisor keeps each one
until the worker ACKs its number (after `on_event` returned, i.e. after the
worker made its effect durable) and re-delivers the rest to a replacement.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from services.runtime.forklaunch import ENV_SUPERVISOR_PID

if TYPE_CHECKING:
    from protocol.internal import ACK, EVT, HB, MINOR, PUB, PUBS, READY, REP, REQ, STOP

__all__ = [
    "ACK",
    "ENV_SUPERVISOR_PID",
    "EVT",
    "HB",
    "MAX_WORKER_FRAME_BYTES",
    "MINOR",
    "PUB",
    "PUBS",
    "READY",
    "REP",
    "REQ",
    "STOP",
]


_FRAME_KINDS = frozenset(
    {"ACK", "EVT", "HB", "MINOR", "PUB", "PUBS", "READY", "REP", "REQ", "STOP"}
)
"""Defined with their models in `protocol.internal`, and read from there on first
use (PEP 562): the fork server's module imports this one for `ENV_SUPERVISOR_PID`
and must not pay for pydantic before it has been launched."""

MAX_WORKER_FRAME_BYTES = 64 * 1024 * 1024
"""Largest frame the supervisor reads from a worker (a reply or an event body).

Workers answer requests of at most 1 MiB, so a bigger frame is a bug; the
bound keeps one from eating the supervisor's memory (libzmq drops the
connection and the worker, missing heartbeats, is restarted).
"""


def __getattr__(name: str) -> Any:
    if name not in _FRAME_KINDS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import protocol.internal

    return getattr(protocol.internal, name)
