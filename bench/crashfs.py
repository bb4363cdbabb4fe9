"""A crash-state explorer on the store's file operations, after SQLite's crash VFS and ALICE.

While a workload runs, `CrashRecorder` sits in the seam every durable write
goes through (`services.store.fileops.FileOps`, plus `Path.unlink` for the
files the store deletes) and keeps a model of what the disk holds: for each
file its bytes as written and as last fsynced; for each folder its entries
as they are and as of its last folder fsync, with the renames, creates,
links and unlinks made since. After every recorded step it keeps a snapshot
of that model (bytes are immutable, so a snapshot is cheap).

`crash_states(snapshot)` then lists what a power cut at that step could
leave on disk:

* everything written reaches the disk (what `kill -9` leaves);
* for each folder, the entry changes since its last fsync, undone from any
  point on (a rename, a new file or a `.prev` link not followed by a folder
  fsync may be forgotten; changes are kept in order, as ext4's journal does);
* for each file, the bytes written since its last fsync dropped, torn at each
  4 KiB block, or present in length but zero-filled (delayed allocation);
* nothing unsynced at all.

`materialise` writes one state into a fresh folder, where the workload's
checker restarts the worker logic on it. Modelled from the seam alone: a
file changed behind it (none is, among the data files) fails `verify`.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from services.store.fileops import FileOps

__all__ = ["BLOCK_BYTES", "CrashRecorder", "CrashState", "Snapshot", "crash_states", "materialise"]

BLOCK_BYTES = 4096
"""The unit in which unsynced data reaches the disk (a page)."""

DirOp = tuple[str, str, int]
"""("set", name, inode) or ("del", name, -1), in one folder."""


@dataclass(frozen=True)
class Snapshot:
    """The model after one recorded step."""

    step: int
    label: str
    durable: dict[str, dict[str, int]]
    """Per folder (relative path): its entries as of its last folder fsync."""
    pending: dict[str, tuple[DirOp, ...]]
    """Per folder: entry changes since then, in order."""
    data: dict[int, bytes]
    synced: dict[int, bytes]
    acked: int
    """How many of the workload's operations were acknowledged by this step."""


@dataclass(frozen=True)
class CrashState:
    """One disk a power cut could leave: relative path -> bytes."""

    step: int
    kind: str
    files: dict[str, bytes]
    acked: int

    def digest(self) -> str:
        """Identifies equal states reached from different steps or kinds."""
        sha = hashlib.sha256()
        for name in sorted(self.files):
            sha.update(name.encode() + b"\0" + hashlib.sha256(self.files[name]).digest())
        return sha.hexdigest()


@dataclass
class _Model:
    durable: dict[str, dict[str, int]] = field(default_factory=dict)
    current: dict[str, dict[str, int]] = field(default_factory=dict)
    pending: dict[str, list[DirOp]] = field(default_factory=dict)
    data: dict[int, bytes] = field(default_factory=dict)
    synced: dict[int, bytes] = field(default_factory=dict)


class CrashRecorder:
    """Records the durable-write steps under `root` while installed (see `recording`)."""

    def __init__(self, root: Path, *, tracked: Callable[[str], bool] | None = None) -> None:
        self.root = root.absolute()
        self.tracked = tracked or (lambda relative: relative.startswith(".session/"))
        self.snapshots: list[Snapshot] = []
        self.acked = 0
        self._model = _Model()
        self._fds: dict[int, tuple[int, int | None]] = {}  # fd -> (inode, position or None)
        self._next_inode = 1
        self._lock = threading.RLock()
        self._scan()

    # -- the model -------------------------------------------------------------------

    def _relative(self, path: Path) -> str | None:
        try:
            relative = Path(path).absolute().relative_to(self.root).as_posix()
        except ValueError:
            return None
        return relative if self.tracked(relative) else None

    def _scan(self) -> None:
        """Everything already on disk is durable."""
        for folder, _dirs, files in os.walk(self.root):
            for name in files:
                relative = self._relative(Path(folder) / name)
                if relative is None:
                    continue
                content = (Path(folder) / name).read_bytes()
                inode = self._new_inode(content, content)
                parent, base = relative.rsplit("/", 1)
                self._model.durable.setdefault(parent, {})[base] = inode
                self._model.current.setdefault(parent, {})[base] = inode

    def _new_inode(self, data: bytes = b"", synced: bytes = b"") -> int:
        inode = self._next_inode
        self._next_inode += 1
        self._model.data[inode] = data
        self._model.synced[inode] = synced
        return inode

    def _dir_op(self, relative: str, op: DirOp) -> None:
        parent, _ = relative.rsplit("/", 1)
        model = self._model
        entries = model.current.setdefault(parent, {})
        model.durable.setdefault(parent, {})
        if op[0] == "set":
            entries[op[1]] = op[2]
        else:
            entries.pop(op[1], None)
        model.pending.setdefault(parent, []).append(op)

    def _snap(self, label: str) -> None:
        model = self._model
        self.snapshots.append(
            Snapshot(
                step=len(self.snapshots),
                label=label,
                durable={folder: dict(entries) for folder, entries in model.durable.items()},
                pending={folder: tuple(ops) for folder, ops in model.pending.items() if ops},
                data=dict(model.data),
                synced=dict(model.synced),
                acked=self.acked,
            )
        )

    def ack(self) -> None:
        """The workload acknowledged one more operation (its reply would go out now)."""
        with self._lock:
            self.acked += 1

    # -- the seam ----------------------------------------------------------------------

    def _open(self, path: Path, fd: int, *, append: bool, existed: bool) -> None:
        relative = self._relative(path)
        if relative is None:
            return
        parent, name = relative.rsplit("/", 1)
        inode = self._model.current.get(parent, {}).get(name) if existed else None
        if inode is None:
            inode = self._new_inode()
            self._dir_op(relative, ("set", name, inode))
            self._snap(f"create {relative}")
        self._fds[fd] = (inode, None if append else 0)

    def install(self) -> Callable[[], None]:  # noqa: PLR0915 - one closure per patched call, in one place
        """Patch `FileOps` and `Path.unlink`; returns the function that undoes it."""
        recorder = self
        originals: dict[str, Any] = {
            name: getattr(FileOps, name)
            for name in ("open_new", "open_append", "write", "fsync", "close", "truncate")
        }
        originals |= {name: getattr(FileOps, name) for name in ("replace", "keep_previous")}
        originals["fsync_dir"] = FileOps.fsync_dir
        unlink = Path.unlink

        def open_new(ops: FileOps, path: Path) -> int:
            with recorder._lock:
                fd: int = originals["open_new"](ops, path)
                recorder._open(path, fd, append=False, existed=False)
                return fd

        def open_append(ops: FileOps, path: Path) -> int:
            with recorder._lock:
                existed = path.exists()
                fd: int = originals["open_append"](ops, path)
                recorder._open(path, fd, append=True, existed=existed)
                return fd

        def write(ops: FileOps, fd: int, data: bytes | memoryview) -> int:
            with recorder._lock:
                written: int = originals["write"](ops, fd, data)
                known = recorder._fds.get(fd)
                if known is not None:
                    inode, position = known
                    old = recorder._model.data[inode]
                    chunk = bytes(data[:written])
                    if position is None:
                        recorder._model.data[inode] = old + chunk
                    else:
                        padded = old.ljust(position, b"\0")
                        new = padded[:position] + chunk + padded[position + written :]
                        recorder._model.data[inode] = new
                        recorder._fds[fd] = (inode, position + written)
                    recorder._snap("write")
                return written

        def fsync(ops: FileOps, fd: int) -> None:
            with recorder._lock:
                originals["fsync"](ops, fd)
                known = recorder._fds.get(fd)
                if known is not None:
                    recorder._model.synced[known[0]] = recorder._model.data[known[0]]
                    recorder._snap("fsync")

        def close(ops: FileOps, fd: int) -> None:
            with recorder._lock:
                recorder._fds.pop(fd, None)
                originals["close"](ops, fd)

        def truncate(ops: FileOps, fd: int, length: int) -> None:
            with recorder._lock:
                originals["truncate"](ops, fd, length)
                known = recorder._fds.get(fd)
                if known is not None:
                    data = recorder._model.data[known[0]]
                    recorder._model.data[known[0]] = data[:length].ljust(length, b"\0")
                    recorder._snap("truncate")

        def replace(ops: FileOps, source: Path, target: Path) -> None:
            with recorder._lock:
                originals["replace"](ops, source, target)
                old, new = recorder._relative(source), recorder._relative(target)
                if old is not None and new is not None:
                    parent, name = old.rsplit("/", 1)
                    inode = recorder._model.current.get(parent, {}).get(name)
                    if inode is not None:
                        recorder._dir_op(new, ("set", new.rsplit("/", 1)[1], inode))
                        recorder._dir_op(old, ("del", name, -1))
                        recorder._snap(f"rename {old} -> {new}")

        def keep_previous(
            ops: FileOps, current: Path, link: Path, previous: Path, **options: bool
        ) -> bool:
            with recorder._lock:
                done: bool = originals["keep_previous"](ops, current, link, previous, **options)
                cur, prev = recorder._relative(current), recorder._relative(previous)
                if done and cur is not None and prev is not None:
                    parent, name = cur.rsplit("/", 1)
                    inode = recorder._model.current.get(parent, {}).get(name)
                    if inode is not None:
                        recorder._dir_op(prev, ("set", prev.rsplit("/", 1)[1], inode))
                        recorder._snap(f"link {cur} -> {prev}")
                return done

        def fsync_dir(ops: FileOps, folder: Path) -> None:
            with recorder._lock:
                originals["fsync_dir"](ops, folder)
                relative = recorder._relative(folder / "x")
                if relative is not None:
                    parent = relative.rsplit("/", 1)[0]
                    model = recorder._model
                    model.durable[parent] = dict(model.current.get(parent, {}))
                    model.pending[parent] = []
                    recorder._snap(f"fsync_dir {parent}")

        def path_unlink(path: Path, missing_ok: bool = False) -> None:
            with recorder._lock:
                unlink(path, missing_ok=missing_ok)
                relative = recorder._relative(path)
                if relative is not None:
                    parent, name = relative.rsplit("/", 1)
                    if name in recorder._model.current.get(parent, {}):
                        recorder._dir_op(relative, ("del", name, -1))
                        recorder._snap(f"unlink {relative}")

        patched: dict[str, Any] = {
            "open_new": open_new,
            "open_append": open_append,
            "write": write,
            "fsync": fsync,
            "close": close,
            "truncate": truncate,
            "replace": replace,
            "keep_previous": keep_previous,
            "fsync_dir": fsync_dir,
        }
        for name, function in patched.items():
            setattr(FileOps, name, function)
        Path.unlink = path_unlink  # type: ignore[method-assign,assignment]

        def uninstall() -> None:
            for name, function in originals.items():
                setattr(FileOps, name, function)
            Path.unlink = unlink  # type: ignore[method-assign]

        return uninstall

    @contextlib.contextmanager
    def recording(self) -> Iterator[CrashRecorder]:
        """Install for the duration of a `with` block."""
        uninstall = self.install()
        try:
            yield self
        finally:
            uninstall()

    def verify(self) -> list[str]:
        """Differences between the model (everything written) and the real disk."""
        problems: list[str] = []
        model = self._model
        for folder, entries in model.current.items():
            for name, inode in entries.items():
                path = self.root / folder / name
                try:
                    real = path.read_bytes()
                except OSError as exc:
                    problems.append(f"{folder}/{name}: {exc}")
                    continue
                if real != model.data[inode]:
                    problems.append(f"{folder}/{name}: the model holds other bytes")
        return problems


def _entries_after(durable: dict[str, int], ops: tuple[DirOp, ...], count: int) -> dict[str, int]:
    entries = dict(durable)
    for kind, name, inode in ops[:count]:
        if kind == "set":
            entries[name] = inode
        else:
            entries.pop(name, None)
    return entries


def _data_variants(data: bytes, synced: bytes) -> Iterator[tuple[str, bytes]]:
    """What an unsynced file may hold after a power cut (not counting `data` itself)."""
    if data == synced:
        return
    yield "dropped", synced
    if not data.startswith(synced):
        return  # rewritten or truncated: old or new, nothing between
    start = len(synced)
    cut = (start // BLOCK_BYTES + 1) * BLOCK_BYTES
    while cut < len(data):
        yield f"torn@{cut}", data[:cut]
        cut += BLOCK_BYTES
    yield "zeros", synced + b"\0" * (len(data) - start)


def _files(snapshot: Snapshot, counts: dict[str, int], data: dict[int, bytes]) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    for folder, durable in snapshot.durable.items():
        ops = snapshot.pending.get(folder, ())
        for name, inode in _entries_after(durable, ops, counts.get(folder, len(ops))).items():
            files[f"{folder}/{name}"] = data.get(inode, snapshot.data[inode])
    return files


def crash_states(snapshot: Snapshot) -> Iterator[CrashState]:
    """Every disk a power cut just after `snapshot`'s step could leave (see the module doc)."""

    def state(kind: str, counts: dict[str, int], data: dict[int, bytes]) -> CrashState:
        return CrashState(snapshot.step, kind, _files(snapshot, counts, data), snapshot.acked)

    yield state("all-written", {}, {})
    for folder, ops in snapshot.pending.items():
        for count in range(len(ops)):
            yield state(f"undo {folder}[{count}:]", {folder: count}, {})
    live = {inode for entries in snapshot.durable.values() for inode in entries.values()}
    for ops in snapshot.pending.values():
        live |= {inode for kind, _, inode in ops if kind == "set"}
    for inode in sorted(live):
        for kind, content in _data_variants(snapshot.data[inode], snapshot.synced[inode]):
            yield state(f"{kind} #{inode}", {}, {inode: content})
    nothing = dict.fromkeys(snapshot.pending, 0)
    yield state("only-synced", nothing, dict(snapshot.synced))


def materialise(state: CrashState, root: Path, folders: tuple[str, ...] = ()) -> Path:
    """Write `state` under `root` (created), with `folders` present even if empty."""
    for folder in folders:
        (root / folder).mkdir(parents=True, exist_ok=True, mode=0o700)
    for relative, content in state.files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        path.write_bytes(content)
        path.chmod(0o600)
    return root
