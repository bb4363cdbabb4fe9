"""Operations of one session found in the cost ledger, read-only.

`cost.logged` reaches the archiver at least once while both run; if the
archiver was down long enough for the supervisor to give up re-delivering,
an operation would be missing from the session's entry. At start the
archiver reads the cost ledger's JSON Lines files (`.session/ledger/*.jsonl`,
owned and written by the cost ledger) and counts any operation of the live
session whose request id it has not seen.

The ledger's format is `protocol.ledger`'s (`LedgerLine`): each line is
decoded with that model, exactly as the ledger itself reads it, and only
`op` lines of the session are taken; a line that is not a ledger record is
skipped. Files untouched since before the session started are not opened.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

from protocol.ledger import LedgerOperation, decode_ledger_line

__all__ = ["session_operations"]


def session_operations(
    ledger_dir: Path, session_id: str, since: datetime
) -> Iterator[LedgerOperation]:
    """`op` lines of `session_id` in ledger files modified at or after `since`, oldest first."""
    needle = session_id.encode()
    cutoff = since.timestamp() - 60  # allow for clock granularity
    with contextlib.suppress(FileNotFoundError, NotADirectoryError):
        for path in sorted(ledger_dir.glob("*.jsonl")):
            try:
                if path.stat().st_mtime < cutoff:
                    continue
                data = path.read_bytes()
            except OSError:
                continue
            for line in data.splitlines():
                if needle not in line:
                    continue  # cheap skip: most lines are other sessions'
                try:
                    record = decode_ledger_line(line)
                except ValueError:
                    continue
                if isinstance(record, LedgerOperation) and record.session_id == session_id:
                    yield record
