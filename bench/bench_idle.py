"""An idle service should sleep: wakeups and CPU of every thread of the tree.

A writer leaves the service running all day beside the editor, on a laptop
battery. Every timer that fires while nothing happens costs a wakeup. This
benchmark starts a real tree, lets it settle, then counts, once a second, the
context switches (voluntary + involuntary) and the CPU time of every thread of
every process of the tree, from `/proc/<pid>/task/<tid>/status` and
`/proc/<pid>/task/<tid>/schedstat`.

The same-run floor is a tree of as many bare Python processes each holding
a bound ZeroMQ socket (so its I/O thread exists) and blocked in `poll()`: what an idle tree of this
shape costs when nothing at all wakes it.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from bench.harness import BenchContext, Row, Target, benchmark
from bench.service_tree import ServiceTree

__all__ = ["idle", "tree_pids", "wakeups_and_cpu"]

SETTLE_S = 3.0
"""Start-up work (imports, first snapshot, first scan) is not idle time."""

_FLOOR_SCRIPT = (
    "import zmq, sys\n"
    "ctx = zmq.Context()\n"
    "s = ctx.socket(zmq.ROUTER)\n"
    "s.bind(sys.argv[1])\n"
    "s.poll(-1)\n"
)


def tree_pids(root: int) -> list[int]:
    """`root` and all its descendants, found through each task's `children` list."""
    found: list[int] = []
    pending = [root]
    while pending:
        pid = pending.pop()
        found.append(pid)
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{pid}/task").iterdir():
                with contextlib.suppress(OSError):
                    pending += [int(child) for child in (task / "children").read_text().split()]
    return found


def _tasks(pids: list[int]) -> Iterator[tuple[str, Path]]:
    for pid in pids:
        with contextlib.suppress(OSError):
            comm = Path(f"/proc/{pid}/comm").read_text().strip()
            for task in Path(f"/proc/{pid}/task").iterdir():
                with contextlib.suppress(OSError):
                    name = (task / "comm").read_text().strip()
                    yield f"{pid}:{comm}/{name}", task


def wakeups_and_cpu(pids: list[int]) -> tuple[Counter[str], float]:
    """Context switches so far per thread (keyed `pid:process/thread`), and CPU seconds."""
    switches: Counter[str] = Counter()
    cpu_ns = 0
    for key, task in _tasks(pids):
        with contextlib.suppress(OSError, ValueError, IndexError):
            for line in (task / "status").read_text().splitlines():
                if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                    switches[key] += int(line.split()[1])
            cpu_ns += int((task / "schedstat").read_text().split()[0])
    return switches, cpu_ns / 1e9


def _sample(pids: list[int], seconds: int) -> tuple[list[float], list[float], Counter[str]]:
    """Per-second wakeups and CPU seconds over `seconds` windows, and the per-thread total."""
    wakeups: list[float] = []
    cpu: list[float] = []
    start_switches, _ = wakeups_and_cpu(pids)
    before, before_cpu = start_switches, wakeups_and_cpu(pids)[1]
    mark = time.monotonic()
    for _ in range(seconds):
        time.sleep(1.0)
        after, after_cpu = wakeups_and_cpu(pids)
        now = time.monotonic()
        wakeups.append(sum((after - before).values()) / (now - mark))
        cpu.append(max(0.0, after_cpu - before_cpu) / (now - mark))
        before, before_cpu, mark = after, after_cpu, now
    return wakeups, cpu, before - start_switches


@benchmark("idle")
def idle(ctx: BenchContext) -> list[Row]:
    """An idle tree: wakeups/s and CPU over all threads of all processes vs a blocked floor."""
    seconds = 10 if ctx.quick else 60
    tree = ServiceTree(ctx.workdir / "novel")
    with tree.running():
        time.sleep(SETTLE_S)
        pids = tree_pids(tree.process.pid if tree.process else 0)
        ours_wakeups, ours_cpu, by_thread = _sample(pids, seconds)
        floor = [
            subprocess.Popen(
                [sys.executable, "-c", _FLOOR_SCRIPT, f"ipc://{ctx.workdir / f'floor-{n}.sock'}"],
                stdin=subprocess.DEVNULL,
            )
            for n in range(len(pids))
        ]
        try:
            time.sleep(SETTLE_S)
            floor_wakeups, floor_cpu, _ = _sample([p.pid for p in floor], seconds)
        finally:
            for process in floor:
                process.kill()
                process.wait()
    top = ", ".join(f"{name} {count / seconds:.2f}/s" for name, count in by_thread.most_common(6))
    ctx.notes.append(f"idle tree of {len(pids)} processes over {seconds} s; busiest: {top}")
    return [
        Row(
            f"idle tree ({len(pids)} processes): wakeups",
            ours_wakeups,
            f"{len(pids)} processes blocked in poll",
            floor_wakeups,
            Target("p50", max_seconds=2.0, unit="per_s"),
            unit="per_s",
        ),
        Row(
            "idle tree: CPU seconds per second",
            ours_cpu,
            "the same floor",
            floor_cpu,
            Target("p50", max_seconds=0.001),
        ),
    ]
