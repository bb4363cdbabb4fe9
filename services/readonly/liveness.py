"""Whether a process lives: the one answer every reader of a recorded pid uses.

A pid recorded in a file (a session's owner, the supervisor of a worker, the
holder of the project lock) may name a process that died long ago, or one
that died a moment ago and is not yet reaped. Both are dead here.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

__all__ = ["pid_alive"]


def pid_alive(pid: int | None) -> bool:
    """Whether a process with this pid exists and is not a zombie.

    `kill(pid, 0)` alone says yes to a zombie (dead, not yet reaped by its
    parent, as a container's pid 1 may never do), so on Linux the state in
    `/proc/PID/stat` is read too. A pid owned by another user exists.
    """
    if pid is None or pid <= 0:
        return False  # 0 and negatives would name a whole process group
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, owned by someone else
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
        return stat[stat.rfind(")") + 2 :][:1] != "Z"
    return True
