"""Catch a frozen supervisor in the act: stack-dump the tree when its loop stops.

The kill soak SIGKILLs a worker or the fork server every ~150 ms, so a
supervisor whose loop turns logs a `worker.exited` line several times a
second and answers `supervisor.status` (its own op, no worker involved) at
once. `FreezeWatcher` runs beside a soak and, when the supervisor's log has
not grown for `stale_s` or a `supervisor.status` probe goes unanswered for
`probe_timeout_s` (both well above the longest legitimate hold of the loop:
a new fork server's first fork waits up to 5 s for its imports), writes one
report per frozen supervisor: `py-spy dump --native` of it and of each of
its children, plus `/proc/<pid>/stack`, `wchan`, `status` and the open
descriptors of each.

`python -m bench.freeze_watch --runs N --kills K --out DIR` runs short soaks
in a row with the watcher and prints one line per run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import zmq

from bench.service_tree import child_pids

__all__ = ["FreezeWatcher", "dump_process", "main"]

_PROC_FILES = ("wchan", "stack", "status", "syscall")


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace").strip()
    except OSError as exc:
        return f"({exc})"


def dump_process(pid: int, label: str) -> str:
    """A py-spy native stack dump of `pid` and what /proc says about it."""
    parts = [f"===== {label} pid {pid} ====="]
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    # --native pauses the process (ptrace); a stopped one needs --nonblocking.
    for mode in ("--native", "--nonblocking"):
        try:
            done = subprocess.run(
                [spy, "dump", "--pid", str(pid), mode],
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            parts.append(f"py-spy {mode}: {exc}")
            continue
        parts.append(f"--- py-spy dump {mode}\n{done.stdout}{done.stderr}")
        if done.returncode == 0:
            break
    proc = Path(f"/proc/{pid}")
    for name in _PROC_FILES:
        parts.append(f"--- /proc/{pid}/{name}\n{_read(proc / name)}")
    fds = []
    with contextlib.suppress(OSError):
        for entry in sorted((proc / "fd").iterdir(), key=lambda path: int(path.name)):
            with contextlib.suppress(OSError):
                fds.append(f"{entry.name} -> {entry.readlink()}")
    parts.append(f"--- /proc/{pid}/fd\n" + "\n".join(fds))
    with contextlib.suppress(OSError):
        for task in sorted((proc / "task").iterdir(), key=lambda path: int(path.name)):
            parts.append(
                f"--- task {task.name}: {_read(task / 'comm')} wchan={_read(task / 'wchan')}"
            )
    return "\n".join(parts)


class FreezeWatcher(threading.Thread):
    """Watches one project's supervisor; writes a dump file per freeze it sees."""

    def __init__(
        self,
        project: Path,
        out_dir: Path,
        supervisor_pid: Callable[[], int | None],
        *,
        stale_s: float = 20.0,
        probe_timeout_s: float = 15.0,
    ) -> None:
        super().__init__(daemon=True, name="freeze-watcher")
        self.project = project
        self.out_dir = out_dir
        self.supervisor_pid = supervisor_pid
        self.stale_s = stale_s
        self.probe_timeout_s = probe_timeout_s
        self.stop_flag = threading.Event()
        self.paused = threading.Event()
        """Set while the soak restarts the whole tree (no activity is expected)."""
        self.dumps: list[Path] = []
        self._context: zmq.Context[Any] = zmq.Context()

    @property
    def _log(self) -> Path:
        return self.project / ".session" / "logs" / "supervisor.log"

    def _log_mark(self) -> tuple[int, int]:
        try:
            stat = self._log.stat()
        except OSError:
            return (0, 0)
        return (stat.st_ino, stat.st_size)

    def _probe(self, pid: int) -> bool:
        """Whether the supervisor answers `supervisor.status` in time."""
        try:
            endpoints = json.loads((self.project / ".session/run/endpoints.json").read_text())
        except (OSError, ValueError):
            return True  # not ready yet or stopping: nothing to ask
        if endpoints.get("supervisor_pid") != pid:
            return True
        sock = self._context.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        try:
            sock.connect(endpoints["command"])
            request = {"v": 1, "id": f"watch-{time.monotonic_ns()}", "op": "supervisor.status"}
            sock.send_multipart([b"", json.dumps({**request, "args": {}}).encode()])
            deadline = time.monotonic() + self.probe_timeout_s
            while (left := deadline - time.monotonic()) > 0:
                if not sock.poll(int(left * 1000)):
                    return False
                if json.loads(sock.recv_multipart()[-1]).get("id") == request["id"]:
                    return True
            return False
        finally:
            sock.close(linger=0)

    def _dump(self, pid: int, reason: str) -> None:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        target = self.out_dir / f"freeze-{pid}-{int(time.time())}.txt"
        parts = [f"reason: {reason}", f"at: {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}"]
        parts.append(dump_process(pid, "supervisor"))
        for child in child_pids(pid):
            command = _read(Path(f"/proc/{child}/cmdline")).replace("\0", " ")
            parts.append(dump_process(child, f"child {command}"))
            for grandchild in child_pids(child):
                parts.append(dump_process(grandchild, f"grandchild of {child}"))
        with contextlib.suppress(OSError):
            tail = self._log.read_text(errors="replace").splitlines()[-40:]
            parts.append("===== supervisor.log (last 40 lines)\n" + "\n".join(tail))
        target.write_text("\n\n".join(parts) + "\n")
        self.dumps.append(target)

    def run(self) -> None:
        mark, changed_at, dumped_pid = self._log_mark(), time.monotonic(), None
        while not self.stop_flag.wait(1.0):
            pid = self.supervisor_pid()
            now = time.monotonic()
            current = self._log_mark()
            if current != mark or self.paused.is_set() or pid is None:
                mark, changed_at = current, now
                continue
            reason = ""
            if now - changed_at > self.stale_s:
                reason = f"supervisor.log unchanged for {now - changed_at:.0f} s"
            elif not self._probe(pid):
                reason = f"supervisor.status unanswered in {self.probe_timeout_s:.0f} s"
            # A whole-tree kill may have begun meanwhile: only a live supervisor
            # that is still the soak's, and not being restarted, counts.
            still = pid == self.supervisor_pid() and Path(f"/proc/{pid}/status").exists()
            if reason and still and pid != dumped_pid and not self.paused.is_set():
                self._dump(pid, reason)
                dumped_pid = pid  # one report per supervisor process

    def close(self) -> None:
        """Stop watching."""
        self.stop_flag.set()
        self.join(timeout=60)
        self._context.destroy(linger=0)


def main(argv: list[str] | None = None) -> int:
    """Run short soaks in a row with the watcher; one line per run."""
    from bench.soak import run_soak

    parser = argparse.ArgumentParser(prog="python -m bench.freeze_watch")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--kills", type=int, default=100)
    parser.add_argument("--supervisor-every", type=int, default=34)
    parser.add_argument("--seed", type=int, default=0, help="first seed (then +1 per run)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)

    def interrupted(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt  # the soak's `finally` stops its tree

    signal.signal(signal.SIGTERM, interrupted)
    signal.signal(signal.SIGINT, interrupted)
    args.out.mkdir(parents=True, exist_ok=True)
    freezes = 0
    for run in range(args.runs):
        project = args.out / f"run-{args.seed + run}" / "novel"
        report = run_soak(
            project,
            kills=args.kills,
            seed=args.seed + run,
            supervisor_every=args.supervisor_every,
            watch_dir=args.out,
        )
        freezes += bool(report.freeze_dumps)
        print(
            f"run {args.seed + run}: {report.line()}; dumps {report.freeze_dumps}",
            flush=True,
        )
        if report.ok and not report.freeze_dumps:
            shutil.rmtree(project.parent, ignore_errors=True)
    print(f"{args.runs} runs, {freezes} with a freeze", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
