"""Turn what the file system saw into what the writer did.

One save in Vim is a probe file created and deleted, the target renamed to a
backup, a new target written, the backup deleted, and swap-file churn around
it; a safe-write editor writes a temp file and renames it over the target.
The writer did one thing: they saved the chapter. This module is fed the raw
changes `(kind, path, dest_path, at)` and, once a path has been quiet for a
short settle window (watchman settles in 20 ms), says what happened to it in
the writer's words: one `modified` per save, a `moved` for a rename, nothing
for a probe.

How: every path touched in the window remembers which pre-window file it now
holds (its own, another path's that was renamed onto it, a file born in the
window, or none). When the window closes, each file that existed before is
looked for: still in place and written (`modified`), somewhere else
(`moved`), gone (`deleted`) or replaced by a new file at the same name
(`modified`: delete+create and rename-over are saves). A new file nobody had
before is `created`. Paths linked by a rename settle together. Applied in
order, the changes reported always lead from the old tree to the new one.

Pure: no clock, no disk. Whether a path existed before the window is asked of
the caller (`existed`), which keeps the last known tree.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Final, Literal

from config import default_value
from services.readonly.filters import is_ignored

__all__ = [
    "DEFAULT_MAX_HOLD_S",
    "DEFAULT_SETTLE_S",
    "ChangeKind",
    "Coalescer",
    "FileChange",
]

ChangeKind = Literal["created", "modified", "deleted", "moved"]

DEFAULT_SETTLE_S: Final = float(default_value("watch", "settle_s"))
"""Quiet time before a path's changes are reported (watchman's settle)."""

DEFAULT_MAX_HOLD_S: Final = float(default_value("watch", "max_hold_s"))
"""A path written continuously is still reported this often."""

_NONE: Final = "\x00none"  # holds no file
_NEW: Final = "\x00new"  # holds a file born in the window


@dataclass(frozen=True, slots=True)
class FileChange:
    """One change as the writer made it; `dest_path` only for `moved`."""

    kind: ChangeKind
    path: str
    dest_path: str | None = None

    @property
    def topic(self) -> str:
        """The event topic, e.g. `file.modified`."""
        return f"file.{self.kind}"

    def data(self) -> dict[str, str]:
        """The event data (docs/protocol.md)."""
        if self.dest_path is None:
            return {"path": self.path}
        return {"path": self.path, "dest_path": self.dest_path}


@dataclass(slots=True)
class _Path:
    before: bool
    holds: str
    group: int
    content: bool = False  # the original it holds was written in the window


@dataclass(slots=True)
class _Group:
    paths: list[str] = field(default_factory=list)
    first_at: float = 0.0
    last_at: float = 0.0


class Coalescer:
    """A settle-window coalescer over project-relative paths (single thread)."""

    def __init__(
        self,
        *,
        existed: Callable[[str], bool],
        ignore: Callable[[str], bool] = is_ignored,
        settle_s: float = DEFAULT_SETTLE_S,
        max_hold_s: float = DEFAULT_MAX_HOLD_S,
    ) -> None:
        self.existed = existed
        self.ignore = ignore
        self.settle_s = settle_s
        self.max_hold_s = max_hold_s
        self._paths: dict[str, _Path] = {}
        self._groups: dict[int, _Group] = {}
        self._next_group = 0

    def __len__(self) -> int:
        """Paths with changes not yet reported."""
        return len(self._paths)

    # -- input -----------------------------------------------------------------------

    def feed(self, kind: ChangeKind, path: str, dest_path: str | None = None, *, at: float) -> None:
        """Take one raw change seen at monotonic time `at`."""
        if kind == "moved":
            if dest_path is None:
                raise ValueError("a moved change needs dest_path")
            self._feed_move(path, dest_path, at)
            return
        if self.ignore(path):
            return
        if kind == "created":
            self._arrive(path, at)
        elif kind == "deleted":
            self._depart(path, at)
        else:
            entry = self._touch(path, at)
            if entry.holds == _NONE:
                entry.holds = _NEW  # written while we thought it absent: it exists now
            else:
                entry.content = True

    def _feed_move(self, src: str, dest: str, at: float) -> None:
        src_ignored, dest_ignored = self.ignore(src), self.ignore(dest)
        if src_ignored and dest_ignored:
            return
        if src_ignored:
            self._arrive(dest, at)  # a temp file renamed over the target: a save
            return
        if dest_ignored:
            self._depart(src, at)  # renamed to a backup name: gone, as far as the writer sees
            return
        source = self._touch(src, at)
        target = self._touch(dest, at)
        self._link(source, target)
        if source.holds == _NONE:
            target.holds, target.content = _NEW, False
        else:
            target.holds, target.content = source.holds, source.content
        source.holds, source.content = _NONE, False
        self._group_of(target).last_at = at

    def _arrive(self, path: str, at: float) -> None:
        entry = self._touch(path, at)
        entry.holds, entry.content = _NEW, False

    def _depart(self, path: str, at: float) -> None:
        entry = self._touch(path, at)
        entry.holds, entry.content = _NONE, False

    def _touch(self, path: str, at: float) -> _Path:
        entry = self._paths.get(path)
        if entry is None:
            before = self.existed(path)
            group_id = self._next_group
            self._next_group += 1
            self._groups[group_id] = _Group(paths=[path], first_at=at, last_at=at)
            entry = _Path(before=before, holds=path if before else _NONE, group=group_id)
            self._paths[path] = entry
        else:
            group = self._groups[entry.group]
            group.last_at = max(group.last_at, at)
        return entry

    def _group_of(self, entry: _Path) -> _Group:
        return self._groups[entry.group]

    def _link(self, a: _Path, b: _Path) -> None:
        if a.group == b.group:
            return
        keep, gone = (a.group, b.group) if a.group < b.group else (b.group, a.group)
        merged, old = self._groups[keep], self._groups.pop(gone)
        merged.first_at = min(merged.first_at, old.first_at)
        merged.last_at = max(merged.last_at, old.last_at)
        for path in old.paths:
            self._paths[path].group = keep
        merged.paths.extend(old.paths)

    # -- output ----------------------------------------------------------------------

    def _due_at(self, group: _Group) -> float:
        return min(group.last_at + self.settle_s, group.first_at + self.max_hold_s)

    def next_deadline(self) -> float | None:
        """When the earliest pending path settles, or None when nothing is pending."""
        if not self._groups:
            return None
        return min(self._due_at(group) for group in self._groups.values())

    def flush(self, now: float) -> list[FileChange]:
        """The writer-level changes of every path that has settled by `now`."""
        due = [gid for gid, group in self._groups.items() if self._due_at(group) <= now]
        return self._emit(due)

    def flush_all(self) -> list[FileChange]:
        """Everything pending, settled or not (on a clean stop)."""
        return self._emit(list(self._groups))

    def discard(self) -> None:
        """Forget everything pending (a rescan is about to say what changed)."""
        self._paths.clear()
        self._groups.clear()

    def _emit(self, group_ids: Iterable[int]) -> list[FileChange]:
        changes: list[FileChange] = []
        for gid in sorted(group_ids):
            group = self._groups.pop(gid)
            entries = {path: self._paths.pop(path) for path in group.paths}
            changes.extend(_decide(entries))
        return changes


def _follow(moves: dict[str, str], start: str, seen: set[str]) -> tuple[list[str], str]:
    """Paths whose file moved, from `start` along the renames, until one already `seen`
    or one whose file stayed; and that last path. Marks the paths walked as seen."""
    trail: list[str] = []
    node = start
    while node in moves and node not in seen:
        seen.add(node)
        trail.append(node)
        node = moves[node]
    return trail, node


def _on_cycles(moves: dict[str, str]) -> set[str]:
    """Paths on a cycle of renames (a swap): each still exists, holding another's file.

    Each file is at one place, so a cycle has no way in or out: chains and
    cycles never share a path, and one walk with a `seen` set finds them all.
    """
    seen: set[str] = set()
    cyclic: set[str] = set()
    for start in moves:
        trail, end = _follow(moves, start, seen)
        if end in trail:
            cyclic.update(trail[trail.index(end) :])
    return cyclic


def _decide(entries: dict[str, _Path]) -> list[FileChange]:
    """What a settled group of linked paths amounts to, in first-touch order.

    Moves are ordered so that each can be applied in turn: in `a -> b` then
    `c -> a`, the first must be reported first or `a` would be lost. A swap
    (`a -> x`, `b -> a`, `x -> b`) cannot be told as moves applied in turn
    without a name that no longer exists: every path it swapped is reported
    `modified` (it still exists, with other content), as a rescan would.
    """
    where = {
        entry.holds: path for path, entry in entries.items() if entry.holds not in {_NONE, _NEW}
    }
    moves = {path: now_at for path, now_at in where.items() if now_at != path}
    swapped = _on_cycles(moves)
    changes: list[FileChange] = []
    destroyed: set[str] = set()
    emitted: set[str] = set()

    def emit_chain(source: str) -> None:
        # `a -> b -> c`: the file at each destination leaves first (`b -> c`, then
        # `a -> b`). Iterative: a script renaming a thousand files makes a long chain.
        chain, _ = _follow(moves, source, emitted)
        for moved_from in reversed(chain):
            dest = moves[moved_from]
            changes.append(FileChange("moved", moved_from, dest))
            if entries[dest].content:
                changes.append(FileChange("modified", dest))

    for path, entry in entries.items():
        if not entry.before:
            continue
        if path in swapped:
            changes.append(FileChange("modified", path))
        elif path in moves:
            emit_chain(path)
        elif where.get(path) == path:
            if entry.content:
                changes.append(FileChange("modified", path))
        else:
            destroyed.add(path)
            if entry.holds == _NEW:
                changes.append(FileChange("modified", path))  # delete+create, rename-over: a save
            elif entry.holds == _NONE:
                changes.append(FileChange("deleted", path))
            # else another file was renamed onto it: that `moved` says it all
    for path, entry in entries.items():
        if entry.holds == _NEW and path not in destroyed:
            changes.append(FileChange("created", path))
    return changes
