"""Choosing endpoints: who can reach which socket (docs/protocol.md section 2.1).

- The workers' link is always ipc in the private runtime folder (0700), even
  when the public sockets use tcp: a peer on it could pose as a worker, so no
  other user may ever reach it.
- The public sockets are ipc in the same folder by default, or, with
  `--transport tcp`, tcp on 127.0.0.1 (port chosen by the OS at bind time, so
  there is never a fixed port to collide with) as CURVE servers that admit
  only the client key written for the owner.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import zmq

from services.runtime.curve import ServerCurve, curve_available
from services.runtime.paths import ProjectPaths
from services.runtime.privatedir import (
    MAX_IPC_PATH_BYTES,
    NoSocketFolder,
    private_runtime_dir,
    remove_runtime_dir,
)

__all__ = [
    "MAX_IPC_PATH_BYTES",
    "Endpoints",
    "Transport",
    "TransportUnavailable",
    "choose_transport",
    "plan_endpoints",
    "service_endpoints",
]

Transport = Literal["ipc", "tcp"]


class TransportUnavailable(RuntimeError):
    """The service cannot bind safely; the message says why, for the writer."""


@dataclass(frozen=True)
class Endpoints:
    """Where to bind: `command` and `events` are public, `backend` is for workers."""

    command: str
    events: str
    backend: str
    transport: Transport
    runtime_dir: str = ""
    curve: ServerCurve | None = field(default=None, repr=False, compare=False)

    def public_options(self) -> dict[str, int | bytes]:
        """Socket options of the public sockets (CURVE server over tcp, else none)."""
        return self.curve.socket_options() if self.curve is not None else {}

    def announced(self) -> dict[str, Any]:
        """The endpoints.json fields beyond the two endpoints (never a secret key)."""
        return {
            "transport": self.transport,
            "runtime_dir": self.runtime_dir or None,
            "curve": self.curve.files if self.curve is not None else None,
        }

    def describe(self) -> dict[str, str]:
        """What the log may say about the endpoints."""
        return {
            "command": self.command,
            "events": self.events,
            "backend": self.backend,
            "transport": self.transport,
            "runtime_dir": self.runtime_dir,
        }


def choose_transport(requested: Transport | None) -> Transport:
    """ipc unless asked for tcp: the runtime folder keeps ipc paths short anywhere."""
    return "tcp" if requested == "tcp" else "ipc"


def plan_endpoints(
    runtime_dir: Path, transport: Transport, curve: ServerCurve | None = None
) -> Endpoints:
    """Bind addresses; for tcp the port is chosen at bind time (`*`)."""
    backend = f"ipc://{runtime_dir / 'workers.sock'}"
    if transport == "ipc":
        return Endpoints(
            command=f"ipc://{runtime_dir / 'command.sock'}",
            events=f"ipc://{runtime_dir / 'events.sock'}",
            backend=backend,
            transport="ipc",
            runtime_dir=str(runtime_dir),
        )
    return Endpoints(
        command="tcp://127.0.0.1:*",
        events="tcp://127.0.0.1:*",
        backend=backend,
        transport="tcp",
        runtime_dir=str(runtime_dir),
        curve=curve,
    )


@contextlib.contextmanager
def service_endpoints(paths: ProjectPaths, requested: Transport | None) -> Iterator[Endpoints]:
    """The endpoints of one run; on exit the keys and the runtime folder are removed.

    Raises `TransportUnavailable` when no private folder can hold the sockets,
    or tcp is asked for and this libzmq has no CURVE.
    """
    transport = choose_transport(requested)
    if transport == "tcp" and not curve_available():
        raise TransportUnavailable(
            "--transport tcp needs CURVE encryption, which this libzmq lacks; use ipc"
        )
    try:
        folder = private_runtime_dir(paths.project)
    except NoSocketFolder as exc:
        raise TransportUnavailable(str(exc)) from None
    curve: ServerCurve | None = None
    try:
        if transport == "tcp":
            curve = ServerCurve.issue(paths.run_dir)
            curve.start_checking(zmq.Context.instance())
        yield plan_endpoints(folder, transport, curve)
    finally:
        if curve is not None:
            curve.close()
        remove_runtime_dir(folder)
