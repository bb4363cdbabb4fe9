"""One supervisor per project: an flock on `.session/run/supervisor.lock`.

The kernel releases an flock when its holder dies, even by `kill -9`, so a
lock left by a crashed supervisor is simply taken over by the next start; the
pid written inside is only for messages ("already running (pid N)").
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

__all__ = ["AlreadyRunning", "SupervisorLock", "read_lock_pid"]


class AlreadyRunning(RuntimeError):
    """Another live supervisor holds the project's lock."""

    def __init__(self, pid: int | None) -> None:
        super().__init__(f"already running (pid {pid if pid is not None else 'unknown'})")
        self.pid = pid


def read_lock_pid(path: Path) -> int | None:
    """The pid recorded in the lock file, if any (it may be stale)."""
    try:
        text = path.read_text(encoding="ascii").strip()
    except (FileNotFoundError, UnicodeDecodeError):
        return None
    return int(text) if text.isdigit() else None


class SupervisorLock:
    """Held for the supervisor's whole life; released by close or by death."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd = -1
        self.took_over_from: int | None = None

    def acquire(self) -> None:
        """Take the lock or raise `AlreadyRunning` with the holder's pid."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise AlreadyRunning(read_lock_pid(self.path)) from None
        self.took_over_from = read_lock_pid(self.path)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        os.fsync(fd)
        self._fd = fd

    def is_held_elsewhere(self) -> bool:
        """Whether a live process holds the lock (without taking it)."""
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)
        return False

    def release(self) -> None:
        """Drop the lock (the file stays; its content no longer matters)."""
        if self._fd >= 0:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, 0)
            os.close(self._fd)
            self._fd = -1
