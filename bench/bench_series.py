"""`series`: `cost.series` over 365 days against a ledger of 1 M operations.

Issue 11 item 4: a year of spend, per day (and per hour), answered from the
ledger's 15-minute index instead of its lines. The ledger is written directly:
1 M `op` lines spread evenly over the last 365 days (one every ~32 s), four
models and three operations in turn, one call in 50 unpriced.

Rows:

* `cost.series`, 365 days by day, through `CostLedger.handle_batch` (what the
  worker does per request), against the same range summed from the ledger's
  lines (a full read: what the index saves). Target: p50 <= 100 ms.
* 80 days by hour (2,000 buckets, the most an answer may have), for
  information.
* A start without a checkpoint or series.json until the background thread
  has read the index from every month file, and a clean restart (ledger
  ready, then series.json loaded in the background), for information.

The series' total is checked against the exact sum of the lines written.
Quick mode uses 100 k operations.
"""

from __future__ import annotations

import itertools
import time
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from bench.bench_cost import open_ledger
from bench.harness import BenchContext, Row, Target, benchmark
from protocol.codec import dumps_line
from protocol.names import Op
from protocol.ops import parse_args
from services.cost.ledger_files import LedgerFiles, month_file_name
from services.cost.series import SeriesIndex
from services.cost_ledger import CostLedger
from services.runtime.paths import ProjectPaths
from services.runtime.worker import Call

__all__ = ["series", "write_year"]

_MODELS = ("claude-sonnet-3.5", "gemini-pro", "gpt-4", "claude-sonnet-4-5")
_OPERATIONS = ("scene_generation", "voice_test", "analysis")
_ids = itertools.count()


def write_year(ledger_dir: Path, operations: int, *, now: datetime) -> Decimal:
    """Write `operations` op lines over the 365 days before `now`; return their exact total."""
    ledger_dir.mkdir(parents=True, exist_ok=True)
    interval = 365 * 86_400 / operations
    first = now.timestamp() - 365 * 86_400 + 60
    total = Decimal(0)
    files: dict[str, list[bytes]] = {}
    for number in range(operations):
        moment = datetime.fromtimestamp(first + number * interval, UTC)
        unpriced = number % 50 == 49
        cost = None if unpriced else Decimal(number % 997 + 1) / 10_000
        if cost is not None:
            total += cost
        record = {
            "kind": "op",
            "id": f"y-{number}",
            "ts": moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "session_id": "2025-12-01-000000",
            "operation": _OPERATIONS[number % len(_OPERATIONS)],
            "model": "my-local-llm" if unpriced else _MODELS[number % len(_MODELS)],
            "input_tokens": 12_450,
            "output_tokens": 3_200,
            "cost": cost,
            "priced": not unpriced,
            "price_source": None if unpriced else "genai-prices@0.2.3",
        }
        files.setdefault(month_file_name(moment), []).append(dumps_line(record))
    for name, lines in files.items():
        (ledger_dir / name).write_bytes(b"".join(lines))
    return total


def _series_call(since: date, until: date, bucket: str) -> Call:
    args = parse_args("cost.series", {"since": since, "until": until, "bucket": bucket})
    return Call(id=f"s-{next(_ids)}", op=Op.COST_SERIES, args=args)


def _ask(ledger: CostLedger, call: Call) -> Any:
    (outcome,) = ledger.handle_batch([call])
    if isinstance(outcome, Exception):
        raise outcome
    return outcome


def _scan_action(ledger_dir: Path, since: datetime, until: datetime) -> Any:
    """The baseline: the same range summed from the ledger's lines."""
    files = LedgerFiles(ledger_dir)

    def action() -> None:
        index = SeriesIndex()
        for path in files.month_files():
            index.add_records(
                record for _end, record, _line in files.records(path) if since <= record.ts < until
            )

    return action


@benchmark("series")
def series(ctx: BenchContext) -> list[Row]:
    """cost.series over 365 days against a 1 M-operation ledger."""
    operations = 100_000 if ctx.quick else 1_000_000
    now = datetime.now(UTC)
    project = ctx.workdir / "year"
    paths = ProjectPaths.of(project)
    paths.session_dir.mkdir(parents=True, exist_ok=True)
    paths.preferences.write_text('{"timezone": "UTC"}', encoding="utf-8")
    expected = write_year(paths.ledger_dir, operations, now=now)
    today = now.date()
    since, until = today - timedelta(days=365), today + timedelta(days=1)

    started = time.perf_counter()
    ledger = open_ledger(project)  # no checkpoint: the recent month files, then the rest behind
    if not ledger.wait_series(600):
        raise AssertionError("the series index was not rebuilt within 10 minutes")
    cold = time.perf_counter() - started
    first = _ask(ledger, _series_call(since, until, "day"))
    if first["total"] != expected:
        raise AssertionError(f"series total {first['total']} != ledger sum {expected}")
    if len(first["buckets"]) != 366:
        raise AssertionError(f"{len(first['buckets'])} buckets, expected 366")

    def by_day() -> None:
        _ask(ledger, _series_call(since, until, "day"))

    def by_hour() -> None:
        _ask(ledger, _series_call(until - timedelta(days=80), until, "hour"))

    scan = _scan_action(
        paths.ledger_dir,
        datetime.combine(since, datetime.min.time(), tzinfo=UTC),
        now + timedelta(days=1),
    )
    scan_rounds = 1 if ctx.quick else 2
    day_samples, scan_samples = ctx.interleave(by_day, scan, rounds=scan_rounds, warmup=0)
    day_samples += [_timed(by_day) for _ in range(ctx.rounds(30, 10))]
    hour_samples = [_timed(by_hour) for _ in range(ctx.rounds(10, 3))]
    ledger.stop()  # a checkpoint, and series.json with the index
    started = time.perf_counter()
    restarted = open_ledger(project)
    start_s = time.perf_counter() - started
    if not restarted.wait_series(600):
        raise AssertionError("series.json was not loaded within 10 minutes")
    loaded_s = time.perf_counter() - started
    started = time.perf_counter()
    _ask(restarted, _series_call(since, until, "day"))
    after_start = time.perf_counter() - started
    restarted.close()
    label = f"{operations // 1000} k" if operations < 1_000_000 else "1 M"
    ctx.notes.append(
        f"{label} operations over 365 days, totals exact (checked: {expected}); after a start "
        f"without checkpoint or series.json the index is read from the files in the background "
        f"in {cold:.2f} s; a clean restart: ledger ready in {start_s * 1000:.0f} ms, series.json "
        f"loaded in the background by {loaded_s:.2f} s, then a year by day in "
        f"{after_start * 1000:.1f} ms"
    )
    return [
        Row(
            f"cost.series, 365 days by day, {label} ops",
            day_samples,
            "the same summed from the ledger's lines",
            scan_samples,
            Target("p50", max_seconds=0.1),
        ),
        Row(
            f"cost.series, 80 days by hour (the most), {label} ops",
            hour_samples,
            "the same summed from the ledger's lines",
            scan_samples,
        ),
        Row(
            "start without checkpoint + background index rebuild",
            [cold],
            "cost.series, 365 days by day",
            day_samples,
        ),
    ]


def _timed(action: Any) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started
