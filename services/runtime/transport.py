"""Choosing endpoints: ipc sockets in `.session/run/`, or tcp on loopback.

ipc paths over 107 bytes fail (ENAMETOOLONG, measured); we switch to tcp at
100 bytes to keep a margin. tcp binds 127.0.0.1 on a port the OS picks, so
there is never a fixed port to collide with.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

__all__ = ["MAX_IPC_PATH_BYTES", "Endpoints", "Transport", "choose_transport", "plan_endpoints"]

MAX_IPC_PATH_BYTES = 100

Transport = Literal["ipc", "tcp"]


@dataclass(frozen=True)
class Endpoints:
    """Where to bind: `command` and `events` are public, `backend` is for workers."""

    command: str
    events: str
    backend: str
    transport: Transport


def choose_transport(run_dir: Path, requested: Transport | None) -> Transport:
    """ipc unless asked for tcp or the socket paths would be too long."""
    if requested == "tcp":
        return "tcp"
    longest = run_dir / "command.sock"
    if len(str(longest).encode()) > MAX_IPC_PATH_BYTES:
        return "tcp"
    return "ipc"


def plan_endpoints(run_dir: Path, transport: Transport) -> Endpoints:
    """Bind addresses; for tcp the port is chosen at bind time (`*`)."""
    if transport == "ipc":
        return Endpoints(
            command=f"ipc://{run_dir / 'command.sock'}",
            events=f"ipc://{run_dir / 'events.sock'}",
            backend=f"ipc://{run_dir / 'workers.sock'}",
            transport="ipc",
        )
    return Endpoints(
        command="tcp://127.0.0.1:*",
        events="tcp://127.0.0.1:*",
        backend="tcp://127.0.0.1:*",
        transport="tcp",
    )
