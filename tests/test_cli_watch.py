"""`supervisor watch` in a real terminal: tmux runs it, capture-pane reads the screen."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cli_service import detached_service
from service import run_cli

from services.cli.control import query
from services.cli.exits import ExitCode

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed"),
]

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class Terminal:
    """A detached tmux session on a private server socket, 160 columns wide."""

    def __init__(self, name: str, command: list[str], cwd: Path) -> None:
        self.socket = f"wf-test-{os.getpid()}-{name}"
        self.name = name
        quoted = " ".join(shlex.quote(part) for part in command)
        root = shlex.quote(str(PROJECT_ROOT))
        # After the command, its exit code stays on screen (and the pane stays open).
        shell = f'env PYTHONPATH={root} {quoted}; echo "[exit $?]"; sleep 60'
        size = ("-x", "160", "-y", "6")
        self._tmux("new-session", "-d", "-s", name, *size, "-c", str(cwd), shell)

    def _tmux(self, *args: str) -> str:
        done = subprocess.run(
            ["tmux", "-L", self.socket, *args],  # noqa: S607 - the test needs tmux on PATH
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
        return done.stdout

    def screen(self) -> list[str]:
        """The visible lines, trailing blanks removed."""
        lines = self._tmux("capture-pane", "-p", "-t", self.name).splitlines()
        return [line.rstrip() for line in lines if line.strip()]

    def wait_for(self, found: Callable[[str], bool], timeout_s: float = 20.0) -> str:
        """Wait until the screen's text satisfies `found`; that text."""
        deadline = time.monotonic() + timeout_s
        while True:
            text = "\n".join(self.screen())
            if found(text):
                return text
            if time.monotonic() > deadline:
                raise TimeoutError(f"screen never matched; it shows:\n{text}")
            time.sleep(0.05)

    def keys(self, *keys: str) -> None:
        """Type keys into the pane."""
        self._tmux("send-keys", "-t", self.name, *keys)

    def alive(self) -> bool:
        """Whether the session (the command) still runs."""
        return (
            subprocess.run(
                ["tmux", "-L", self.socket, "has-session", "-t", self.name],  # noqa: S607
                capture_output=True,
                check=False,
            ).returncode
            == 0
        )

    def close(self) -> None:
        """End the tmux server of this terminal (only ours: its own socket)."""
        self._tmux("kill-server")


@pytest.fixture
def terminal_factory() -> Iterator[Callable[[str, list[str], Path], Terminal]]:
    """Terminals that are always closed at the end."""
    made: list[Terminal] = []

    def make(name: str, command: list[str], cwd: Path) -> Terminal:
        made.append(Terminal(name, command, cwd))
        return made[-1]

    yield make
    for terminal in made:
        terminal.close()


def _age(text: str) -> int:
    match = re.search(r"Auto-saved (\d+)s ago", text)
    assert match, text
    return int(match.group(1))


def test_watch_updates_one_line_in_place_from_events(
    tmp_path: Path, terminal_factory: Callable[[str, list[str], Path], Terminal]
) -> None:
    """Stage, spend, file events and worker states appear on one line; the age ticks each second."""
    project = tmp_path / "novel"
    (project / "manuscript").mkdir(parents=True)
    with detached_service(project):
        watch = terminal_factory(
            "watch",
            [sys.executable, "-m", "supervisor", "watch", "--project", str(project)],
            project,
        )
        first = watch.wait_for(lambda s: "workers 4/4 running" in s)
        assert "creation" in first and "no file event yet" in first

        query(project, "session.set_stage", {"stage": "writing"})
        query(project, "session.save")
        watch.wait_for(lambda s: "│ writing │" in s)

        (project / "manuscript" / "ch1.md").write_text("It was a dark night.\n")
        watch.wait_for(lambda s: "manuscript/ch1.md" in s)

        logged = query(
            project,
            "cost.log",
            {
                "operation": "analysis",
                "model": "claude-sonnet-3.5",
                "input_tokens": 12450,
                "output_tokens": 3200,
            },
        )
        from services.cost.money import usd

        spent = usd(logged["totals"]["session_total"])
        watch.wait_for(lambda s: f"{spent} session" in s)
        assert len(watch.screen()) == 1  # redrawn in place, never scrolled

        # No event now: only the age moves, once a second.
        age = _age(watch.wait_for(lambda s: "Auto-saved" in s))
        watch.wait_for(lambda s: "Auto-saved" in s and _age(s) >= age + 2, timeout_s=10)
        assert len(watch.screen()) == 1

        watch.keys("C-c")
        assert "[exit 0]" in watch.wait_for(lambda s: "[exit" in s, timeout_s=10)


def test_watch_shows_a_failed_worker_and_ends_with_the_service(
    tmp_path: Path, terminal_factory: Callable[[str, list[str], Path], Terminal]
) -> None:
    """A failed worker shows by name at once; when the service stops, the line says so."""
    project = tmp_path / "novel"
    project.mkdir()
    with detached_service(project, config={"supervisor": {"max_restarts": 0}}):
        command = [sys.executable, "-m", "supervisor", "watch", "--project", str(project)]
        watch = terminal_factory("failing", command, project)
        watch.wait_for(lambda s: "workers 4/4 running" in s)
        pid = next(
            w["pid"]
            for w in query(project, "supervisor.status")["workers"]
            if w["name"] == "history_archiver"
        )
        os.kill(pid, 9)
        watch.wait_for(lambda s: "history_archiver failed" in s and "3/4 running" in s)
        assert run_cli(project, "stop").returncode == ExitCode.OK
        ended = watch.wait_for(lambda s: "[exit" in s)
        assert "The service stopped" in ended and "[exit 0]" in ended


def test_watch_exits_3_when_nothing_runs(tmp_path: Path) -> None:
    """With no service, `watch` says so and exits 3."""
    project = tmp_path / "novel"
    project.mkdir()
    assert run_cli(project, "watch").returncode == ExitCode.NOT_RUNNING
