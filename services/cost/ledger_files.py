"""The files of `.session/ledger/`: monthly JSON Lines and one checkpoint.

`YYYY-MM.jsonl` holds the records whose time falls in that UTC month (UTC so
a change of the writer's time zone never moves a record between files).
Appends go through `services.store.JsonLinesLog` (one write and one fsync per
batch); reading here is read-only - a torn last line is skipped, never cut
(cutting is the owning process's job, done when it opens the log).

`checkpoint.json` is the state at a position of the ledger (file, offset) plus
a digest of the line that ends there. It is only a cache: a checkpoint whose
position is not in the ledger (file gone, file shorter, different line) is
ignored and the state is rebuilt from the month files.
"""

from __future__ import annotations

import hashlib
import mmap
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from protocol.codec import dumps, loads
from protocol.ledger import (
    CHECKPOINT_FORMAT,
    CheckpointPosition,
    LedgerCheckpoint,
    LedgerLine,
    decode_ledger_line,
)
from services.cost.records import reply_of, request_id_of
from services.store import AtomicJsonFile, RetryPolicy, SaveOutcome

__all__ = [
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_NAME",
    "BadRecord",
    "LedgerFiles",
    "Position",
    "RecordedReply",
    "month_file_name",
]

CHECKPOINT_NAME = "checkpoint.json"
_MONTH_FILE = re.compile(r"^\d{4}-\d{2}\.jsonl$")
_BACKSCAN = 64 * 1024


@dataclass(frozen=True)
class RecordedReply:
    """A first reply still in its ledger line: parsed exactly only if a re-send asks."""

    line: bytes

    def resolve(self) -> Any:
        """The reply, exactly as first sent."""
        return reply_of(decode_ledger_line(self.line))


def month_file_name(moment: datetime) -> str:
    """`2026-11.jsonl` for a moment in November 2026 (UTC; a naive moment is taken as UTC)."""
    utc = moment.astimezone(UTC) if moment.tzinfo is not None else moment
    return f"{utc.year:04d}-{utc.month:02d}.jsonl"


@dataclass(frozen=True)
class Position:
    """A place in the ledger: just after the line ending at `offset` in `file`."""

    file: str
    offset: int
    digest: str
    """sha256 of the line that ends at `offset` ("" when offset is 0)."""


@dataclass(frozen=True)
class BadRecord:
    """A complete line that does not parse (kept on disk, skipped, reported)."""

    file: str
    offset: int
    error: str


class LedgerFiles:
    """Reads the month files and the checkpoint; never writes a month file."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.bad_records: list[BadRecord] = []

    @property
    def checkpoint_path(self) -> Path:
        """`.session/ledger/checkpoint.json`."""
        return self.folder / CHECKPOINT_NAME

    def month_files(self) -> list[Path]:
        """Every month file, oldest first."""
        if not self.folder.is_dir():
            return []
        return sorted(p for p in self.folder.iterdir() if _MONTH_FILE.match(p.name))

    def records(self, path: Path, start: int = 0) -> Iterator[tuple[int, LedgerLine, bytes]]:
        """Yield `(end offset, record, line)` for each complete line from `start`.

        Each line is decoded with its model, money exact (about 50 µs a line;
        a checkpoint keeps the tail a start replays to a few thousand lines).
        A complete line that is not a ledger record is kept on disk, skipped
        and listed in `bad_records`.
        """
        with path.open("rb") as reader:
            reader.seek(start)
            offset = start
            for line in reader:
                if not line.endswith(b"\n"):
                    return  # a torn last line was never acknowledged
                offset += len(line)
                if not line.strip():
                    continue
                try:
                    record = decode_ledger_line(line)
                except (ValueError, ArithmeticError) as exc:
                    error = str(exc).splitlines()[0] if str(exc) else repr(exc)
                    self.bad_records.append(BadRecord(path.name, offset - len(line), error))
                    continue
                yield offset, record, line

    def position_at(self, path: Path, offset: int) -> Position:
        """The position just after the line that ends at `offset` in `path`."""
        return Position(path.name, offset, self._digest(path, offset) or "")

    def _digest(self, path: Path, offset: int) -> str | None:
        """sha256 of the line ending at `offset`; None if no line ends there."""
        if offset == 0:
            return ""
        try:
            with path.open("rb") as reader:
                start = offset
                tail = b""
                while start > 0:
                    step = min(_BACKSCAN, start)
                    start -= step
                    reader.seek(start)
                    tail = reader.read(step) + tail
                    cut = tail.rfind(b"\n", 0, len(tail) - 1)
                    if cut != -1:
                        tail = tail[cut + 1 :]
                        break
        except OSError:
            return None
        if not tail.endswith(b"\n"):
            return None
        return hashlib.sha256(tail).hexdigest()

    def holds(self, position: Position) -> bool:
        """Whether the ledger still has exactly that line at that place."""
        path = self.folder / position.file
        try:
            if path.stat().st_size < position.offset:
                return False
        except OSError:
            return False
        return self._digest(path, position.offset) == position.digest

    # -- checkpoint -----------------------------------------------------------------

    def read_checkpoint(self) -> tuple[LedgerCheckpoint | None, str | None]:
        """(checkpoint, None), (None, None) when there is none, or (None, why not)."""
        try:
            data = self.checkpoint_path.read_bytes()
        except FileNotFoundError:
            return None, None
        except OSError as exc:
            return None, f"unreadable: {exc}"
        try:
            value = loads(data)
        except ValueError as exc:
            return None, f"does not parse: {exc}"
        try:
            return LedgerCheckpoint.model_validate(value), None
        except ValidationError as exc:
            # A checkpoint of another `format` lands here too: it is rebuilt, not read.
            return None, f"not a checkpoint of format {CHECKPOINT_FORMAT}: {exc}"

    def write_checkpoint(
        self, position: Position, state: dict[str, Any], *, retry: RetryPolicy | None = None
    ) -> SaveOutcome:
        """Replace the checkpoint atomically (a cache: a failure only costs replay time).

        `state` is `LedgerState.to_checkpoint()`; the model checks it before it is
        written, and a state it refuses is a failed save (reported by the caller),
        never a crash: without a checkpoint a start only replays more.
        """
        where = {"file": position.file, "offset": position.offset, "digest": position.digest}
        try:
            document = LedgerCheckpoint(position=CheckpointPosition(**where), **state)
        except ValidationError as exc:
            return SaveOutcome(ok=False, attempts=0, error=f"not a checkpoint: {exc}")
        # The model took the plain data as it is (no value changes type on the way in),
        # so the plain data, in the model's field order, is what the model would write,
        # without a second copy of 1,000 operations and every id applied (model_dump).
        plain = {"format": document.format, "position": where, **state}
        target = AtomicJsonFile(self.checkpoint_path, retry=retry, writer=True)
        return target.save_bytes(dumps(plain))

    @staticmethod
    def checkpoint_position(checkpoint: LedgerCheckpoint) -> Position:
        """The position a checkpoint was taken at."""
        where = checkpoint.position
        return Position(where.file, where.offset, where.digest)

    # -- finding a first reply --------------------------------------------------------

    def find_request(self, request_id: str) -> LedgerLine | None:
        """The record of `request_id`, newest file first (a rare path: re-sends
        that outlived the reply cache)."""
        needle = b'"id":' + dumps(request_id) + b","
        for path in reversed(self.month_files()):
            found = self._search(path, needle, request_id)
            if found is not None:
                return found
        return None

    @staticmethod
    def _search(path: Path, needle: bytes, request_id: str) -> LedgerLine | None:
        try:
            with path.open("rb") as handle:
                if handle.seek(0, 2) == 0:
                    return None
                with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as view:
                    end = len(view)
                    while True:
                        hit = view.rfind(needle, 0, end)
                        if hit == -1:
                            return None
                        start = view.rfind(b"\n", 0, hit) + 1
                        stop = view.find(b"\n", hit)
                        if stop != -1:
                            try:
                                record: LedgerLine | None = decode_ledger_line(view[start:stop])
                            except ValueError:
                                record = None
                            if record is not None and request_id_of(record) == request_id:
                                return record
                        end = hit
        except OSError:
            return None
