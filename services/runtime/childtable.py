"""Every live child of the supervisor, by the descriptors its poller watches.

Each child has two descriptors in the poller (its pidfd and its stderr pipe);
this table maps both back to the child and its worker slot, writes what the
child says on stderr to its own log file, reaps orphans adopted from the fork
server, and at the end makes sure nothing is left running.
"""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path

import zmq

from config import LoggingSettings
from services.runtime.children import ChildProcess
from services.runtime.logs import RotatingLineFile
from services.runtime.slots import WorkerSlot

__all__ = ["FORK_SERVER_LOG", "ChildTable"]

FORK_SERVER_LOG = "fork_server"


class ChildTable:
    """Children by descriptor, with their logs."""

    def __init__(self, poller: zmq.Poller, logs_dir: Path, logging: LoggingSettings) -> None:
        self._poller = poller
        self._logs_dir = logs_dir
        self._logging = logging
        self._by_fd: dict[int, tuple[ChildProcess, WorkerSlot | None]] = {}
        self._logs: dict[str, RotatingLineFile] = {}

    def add(self, child: ChildProcess, slot: WorkerSlot | None) -> None:
        """Watch `child` (its exit and its stderr), on behalf of `slot`."""
        for fd in (child.pidfd, child.stderr_fd):
            self._by_fd[fd] = (child, slot)
            self._poller.register(fd, zmq.POLLIN)

    def remove(self, child: ChildProcess) -> None:
        """Stop watching `child` (before its descriptors are closed)."""
        for fd in (child.pidfd, child.stderr_fd):
            self._by_fd.pop(fd, None)
            with contextlib.suppress(KeyError):
                self._poller.unregister(fd)

    def get(self, fd: int) -> tuple[ChildProcess, WorkerSlot | None] | None:
        """The child behind a ready descriptor (None once it was removed)."""
        return self._by_fd.get(fd)

    def log(self, slot: WorkerSlot | None, line: str) -> None:
        """Append a line the child wrote to `.session/logs/<worker>.log` (rotated)."""
        name = slot.name.value if slot else FORK_SERVER_LOG
        sink = self._logs.get(name)
        if sink is None:
            sink = RotatingLineFile(
                self._logs_dir / f"{name}.log",
                max_bytes=self._logging.max_bytes,
                backups=self._logging.backups,
            )
            self._logs[name] = sink
        sink.write(line)

    def reap_strays(self) -> None:
        """Reap adopted processes nobody tracks (a grandchild of a fork server that
        was replaced mid-fork), so no zombie outlives its use."""
        known = {child.pid for child, _ in self._by_fd.values()}
        while True:
            try:
                found = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            except ChildProcessError:
                return
            if found is None or found.si_pid in known:
                return  # ours: reaped by its own pidfd handling
            with contextlib.suppress(ChildProcessError):
                os.waitpid(found.si_pid, 0)

    def end_all(self, grace_s: float) -> None:
        """Free every child still here (close its lifeline, wait, then SIGKILL) and reap it."""
        unique = {id(child): (child, slot) for child, slot in self._by_fd.values()}
        for child, slot in unique.values():
            lines = child.read_stderr()
            if child.reap() is None:
                child.release_lifeline()  # a host whose lifeline closes exits
                if child.wait(grace_s) is None:
                    child.signal(signal.SIGKILL)
                    child.wait(5.0)
            for line in lines + child.read_stderr():
                self.log(slot, line)
            child.close()
        self._by_fd.clear()
        for sink in self._logs.values():
            sink.close()
