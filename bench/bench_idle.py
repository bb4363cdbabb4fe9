"""An idle service should sleep: wakeups and CPU of every thread of the tree.

A writer leaves the service running all day beside the editor, on a laptop
battery. Every timer that fires while nothing happens costs a wakeup. This
benchmark starts a real tree, lets it settle, then counts the context
switches (voluntary + involuntary) and the CPU time of every thread of every
process of the tree, from `/proc/<pid>/task/<tid>/status` and
`/proc/<pid>/task/<tid>/schedstat`, for 60 s (30 s with `--quick`), in
windows of one idle heartbeat period (`WINDOW_S`). Its notes give the
average, the busiest threads, and every process that woke by role
(supervisor, each worker, fork server, spare worker host) and thread
(`python` is the main thread, `ZMQbg/IO/0` ZeroMQ's I/O thread).

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
from bench.service_tree import ServiceTree, task_cpu_seconds

__all__ = ["idle", "tree_pids", "wakeups_and_cpu"]

SETTLE_S = 3.0
"""Start-up work (imports, first snapshot, first scan) is not idle time."""

WINDOW_S = 30
"""Each sample is the rate over this many seconds: the idle heartbeat's period
(`supervisor.idle_heartbeat_s`), so every window holds one beat of each worker
and its rate is the tree's true average, not a lucky quiet stretch."""

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
    cpu = 0.0
    for key, task in _tasks(pids):
        with contextlib.suppress(OSError, ValueError, IndexError):
            for line in (task / "status").read_text().splitlines():
                if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                    switches[key] += int(line.split()[1])
            cpu += task_cpu_seconds(task)
    return switches, cpu


def _sample(
    pids: list[int], seconds: int, window_s: int
) -> tuple[list[float], list[float], Counter[str]]:
    """Wakeups/s and CPU s/s of each `window_s` window over `seconds`, and the per-thread total.

    Windows, not single seconds: an idle tree wakes in rare bursts (a worker's
    idle heartbeat every 30 s), so most seconds count nothing and a per-second
    median would hide them; a window's rate spreads the bursts over it.
    """
    wakeups: list[float] = []
    cpu: list[float] = []
    start_switches, _ = wakeups_and_cpu(pids)
    before, before_cpu = start_switches, wakeups_and_cpu(pids)[1]
    mark = time.monotonic()
    for _ in range(max(1, seconds // window_s)):
        time.sleep(window_s)
        after, after_cpu = wakeups_and_cpu(pids)
        now = time.monotonic()
        wakeups.append(sum((after - before).values()) / (now - mark))
        cpu.append(max(0.0, after_cpu - before_cpu) / (now - mark))
        before, before_cpu, mark = after, after_cpu, now
    return wakeups, cpu, before - start_switches


def _roles(tree: ServiceTree) -> dict[int, str]:
    """Each process of the tree by what it is: supervisor, a worker's name, fork server."""
    roles = {tree.process.pid: "supervisor"} if tree.process else {}
    status = tree.request("supervisor.status")["result"]
    for worker in status["workers"]:
        if worker["pid"]:
            roles[int(worker["pid"])] = worker["name"]
    if status.get("fork_server_pid"):
        roles[int(status["fork_server_pid"])] = "fork server"
    return roles


def _by_role(by_thread: Counter[str], roles: dict[int, str], seconds: float) -> str:
    """`role a/s (thread b/s, ...)` for every process that woke, busiest first."""
    per_process: dict[str, Counter[str]] = {}
    for key, count in by_thread.items():
        pid_text, _, names = key.partition(":")
        role = roles.get(int(pid_text), "spare worker host")
        thread = names.partition("/")[2]
        per_process.setdefault(role, Counter())[thread] += count
    parts = []
    for role, threads in sorted(per_process.items(), key=lambda item: -item[1].total()):
        if not threads.total():
            continue
        inner = ", ".join(f"{name} {n / seconds:.2f}" for name, n in threads.most_common() if n)
        parts.append(f"{role} {threads.total() / seconds:.2f}/s ({inner})")
    return "; ".join(parts) or "nothing woke"


@benchmark("idle")
def idle(ctx: BenchContext) -> list[Row]:
    """An idle tree: wakeups/s and CPU over all threads of all processes vs a blocked floor."""
    seconds = WINDOW_S if ctx.quick else 2 * WINDOW_S
    tree = ServiceTree(ctx.workdir / "novel")
    with tree.running():
        roles = _roles(tree)
        time.sleep(SETTLE_S)
        pids = tree_pids(tree.process.pid if tree.process else 0)
        ours_wakeups, ours_cpu, by_thread = _sample(pids, seconds, WINDOW_S)
        floor = [
            subprocess.Popen(
                [sys.executable, "-c", _FLOOR_SCRIPT, f"ipc://{ctx.workdir / f'floor-{n}.sock'}"],
                stdin=subprocess.DEVNULL,
            )
            for n in range(len(pids))
        ]
        try:
            time.sleep(SETTLE_S)
            floor_wakeups, floor_cpu, _ = _sample([p.pid for p in floor], seconds, WINDOW_S)
        finally:
            for process in floor:
                process.kill()
                process.wait()
    top = ", ".join(f"{name} {count / seconds:.2f}/s" for name, count in by_thread.most_common(6))
    mean = by_thread.total() / seconds
    ctx.notes.append(
        f"idle tree of {len(pids)} processes over {seconds} s ({WINDOW_S} s windows), "
        f"{mean:.2f} wakeups/s on average; busiest: {top or 'none'}"
    )
    ctx.notes.append(f"idle wakeups by process: {_by_role(by_thread, roles, seconds)}")
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
