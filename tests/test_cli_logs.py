"""`supervisor logs`: readable, merged by time, filtered, coloured only for people, followed."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import structlog
from cli_service import detached_service
from service import run_cli

from services.cli.exits import ExitCode
from services.runtime.logs import RotatingLineFile

pytestmark = pytest.mark.slow

ESC = "\x1b["


def _wait_for(condition: Callable[[], bool], timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        time.sleep(0.02)


def test_logs_of_a_running_service_are_readable_merged_and_filtered(tmp_path: Path) -> None:
    """Piped `logs` shows every worker's lines rendered, in time order, without colour."""
    project = tmp_path / "novel"
    with detached_service(project):
        shown = run_cli(project, "logs")
        assert shown.returncode == ExitCode.OK, shown.stderr
        lines = shown.stdout.splitlines()
        assert ESC not in shown.stdout
        for source in ("[supervisor]", "[cost_ledger]", "[session_writer]", "[file_watcher]"):
            assert any(source in line for line in lines), source
        stamps = [line[:23] for line in lines if line[:4].isdigit()]
        assert stamps == sorted(stamps)
        assert any("worker.spawned" in line for line in lines)

        one = run_cli(project, "logs", "cost_ledger", "-n", "3").stdout.splitlines()
        assert len(one) == 3
        assert all("[cost_ledger]" in line or "worker=cost_ledger" in line for line in one)

        as_json = run_cli(project, "logs", "--json", "-n", "5").stdout.splitlines()
        assert len(as_json) == 5
        assert all("timestamp" in json.loads(line) for line in as_json)

        assert run_cli(project, "logs", "--since", "1h").stdout.strip()
        assert not run_cli(project, "logs", "--since", "2999-01-01T00:00").stdout.strip()
        bad = run_cli(project, "logs", "--since", "yesterday-ish")
        assert bad.returncode == ExitCode.USAGE and "--since" in bad.stderr


def _on_a_terminal(project: Path, *args: str, env: dict[str, str]) -> str:
    """Run `supervisor ARGS` with stdout on a pseudo-terminal; what it printed."""
    controller, terminal = pty.openpty()
    child = subprocess.Popen(
        [sys.executable, "-m", "supervisor", *args, "--project", str(project)],
        stdout=terminal,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        env=env,
    )
    os.close(terminal)
    chunks: list[bytes] = []
    while True:
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    child.wait(timeout=30)
    os.close(controller)
    return b"".join(chunks).decode(errors="replace")


def test_colour_only_on_a_terminal_and_never_with_no_color(tmp_path: Path) -> None:
    """On a terminal the levels are coloured; with NO_COLOR set they are not."""
    project = tmp_path / "novel"
    logs = project / ".session" / "logs"
    sink = RotatingLineFile(logs / "cost_ledger.log", max_bytes=1 << 20, backups=1)
    _structured(sink).info("ledger.loaded", records=3)
    sink.close()
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    coloured = _on_a_terminal(project, "logs", env=env)
    assert "ledger.loaded" in coloured and ESC in coloured
    plain = _on_a_terminal(project, "logs", env={**env, "NO_COLOR": "1"})
    assert "ledger.loaded" in plain and ESC not in plain


def _structured(sink: RotatingLineFile) -> structlog.typing.FilteringBoundLogger:
    """A logger rendering JSON lines as the workers do, written through the real rotating file."""

    class Lines:
        def msg(self, message: str) -> None:
            sink.write(message)

        info = msg

    return structlog.wrap_logger(  # type: ignore[no-any-return]
        Lines(),
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.JSONRenderer(),
        ],
    )


def test_follow_survives_rotation_without_losing_or_repeating_a_line(tmp_path: Path) -> None:
    """`logs -f --json` prints every line once, in order, while the file rotates under it."""
    project = tmp_path / "novel"
    logs = project / ".session" / "logs"
    sink = RotatingLineFile(logs / "session_writer.log", max_bytes=1500, backups=3)
    log = _structured(sink)
    log.info("tick", n=0)
    follower = subprocess.Popen(
        [sys.executable, "-m", "supervisor", "logs", "-f", "--json", "--project", str(project)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    seen: list[int] = []

    def read() -> None:
        assert follower.stdout is not None
        for line in follower.stdout:
            seen.append(json.loads(line)["n"])

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        _wait_for(lambda: seen == [0])
        total = 1
        for _ in range(5):  # each burst of 30 lines (~3.7 KB) rotates twice between two polls
            for _ in range(30):
                log.info("tick", n=total, padding="x" * 40)
                total += 1
            expected = total
            _wait_for(lambda: len(seen) >= expected)  # noqa: B023 - read at once, in the loop
        assert (logs / "session_writer.log.3").exists()
        assert seen == list(range(total))
    finally:
        follower.terminate()
        follower.wait(timeout=10)
        sink.close()
        if follower.stdout:
            follower.stdout.close()
        if follower.stderr:
            follower.stderr.close()


def test_raw_lines_keep_their_place_and_since_takes_local_times(tmp_path: Path) -> None:
    """A traceback line without JSON stays after the line before it; --since filters by time."""
    project = tmp_path / "novel"
    logs = project / ".session" / "logs"
    writer = RotatingLineFile(logs / "file_watcher.log", max_bytes=1 << 20, backups=1)
    log = _structured(writer)
    log.info("first")
    writer.write("Traceback (most recent call last):")
    writer.close()
    other = RotatingLineFile(logs / "supervisor.log", max_bytes=1 << 20, backups=1)
    _structured(other).info("later")
    other.close()
    lines = run_cli(project, "logs").stdout.splitlines()
    assert [i for i, line in enumerate(lines) if "first" in line] == [0]
    assert "Traceback" in lines[1] and "later" in lines[2]
    hour_ago = (datetime.now() - timedelta(hours=1)).isoformat()  # local, no offset
    assert "later" in run_cli(project, "logs", "--since", hour_ago).stdout
    in_a_minute = (datetime.now() + timedelta(minutes=1)).isoformat()
    assert "later" not in run_cli(project, "logs", "--since", in_a_minute).stdout
