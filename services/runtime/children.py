"""Worker processes as the supervisor sees them: spawn, watch, signal, reap.

Exit detection is driven by the exit itself: each child has a pidfd, which the
supervisor's poller watches next to its sockets, so a `kill -9` wakes the loop
at once with no polling timer and no SIGCHLD races.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from services.runtime.wire import ENV_SUPERVISOR_PID

__all__ = ["ChildProcess", "describe_exit", "spawn_host"]

_HOST_MODULE = "services.runtime.host"


@dataclass(eq=False)
class ChildProcess:
    """One worker (or spare) process and the descriptors we watch it by."""

    popen: subprocess.Popen[bytes]
    pidfd: int
    stderr_fd: int
    started_mono: float = field(default_factory=time.monotonic)
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    partial: bytearray = field(default_factory=bytearray)
    assigned: bool = False

    @property
    def pid(self) -> int:
        """The OS process id."""
        return self.popen.pid

    def assign(self, line: bytes) -> None:
        """Tell a waiting host which worker to become (one JSON line on stdin)."""
        stdin = self.popen.stdin
        if stdin is None:
            raise RuntimeError("worker host was spawned without a stdin lifeline")
        stdin.write(line if line.endswith(b"\n") else line + b"\n")
        stdin.flush()
        self.assigned = True
        self.started_mono = time.monotonic()
        self.started_at = datetime.now(UTC)

    def signal(self, signum: int) -> None:
        """Send a signal, ignoring a process that is already gone."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signum)

    def reap(self) -> int | None:
        """Collect the exit status if the process has ended (never blocks)."""
        return self.popen.poll()

    def read_stderr(self) -> list[str]:
        """Complete lines the process wrote to stderr since the last call."""
        lines: list[str] = []
        while self.stderr_fd >= 0:
            try:
                chunk = os.read(self.stderr_fd, 65536)
            except BlockingIOError:
                break
            if not chunk:
                break
            self.partial += chunk
        while (newline := self.partial.find(b"\n")) != -1:
            lines.append(self.partial[:newline].decode("utf-8", errors="replace"))
            del self.partial[: newline + 1]
        return lines

    def close(self) -> None:
        """Release every descriptor; the lifeline (stdin) last, which frees the child."""
        with contextlib.suppress(OSError):
            os.close(self.pidfd)
        self.pidfd = self.stderr_fd = -1
        if self.popen.stdin is not None:
            with contextlib.suppress(OSError):
                self.popen.stdin.close()
        if self.popen.stderr is not None:
            with contextlib.suppress(OSError):
                self.popen.stderr.close()


def _code_root() -> str:
    # The folder holding the `services` package this supervisor runs from, so
    # a worker always runs the same code as its supervisor (checkout or wheel).
    return str(Path(__file__).resolve().parents[2])


def spawn_host(*, cwd: Path) -> ChildProcess:
    """Start a fresh interpreter running the worker host, waiting for its assignment."""
    env = dict(os.environ)
    env[ENV_SUPERVISOR_PID] = str(os.getpid())
    root = _code_root()
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    # pydantic scans every installed package's entry points for plugins at
    # import; workers use none, and the scan is on the restart path.
    env.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    popen = subprocess.Popen(
        [sys.executable, "-m", _HOST_MODULE],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        cwd=cwd,
        env=env,
        close_fds=True,
    )
    if popen.stderr is None:  # pragma: no cover - Popen with PIPE always sets it
        raise RuntimeError("worker host was spawned without a stderr pipe")
    stderr_fd = popen.stderr.fileno()
    os.set_blocking(stderr_fd, False)
    return ChildProcess(popen=popen, pidfd=os.pidfd_open(popen.pid), stderr_fd=stderr_fd)


def describe_exit(returncode: int) -> tuple[int | None, str | None]:
    """(exit code, signal name) from a Popen return code."""
    if returncode < 0:
        try:
            return None, signal.Signals(-returncode).name
        except ValueError:
            return None, f"signal {-returncode}"
    return returncode, None
