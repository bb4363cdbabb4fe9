"""`supervisor events`: the live stream, filtered by topic, with missed events reported."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
import zmq
from cli_service import detached_service
from service import run_cli

from protocol.codec import dumps
from protocol.envelopes import EndpointsFile, encode_event
from services.cli.exits import ExitCode
from services.runtime.lock import SupervisorLock

pytestmark = pytest.mark.slow


class Listener:
    """`supervisor events ARGS` in the background, its stdout collected line by line."""

    def __init__(self, project: Path, *args: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "supervisor", "events", *args, "--project", str(project)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, found: Callable[[list[str]], bool], poke: Callable[[], None]) -> None:
        """Poke the service until `found(lines)` holds (the SUB socket joins asynchronously)."""
        deadline = time.monotonic() + 20
        while not found(self.lines):
            assert time.monotonic() < deadline, f"not seen: {self.lines}"
            poke()
            time.sleep(0.1)

    def end(self) -> int:
        """Stop it if needed; its exit code."""
        if self.process.poll() is None:
            self.process.terminate()
        code = self.process.wait(timeout=10)
        self._reader.join(timeout=5)
        for stream in (self.process.stdout, self.process.stderr):
            if stream:
                stream.close()
        return code


def test_events_prints_file_events_live_and_ends_when_the_service_stops(tmp_path: Path) -> None:
    """A saved chapter shows as a `file.*` line; `--topic` filters; the stream ends at the stop."""
    project = tmp_path / "novel"
    chapter = project / "manuscript" / "ch1.md"
    chapter.parent.mkdir(parents=True)
    counter = iter(range(10_000))

    def edit() -> None:
        chapter.write_text(f"draft {next(counter)}\n")

    with detached_service(project):
        everything = Listener(project)
        only_files = Listener(project, "--topic", "file.", "--json")
        everything.wait_for(lambda ls: any("manuscript/ch1.md" in line for line in ls), edit)
        only_files.wait_for(lambda ls: len(ls) > 0, edit)
        line = next(line for line in everything.lines if "manuscript/ch1.md" in line)
        assert "file_watcher#" in line and " file." in line
        documents = [json.loads(line) for line in only_files.lines]
        assert all(d["topic"].startswith("file.") for d in documents)
        assert documents[0]["data"]["path"] == "manuscript/ch1.md"
        assert run_cli(project, "stop").returncode == ExitCode.OK
        assert everything.process.wait(timeout=15) == ExitCode.OK
        assert only_files.process.wait(timeout=15) == ExitCode.OK
        everything.end()
        only_files.end()


def test_a_jump_in_seq_is_reported_as_missed_events(tmp_path: Path) -> None:
    """Events 0, 1, then 5 from one source print a line saying 3 events (2..4) were missed."""
    project = tmp_path / "novel"
    run_dir = project / ".session" / "run"
    run_dir.mkdir(parents=True)
    lock = SupervisorLock(run_dir / "supervisor.lock")
    lock.acquire()  # this test plays the supervisor: `events` sees a live service
    context = zmq.Context()
    publisher = context.socket(zmq.XPUB)
    publisher.setsockopt(zmq.LINGER, 0)
    publisher.setsockopt(zmq.XPUB_VERBOSE, 1)  # every subscription, not only the first
    endpoint = f"ipc://{run_dir}/events.sock"
    publisher.bind(endpoint)
    endpoints = EndpointsFile(
        command=f"ipc://{run_dir}/command.sock",
        events=endpoint,
        supervisor_pid=1,
        session_id="s1",
        started_at=datetime.now(UTC),
    )
    (run_dir / "endpoints.json").write_bytes(dumps(endpoints.model_dump(mode="json")))
    listeners = [Listener(project), Listener(project, "--json")]
    try:
        for _ in listeners:  # each subscription arrives as one message: then nothing is lost
            assert publisher.poll(20_000), "no subscriber joined"
            publisher.recv()
        now = datetime.now(UTC)
        for seq in (0, 1, 5):
            publisher.send_multipart(
                encode_event("file.modified", "file_watcher", seq, now, {"path": "a.md"})
            )
        text, as_json = listeners
        deadline = time.monotonic() + 15
        while len(text.lines) < 4 or len(as_json.lines) < 4:
            assert time.monotonic() < deadline, (text.lines, as_json.lines)
            time.sleep(0.02)
        assert text.lines[2] == "!! missed 3 events from file_watcher (seq 2..4)"
        gap = json.loads(as_json.lines[2])
        assert gap == {
            "gap": True,
            "source": "file_watcher",
            "missed": 3,
            "first_seq": 2,
            "last_seq": 4,
        }
        assert json.loads(as_json.lines[3])["seq"] == 5
    finally:
        for listener in listeners:
            listener.end()
        publisher.close()
        context.term()
        lock.release()


def test_events_exits_3_when_nothing_runs(tmp_path: Path) -> None:
    """With no service, `events` says so and exits 3."""
    project = tmp_path / "novel"
    project.mkdir()
    result = run_cli(project, "events")
    assert result.returncode == ExitCode.NOT_RUNNING
    assert "nothing is running" in result.stderr
