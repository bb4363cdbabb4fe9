"""Launching the fork server: the first thing `supervisor start` does.

Workers are forked only once the fork server has imported what they need,
so its imports are the cold start's critical path (docs/benchmarks.md,
"Cold start"). Most of them (pydantic's model machinery, zmq, structlog,
the settings and the protocol's models: `SHARED_MODULES`) the supervisor
needs too. So a foreground `start` imports those first, then *forks* its
fork server (`fork_fork_server`): one copy of the shared imports instead of
two interpreters importing the same ~0.2 s each, side by side on a 2-core
machine. The forked server then imports only what the workers add (the host
and the four worker modules) while the supervisor reads its settings and
binds its sockets. Nothing else has run yet when it forks: no socket, no
thread, no lock, no logging, so the server is as clean as a fresh interpreter.

This module itself imports only a few modules of the standard library, so
commands other than `start` pay nothing for it. A replacement fork server,
started while the supervisor runs (its sockets and threads must never be
forked), is a fresh interpreter (`launch_fork_server`). `start` adopts the early server
(`EarlyLaunch.take`), or abandons it when it cannot go on (another
supervisor holds the lock, bad options...).
"""

from __future__ import annotations

import gc
import importlib
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

if TYPE_CHECKING:
    from services.runtime.children import ChildProcess

__all__ = [
    "ENV_SUPERVISOR_PID",
    "SHARED_MODULES",
    "EarlyLaunch",
    "child_environment",
    "code_root",
    "end_launch",
    "fork_fork_server",
    "imports_done",
    "launch_for_argv",
    "launch_fork_server",
]

ENV_SUPERVISOR_PID = "WF_SUPERVISOR_PID"
"""Tells a worker host which pid must be its parent (else it exits at once).
`services.runtime.wire` re-exports it."""

_SERVER_MODULE = "services.runtime.forkserver"

SHARED_MODULES = (
    "zmq",
    "structlog",
    "config.settings",
    "protocol.internal",
    "protocol.envelopes",
    "protocol.ops",
    "services.runtime.children",
    "services.runtime.logs",
    "services.session.recovery",
)
"""What both the supervisor (before READY) and every worker import: imported
once, before the early fork server is forked from the supervisor (~75% of
either process's imports). None of them may start a thread or open a socket
when imported: the fork copies this process as it is (a test checks)."""


def imports_done() -> None:
    """End of a start-up's imports: keep what they built out of every later collection.

    A start-up imports ~0.3 s of modules with the cyclic collector off (`launch_for_argv`,
    the fork server's preload): its ~110 collections during the imports cost
    ~10% of their CPU (docs/benchmarks.md, "Cold start, second pass") and found
    ~0.6 MB of cycles. Everything alive now is frozen (never scanned again, so
    no collection pause later and pages stay shared with forked workers), then
    the collector runs as usual for what the process allocates from here on.
    """
    gc.freeze()
    gc.enable()


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


def fork_fork_server(cwd: Path) -> tuple[ChildProcess, socket.socket]:
    """Fork this process into a fork server working in `cwd`; the server and our
    end of its control socket (call it before any socket, thread or lock exists).

    The child gets what `launch_fork_server` gives a fresh one: stdin a lifeline
    pipe, stdout /dev/null, stderr a pipe to us, only its control socket besides,
    `child_environment()`. It never returns into the caller's code: it serves
    and `os._exit`s.
    """
    from services.runtime.children import ChildProcess

    environment = child_environment()
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    stdin_r, stdin_w = os.pipe()
    stderr_r, stderr_w = os.pipe()
    for stream in (sys.stdout, sys.stderr):
        stream.flush()  # else the child's exit could never write what is buffered
    try:
        pid = os.fork()
    except OSError:
        for fd in (stdin_r, stdin_w, stderr_r, stderr_w):
            os.close(fd)
        ours.close()
        theirs.close()
        raise
    if pid == 0:  # pragma: no cover - the child (measured by the fork server's tests)
        _serve_forked(cwd, environment, theirs.fileno(), stdin_r, stderr_w)
    for fd in (stdin_r, stderr_w):
        os.close(fd)
    theirs.close()
    os.set_blocking(stderr_r, False)
    child = ChildProcess(pid=pid, pidfd=os.pidfd_open(pid), stderr_fd=stderr_r, lifeline_fd=stdin_w)
    return child, ours


def _serve_forked(
    cwd: Path, environment: dict[str, str], control_fd: int, stdin_r: int, stderr_w: int
) -> NoReturn:  # pragma: no cover - runs in the forked child
    """The forked child: take its descriptors and environment, serve, exit."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the supervisor's to handle
    code = 1
    try:
        os.dup2(stdin_r, 0)
        os.dup2(stderr_w, 2)
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, 1)
        # Only the control socket stays open besides 0-2, as with close_fds.
        os.closerange(3, control_fd)
        os.closerange(control_fd + 1, os.sysconf("SC_OPEN_MAX"))
        os.chdir(cwd)
        os.environ.clear()
        os.environ.update(environment)
        sys.argv = [sys.argv[0], str(control_fd)]
        from services.runtime.forkserver import serve

        code = serve(socket.socket(fileno=control_fd))
    except BaseException:
        import traceback

        traceback.print_exc()  # to fd 2 by now: the supervisor logs it
        sys.stderr.flush()
    finally:
        os._exit(code)


class EarlyLaunch:
    """A fork server launched before `start` knew whether it could use it.

    `take` hands it over once; `abandon` (a no-op after `take`) kills and reaps
    it, so a start that stops early leaves no process behind.
    """

    def __init__(self, project: Path) -> None:
        self.project = project
        """The folder the server was launched in; `start` takes it only for that project."""
        for name in SHARED_MODULES:
            importlib.import_module(name)
        self._launched: tuple[ChildProcess, socket.socket] | None = fork_fork_server(project)

    def take(self, project: Path) -> tuple[ChildProcess, socket.socket] | None:
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


def end_launch(child: ChildProcess, control: socket.socket) -> None:
    """Kill and reap a launched server and close everything we hold of it."""
    control.close()
    child.signal(signal.SIGKILL)
    child.wait(5.0)
    child.close()


def launch_for_argv(argv: list[str]) -> EarlyLaunch | None:
    """An `EarlyLaunch` when `argv` is a foreground `start` of an existing folder, else None.

    It imports `SHARED_MODULES` first (see the module's docstring). Only the
    obvious cases are recognised (`start`, `--project DIR` or
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
    # No cyclic collection until `start` has imported the supervisor (`imports_done`);
    # the forked server inherits this and ends it after its own preload.
    gc.disable()
    try:
        return EarlyLaunch(project)
    except OSError:
        gc.enable()
        return None  # `start` tries again, and says what is wrong
