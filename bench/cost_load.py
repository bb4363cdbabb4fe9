"""Eight clients logging costs against one contender: the load and what it costs.

`python -m bench stack` runs the same load, in alternating phases, against our
tree, the careful SQLite peer and the floor (`bench.cost_floor`); each phase
is timed per operation and per process on the CPU (`CpuMeter`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from bench.harness import percentile
from bench.service_tree import process_cpu

__all__ = ["CLIENTS", "Contender", "CpuMeter", "Op", "Opener", "run_clients"]

CLIENTS = 8
"""Concurrent clients, each doing its operations one after another."""

Op = Callable[[str], None]
"""One operation given a unique request id."""
Opener = Callable[[], tuple[Op, Callable[[], None]]]
"""Opens one client: its operation and how to close it."""


def run_clients(per_client: int, open_client: Opener, tag: str) -> tuple[list[float], float]:
    """Run `CLIENTS` threads doing `per_client` sequential ops each; (latencies, wall time)."""
    latencies: list[float] = []
    lock = threading.Lock()
    barrier = threading.Barrier(CLIENTS + 1)

    def client(index: int) -> None:
        op, close = open_client()
        mine: list[float] = []
        barrier.wait()
        for k in range(per_client):
            began = time.perf_counter()
            op(f"{tag}-c{index}-{k}")
            mine.append(time.perf_counter() - began)
        close()
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
    for thread in threads:
        thread.start()
    barrier.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    return latencies, time.perf_counter() - began


class CpuMeter:
    """CPU seconds each named process spends over the phases it is told about."""

    def __init__(self, processes: dict[str, int]) -> None:
        self.processes = processes
        self.spent: dict[str, float] = dict.fromkeys(processes, 0.0)
        self.per_phase: list[float] = []
        """Tree CPU per operation, one sample per measured phase."""
        self.operations = 0

    def snapshot(self) -> dict[str, float]:
        """CPU so far of each process."""
        return {name: process_cpu(pid) for name, pid in self.processes.items()}

    def add(self, before: dict[str, float], operations: int) -> None:
        """Count what each process spent since `before`, over `operations` operations."""
        after = self.snapshot()
        phase = 0.0
        for name, value in after.items():
            used = max(0.0, value - before[name])
            self.spent[name] += used
            phase += used
        self.per_phase.append(phase / operations)
        self.operations += operations

    def text(self, leave_out: tuple[str, ...] = ()) -> str:
        """`name 123 µs` per operation for each process, and the total."""
        shown = {name: spent for name, spent in self.spent.items() if name not in leave_out}
        parts = [f"{name} {spent / self.operations * 1e6:.0f} µs" for name, spent in shown.items()]
        return ", ".join(parts) + f"; total {sum(shown.values()) / self.operations * 1e6:.0f} µs"


@dataclass
class Contender:
    """One system under the 8-client `cost.log` load, and what its phases measured."""

    name: str
    open: Opener
    meter: CpuMeter
    latencies: list[float] = field(default_factory=list)
    per_op: list[float] = field(default_factory=list)
    """Wall time over operations, one sample per phase."""

    @property
    def rate(self) -> float:
        """Operations per second over all its phases."""
        return len(self.per_op) / sum(self.per_op)

    @property
    def cpu_per_op(self) -> float:
        """CPU seconds per operation over every process it crosses."""
        return sum(self.meter.spent.values()) / self.meter.operations

    @property
    def summary(self) -> str:
        """`1,234 ops/s, p50/p99/p99.9 1.0/2.0/3.0 ms`."""
        cuts = "/".join(f"{percentile(self.latencies, q) * 1e3:.1f}" for q in (0.5, 0.99, 0.999))
        return f"{self.rate:,.0f} ops/s, p50/p99/p99.9 {cuts} ms"
