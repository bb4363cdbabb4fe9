"""What a project's `.session/` folder says: is a service running, where, and did the last one end?

Discovery goes through `.session/run/endpoints.json` (docs/protocol.md),
starting `supervisor start --detach` if asked; `interrupted_snapshot` reads
`.session/current.json` for the evidence of a session that did not stop cleanly.
Everything here is blocking file and process work, never a socket.

Whether a supervisor lives is decided as the supervisor itself decides it: its
pid must be alive and not a zombie, and it must hold the project's lock,
`.session/run/supervisor.lock`, an flock that the kernel releases the moment
its holder dies (even by `kill -9`), whether or not the dead process has been
reaped yet. `kill(pid, 0)` alone is not enough: a supervisor killed while its
parent does not reap it (a container whose pid 1 never does) stays a zombie,
and `kill(pid, 0)` still succeeds on a zombie.
"""

from __future__ import annotations

import fcntl
import logging
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path, PurePath

from pydantic import ValidationError

from protocol.client._defaults import (
    DEFAULT_START_TIMEOUT_S,
    ENDPOINTS_POLL_S,
    START_OUTPUT_TAIL_BYTES,
)
from protocol.client._errors import ServiceUnavailable
from protocol.codec import loads, loads_exact
from protocol.envelopes import EndpointsFile, describe_validation_error
from protocol.session import SessionDocument

__all__ = [
    "endpoints_path",
    "ensure_service",
    "find_endpoints",
    "interrupted_snapshot",
    "supervisor_alive",
]

logger = logging.getLogger(__name__)

_RUN_DIR = PurePath(".session", "run")
_CURRENT_FILE = PurePath(".session", "current.json")
_LOCK_FILE = PurePath(".session", "run", "supervisor.lock")


def endpoints_path(project: Path | str) -> Path:
    """Where the supervisor announces readiness for `project` (docs/protocol.md)."""
    return Path(project) / _RUN_DIR / "endpoints.json"


def _lock_holder(project: Path) -> int | None:
    """The pid written in the project's lock while a live process holds it, else None.

    Held but empty (the instant between a new supervisor's flock and its
    write) reads as 0, which matches no supervisor: the caller then looks
    again, or starts a service that finds the project taken and says so.
    """
    try:
        fd = os.open(project / _LOCK_FILE, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        try:
            # Shared and non-blocking, held for two system calls: a supervisor
            # taking the lock at this very instant is the only one affected.
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
            return int(text) if text.isdigit() else 0
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def supervisor_alive(project: Path, pid: int) -> bool:
    """Whether `pid` is the live supervisor of `project` (see the module docstring)."""
    # os.kill(0 or negative) would signal a whole process group: never a "yes".
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)  # cheap first answer: gone for good, no lock to look at
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists and belongs to someone else; the lock decides
    if _is_zombie(pid):
        return False  # also covers a successor that holds the lock but has not written its pid
    try:
        return _lock_holder(project) == pid
    except OSError:
        return True  # a lock we may not open (another user's): trust the pid


def _is_zombie(pid: int) -> bool:
    """Linux: dead but not reaped. Elsewhere (no /proc) the lock alone decides."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return False
    return stat[stat.rfind(")") + 2 :][:1] == "Z"


def find_endpoints(project: Path | str) -> EndpointsFile | None:
    """The endpoints of the service running for `project`, or None if none runs.

    None when endpoints.json is missing, unreadable, or names a supervisor
    that no longer holds the project's lock (a file left behind by a crash,
    which is exactly when it is not removed, zombie or not). Fields this
    version does not know are ignored, so a newer supervisor's file still works.
    """
    path = endpoints_path(project)
    try:
        raw = loads(path.read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        logger.warning("ignoring unreadable %s: %s", path, exc)
        return None
    if not isinstance(raw, dict):
        logger.warning("ignoring %s: not a JSON object", path)
        return None
    known = {name: raw[name] for name in EndpointsFile.model_fields if name in raw}
    try:
        endpoints = EndpointsFile.model_validate(known)
    except ValidationError as exc:
        logger.warning("ignoring %s: %s", path, describe_validation_error(exc))
        return None
    if not supervisor_alive(Path(project), endpoints.supervisor_pid):
        return None
    return endpoints


def _wait_for_endpoints(project: Path, deadline: float) -> EndpointsFile | None:
    while True:
        found = find_endpoints(project)
        remaining = deadline - time.monotonic()
        if found is not None or remaining <= 0:
            return found
        time.sleep(min(ENDPOINTS_POLL_S, remaining))


def ensure_service(
    project: Path | str, *, start: bool = True, timeout_s: float = DEFAULT_START_TIMEOUT_S
) -> EndpointsFile:
    """Return the running service's endpoints, starting the service if asked.

    Runs `python -m supervisor start --project DIR --detach` with stdin closed
    (so an interrupted previous session is resumed, never prompted for) and its
    output in a temporary file rather than a pipe (the detached supervisor may
    keep the descriptor open for its whole life; a pipe would block us until it
    exits). A start that loses a race with another starter exits 1, so whatever
    the exit code, endpoints.json is awaited until `timeout_s`. Blocking: from
    asyncio use `await asyncio.to_thread(ensure_service, ...)`.

    Raises `ServiceUnavailable` when nothing runs and `start` is False, or when
    no ready service appeared in time (quoting the start command's output).
    """
    project = Path(project)
    found = find_endpoints(project)
    if found is not None:
        return found
    if not start:
        raise ServiceUnavailable(f"no session service runs for {project}")
    deadline = time.monotonic() + timeout_s
    command = [sys.executable, "-m", "supervisor", "start", "--project", str(project), "--detach"]
    with tempfile.TemporaryFile() as output:
        try:
            completed = subprocess.run(
                command,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                timeout=timeout_s,
                check=False,
            )
            outcome = f"exit code {completed.returncode}"
        except subprocess.TimeoutExpired:
            outcome = f"no answer within {timeout_s:g} s"
        except OSError as exc:
            raise ServiceUnavailable(f"could not run {' '.join(command)}: {exc}") from exc
        found = _wait_for_endpoints(project, deadline)
        if found is not None:
            return found
        output.seek(0)
        said = output.read()[-START_OUTPUT_TAIL_BYTES:].decode("utf-8", "replace").strip()
    raise ServiceUnavailable(
        f"the session service for {project} did not become ready within {timeout_s:g} s "
        f"({' '.join(command[1:])}: {outcome}){': ' + said if said else ''}"
    )


def interrupted_snapshot(project: Path) -> SessionDocument | None:
    """The last snapshot of a session that ended without a clean stop, if any.

    The rule of `SessionDocument`: no `ended_at` (only a clean stop sets it)
    and an `owner_pid` that is no longer the project's live supervisor on this
    host (a dead, even unreaped, owner has released the lock). Only meaningful
    while no service runs, since a running one owns the document.
    """
    path = project / _CURRENT_FILE
    try:
        document = SessionDocument.model_validate(loads_exact(path.read_bytes()))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:  # ValidationError is a ValueError
        # The supervisor moves an unreadable file aside and says so; guessing
        # here would only add a second, vaguer message.
        logger.warning("cannot tell whether %s was interrupted: %s", path, exc)
        return None
    if document.ended_at is not None:
        return None
    same_host = document.host in (None, socket.gethostname())
    if (
        document.owner_pid is not None
        and same_host
        and supervisor_alive(project, document.owner_pid)
    ):
        return None
    return document
