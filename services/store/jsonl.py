"""An append-only JSON Lines log: the journal's and the ledger's primitive.

Appends are durable when they return: the bytes are written and fsynced. When
several threads append at once, one of them (the leader) writes every waiting
record with one write and one fsync and wakes the others - a group commit, so
eight writers cost about one fsync, not eight.

A crash can leave a torn last line (no newline, or bytes that do not parse).
Opening the log detects it, reports it and cuts it off; every complete line
is kept. A torn line was never acknowledged: acknowledgement follows the fsync
of the whole line.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from protocol.codec import dumps_line, loads, loads_exact
from services.store.fileops import FileOps, ensure_private_dir

__all__ = ["BadLine", "JsonLinesLog", "TailRepair"]

_CHUNK = 64 * 1024


@dataclass(frozen=True)
class TailRepair:
    """A torn tail found at open and cut off."""

    offset: int
    """Where the log now ends (the torn bytes started here)."""
    removed_bytes: int
    preview: bytes
    """The first bytes of what was removed, for the log message."""


@dataclass(frozen=True)
class BadLine:
    """A complete line in the middle of the log that does not parse (kept on disk)."""

    offset: int
    error: str


class JsonLinesLog:
    """One JSON Lines file, appended to by its single owning process."""

    def __init__(self, path: Path, *, ops: FileOps | None = None) -> None:
        self.path = path
        self.ops = ops or FileOps()
        ensure_private_dir(path.parent)
        existed = path.exists()
        self._fd = self.ops.open_append(path)
        if not existed:
            self.ops.fsync_dir(path.parent)
        self.repair: TailRepair | None = self._repair_tail()
        self._size = os.fstat(self._fd).st_size
        self._cond = threading.Condition()
        self._pending: list[bytes] = []
        self._pending_fsync = False
        self._flushing = False
        self._batch = 0  # number of the batch now collecting records
        self._durable = -1  # highest batch number that is durable
        self._failed: dict[int, BaseException] = {}
        self.bad_lines: list[BadLine] = []

    @property
    def size(self) -> int:
        """Bytes of complete, durable lines."""
        return self._size

    def _repair_tail(self) -> TailRepair | None:
        size = os.fstat(self._fd).st_size
        if size == 0:
            return None
        keep = self._last_good_end(size)
        if keep == size:
            return None
        with self.path.open("rb") as reader:
            reader.seek(keep)
            preview = reader.read(80)
        self.ops.truncate(self._fd, keep)
        self.ops.fsync(self._fd)
        return TailRepair(offset=keep, removed_bytes=size - keep, preview=preview)

    def _last_good_end(self, size: int) -> int:
        """Offset just past the last complete line that parses."""
        with self.path.open("rb") as reader:
            end = size
            reader.seek(size - 1)
            if reader.read(1) == b"\n":
                # Complete last line: keep it if it parses, else cut it too.
                start = self._line_start(reader, size - 1)
                reader.seek(start)
                line = reader.read(size - start)
                try:
                    loads(line)
                except ValueError:
                    return start
                return end
            return self._line_start(reader, size)

    @staticmethod
    def _line_start(reader: BinaryIO, end: int) -> int:
        """Offset after the last newline strictly before `end` (0 if none)."""
        position = end
        while position > 0:
            step = min(_CHUNK, position)
            position -= step
            reader.seek(position)
            chunk = reader.read(step)
            newline = chunk.rfind(b"\n", 0, end - position if end - position < step else step)
            if newline != -1:
                return position + newline + 1
        return 0

    def append(self, record: Any) -> None:
        """Append one record durably; concurrent callers share one fsync."""
        self._commit([dumps_line(record)])

    def append_many(self, records: Sequence[Any], *, fsync: bool = True) -> None:
        """Append several records with one write and one fsync.

        `fsync=False` writes without waiting for the disk: the records survive
        the death of this process (they are in the kernel's page cache) but not
        a power cut. For records that another durable source can rebuild.
        """
        if records:
            self._commit([dumps_line(record) for record in records], fsync=fsync)

    def _commit(self, lines: list[bytes], *, fsync: bool = True) -> None:
        with self._cond:
            self._pending.extend(lines)
            self._pending_fsync = self._pending_fsync or fsync
            mine = self._batch  # our records ride in the batch now collecting
            while True:
                if mine in self._failed:
                    raise self._failed[mine]
                if self._durable >= mine:
                    return
                if not self._flushing:
                    break  # nobody is writing: we lead, our records are still pending
                self._cond.wait()
            batch, self._pending = self._pending, []
            sync, self._pending_fsync = self._pending_fsync, False
            number = self._batch
            self._batch += 1
            self._flushing = True
        error: BaseException | None = None
        try:
            self._write_durably(b"".join(batch), fsync=sync)
        except BaseException as exc:
            error = exc
        with self._cond:
            self._flushing = False
            if error is None:
                self._durable = number
            else:
                self._failed[number] = error
                for old in [n for n in self._failed if n < number - 64]:
                    del self._failed[old]
            self._cond.notify_all()
        if error is not None:
            raise error

    def _write_durably(self, data: bytes, *, fsync: bool = True) -> None:
        try:
            self.ops.write_all(self._fd, data)
            if fsync:
                self.ops.fsync(self._fd)
        except BaseException:
            # Never leave a partial record behind a live writer: cut back.
            self.ops.truncate(self._fd, self._size)
            raise
        self._size += len(data)

    def records(self, *, exact: bool = False, start: int = 0) -> Iterator[tuple[int, Any]]:
        """Yield `(offset, record)` for every complete line from `start`.

        A line that does not parse is skipped and remembered in `bad_lines`
        (it stays on disk: the log never deletes data).
        """
        parse = loads_exact if exact else loads
        limit = self._size
        with self.path.open("rb") as reader:
            reader.seek(start)
            offset = start
            for line in reader:
                if offset >= limit:
                    break
                if line.endswith(b"\n") and line.strip():
                    try:
                        yield offset, parse(line)
                    except ValueError as exc:
                        self.bad_lines.append(BadLine(offset=offset, error=str(exc)))
                offset += len(line)

    def close(self) -> None:
        """Close the file; appends after this raise."""
        if self._fd >= 0:
            self.ops.close(self._fd)
            self._fd = -1

    def __enter__(self) -> JsonLinesLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
