"""Start, query, measure and stop a real service tree for the benchmarks."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import zmq

__all__ = [
    "ServiceTree",
    "child_pids",
    "cpu_seconds",
    "process_cpu",
    "start_command",
    "task_cpu_seconds",
    "tree_memory",
    "write_config",
]

BENCH_TIMINGS: dict[str, dict[str, Any]] = {
    "supervisor": {"max_restarts": 10_000, "restart_window_s": 1.0},
}


def write_config(path: Path, sections: dict[str, dict[str, Any]]) -> Path:
    """A TOML override file of flat sections."""
    lines = []
    for section, values in sections.items():
        lines.append(f"[{section}]")
        lines += [
            f"{key} = {str(value).lower() if isinstance(value, bool) else json.dumps(value)}"
            for key, value in values.items()
        ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def start_command(project: Path, config: Path, *extra: str) -> list[str]:
    """`python -m supervisor start` for `project` with the TOML overrides in `config`."""
    return [
        sys.executable,
        "-m",
        "supervisor",
        "start",
        "--project",
        str(project),
        "--config",
        str(config),
        *extra,
    ]


def child_pids(pid: int) -> list[int]:
    """The direct children of `pid` (workers and the fork server of a supervisor)."""
    with contextlib.suppress(OSError):
        listing = Path(f"/proc/{pid}/task/{pid}/children").read_text()
        return [int(child) for child in listing.split()]
    return []


@dataclass
class ServiceTree:
    """A `supervisor start` process tree on one project folder."""

    project: Path
    config: dict[str, dict[str, Any]] = field(default_factory=lambda: dict(BENCH_TIMINGS))
    process: subprocess.Popen[bytes] | None = None
    environment: dict[str, str] | None = None
    """The supervisor's environment (its children inherit it); None: this process's."""
    context: zmq.Context[zmq.Socket[bytes]] = field(default_factory=zmq.Context)
    _socket: zmq.Socket[bytes] | None = None
    _counter: int = 0

    def start(self, timeout_s: float = 30.0) -> float:
        """Start and wait for endpoints.json; seconds from spawn to ready."""
        self.project.mkdir(parents=True, exist_ok=True)
        config = write_config(self.project.parent / f"{self.project.name}.toml", self.config)
        endpoints = self.project / ".session" / "run" / "endpoints.json"
        endpoints.unlink(missing_ok=True)
        started = time.perf_counter()
        self.process = subprocess.Popen(
            start_command(self.project, config, "--fresh"),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=self.environment,
        )
        while not endpoints.exists():
            if self.process.poll() is not None or time.perf_counter() - started > timeout_s:
                raise RuntimeError(f"service did not start in {self.project}")
            time.sleep(0.002)
        return time.perf_counter() - started

    @property
    def socket(self) -> zmq.Socket[bytes]:
        """A DEALER connected to the command endpoint."""
        if self._socket is None:
            endpoints = json.loads((self.project / ".session/run/endpoints.json").read_text())
            self._socket = self.context.socket(zmq.DEALER)
            self._socket.setsockopt(zmq.LINGER, 0)
            self._socket.connect(endpoints["command"])
        return self._socket

    def request(self, op: str, args: dict[str, Any] | None = None, timeout_s: float = 10) -> Any:
        """One request; the reply document."""
        self._counter += 1
        request_id = f"b{self._counter}"
        frame = json.dumps({"v": 1, "id": request_id, "op": op, "args": args or {}}).encode()
        self.socket.send_multipart([b"", frame])
        while True:
            if not self.socket.poll(int(timeout_s * 1000)):
                raise TimeoutError(op)
            reply = json.loads(self.socket.recv_multipart()[-1])
            if reply["id"] == request_id:
                return reply

    def pid_of(self, worker: str) -> int:
        """The pid of a running worker."""
        for entry in self.request("supervisor.status")["result"]["workers"]:
            if entry["name"] == worker and entry["state"] == "running" and entry["pid"]:
                return int(entry["pid"])
        raise LookupError(worker)

    def pids(self) -> list[int]:
        """Supervisor and every child (workers and the fork server)."""
        if self.process is None:
            return []
        return [self.process.pid, *child_pids(self.process.pid)]

    def stop(self) -> None:
        """SIGTERM and reap."""
        if self._socket is not None:
            self._socket.close(linger=0)
            self._socket = None
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    @contextlib.contextmanager
    def running(self) -> Iterator[ServiceTree]:
        """Start, yield, stop."""
        self.start()
        try:
            yield self
        finally:
            self.stop()


def tree_memory(pids: list[int]) -> tuple[float, float]:
    """(sum of RSS, sum of PSS) in MiB over `pids` (PSS shares common pages fairly)."""
    rss = pss = 0.0
    for pid in pids:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Rss:"):
                    rss += int(line.split()[1]) / 1024
                elif line.startswith("Pss:"):
                    pss += int(line.split()[1]) / 1024
    return rss, pss


def task_cpu_seconds(task: Path) -> float:
    """CPU seconds one thread (`/proc/<pid>/task/<tid>`) has used, ns-exact from `schedstat`.

    `/proc/<pid>/stat` counts in 10 ms ticks, too coarse for a second of work.
    Raises OSError when the thread is gone, ValueError/IndexError on odd text.
    """
    return int((task / "schedstat").read_text().split()[0]) / 1e9


def process_cpu(pid: int) -> float:
    """CPU seconds used so far by every thread of `pid` (see `task_cpu_seconds`).

    A thread that ends between two readings takes its time with it (a
    worker's threads live as long as it does). Our own process uses the
    process clock instead, which keeps the time of client threads that ended.
    """
    if pid == os.getpid():
        return time.process_time()
    total = 0.0
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError, ValueError, IndexError):
                total += task_cpu_seconds(task)
    return total


def cpu_seconds(pids: list[int]) -> float:
    """CPU seconds consumed so far by all of `pids`."""
    return sum(process_cpu(pid) for pid in pids)
