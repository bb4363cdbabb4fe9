"""`crash`: every state a power cut could leave, for the three workers that write data.

Runs each workload of `bench.crash_workloads` under the crash recorder and
checks every distinct crash state (`bench.crash_explore`). The rows time one
check (materialise the state, restart the worker logic on it, compare with
what was acknowledged); the notes give the counts, and the `lost` row fails
when any state lost an acknowledged operation or left a file that neither
parses nor is rebuilt. The full run aims at >= 10,000 distinct states.
"""

from __future__ import annotations

import logging
import time

import structlog

from bench.crash_explore import explore
from bench.harness import BenchContext, Row, Target, benchmark

__all__ = ["FULL_SIZES", "QUICK_SIZES", "crash"]

FULL_SIZES = {"session_writer": 480, "cost_ledger": 300, "history_archiver": 330}
"""Operations per workload in the full run (about 10,000 distinct states in all)."""

QUICK_SIZES = {"session_writer": 8, "cost_ledger": 8, "history_archiver": 8}


@benchmark("crash")
def crash(ctx: BenchContext) -> list[Row]:
    """Crash states explored per worker: acknowledged operations lost (must be 0)."""
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.CRITICAL))
    sizes = QUICK_SIZES if ctx.quick else FULL_SIZES
    rows: list[Row] = []
    total = distinct = problems = 0
    for name, size in sizes.items():
        started = time.perf_counter()
        report = explore(name, size, ctx.workdir / name)
        elapsed = time.perf_counter() - started
        total += report.generated
        distinct += report.checked
        problems += len(report.problems)
        ctx.notes.append(f"{report.line()} in {elapsed:.0f} s; kinds {dict(report.kinds)}")
        ctx.notes.extend(f"  {problem}" for problem in report.problems[:5])
        per_state = [elapsed / max(1, report.checked)]
        rows.append(Row(f"check one crash state: {name}", per_state, "-", per_state))
    ctx.notes.append(
        f"total: {total} crash states generated, {distinct} distinct checked, "
        f"{problems} with a lost acknowledged operation or an unreadable file"
    )
    lost = [float(problems)]
    rows.append(Row("lost (count, as seconds)", lost, "-", [1.0], Target("max", max_seconds=0.0)))
    return rows
