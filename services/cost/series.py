"""Spend over time: `cost.series`, from the ledger's 15-minute buckets.

`SeriesIndex` keeps, per UTC bucket (`windows.BUCKET_S`), the exact total, the
unpriced count and the totals by model and by operation of every operation
ever logged. It is folded in by `LedgerState.apply` (so the live ledger, a
replay and a checkpoint all hold the same index) and is never pruned: a year
of heavy use is ~35,000 buckets. Because every time zone's offset is a whole
number of quarter hours, any local hour, day, ISO week or month is a run of
whole buckets, and a series is answered by adding buckets - never by reading
the ledger.

The index is kept out of the checkpoint (it grows with the ledger's age and
would slow every start). It is saved on its own, at most every
`SERIES_SAVE_EVERY_S` and at a clean stop, to `.session/ledger/series.json`
with the ledger position it covers. At start the ledger loads it in a
background thread (`read_index`) and reads the month files forward from that
position (all of them when the file is missing or no longer matches: ~20 s
per million operations on a busy machine) while it keeps answering;
operations logged meanwhile are noted in `pending` and added to the loaded
index when it is handed over (`adopt`). Until then `cost.series` answers
from what it has and says `complete: false`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

import orjson

from protocol.ledger import LedgerLine, LedgerOperation
from services.cost.budget import BudgetLimits
from services.cost.ledger_files import LedgerFiles, Position
from services.cost.money import MONEY, ZERO, parse_money
from services.cost.windows import BUCKET_S, bucket_of, local_midnight
from services.store import AtomicJsonFile, RetryPolicy, SaveOutcome

__all__ = [
    "DEFAULT_DAYS",
    "MAX_BUCKETS",
    "MAX_HOURS",
    "SERIES_NAME",
    "SERIES_SAVE_EVERY_S",
    "BucketKind",
    "SeriesIndex",
    "Stopped",
    "bucket_count",
    "read_index",
    "save_index",
    "spend_series",
]

BucketKind = Literal["hour", "day", "week", "month"]

DEFAULT_DAYS = 30
"""`since` defaults to this many days before today."""

SERIES_NAME = "series.json"
"""The saved index, in `.session/ledger/` (a cache: deleting it costs a longer load)."""

SERIES_FORMAT = 1

SERIES_SAVE_EVERY_S = 600.0
"""series.json is rewritten at most this often (and at a clean stop)."""

_YIELD_EVERY = 20
"""A background read pauses after this many records (see `read_index`): ~1 ms of
reading here. The ledger's thread waits for the interpreter lock after each write
and fsync; with 200 records between pauses it waited the 5 ms switch interval each
time and a `cost.log` took ~16 ms during the read, with 20 it takes ~1.2 ms and the
read is no slower (docs/benchmarks.md, "the rows with prior operations")."""

MAX_BUCKETS = 5_000
"""More buckets than this in one answer is refused (13 years of days)."""

MAX_HOURS = 2_000
"""Hour buckets: at most this many (83 days), so one answer stays well under a second."""

_LIMIT_OF: dict[str, str | None] = {
    "hour": None,
    "day": "daily",
    "week": "weekly",
    "month": "monthly",
}


@dataclass
class _Cell:
    """One bucket: exact total, unpriced count, totals by model and by operation."""

    total: Decimal
    unpriced: int
    by_model: dict[str, Decimal]
    by_operation: dict[str, Decimal]


class SeriesIndex:
    """Every operation's cost by 15-minute bucket, model and operation (see module doc)."""

    def __init__(self, *, complete: bool = True) -> None:
        self.cells: dict[int, _Cell] = {}
        self.complete = complete
        """False when operations older than the replay may be missing."""
        self._newest = -1
        """The newest bucket holding an operation."""
        self._spans: dict[tuple[int, int], _Cell] = {}
        """Sums of whole past spans (local days), by (first bucket, end bucket)."""
        self._spans_end = -1
        """The largest end bucket among `_spans`."""

    pending: list[tuple[int, str, str, Decimal | None]] | None = None
    """Operations added while a full rebuild runs (None: no rebuild running)."""

    def add(self, bucket: int, model: str, operation: str, cost: Decimal | None) -> None:
        """Count one operation."""
        if self.pending is not None:
            self.pending.append((bucket, model, operation, cost))
        self._newest = max(self._newest, bucket)
        if bucket < self._spans_end:  # a late operation inside a summed span: sum again
            self._spans.clear()
            self._spans_end = -1
        cell = self.cells.get(bucket)
        if cell is None:
            cell = self.cells[bucket] = _Cell(ZERO, 0, {}, {})
        if cost is None:
            cell.unpriced += 1
            return
        cell.total = MONEY.add(cell.total, cost)
        cell.by_model[model] = MONEY.add(cell.by_model.get(model, ZERO), cost)
        cell.by_operation[operation] = MONEY.add(cell.by_operation.get(operation, ZERO), cost)

    def add_records(self, records: Iterable[LedgerLine]) -> None:
        """Count the `op` records among `records` (ledger lines)."""
        for record in records:
            if not isinstance(record, LedgerOperation):
                continue
            self.add(bucket_of(record.ts), record.model, record.operation, record.cost)

    def span(self, first: int, end: int) -> _Cell:
        """The sum of buckets `[first, end)`; remembered when wholly before the newest one."""
        key = (first, end)
        found = self._spans.get(key)
        if found is not None:
            return found
        total, unpriced = ZERO, 0
        by_model: dict[str, Decimal] = {}
        by_operation: dict[str, Decimal] = {}
        cells = self.cells
        for number in range(first, end):
            cell = cells.get(number)
            if cell is None:
                continue
            unpriced += cell.unpriced
            if not cell.by_model:
                continue
            total = MONEY.add(total, cell.total)
            for model, amount in cell.by_model.items():
                by_model[model] = MONEY.add(by_model.get(model, ZERO), amount)
            for operation, amount in cell.by_operation.items():
                by_operation[operation] = MONEY.add(by_operation.get(operation, ZERO), amount)
        summed = _Cell(total, unpriced, by_model, by_operation)
        if end <= self._newest:  # closed: no operation of now can land in it
            self._spans[key] = summed
            self._spans_end = max(self._spans_end, end)
        return summed

    def adopt(self, rebuilt: SeriesIndex) -> SeriesIndex:
        """`rebuilt` (every file as it was when the rebuild began) plus what came since."""
        for item in self.pending or []:
            rebuilt.add(*item)
        rebuilt.complete = True
        rebuilt.pending = None
        return rebuilt

    def warm_days(self, zone: ZoneInfo) -> None:
        """Sum every closed local day of `zone` now (in the loading thread, not in a request)."""
        if not self.cells:
            return
        day = datetime.fromtimestamp(min(self.cells) * BUCKET_S, UTC).astimezone(zone).date()
        start = local_midnight(day, zone)
        while True:
            day += timedelta(days=1)
            end = local_midnight(day, zone)
            if bucket_of(end) > self._newest:
                return
            self.span(bucket_of(start), bucket_of(end))
            start = end

    def to_json(self) -> dict[str, Any]:
        """Checkpoint form: money as exact text."""
        return {
            "complete": self.complete,
            "cells": [
                [
                    bucket,
                    str(cell.total),
                    cell.unpriced,
                    {k: str(v) for k, v in cell.by_model.items()},
                    {k: str(v) for k, v in cell.by_operation.items()},
                ]
                for bucket, cell in sorted(self.cells.items())
            ],
        }

    @classmethod
    def from_json(
        cls, data: dict[str, Any], pause: Callable[[], None] | None = None
    ) -> SeriesIndex:
        """Read `to_json` output back (calling `pause` every `_YIELD_EVERY` cells)."""
        index = cls(complete=bool(data["complete"]))
        for number, (bucket, total, unpriced, by_model, by_operation) in enumerate(data["cells"]):
            if pause is not None and number % _YIELD_EVERY == _YIELD_EVERY - 1:
                pause()
            index.cells[int(bucket)] = _Cell(
                parse_money(total),
                int(unpriced),
                {str(k): parse_money(v) for k, v in by_model.items()},
                {str(k): parse_money(v) for k, v in by_operation.items()},
            )
        index._newest = max(index.cells, default=-1)
        return index


def save_index(
    files: LedgerFiles, position: Position, index: SeriesIndex, *, retry: RetryPolicy | None
) -> SaveOutcome:
    """Write series.json: `index`, which covers the ledger up to `position` (a cache)."""
    document = {
        "format": SERIES_FORMAT,
        "position": {"file": position.file, "offset": position.offset, "digest": position.digest},
        "series": index.to_json(),
    }
    target = AtomicJsonFile(files.folder / SERIES_NAME, retry=retry, writer=True)
    return target.save_bytes(orjson.dumps(document))


def _saved_index(
    files: LedgerFiles, pause: Callable[[], None]
) -> tuple[SeriesIndex, Position | None]:
    """series.json and its position if it still matches the ledger, else an empty start."""
    try:
        document = orjson.loads((files.folder / SERIES_NAME).read_bytes())
        if document.get("format") != SERIES_FORMAT:
            return SeriesIndex(), None
        where = document["position"]
        position = Position(str(where["file"]), int(where["offset"]), str(where["digest"]))
        if not files.holds(position):
            return SeriesIndex(), None
        return SeriesIndex.from_json(document["series"], pause), position
    except (OSError, orjson.JSONDecodeError, AttributeError, KeyError, TypeError, ValueError):
        return SeriesIndex(), None  # a cache: read the ledger instead


class Stopped(Exception):
    """A background read was asked to stop (the ledger closed)."""


def read_index(
    files: LedgerFiles,
    sizes: list[tuple[Path, int]],
    zone: ZoneInfo | None = None,
    *,
    stop: threading.Event | None = None,
) -> SeriesIndex:
    """Every operation in the month files, each read up to its size (series.json first).

    Run in a background thread: it offers the interpreter lock to the ledger's
    own thread (requests, heartbeats) every `_YIELD_EVERY` records, so that
    thread never waits long for it, and raises `Stopped` soon after `stop` is set. With
    `zone`, the closed days of that zone are summed too, so the first
    `cost.series` by day, week or month after a start is as quick as the next.
    """

    def pause() -> None:
        if stop is not None and stop.is_set():
            raise Stopped
        time.sleep(0)  # hands the lock to the ledger's thread if it waits for it

    index, start = _saved_index(files, pause)
    for path, size in sizes:
        if start is not None and path.name < start.file:
            continue
        offset = start.offset if start is not None and path.name == start.file else 0
        batch: list[LedgerLine] = []
        for end, record, _line in files.records(path, offset):
            if end > size:
                break
            batch.append(record)
            if len(batch) >= _YIELD_EVERY:
                index.add_records(batch)
                batch.clear()
                pause()
        index.add_records(batch)
    index.complete = True
    if zone is not None:
        index.warm_days(zone)
    return index


def _bounds(
    since: date, until: date, kind: BucketKind, zone: ZoneInfo
) -> list[tuple[str, datetime, datetime]]:
    """(label, UTC start, UTC end) of each bucket, clipped to [since, until)."""
    first, last = local_midnight(since, zone), local_midnight(until, zone)
    bounds: list[tuple[str, datetime, datetime]] = []
    if kind == "hour":
        moment = first
        while moment < last:
            after = moment + timedelta(hours=1)
            label = moment.astimezone(zone).isoformat(timespec="minutes")
            bounds.append((label, moment, min(after, last)))
            moment = after
        return bounds
    day = since
    if kind == "week":
        day = since - timedelta(days=since.weekday())
    elif kind == "month":
        day = since.replace(day=1)
    while day < until:
        if kind == "day":
            next_day = day + timedelta(days=1)
        elif kind == "week":
            next_day = day + timedelta(days=7)
        else:
            next_day = date(day.year + (day.month == 12), day.month % 12 + 1, 1)
        start = max(local_midnight(day, zone), first)
        bounds.append((day.isoformat(), start, min(local_midnight(next_day, zone), last)))
        day = next_day
    return bounds


def _days_of(start: datetime, end: datetime, zone: ZoneInfo) -> list[tuple[datetime, datetime]]:
    """The local days making up `[start, end)` (both local midnights), as UTC bounds."""
    days: list[tuple[datetime, datetime]] = []
    day = start.astimezone(zone).date()
    moment = start
    while moment < end:
        day += timedelta(days=1)
        after = min(local_midnight(day, zone), end)
        days.append((moment, after))
        moment = after
    return days


def bucket_count(since: date, until: date, kind: BucketKind) -> int:
    """How many buckets a series would have (at most; to refuse huge ones cheaply)."""
    days = (until - since).days
    per = {"hour": 25 * days, "day": days, "week": days // 7 + 2, "month": days // 28 + 2}
    return per[kind]


def spend_series(
    index: SeriesIndex,
    *,
    since: date,
    until: date,
    kind: BucketKind,
    zone: ZoneInfo,
    budget: BudgetLimits,
) -> dict[str, Any]:
    """The `cost.series` result: exact spend per bucket, empty buckets included."""
    period = _LIMIT_OF[kind]
    limit = None if period is None else budget.limit(period)  # type: ignore[arg-type]
    buckets: list[dict[str, Any]] = []
    grand, unpriced_all = ZERO, 0
    for label, start, end in _bounds(since, until, kind, zone):
        parts = [(start, end)] if kind in {"hour", "day"} else _days_of(start, end, zone)
        total, unpriced = ZERO, 0
        by_model: dict[str, Decimal] = {}
        by_operation: dict[str, Decimal] = {}
        for part_start, part_end in parts:
            cell = index.span(bucket_of(part_start), bucket_of(part_end))
            unpriced += cell.unpriced
            total = MONEY.add(total, cell.total)
            for model, amount in cell.by_model.items():
                by_model[model] = MONEY.add(by_model.get(model, ZERO), amount)
            for operation, amount in cell.by_operation.items():
                by_operation[operation] = MONEY.add(by_operation.get(operation, ZERO), amount)
        grand = MONEY.add(grand, total)
        unpriced_all += unpriced
        buckets.append(
            {
                "start": label,
                "total": total,
                "by_model": by_model,
                "by_operation": by_operation,
                "limit": limit,
                "unpriced_operations": unpriced,
            }
        )
    return {
        "buckets": buckets,
        "total": grand,
        "unpriced_operations": unpriced_all,
        "bucket": kind,
        "since": since.isoformat(),
        "until": until.isoformat(),
        "timezone": zone.key,
        "complete": index.complete,
    }
