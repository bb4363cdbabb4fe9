"""The OS calls the store makes, behind one seam so tests can fail each one.

Crash-point tests replace a `FileOps` with one whose chosen step raises,
then check that the file on disk is the whole old or the whole new document.

Names may be `str` as well as `Path`: the atomic save passes names it built
once as strings, because a `Path` per call costs microseconds that show
beside a ~70 µs fsync (docs/benchmarks.md, "Atomic save").
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import TypeAlias

__all__ = ["DATA_FILE_MODE", "DIR_MODE", "FileOps", "RunFileOps", "StrPath", "ensure_private_dir"]

DATA_FILE_MODE = 0o600
DIR_MODE = 0o700

StrPath: TypeAlias = str | os.PathLike[str]
"""A file name as the store's calls take it: a `str` or a `Path`."""

_NEW_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
_APPEND_FLAGS = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC


class FileOps:
    """Thin, named wrappers over the syscalls of an atomic replace and an append."""

    def open_new(self, path: StrPath) -> int:
        """Create `path` exclusively, private to the user."""
        return os.open(path, _NEW_FLAGS, DATA_FILE_MODE)

    def open_append(self, path: StrPath) -> int:
        """Open (or create) `path` for appending, private to the user."""
        return os.open(path, _APPEND_FLAGS, DATA_FILE_MODE)

    def write(self, fd: int, data: bytes | memoryview) -> int:
        """One write(2); may be short, the caller loops."""
        return os.write(fd, data)

    def fsync(self, fd: int) -> None:
        """Make a file's data durable."""
        os.fsync(fd)

    def close(self, fd: int) -> None:
        """Close a descriptor."""
        os.close(fd)

    def replace(self, source: StrPath, target: StrPath) -> None:
        """Atomically rename `source` over `target` (same folder)."""
        os.replace(source, target)

    def keep_previous(
        self,
        current: StrPath,
        link: StrPath,
        previous: StrPath,
        *,
        may_share_inode: bool = True,
    ) -> bool:
        """Make `previous` a second name of `current`'s inode (no copy); False if impossible.

        Hard-links `current` to the temp name `link`, then renames that over
        `previous`. A missing `current` (the first save) or a file system
        without hard links leaves `previous` as it was.

        rename(2) does nothing when `previous` is already a name of the same
        inode (a retried save, or a crash between this step and the replace
        that follows it): `link` is then dropped here. A caller that knows
        `current` has no other name (it renamed that file into place itself
        and linked it nowhere since) passes `may_share_inode=False` and saves
        that unlink(2) in every save.
        """
        try:
            os.link(current, link)
        except OSError:
            return False
        try:
            os.replace(link, previous)
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(link)
            return False
        if may_share_inode:
            try:  # noqa: SIM105 - every save runs this; contextlib.suppress costs ~1 µs more
                os.unlink(link)
            except FileNotFoundError:
                pass
        return True

    def read_bytes(self, path: Path) -> bytes:
        """The whole content of a data file."""
        return path.read_bytes()

    def fsync_dir(self, folder: Path) -> None:
        """Make a folder's entries (a rename, a new file) durable."""
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def truncate(self, fd: int, length: int) -> None:
        """Cut a file to `length` bytes."""
        os.ftruncate(fd, length)

    def write_all(self, fd: int, data: bytes) -> None:
        """Write every byte, looping over short writes (a data file is one write(2) as a rule)."""
        if not data:
            return
        written = self.write(fd, data)
        if written == len(data):
            return
        view = memoryview(data)[written:]
        while view:
            view = view[self.write(fd, view) :]


class RunFileOps(FileOps):
    """Atomic, not durable: for a file that describes a running process.

    `endpoints.json` is replaced atomically (readers see all of it or none)
    but never fsynced: a crash of the machine stops the service anyway, and
    the next `start` removes the stale file. Its two fsyncs (file and folder)
    took 5-15 ms on the cold start's critical path, between the last READY
    and "ready" (docs/benchmarks.md, "Cold start, second pass").
    """

    def fsync(self, fd: int) -> None:
        """Nothing: the file need not survive a crash of the machine."""

    def fsync_dir(self, folder: Path) -> None:
        """Nothing: the rename need not survive a crash of the machine."""


def ensure_private_dir(folder: Path) -> None:
    """Create `folder` (and parents) and make it 0700, as `.session/` must be."""
    folder.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
    if (folder.stat().st_mode & 0o777) != DIR_MODE:
        folder.chmod(DIR_MODE)
