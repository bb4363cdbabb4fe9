"""The project tree as the file watcher sees it, walked read-only.

The watcher keeps one `FileStat` per reported file in a `Tree`; the session
writer's recovery asks which files changed while nothing watched. Both walk
the watched folders the same way, with the same rules (`filters`): symbolic
links are recorded as themselves and never followed, so a link pointing out
of the project cannot make anyone read or report outside it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from stat import S_ISDIR
from typing import NamedTuple

from services.readonly.filters import IGNORED_DIRS, is_ignored_name, is_reportable
from services.runtime.paths import WATCHED_FOLDERS

__all__ = ["FileStat", "Tree", "scan_folder", "scan_project", "stat_file"]


class FileStat(NamedTuple):
    """What identifies one version of a file: enough to tell a save from noise."""

    mtime_ns: int
    size: int
    ino: int


def stat_file(path: str | os.PathLike[str]) -> FileStat | None:
    """The file's stat without following a symlink; None if absent or a folder."""
    try:
        st = os.lstat(path)
    except OSError:
        return None
    if S_ISDIR(st.st_mode):
        return None
    return FileStat(st.st_mtime_ns, st.st_size, st.st_ino)


class Tree:
    """Reported files by project-relative path, with an inode index for moves."""

    def __init__(self, files: dict[str, FileStat] | None = None) -> None:
        self.files: dict[str, FileStat] = dict(files or {})
        self._by_ino: dict[int, str] = {stat.ino: path for path, stat in self.files.items()}

    def __contains__(self, path: object) -> bool:
        return path in self.files

    def __len__(self) -> int:
        return len(self.files)

    def get(self, path: str) -> FileStat | None:
        """The stat last recorded for `path`."""
        return self.files.get(path)

    def set(self, path: str, stat: FileStat) -> None:
        """Record `path` as existing with `stat`."""
        old = self.files.get(path)
        if old is not None and self._by_ino.get(old.ino) == path:
            del self._by_ino[old.ino]
        self.files[path] = stat
        if stat.ino >= 0:
            self._by_ino[stat.ino] = path

    def remove(self, path: str) -> None:
        """Forget `path` (it was deleted or moved away)."""
        old = self.files.pop(path, None)
        if old is not None and self._by_ino.get(old.ino) == path:
            del self._by_ino[old.ino]

    def path_with_inode(self, ino: int) -> str | None:
        """A known path whose last stat had inode `ino`."""
        return self._by_ino.get(ino)

    def under(self, folder: str) -> list[str]:
        """Known files inside `folder` (relative), sorted."""
        prefix = folder.rstrip("/") + "/"
        return sorted(path for path in self.files if path.startswith(prefix))


def _walk(root: Path, folder: str) -> Iterator[tuple[str, FileStat]]:
    # The hot loop of a start on a big tree: folders in IGNORED_DIRS are pruned
    # here, so each file needs only the name rules, not the whole-path ones.
    stack: list[tuple[str, str]] = [(os.fspath(root / folder), folder)]
    while stack:
        absolute, relative = stack.pop()
        try:
            entries = os.scandir(absolute)
        except OSError:
            continue  # vanished or unreadable: nothing to report there
        with entries:
            for entry in entries:
                name = entry.name
                try:
                    if entry.is_dir(follow_symlinks=False):
                        if name not in IGNORED_DIRS:
                            stack.append((entry.path, f"{relative}/{name}"))
                        continue
                    if is_ignored_name(name):
                        continue
                    rel = f"{relative}/{name}"
                    if not (name.isascii() and name.isprintable()) and not is_reportable(rel):
                        continue
                    st = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                yield rel, FileStat(st.st_mtime_ns, st.st_size, st.st_ino)


def scan_folder(root: Path, folder: str) -> Tree:
    """Every reported file under `root/folder` (which may be a subfolder path)."""
    return Tree(dict(_walk(root, folder)))


def scan_project(root: Path, folders: Iterable[str] = WATCHED_FOLDERS) -> Tree:
    """Every reported file of the watched folders that are real folders inside `root`."""
    files: dict[str, FileStat] = {}
    for folder in folders:
        if (root / folder).is_dir() and not (root / folder).is_symlink():
            files.update(_walk(root, folder))
    return Tree(files)
