"""Launching the fork server: the first thing `supervisor start` does.

The fork server imports for ~0.4 s, and workers are forked only when it is
done, so every ms before its launch is on the cold start's critical path
(docs/benchmarks.md, "Cold start"). This module imports nothing but `os`,
`pathlib`, `socket`, `subprocess` and `sys`, so `supervisor.py` launches the server
before it imports its own command line, settings or anything else; the
supervisor's imports then run beside the server's. `start` adopts the
launched server (`ForkServer.adopt_launch`), or abandons it when it cannot
go on (another supervisor holds the lock, bad options...).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

__all__ = [
    "ENV_SUPERVISOR_PID",
    "EarlyLaunch",
    "child_environment",
    "code_root",
    "end_launch",
    "launch_for_argv",
    "launch_fork_server",
]

ENV_SUPERVISOR_PID = "WF_SUPERVISOR_PID"
"""Tells a worker host which pid must be its parent (else it exits at once).
`services.runtime.wire` re-exports it."""

_SERVER_MODULE = "services.runtime.forkserver"


def code_root() -> str:
    """The folder holding the `services` package this supervisor runs from, so
    a worker always runs the same code as its supervisor (checkout or wheel)."""
    return str(Path(__file__).resolve().parents[2])


def child_environment() -> dict[str, str]:
    """The environment of every child: our code first, our pid, no pydantic plugin scan."""
    env = dict(os.environ)
    env[ENV_SUPERVISOR_PID] = str(os.getpid())
    root = code_root()
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    # pydantic scans every installed package's entry points for plugins at
    # import; workers use none, and the scan is on the restart path.
    env.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    return env


def launch_fork_server(cwd: Path) -> tuple[subprocess.Popen[bytes], socket.socket]:
    """Spawn `python -m services.runtime.forkserver FD`; the process and our end
    of its control socket (FD is its end, kept open in it by `pass_fds`)."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        popen = subprocess.Popen(
            [sys.executable, "-m", _SERVER_MODULE, str(theirs.fileno())],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            cwd=cwd,
            env=child_environment(),
            pass_fds=(theirs.fileno(),),
            close_fds=True,
        )
    except BaseException:
        ours.close()
        raise
    finally:
        theirs.close()
    return popen, ours


class EarlyLaunch:
    """A fork server launched before `start` knew whether it could use it.

    `take` hands it over once; `abandon` (a no-op after `take`) kills and reaps
    it, so a start that stops early leaves no process behind.
    """

    def __init__(self, project: Path) -> None:
        self.project = project
        """The folder the server was launched in; `start` takes it only for that project."""
        self._launched: tuple[subprocess.Popen[bytes], socket.socket] | None = (
            launch_fork_server(project)
        )

    def take(self, project: Path) -> tuple[subprocess.Popen[bytes], socket.socket] | None:
        """The process and control socket, if launched for `project` and not taken yet."""
        launched = self._launched
        if launched is None or project.resolve() != self.project.resolve():
            return None
        self._launched = None
        return launched

    def abandon(self) -> None:
        """Kill and reap the server unless it was taken."""
        launched, self._launched = self._launched, None
        if launched is None:
            return
        end_launch(*launched)


def end_launch(popen: subprocess.Popen[bytes], control: socket.socket) -> None:
    """Kill and reap a launched server and close everything we hold of it."""
    control.close()
    popen.kill()
    popen.wait()
    for stream in (popen.stdin, popen.stderr):
        if stream is not None:
            stream.close()


def launch_for_argv(argv: list[str]) -> EarlyLaunch | None:
    """An `EarlyLaunch` when `argv` is a foreground `start` of an existing folder, else None.

    Only the obvious cases are recognised (`start`, `--project DIR` or
    `--project=DIR`, no `--detach`, no help); anything else is left to `start`,
    which launches the server itself after parsing, as before.
    """
    if not argv or argv[0] != "start":
        return None
    named = "."
    rest = argv[1:]
    for index, word in enumerate(rest):
        if word in {"--detach", "-h", "--help"}:
            return None
        if word == "--project" and index + 1 < len(rest):
            named = rest[index + 1]
        elif word.startswith("--project="):
            named = word.partition("=")[2]
    project = Path(named).expanduser()
    if not project.is_dir():
        return None  # `start` creates it (or refuses): the usual launch then
    try:
        return EarlyLaunch(project)
    except OSError:
        return None  # `start` tries again, and says what is wrong
