"""`supervisor inspect costs --csv`: every logged operation as CSV, for a spreadsheet.

Read-only, straight from the ledger's month files (whether or not the service
runs; a torn last line is skipped). One row per `op` line, oldest first, from
local midnight of `since` in the writer's time zone. Money keeps every digit
(`0.000000075`, never `7.5E-8`); an unpriced call has an empty `cost` and
`priced` false, never 0. Times are the ledger's UTC timestamps plus the local
date they count toward.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from typing import Any, TextIO
from zoneinfo import ZoneInfo

from protocol.base import utc_text
from protocol.ledger import LedgerOperation
from services.cost.ledger_files import LedgerFiles, month_file_name
from services.cost.windows import local_midnight

__all__ = ["CSV_COLUMNS", "export_operations", "operation_rows"]

CSV_COLUMNS = (
    "timestamp",
    "local_date",
    "session_id",
    "operation",
    "model",
    "provider",
    "input_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "output_tokens",
    "reasoning_tokens",
    "cost",
    "priced",
    "price_source",
    "request_id",
)


def _money_text(value: Any) -> str:
    if value is None:
        return ""
    return format(Decimal(value), "f")


def operation_rows(
    files: LedgerFiles, *, since: date | None, zone: ZoneInfo
) -> Iterator[dict[str, Any]]:
    """Each `op` line from local midnight of `since` on (all when None), as a CSV row."""
    start = None if since is None else local_midnight(since, zone)
    first_file = None if start is None else month_file_name(start)
    for path in files.month_files():
        if first_file is not None and path.name < first_file:
            continue
        for _end, record, _line in files.records(path):
            if not isinstance(record, LedgerOperation):
                continue
            if start is not None and record.ts < start:
                continue
            yield {
                "timestamp": utc_text(record.ts),
                "local_date": record.ts.astimezone(zone).date().isoformat(),
                "session_id": record.session_id or "",
                "operation": record.operation,
                "model": record.model,
                "provider": record.provider or "",
                "input_tokens": record.input_tokens,
                "cache_read_tokens": record.cache_read_tokens,
                "cache_write_tokens": record.cache_write_tokens,
                "output_tokens": record.output_tokens,
                "reasoning_tokens": record.reasoning_tokens,
                "cost": _money_text(record.cost),
                "priced": "true" if record.cost is not None else "false",
                "price_source": record.price_source or "",
                "request_id": record.id or "",
            }


def export_operations(
    files: LedgerFiles, out: TextIO, *, since: date | None, zone: ZoneInfo
) -> int:
    """Write the CSV (header first) to `out`; return how many operations it holds."""
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    count = 0
    for row in operation_rows(files, since=since, zone=zone):
        writer.writerow(row)
        count += 1
    return count
