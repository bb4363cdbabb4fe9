"""Worker processes as the supervisor sees them: spawn, watch, signal, reap.

Exit detection is driven by the exit itself: each child has a pidfd, which the
supervisor's poller watches next to its sockets, so a `kill -9` wakes the loop
at once with no polling timer and no SIGCHLD races.

A child is either a fresh interpreter (`spawn_host`, ~0.3 s of imports) or a
fork of the fork server (`services.runtime.forkserver`, a few ms). Either way
the supervisor is its parent (the fork server's grandchildren are adopted: the
supervisor is a child subreaper), so it reaps every one of them itself.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from services.runtime.forklaunch import child_environment

__all__ = ["ChildProcess", "become_subreaper", "child_environment", "describe_exit", "spawn_host"]

_HOST_MODULE = "services.runtime.host"
_PR_SET_CHILD_SUBREAPER = 36


@dataclass(eq=False)
class ChildProcess:
    """One worker process (or the fork server) and the descriptors we watch it by."""

    pid: int
    pidfd: int
    stderr_fd: int
    lifeline_fd: int
    """Write end of the child's stdin: the assignment goes there; closing it frees the child."""
    popen: subprocess.Popen[bytes] | None = None
    started_mono: float = field(default_factory=time.monotonic)
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    partial: bytearray = field(default_factory=bytearray)
    assigned: bool = False
    returncode: int | None = None

    def assign(self, line: bytes) -> None:
        """Tell a waiting host which worker to become (one JSON line on stdin)."""
        data = memoryview(line if line.endswith(b"\n") else line + b"\n")
        while data:
            data = data[os.write(self.lifeline_fd, data) :]
        self.assigned = True
        self.started_mono = time.monotonic()
        self.started_at = datetime.now(UTC)

    def signal(self, signum: int) -> None:
        """Send a signal, ignoring a process that is already gone."""
        if self.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signum)

    def reap(self) -> int | None:
        """Collect the exit status if the process has ended (never blocks)."""
        if self.returncode is not None:
            return self.returncode
        if self.popen is not None:
            self.returncode = self.popen.poll()
            return self.returncode
        try:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
        except ChildProcessError:
            # Not (yet) ours: a fork server grandchild killed before its adoption
            # completed. Adoption follows within microseconds; ask again then.
            return None
        if pid == 0:
            return None
        self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout_s: float) -> int | None:
        """Block up to `timeout_s` for the exit; the return code or None."""
        deadline = time.monotonic() + timeout_s
        while (code := self.reap()) is None and time.monotonic() < deadline:
            time.sleep(0.005)
        return code

    def read_stderr(self) -> list[str]:
        """Complete lines the process wrote to stderr since the last call."""
        lines: list[str] = []
        while self.stderr_fd >= 0:
            try:
                chunk = os.read(self.stderr_fd, 65536)
            except (BlockingIOError, OSError):
                break
            if not chunk:
                break
            self.partial += chunk
        while (newline := self.partial.find(b"\n")) != -1:
            lines.append(self.partial[:newline].decode("utf-8", errors="replace"))
            del self.partial[: newline + 1]
        return lines

    def release_lifeline(self) -> None:
        """Close our end of the child's stdin: a waiting or serving host then exits."""
        if self.popen is not None and self.popen.stdin is not None:
            with contextlib.suppress(OSError):
                self.popen.stdin.close()
        elif self.lifeline_fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self.lifeline_fd)
        self.lifeline_fd = -1

    def close(self) -> None:
        """Release every descriptor; the lifeline last, which frees the child."""
        owned = (
            [self.pidfd]
            if self.popen is not None
            else [self.pidfd, self.stderr_fd, self.lifeline_fd]
        )
        for fd in owned:
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        if self.popen is not None:  # its file objects own the pipes' descriptors
            for stream in (self.popen.stderr, self.popen.stdin):
                if stream is not None:
                    with contextlib.suppress(OSError):
                        stream.close()
        self.pidfd = self.stderr_fd = self.lifeline_fd = -1


def spawn_host(*, cwd: Path, module: str = _HOST_MODULE) -> ChildProcess:
    """Start a fresh interpreter running `module` (the worker host by default)."""
    popen = subprocess.Popen(
        [sys.executable, "-m", module],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        cwd=cwd,
        env=child_environment(),
        close_fds=True,
    )
    if popen.stderr is None or popen.stdin is None:  # pragma: no cover - PIPE always sets them
        raise RuntimeError("worker host was spawned without its pipes")
    stderr_fd = popen.stderr.fileno()
    os.set_blocking(stderr_fd, False)
    return ChildProcess(
        pid=popen.pid,
        pidfd=os.pidfd_open(popen.pid),
        stderr_fd=stderr_fd,
        lifeline_fd=popen.stdin.fileno(),
        popen=popen,
    )


def become_subreaper() -> bool:
    """Adopt orphaned descendants (the fork server's grandchildren); Linux only."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


def describe_exit(returncode: int) -> tuple[int | None, str | None]:
    """(exit code, signal name) from a Popen-style return code."""
    if returncode < 0:
        try:
            return None, signal.Signals(-returncode).name
        except ValueError:
            return None, f"signal {-returncode}"
    return returncode, None
