"""Operations of one session found in the cost ledger, read-only.

`cost.logged` reaches the archiver at least once while both run; if the
archiver was down long enough for the supervisor to give up re-delivering,
an operation would be missing from the session's entry. At start the
archiver reads the cost ledger's JSON Lines files (`.session/ledger/*.jsonl`,
owned and written by the cost ledger) and counts any operation of the live
session whose `request_id` it has not seen.

The ledger's format belongs to its owner; this reader takes only lines that
are JSON objects with a `session_id`, a string `request_id`, an `operation`
name and a `cost` (a number, or null when unpriced), and skips anything else.
Files untouched since before the session started are not opened.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from protocol.codec import loads_exact

__all__ = ["session_operations"]


def _usable(record: Any, session_id: str) -> bool:
    return (
        isinstance(record, dict)
        and record.get("session_id") == session_id
        and isinstance(record.get("request_id"), str)
        and bool(record["request_id"])
        and isinstance(record.get("operation"), str)
        and "cost" in record
        and (record["cost"] is None or isinstance(record["cost"], (int, Decimal)))
        and not isinstance(record["cost"], bool)
    )


def session_operations(
    ledger_dir: Path, session_id: str, since: datetime
) -> Iterator[dict[str, Any]]:
    """Ledger records of `session_id` in files modified at or after `since`."""
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
                    record = loads_exact(line)
                except ValueError:
                    continue
                if _usable(record, session_id):
                    yield record
