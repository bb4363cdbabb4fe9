"""The private runtime folder that holds a service's ipc sockets.

The sockets do not live in the project: a project on a FUSE mount, a network
share or a WSL Windows drive cannot hold unix sockets, and a deep project
path would pass the ~107-byte limit of a socket path (measured). They live in
a short folder of the user instead, mode 0700, so no other user can connect
to them, which matters most for the workers' link (a peer on it can pose as
a worker). The folder is `$XDG_RUNTIME_DIR/writers-factory/<digest>` or
`/tmp/wf-<uid>/<digest>`, where the digest comes from the project path: the
same project gets the same folder, so ipc endpoints survive a restart.

Every folder is checked after creation (a directory, not a link, ours, closed
to others) because `/tmp` is shared: someone may have made `wf-<uid>` first.
A folder that fails the check is skipped for a fresh `mkdtemp` one.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = [
    "MAX_IPC_PATH_BYTES",
    "PRIVATE_MODE",
    "NoSocketFolder",
    "is_private_dir",
    "private_runtime_dir",
    "remove_runtime_dir",
]

MAX_IPC_PATH_BYTES = 100
"""Longest socket path we use; the OS limit is 107 bytes (108 fail, measured)."""

PRIVATE_MODE = 0o700

_DIGEST_CHARS = 16
_LONGEST_SOCKET_NAME = "command.sock"


class NoSocketFolder(RuntimeError):
    """No folder of this user can hold unix sockets; the message says where we looked."""


def is_private_dir(folder: Path) -> bool:
    """A real directory (not a link), owned by this user, with no access for others."""
    try:
        info = folder.lstat()
    except OSError:
        return False
    return (
        stat.S_ISDIR(info.st_mode)
        and info.st_uid == os.getuid()
        and stat.S_IMODE(info.st_mode) & 0o077 == 0
    )


def _make_private(folder: Path) -> bool:
    with contextlib.suppress(FileExistsError, OSError):
        folder.mkdir(mode=PRIVATE_MODE)
    return is_private_dir(folder)


def _holds_sockets(folder: Path) -> bool:
    """Whether a unix socket can be bound here (FUSE and network shares say ENOSYS)."""
    probe = folder / f"probe-{os.getpid()}.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(str(probe))
    except OSError:
        return False
    finally:
        sock.close()
        with contextlib.suppress(OSError):
            probe.unlink()
    return True


def _fits(folder: Path) -> bool:
    return len(str(folder / _LONGEST_SOCKET_NAME).encode()) <= MAX_IPC_PATH_BYTES


def _candidates(project: Path) -> Iterator[Path]:
    digest = hashlib.sha256(str(project).encode()).hexdigest()[:_DIGEST_CHARS]
    xdg = os.environ.get("XDG_RUNTIME_DIR", "")
    if xdg and Path(xdg).is_absolute() and is_private_dir(Path(xdg)):
        parent = Path(xdg) / "writers-factory"
        if _make_private(parent):
            yield parent / digest
    parent = Path(tempfile.gettempdir()) / f"wf-{os.getuid()}"
    if _make_private(parent):
        yield parent / digest


def private_runtime_dir(project: Path) -> Path:
    """A 0700 folder of this user for `project`'s sockets, short and able to hold them.

    Raises `NoSocketFolder` when even a fresh temporary folder cannot hold a
    unix socket (never seen on Linux: /tmp is a local file system).
    """
    tried: list[str] = []
    for folder in _candidates(project):
        tried.append(str(folder))
        if _fits(folder) and _make_private(folder) and _holds_sockets(folder):
            return folder
    try:
        fresh = Path(tempfile.mkdtemp(prefix="wf-"))  # 0700, random name: always ours
    except OSError as exc:
        raise NoSocketFolder(f"cannot create a private folder for the sockets: {exc}") from None
    tried.append(str(fresh))
    if _fits(fresh) and _holds_sockets(fresh):
        return fresh
    remove_runtime_dir(fresh)
    raise NoSocketFolder(
        "no private folder can hold the service's unix sockets (tried "
        + ", ".join(tried)
        + "); set XDG_RUNTIME_DIR or TMPDIR to a local folder of yours"
    )


def remove_runtime_dir(folder: Path) -> None:
    """Remove the folder and the sockets in it (on a clean stop); leaves its parent."""
    if not is_private_dir(folder):
        return
    with contextlib.suppress(OSError):
        for entry in folder.iterdir():
            with contextlib.suppress(OSError):
                entry.unlink()
    with contextlib.suppress(OSError):
        folder.rmdir()
