"""Run the real service (a `supervisor start` process tree) for a test.

Used by the chaos and end-to-end tests: it starts `python -m supervisor start`
on a project folder with short timings from a TOML override, waits for
`endpoints.json`, talks to it with plain pyzmq (as any client would), and
always stops and reaps everything at the end.
"""

from __future__ import annotations

import contextlib
import itertools
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

from services.readonly.liveness import pid_alive

FAST_TIMINGS: dict[str, dict[str, Any]] = {
    "supervisor": {
        "heartbeat_interval_s": 0.1,
        "heartbeat_liveness": 5,
        "idle_heartbeat_s": 0.4,
        "request_wait_s": 5.0,
        "stop_grace_s": 2.0,
        "backoff_initial_s": 0.05,
        "backoff_max_s": 0.4,
        "max_restarts": 5,
        "restart_window_s": 30.0,
    },
    "autosave": {"interval_s": 0.5},
    "store": {"attempts": 3, "wait_initial_s": 0.01, "wait_max_s": 0.05},
}

_ids = itertools.count()


def write_config(path: Path, sections: dict[str, dict[str, Any]]) -> Path:
    """Write a TOML override file (flat sections of scalars)."""
    lines: list[str] = []
    for section, values in sections.items():
        lines.append(f"[{section}]")
        for key, value in values.items():
            rendered = json.dumps(value) if not isinstance(value, bool) else str(value).lower()
            lines.append(f"{key} = {rendered}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@dataclass
class RunningService:
    """A live service tree and a REQ socket to its command endpoint."""

    project: Path
    process: subprocess.Popen[bytes]
    output: Path
    context: zmq.Context[zmq.Socket[bytes]] = field(default_factory=zmq.Context)
    _sockets: list[zmq.Socket[bytes]] = field(default_factory=list)

    @property
    def endpoints(self) -> dict[str, Any]:
        """The parsed endpoints.json."""
        data: dict[str, Any] = json.loads(
            (self.project / ".session" / "run" / "endpoints.json").read_text()
        )
        return data

    def curve_options(self) -> dict[int, bytes]:
        """The CURVE keys endpoints.json names (tcp), as socket options; none over ipc."""
        files = self.endpoints.get("curve")
        if not files:
            return {}
        return {
            zmq.CURVE_SERVERKEY: Path(files["server_public_key_file"]).read_bytes().strip(),
            zmq.CURVE_PUBLICKEY: Path(files["client_public_key_file"]).read_bytes().strip(),
            zmq.CURVE_SECRETKEY: Path(files["client_secret_key_file"]).read_bytes().strip(),
        }

    def socket(self, kind: int = zmq.DEALER) -> zmq.Socket[bytes]:
        """A new socket connected to the command endpoint (closed at teardown)."""
        sock = self.context.socket(kind)
        sock.setsockopt(zmq.LINGER, 0)
        for option, value in self.curve_options().items():
            sock.setsockopt(option, value)
        sock.connect(self.endpoints["command"])
        self._sockets.append(sock)
        return sock

    def request(
        self,
        op: str,
        args: dict[str, Any] | None = None,
        *,
        request_id: str | None = None,
        timeout_s: float = 10.0,
        sock: zmq.Socket[bytes] | None = None,
    ) -> dict[str, Any]:
        """Send one request over a DEALER (empty delimiter first); the raw reply."""
        sock = sock or self.socket()
        request_id = request_id or f"t-{os.getpid()}-{next(_ids)}"
        frame = json.dumps({"v": 1, "id": request_id, "op": op, "args": args or {}}).encode()
        sock.send_multipart([b"", frame])
        deadline = time.monotonic() + timeout_s
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not sock.poll(int(remaining * 1000)):
                raise TimeoutError(f"no reply to {op} ({request_id}) within {timeout_s} s")
            frames = sock.recv_multipart()
            reply: dict[str, Any] = json.loads(frames[-1])
            if reply.get("id") == request_id:
                return reply

    def status(self) -> dict[str, Any]:
        """`supervisor.status`'s result."""
        result: dict[str, Any] = self.request("supervisor.status")["result"]
        return result

    def worker(self, name: str) -> dict[str, Any]:
        """One worker's entry in the status."""
        return next(w for w in self.status()["workers"] if w["name"] == name)

    def wait_running(self, name: str, *, timeout_s: float = 10.0) -> dict[str, Any]:
        """Wait until worker `name` is running again; its status entry."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            entry = self.worker(name)
            if entry["state"] == "running" and entry["pid"]:
                return entry
            time.sleep(0.02)
        raise TimeoutError(f"{name} not running after {timeout_s} s: {self.worker(name)}")

    def worker_pids(self) -> list[int]:
        """Pids of every worker process now running."""
        return [w["pid"] for w in self.status()["workers"] if w["pid"]]

    def crash(self) -> None:
        """SIGKILL the supervisor and every worker (a power cut, as far as the files know)."""
        pids = self.worker_pids()
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()
        for pid in pids:
            if pid_alive(pid):
                os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 3
        while any(pid_alive(pid) for pid in pids) and time.monotonic() < deadline:
            time.sleep(0.01)
        self.close_sockets()

    def close_sockets(self) -> None:
        """Close every socket this helper opened."""
        for sock in self._sockets:
            sock.close(linger=0)
        self._sockets.clear()

    def stop(self, timeout_s: float = 20.0) -> int:
        """Stop cleanly (SIGTERM, as `supervisor stop` does) and reap; the exit code."""
        self.close_sockets()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.context.term()
        return self.process.returncode

    def log_text(self) -> str:
        """What the supervisor printed, for assertion messages."""
        return self.output.read_text(errors="replace")


def supervisor_command(project: Path, *extra: str) -> list[str]:
    """The argv of `supervisor ...` run with this interpreter."""
    return [sys.executable, "-m", "supervisor", *extra, "--project", str(project)]


def run_cli(project: Path, *args: str, timeout_s: float = 30.0) -> subprocess.CompletedProcess[str]:
    """Run a `supervisor` subcommand to completion and capture its output."""
    command = [sys.executable, "-m", "supervisor", *args, "--project", str(project)]
    return subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        stdin=subprocess.DEVNULL,
        check=False,
        cwd=project,
    )


def start_service(
    project: Path,
    *extra: str,
    config: dict[str, dict[str, Any]] | None = None,
    timeout_s: float = 20.0,
) -> RunningService:
    """Start a foreground `supervisor start` and wait until it is ready."""
    project.mkdir(parents=True, exist_ok=True)
    sections = {key: dict(value) for key, value in FAST_TIMINGS.items()}
    for key, value in (config or {}).items():
        sections.setdefault(key, {}).update(value)
    config_path = write_config(project.parent / f"{project.name}-config.toml", sections)
    output = project.parent / f"{project.name}-supervisor.out"
    endpoints = project / ".session" / "run" / "endpoints.json"
    with output.open("ab") as sink:
        process = subprocess.Popen(
            [*supervisor_command(project, "start"), "--config", str(config_path), *extra],
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=sink,
            cwd=project,
        )
    service = RunningService(project=project, process=process, output=output)
    try:
        return _wait_ready(service, endpoints, timeout_s)
    except BaseException:
        service.stop()  # never leak a service tree from a failed start
        raise


def _wait_ready(service: RunningService, endpoints: Path, timeout_s: float) -> RunningService:
    process = service.process
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if endpoints.exists():
            with contextlib.suppress(ValueError, OSError):
                if service.endpoints.get("supervisor_pid") == process.pid:
                    return service
        if process.poll() is not None:
            raise RuntimeError(f"supervisor exited {process.returncode}:\n{service.log_text()}")
        time.sleep(0.01)
    raise TimeoutError(f"service not ready in {timeout_s} s:\n{service.log_text()}")


@contextlib.contextmanager
def running_service(project: Path, *extra: str, **kwargs: Any) -> Iterator[RunningService]:
    """`start_service` as a context manager that always stops and reaps."""
    service = start_service(project, *extra, **kwargs)
    try:
        yield service
    finally:
        pids = []
        with contextlib.suppress(Exception):
            pids = service.worker_pids()
        service.stop()
        for pid in pids:  # nothing may outlive the test
            if pid_alive(pid):
                os.kill(pid, signal.SIGKILL)
