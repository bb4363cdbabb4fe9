"""OS errors as sentences: what happened to which file, and what to do about it.

A writer should never see a traceback for a full disk or a folder sitting
where a data file belongs; the command exits 1 with one clear line instead.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

__all__ = ["disk_is_full", "explain_os_error"]

_NO_SPACE = {errno.ENOSPC, errno.EDQUOT}


def disk_is_full(folder: Path) -> bool:
    """Whether the file system holding `folder` has no block left for us."""
    try:
        stats = os.statvfs(folder)
    except OSError:
        return False
    return stats.f_bavail == 0


def explain_os_error(exc: OSError, project: Path | None = None) -> str:
    """One line for stderr (without the `supervisor: ` prefix)."""
    if exc.filename:
        where = str(exc.filename)
    elif project is not None:
        where = f"a file of {project.resolve()}"
    else:
        where = "a file"
    if exc.errno in _NO_SPACE:
        return (
            f"the disk is full (writing {where}): free some space and try again; "
            "nothing that was acknowledged is lost"
        )
    if isinstance(exc, IsADirectoryError):
        return (
            f"{where} is a folder where a data file belongs: move it aside "
            f"(`mv {where} {where}.aside`) and try again; the service rebuilds the file "
            "from its journal"
        )
    if isinstance(exc, PermissionError):
        return f"permission denied on {where}: check who owns the project's .session folder"
    if isinstance(exc, NotADirectoryError):
        return f"a file sits where a folder belongs on the way to {where}: move it aside"
    reason = exc.strerror or str(exc)
    return f"{reason} ({where})"
