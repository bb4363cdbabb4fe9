"""The kill soak: SIGKILL a random process every ~150 ms while clients keep working.

A real `supervisor start` tree runs on a project with its restart intensity
raised through `--config` (a crash loop is what we cause on purpose here).
Four clients send `cost.log` and `session.open_file`, each with a fresh id,
and re-send the *same* id on a timeout, `unavailable` or `internal` until it
is acknowledged; a fifth thread edits manuscript files the way a safe-write
editor does. Meanwhile a random process of the tree is SIGKILLed every
~150 ms: a worker or the fork server, and now and then the supervisor itself
(then every process of the tree, and the service is started again, resuming
the same session).

At the end the tree is stopped cleanly and the files are read as they are:

* every acknowledged `cost.log` id is in the ledger exactly once (0 lost,
  0 counted twice), and costs.json's session total is the ledger's exact sum;
* every path's last acknowledged `open_file` cursor is the session's;
* every data file parses (JSON, JSON Lines, gzip archive) and no
  `.corrupt-*` file exists.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import random
import signal
import subprocess
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import zmq

from bench.freeze_watch import FreezeWatcher
from bench.service_tree import child_pids, start_command, write_config

__all__ = ["SOAK_CONFIG", "SoakReport", "run_soak"]

SOAK_CONFIG: dict[str, dict[str, Any]] = {
    "supervisor": {
        "heartbeat_interval_s": 0.1,
        "heartbeat_liveness": 5,
        "request_wait_s": 10.0,
        "backoff_initial_s": 0.01,
        "backoff_max_s": 0.05,
        "max_restarts": 1_000_000,
        "restart_window_s": 1.0,
        "stop_grace_s": 3.0,
    },
    "store": {"wait_initial_s": 0.01, "wait_max_s": 0.05},
}
"""Restart intensity raised: a worker killed 200 times a minute is never `failed`."""

_PATHS_PER_CLIENT = 40
_ATTEMPT_TIMEOUT_S = 2.0
_GIVE_UP_S = 120.0
_RESEND = {"unavailable", "internal"}


@dataclass
class SoakReport:
    """What the soak did and found; `ok` when nothing was lost, doubled or broken."""

    kills: int = 0
    worker_kills: int = 0
    supervisor_kills: int = 0
    acknowledged: int = 0
    resends: int = 0
    lost: list[str] = field(default_factory=list)
    doubled: list[str] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)
    corrupt_files: list[str] = field(default_factory=list)
    client_errors: list[str] = field(default_factory=list)
    freeze_dumps: list[str] = field(default_factory=list)
    """Stack-dump files the freeze watcher wrote (only with `watch_dir`)."""
    edits: int = 0
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """No loss, no double count, every file readable, no client error."""
        return not (
            self.lost or self.doubled or self.unreadable or self.corrupt_files or self.client_errors
        )

    def line(self) -> str:
        """One line for a person."""
        return (
            f"{self.kills} kills ({self.worker_kills} workers or fork server, "
            f"{self.supervisor_kills} whole tree) in {self.seconds:.0f} s; "
            f"{self.acknowledged} ops acknowledged ({self.resends} re-sends), {self.edits} edits; "
            f"lost {len(self.lost)}, counted twice {len(self.doubled)}, "
            f"unreadable files {len(self.unreadable)}, .corrupt-* {len(self.corrupt_files)}, "
            f"client errors {len(self.client_errors)}"
        )


class _Tree:
    """The supervisor process of the moment, started and killed on demand."""

    def __init__(self, project: Path, config: Path) -> None:
        self.project = project
        self.config = config
        self.process: subprocess.Popen[bytes] | None = None
        self.log = (project.parent / f"{project.name}-soak.out").open("ab")

    @property
    def endpoints(self) -> Path:
        return self.project / ".session" / "run" / "endpoints.json"

    def start(self, timeout_s: float = 60.0) -> None:
        self.process = subprocess.Popen(
            start_command(self.project, self.config),
            stdin=subprocess.DEVNULL,
            stdout=self.log,
            stderr=self.log,
            cwd=self.project,
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError, ValueError):
                if json.loads(self.endpoints.read_text())["supervisor_pid"] == self.process.pid:
                    return
            if self.process.poll() is not None:
                raise RuntimeError(f"the supervisor exited {self.process.returncode}")
            time.sleep(0.01)
        raise TimeoutError("the service did not become ready")

    def children(self) -> list[int]:
        return [] if self.process is None else child_pids(self.process.pid)

    def kill_all(self) -> None:
        """SIGKILL the supervisor, then whatever of its tree is left."""
        if self.process is None:
            return
        children = self.children()
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill_all()
        self.log.close()


class _Client(threading.Thread):
    """Sends fresh ids, re-sends the same id until it is acknowledged."""

    def __init__(
        self, number: int, project: Path, context: zmq.Context[Any], stop: threading.Event
    ):
        super().__init__(daemon=True, name=f"soak-client-{number}")
        self.number = number
        self.project = project
        self.context = context
        self.stop_flag = stop
        self.costs: dict[str, Decimal] = {}
        self.cursors: dict[str, int] = {}
        """The cursor of each path's last acknowledged `open_file`."""
        self.opened = 0
        self.resends = 0
        self.errors: list[str] = []
        self._socket: zmq.Socket[bytes] | None = None
        self._endpoint = ""

    def _connect(self) -> zmq.Socket[bytes]:
        with contextlib.suppress(OSError, ValueError, KeyError):
            endpoint = json.loads((self.project / ".session/run/endpoints.json").read_text())[
                "command"
            ]
            if endpoint != self._endpoint and self._socket is not None:
                self._socket.close(linger=0)
                self._socket = None
            self._endpoint = endpoint
        if self._socket is None:
            self._socket = self.context.socket(zmq.DEALER)
            self._socket.setsockopt(zmq.LINGER, 0)
            self._socket.connect(self._endpoint)
        return self._socket

    def _acknowledged(
        self, request_id: str, op: str, args: dict[str, Any]
    ) -> dict[str, Any] | None:
        frame = json.dumps({"v": 1, "id": request_id, "op": op, "args": args}).encode()
        give_up = time.monotonic() + _GIVE_UP_S
        while time.monotonic() < give_up:
            sock = self._connect()
            sock.send_multipart([b"", frame])
            deadline = time.monotonic() + _ATTEMPT_TIMEOUT_S
            while (left := deadline - time.monotonic()) > 0 and sock.poll(int(left * 1000)):
                reply = json.loads(sock.recv_multipart()[-1])
                if reply.get("id") != request_id:
                    continue  # a late answer to an earlier request
                if reply.get("ok"):
                    result: dict[str, Any] = reply["result"]
                    return result
                if reply["error"]["code"] not in _RESEND:
                    self.errors.append(f"{request_id}: {reply['error']}")
                    return None
                break
            self.resends += 1
        self.errors.append(f"{request_id}: no reply in {_GIVE_UP_S:.0f} s")
        return None

    def run(self) -> None:
        try:
            self._work()
        except Exception as exc:  # a client bug must show in the report, not hang the soak
            self.errors.append(f"client {self.number}: {type(exc).__name__}: {exc}")
        finally:
            if self._socket is not None:
                self._socket.close(linger=0)

    def _work(self) -> None:
        count = 0
        while not self.stop_flag.is_set() and not self.errors:
            count += 1
            request_id = f"k{self.number}-{count}"
            if count % 2:
                args = {
                    "operation": "draft",
                    "model": "gpt-4",
                    "input_tokens": count,
                    "output_tokens": 3,
                }
                result = self._acknowledged(request_id, "cost.log", args)
                if result is not None:
                    self.costs[request_id] = Decimal(str(result["operation"]["cost"]))
            else:
                # A bounded set of paths (a session holds at most 1,000 open files),
                # each reopened with a new cursor: the last acknowledged one must win.
                path = f"manuscript/k{self.number}/c{count % _PATHS_PER_CLIENT}.md"
                args = {"path": path, "cursor_line": count}
                result = self._acknowledged(request_id, "session.open_file", args)
                if result is not None:
                    self.cursors[path] = count
                    self.opened += 1


def _editor(project: Path, stop: threading.Event, report: SoakReport) -> None:
    folder = project / "manuscript"
    folder.mkdir(parents=True, exist_ok=True)
    while not stop.wait(0.05):
        target = folder / f"chapter-{report.edits % 5}.md"
        temp = folder / f".{target.name}.swp-tmp"
        temp.write_text(f"draft {report.edits}\n")
        temp.replace(target)  # a safe-write editor's save
        report.edits += 1


def _verify(project: Path, clients: list[_Client], report: SoakReport) -> None:
    from protocol.codec import loads_exact
    from services.runtime.paths import ProjectPaths
    from services.session.recovery import previous_document

    session = project / ".session"
    report.corrupt_files = sorted(str(p.relative_to(session)) for p in session.rglob("*.corrupt-*"))
    for path in sorted(session.rglob("*")):
        if not path.is_file() or path.parent.name in {"logs", "run"}:
            continue
        try:
            data = path.read_bytes()
            if path.name.endswith((".json", ".json.prev")):
                loads_exact(data)
            elif path.name.endswith(".jsonl"):
                for line in data.splitlines():
                    loads_exact(line)
            elif path.name.endswith(".gz"):
                gzip.decompress(data)
        except (OSError, ValueError, EOFError) as exc:
            report.unreadable.append(f"{path.relative_to(session)}: {exc}")
    ledger: Counter[str] = Counter()
    costs: dict[str, Decimal] = {}
    sessions: dict[str, str] = {}
    for path in sorted((session / "ledger").glob("*.jsonl")):
        for line in path.read_bytes().splitlines():
            record = loads_exact(line)
            if record.get("kind") == "op":
                ledger[record["id"]] += 1
                costs[record["id"]] = Decimal(str(record.get("cost") or 0))
                sessions[record["id"]] = record["session_id"]
    acknowledged = {rid: cost for client in clients for rid, cost in client.costs.items()}
    report.lost += [rid for rid in acknowledged if ledger[rid] == 0]
    report.doubled += [rid for rid, seen in ledger.items() if seen > 1]
    document = previous_document(ProjectPaths.of(project))
    opened = {entry.path: entry.cursor_line for entry in document.open_files} if document else {}
    report.lost += [
        f"{path} at line {line} (found {opened.get(path)})"
        for client in clients
        for path, line in client.cursors.items()
        if opened.get(path) != line
    ]
    with contextlib.suppress(OSError, ValueError):
        snapshot = loads_exact((session / "costs.json").read_bytes())
        current = snapshot.get("session_id")
        expected = sum((c for rid, c in costs.items() if sessions[rid] == current), Decimal(0))
        if Decimal(str(snapshot["session_total"])) != expected:
            report.doubled.append(
                f"costs.json session_total {snapshot['session_total']} != {expected}"
            )


def _watch(project: Path, tree: _Tree, watch_dir: Path | None) -> FreezeWatcher | None:
    """A started freeze watcher on `tree`, or None without `watch_dir`."""
    if watch_dir is None:
        return None
    watcher = FreezeWatcher(project, watch_dir, lambda: tree.process.pid if tree.process else None)
    watcher.start()
    return watcher


def run_soak(
    project: Path,
    *,
    kills: int,
    seed: int = 10,
    supervisor_every: int = 25,
    watch_dir: Path | None = None,
) -> SoakReport:
    """Run the soak on a new `project` (see the module doc); the report.

    With `watch_dir`, a `bench.freeze_watch.FreezeWatcher` stack-dumps the
    tree into that folder whenever the supervisor's loop stops turning.
    """
    report = SoakReport()
    rng = random.Random(seed)
    project.mkdir(parents=True, exist_ok=True)
    config = write_config(project.parent / f"{project.name}-soak.toml", SOAK_CONFIG)
    tree = _Tree(project, config)
    context: zmq.Context[Any] = zmq.Context()
    stop = threading.Event()
    started = time.monotonic()
    tree.start()
    watcher = _watch(project, tree, watch_dir)
    clients = [_Client(number, project, context, stop) for number in range(4)]
    editor = threading.Thread(target=_editor, args=(project, stop, report), daemon=True)
    try:
        for thread in [*clients, editor]:
            thread.start()
        for number in range(1, kills + 1):
            time.sleep(rng.uniform(0.1, 0.2))
            if number % supervisor_every == 0:
                if watcher is not None:
                    watcher.paused.set()
                tree.kill_all()
                report.supervisor_kills += 1
                tree.start()
                if watcher is not None:
                    watcher.paused.clear()
            else:
                victims = tree.children()
                if not victims:
                    continue
                with contextlib.suppress(ProcessLookupError):
                    os.kill(rng.choice(victims), signal.SIGKILL)
                report.worker_kills += 1
            report.kills += 1
            if any(client.errors for client in clients):
                break
    finally:
        stop.set()
        for thread in [*clients, editor]:
            thread.join(timeout=_GIVE_UP_S + 10)
        if watcher is not None:
            watcher.paused.set()
            watcher.close()
            report.freeze_dumps = [str(path) for path in watcher.dumps]
        tree.stop()
        context.destroy(linger=0)
    report.seconds = time.monotonic() - started
    report.acknowledged = sum(len(c.costs) + c.opened for c in clients)
    report.resends = sum(c.resends for c in clients)
    report.client_errors = [error for client in clients for error in client.errors]
    _verify(project, clients, report)
    return report
