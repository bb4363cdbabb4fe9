"""What changed between two trees of the watched folders.

The watcher keeps one `FileStat` per reported file (`services.readonly.tree`,
the walk it shares with recovery). That tree answers the coalescer's "did
this path exist before?", confirms a change before it is published (a second
event for a file whose size, mtime and inode did not move is not a second
save), and is what a rescan is compared with here when the kernel's event
queue overflowed; `diff_trees` also pairs a delete and a create of one inode
into a move (renames between two watched folders arrive as two unrelated
events).
"""

from __future__ import annotations

from services.readonly.tree import FileStat, Tree
from services.watch.coalesce import FileChange

__all__ = ["GONE", "diff_trees"]


GONE = FileStat(-1, -1, -1)
"""A file we reported but could not stat since: it differs from every real stat."""


def diff_trees(old: Tree, new: Tree) -> list[FileChange]:
    """What changed from `old` to `new`: moves, deletions, creations, edits.

    Ordered moves, deletions, creations, modifications; by path within each.
    """
    gone = {path: stat for path, stat in old.files.items() if path not in new.files}
    # A rename keeps inode, size and mtime; a new file that merely reuses a
    # freed inode (ext4 does, at once) has a new mtime, so it is no move.
    gone_by_identity = {stat: path for path, stat in gone.items()}
    moved: list[FileChange] = []
    created: list[FileChange] = []
    for path in sorted(set(new.files) - set(old.files)):
        source = gone_by_identity.pop(new.files[path], None)
        if source is not None:
            del gone[source]
            moved.append(FileChange("moved", source, path))
        else:
            created.append(FileChange("created", path))
    deleted = [FileChange("deleted", path) for path in sorted(gone)]
    modified = [
        FileChange("modified", path)
        for path in sorted(set(old.files) & set(new.files))
        if old.files[path] != new.files[path]
    ]
    return moved + deleted + created + modified
