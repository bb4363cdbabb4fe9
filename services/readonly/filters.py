"""Which paths the file watcher reports: pure rules over project-relative paths.

Editors surround every save with files the writer never made: swap files,
backups, locks, temp files renamed over the target. Reporting those would turn
one save into a dozen events and fill the history with `.chapter-5.md.swp`.
The rules here name each editor's litter so the coalescer can see through it.

Everything is a function of the relative path alone (no disk access), so the
rules are tested by feeding strings.
"""

from __future__ import annotations

import re

from protocol.base import path_problem
from services.runtime.paths import WATCHED_FOLDERS

__all__ = [
    "IGNORED_DIRS",
    "IGNORED_NAMES",
    "is_ignored",
    "is_ignored_name",
    "is_reportable",
    "top_folder",
]

IGNORED_DIRS: frozenset[str] = frozenset({".session", ".git", ".hg", ".svn", ".idea", ".vscode"})
"""Folders whose whole content is tooling state, at any depth."""

IGNORED_NAMES: frozenset[str] = frozenset({".DS_Store", "Thumbs.db", "desktop.ini", ".directory"})
"""Operating-system litter, by exact name."""

_IGNORED_NAME = re.compile(
    "|".join(
        (
            # Vim swap files: `.name.swp`, then `.swo`, `.swn` ... for a second
            # Vim, and `.swx` for the probe Vim writes to test the folder.
            r"\.sw[a-px]$",
            # Backups: Vim's and Emacs's `name~`, Emacs numbered `name.~1~`.
            r"~$",
            # Emacs: lock symlink `.#name`, auto-save `#name#`.
            r"^\.#",
            r"^#.*#$",
            # JetBrains safe write: `name___jb_tmp___`, `name___jb_old___`.
            r"___jb_(?:tmp|old)___$",
            # Temp files renamed over the target (VS Code extensions, many tools).
            r"\.(?i:tmp)$",
            # gedit/GIO safe write, Kate swap, LibreOffice and MS Office locks,
            # Chromium-based editors' swap, NFS silly-rename files.
            r"^\.goutputstream-",
            r"\.kate-swp$",
            r"^\.~lock\..*#$",
            r"^~\$",
            r"\.crswap$",
            r"^\.nfs[0-9a-f]+",
        )
    )
)
"""One alternation, so a name costs one regex search (a 10,000-file scan checks each)."""


def is_ignored_name(name: str) -> bool:
    """True for a file name that is an editor's or the system's, never the writer's."""
    if name in IGNORED_NAMES:
        return True
    return _IGNORED_NAME.search(name) is not None


def top_folder(path: str) -> str | None:
    """The watched folder `path` lies in (`manuscript` ...), or None if outside all four."""
    head, sep, _rest = path.partition("/")
    if not sep or head not in WATCHED_FOLDERS:
        return None
    return head


def is_reportable(path: str) -> bool:
    """True if `path` can travel as a `ProjectPath` in an event (UTF-8, no control character).

    A name with undecodable bytes or a backslash is legal on Linux but would be
    rejected by every subscriber's validation; it is logged, not published.
    """
    if path_problem(path) is not None:
        return False
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def is_ignored(path: str) -> bool:
    """True unless `path` is a writer's file inside one of the four watched folders.

    `path` is relative to the project root with `/` separators. The watched
    folder itself (`manuscript`) is not a file and is ignored too.
    """
    if top_folder(path) is None:
        return True
    parts = path.split("/")
    if any(part in IGNORED_DIRS or part in {"", ".", ".."} for part in parts):
        return True
    return is_ignored_name(parts[-1]) or not is_reportable(path)
