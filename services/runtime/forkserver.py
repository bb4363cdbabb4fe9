"""The fork server: one clean interpreter that forks worker processes in ms.

A fresh interpreter spends ~0.3 s importing zmq, pydantic, structlog, the
protocol and a worker (2 cores, measured); four of them at start-up, plus one
per restart, is most of the cold start and a quarter of the memory. The fork
server imports all of that once, *before* anything runs (no sockets, no
threads, no state), then forks a worker per request, like CPython's
multiprocessing "forkserver". A worker is a fork of that clean state, never of
the supervisor's.

The fork server double-forks, so each worker is adopted by the supervisor (a
child subreaper): the supervisor remains the parent that reaps every worker,
watches it through a pidfd and hands it its stdin lifeline and stderr pipe,
passed over a Unix socket (SCM_RIGHTS).

Server side: `python -m services.runtime.forkserver FD` (FD: the control
socket). Client side: `ForkServer`, used by the supervisor.

This module imports no pydantic, zmq or protocol at its top (the control
messages' models are imported where they are used): `supervisor start`
imports it and spawns the server within ~0.1 s of its own start, so the
server's imports run beside the supervisor's own instead of after them
(docs/benchmarks.md, "Cold start").
"""

from __future__ import annotations

import contextlib
import gc
import os
import signal
import socket
import subprocess
import sys
import time
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING

from config import default_value
from services.runtime.children import ChildProcess
from services.runtime.forklaunch import imports_done, launch_fork_server
from services.runtime.wire import ENV_SUPERVISOR_PID

if TYPE_CHECKING:
    from protocol.internal import ForkReply

__all__ = [
    "FORK_TIMEOUT_S",
    "STARTUP_TIMEOUT_S",
    "ForkServer",
    "ForkServerError",
    "main",
    "serve",
]

FORK_TIMEOUT_S = float(default_value("fork_server", "fork_timeout_s"))
"""A fork answers in a few ms; past this the server is stuck and is replaced.
Kept well below the heartbeat limit, since the supervisor's loop waits."""
STARTUP_TIMEOUT_S = float(default_value("fork_server", "startup_timeout_s"))
"""The first fork also waits for the server's imports (~0.3 s)."""

_REPARENT_TIMEOUT_S = float(default_value("fork_server", "reparent_timeout_s"))
"""A forked worker waits this long to be adopted by the supervisor."""


class ForkServerError(RuntimeError):
    """The fork server is gone or did not answer; the caller spawns cold instead."""


class ForkServer:
    """The supervisor's handle on its fork server."""

    def __init__(self, child: ChildProcess, control: socket.socket) -> None:
        self.child = child
        self.control = control
        self.ready = False
        self._token = 0
        self._asked: deque[tuple[int, int, int]] = deque()
        """Requests sent by `prefork` and not yet handed out: (token, host's stdin, stderr)."""
        self._early: dict[int, ForkReply] = {}
        """Replies that came before the reply `_answer` waited for, by token."""

    @classmethod
    def start(cls, *, cwd: Path) -> ForkServer:
        """Start the fork server (it imports for ~0.4 s; `fork` waits for it)."""
        return cls.adopt_launch(*launch_fork_server(cwd))

    @classmethod
    def adopt_launch(cls, popen: subprocess.Popen[bytes], control: socket.socket) -> ForkServer:
        """The handle on a server spawned by `launch_fork_server`."""
        if popen.stderr is None or popen.stdin is None:  # pragma: no cover
            raise ForkServerError("fork server spawned without its pipes")
        os.set_blocking(popen.stderr.fileno(), False)
        child = ChildProcess(
            pid=popen.pid,
            pidfd=os.pidfd_open(popen.pid),
            stderr_fd=popen.stderr.fileno(),
            lifeline_fd=popen.stdin.fileno(),
            popen=popen,
        )
        return cls(child, control)

    def fork(self) -> ChildProcess:
        """A new worker host, waiting for its assignment on stdin, parented to us.

        A host asked for by `prefork` comes first (usually forked already);
        otherwise one is asked for now. Blocks the caller (the supervisor's
        loop) for a few ms normally; the wait is bounded: 5 s while the server
        still imports at start-up, then `FORK_TIMEOUT_S`. Any failure is a
        `ForkServerError` and the caller spawns a fresh interpreter instead.
        """
        if self.child.reap() is not None:
            raise ForkServerError("the fork server has exited")
        token, stdin_w, stderr_r = self._asked.popleft() if self._asked else self._ask()
        try:
            pid = self._answer(token)
        except BaseException:
            for fd in (stdin_w, stderr_r):
                os.close(fd)
            raise
        os.set_blocking(stderr_r, False)
        try:
            pidfd = os.pidfd_open(pid)
        except ProcessLookupError:  # died at once and was reaped by nobody: cannot happen
            os.close(stdin_w)
            os.close(stderr_r)
            raise ForkServerError(f"forked worker {pid} vanished") from None
        return ChildProcess(pid=pid, pidfd=pidfd, stderr_fd=stderr_r, lifeline_fd=stdin_w)

    def prefork(self, count: int) -> None:
        """Ask for `count` worker hosts at once, before anything needs them.

        The server forks them as soon as its imports are done, while the
        supervisor still starts up, so the start's `fork` calls find them forked
        (docs/benchmarks.md, "Cold start"). The caller must be a child subreaper
        already: a host waits to be adopted by the supervisor. Best effort: on
        a failure `fork` asks again, one at a time, and reports what is wrong.
        """
        with contextlib.suppress(ForkServerError):
            for _ in range(count):
                self._asked.append(self._ask())

    def _ask(self) -> tuple[int, int, int]:
        """Send one fork request with the new host's pipe ends; (token, our ends)."""
        from protocol.internal import ForkRequest

        stdin_r, stdin_w = os.pipe()
        stderr_r, stderr_w = os.pipe()
        self._token += 1
        try:
            self.control.settimeout(FORK_TIMEOUT_S if self.ready else STARTUP_TIMEOUT_S)
            request = ForkRequest(token=self._token).datagram()
            socket.send_fds(self.control, [request], [stdin_r, stderr_w])
        except OSError as exc:
            os.close(stdin_w)
            os.close(stderr_r)
            raise ForkServerError(f"fork server did not answer: {exc}") from None
        finally:
            os.close(stdin_r)
            os.close(stderr_w)
        return self._token, stdin_w, stderr_r

    def _answer(self, token: int) -> int:
        """Wait for the reply to request `token`; the new pid.

        Replies to requests sent together (`prefork`) may come in any order:
        the server does not wait for one fork to finish before the next. A reply
        to a later request is kept for its own `_answer`.
        """
        from protocol.internal import ForkReply, MalformedFrame

        reply = self._early.pop(token, None)
        try:
            self.control.settimeout(FORK_TIMEOUT_S if self.ready else STARTUP_TIMEOUT_S)
            while reply is None:
                data = self.control.recv(4096)
                if not data:
                    raise ForkServerError("the fork server closed its socket")
                received = ForkReply.parse(data)
                if received.ready:
                    self.ready = True
                elif received.token == token:
                    reply = received
                elif received.token is not None and token < received.token <= self._token:
                    self._early[received.token] = received
        except (OSError, MalformedFrame) as exc:
            raise ForkServerError(f"fork server did not answer: {exc}") from None
        if reply.pid is None:
            raise ForkServerError(f"fork failed: {reply.error or 'no answer'}")
        return reply.pid

    def close(self, *, kill: bool = False) -> None:
        """Let the fork server go (closing its stdin makes it exit) and reap it.

        `kill=True` for a server that stopped answering: SIGKILL first. Hosts
        asked for and not handed out lose their stdin, so they exit (the
        supervisor reaps them as strays).
        """
        while self._asked:
            _token, stdin_w, stderr_r = self._asked.popleft()
            for fd in (stdin_w, stderr_r):
                os.close(fd)
        with contextlib.suppress(OSError):
            self.control.close()
        if kill:
            self.child.signal(signal.SIGKILL)
        self.child.release_lifeline()
        self.child.wait(1.0)
        self.child.close()


# -- the server process ---------------------------------------------------------


def _preload() -> None:
    """Import everything a worker needs, once, before any fork.

    Every worker module too: a restart then forks a process that only has to
    run its worker's `start()` (measured: ~25 ms from kill -9 to an answer).
    And what a worker's `start()` imports before READY: watchdog's native
    observer, which the file watcher imports lazily (~8 ms of its start).
    """
    from protocol.names import WorkerName
    from services.runtime import host  # noqa: F401 - the import is the point
    from services.runtime.registry import load_worker_class

    for name in WorkerName:
        load_worker_class(name)
    with contextlib.suppress(ImportError, OSError):  # no watchdog or no inotify: polled
        import watchdog.events
        import watchdog.observers  # noqa: F401


def _become_worker(stdin_fd: int, stderr_fd: int, control: socket.socket) -> None:
    """In the grandchild: take the pipes, wait to be adopted, run the host."""
    control.close()
    os.dup2(stdin_fd, 0)
    os.dup2(stderr_fd, 2)
    os.close(stdin_fd)
    os.close(stderr_fd)
    expected = int(os.environ.get(ENV_SUPERVISOR_PID, "0"))
    deadline = time.monotonic() + _REPARENT_TIMEOUT_S
    while os.getppid() != expected:  # adoption follows the middle process's exit
        if time.monotonic() > deadline:
            os._exit(0)
        time.sleep(0.0002)
    from services.runtime import host

    code = 1
    try:
        code = host.main()
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def main() -> int:
    """`python -m services.runtime.forkserver FD`: serve on the control socket FD."""
    return serve(socket.socket(fileno=int(sys.argv[1])))  # pass_fds keeps the number


def serve(control: socket.socket) -> int:
    """Preload, say ready, then serve fork requests until the supervisor closes our
    stdin or the socket (a spawned server, or one forked early: `forklaunch`)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # The middle processes (`_serve_one`) are reaped by the kernel: the next
    # request is served while the previous middle still forks and exits.
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    gc.disable()  # a forked server has it off already (forklaunch)
    _preload()
    from protocol.internal import ForkReply, ForkRequest

    imports_done()  # workers are forked with the imports frozen, the collector on

    control.send(ForkReply(ready=True).datagram())
    import select

    while True:
        readable, _, _ = select.select([control.fileno(), 0], [], [])
        if 0 in readable and not os.read(0, 4096):
            return 0  # the supervisor is gone
        if control.fileno() not in readable:
            continue
        message, fds, _flags, _address = socket.recv_fds(control, 4096, 2)
        if not message:
            return 0
        try:
            token = ForkRequest.model_validate_json(message).token
        except ValueError as exc:  # pydantic's ValidationError is a ValueError
            for fd in fds:
                os.close(fd)
            control.send(ForkReply(error=f"bad request: {exc}"[:1000]).datagram())
            continue
        if len(fds) != 2:
            for fd in fds:
                os.close(fd)
            control.send(ForkReply(token=token, error="expected 2 fds").datagram())
            continue
        _serve_one(control, token, fds[0], fds[1])


def _serve_one(control: socket.socket, token: int, stdin_fd: int, stderr_fd: int) -> None:
    """Fork a middle process that forks the worker, reports its pid and exits.

    Not waited for: the kernel reaps it (SIGCHLD ignored), so four start-up
    forks overlap instead of taking ~7 ms each in turn (docs/benchmarks.md,
    "Cold start, second pass"); the worker is adopted once its middle is gone.
    """
    from protocol.internal import ForkReply

    try:
        middle = os.fork()
    except OSError as exc:  # EAGAIN (pids limit), ENOMEM: say so, keep serving
        os.close(stdin_fd)
        os.close(stderr_fd)
        control.send(ForkReply(token=token, error=f"fork: {exc}").datagram())
        return
    if middle == 0:  # the middle process: fork the worker, report it, vanish
        try:
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # the worker reaps its own children
            worker = os.fork()
            if worker == 0:
                _become_worker(stdin_fd, stderr_fd, control)
            control.send(ForkReply(token=token, pid=worker).datagram())
        except OSError as exc:
            with contextlib.suppress(OSError):
                control.send(ForkReply(token=token, error=f"fork: {exc}").datagram())
        finally:
            os._exit(0)
    os.close(stdin_fd)
    os.close(stderr_fd)


if __name__ == "__main__":
    sys.exit(main())
