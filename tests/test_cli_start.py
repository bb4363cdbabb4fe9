"""`supervisor start` and `stop` as a user runs them: JSON, prompts, races, bad disks."""

from __future__ import annotations

import json
import os
import pty
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from cli_service import detached_service, fast_config, wait_lock_free
from service import run_cli, start_service

from services.cli.exits import ExitCode

pytestmark = pytest.mark.slow


def test_start_detach_json_names_pid_endpoints_session_and_fresh(tmp_path: Path) -> None:
    """`start --detach --json` prints the pid, endpoints, session and `fresh`; console.log is 0600.

    The project holds a 0644 console.log left by an older version: it is made private.
    """
    project = tmp_path / "novel"
    logs = project / ".session" / "logs"
    logs.mkdir(parents=True)
    (logs / "console.log").write_text("old line\n")
    (logs / "console.log").chmod(0o644)
    with detached_service(project) as ready:
        assert stat.S_IMODE((logs / "console.log").stat().st_mode) == 0o600
        endpoints = json.loads((project / ".session" / "run" / "endpoints.json").read_text())
        assert ready["supervisor_pid"] == endpoints["supervisor_pid"]
        wanted = {"command": endpoints["command"], "events": endpoints["events"]}
        assert ready["endpoints"] == wanted
        assert ready["session_id"] == endpoints["session_id"]
        assert ready["resumed"] is False and ready["fresh"] is True
        stopped = run_cli(project, "stop", "--json")
        assert stopped.returncode == ExitCode.OK, stopped.stderr
        assert json.loads(stopped.stdout)["stopped"] is True
        wait_lock_free(project)
    nothing = run_cli(project, "stop", "--json")
    assert nothing.returncode == ExitCode.NOT_RUNNING
    assert json.loads(nothing.stdout)["running"] is False


def test_loser_of_a_start_race_names_the_winner_not_old_console_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A detached start whose child loses the lock says who runs, never console.log's old lines."""
    from types import SimpleNamespace

    from services.cli import start as start_module
    from services.runtime.paths import ProjectPaths

    project = tmp_path / "novel"
    service = start_service(project)
    try:
        console = project / ".session" / "logs" / "console.log"
        console.write_text("STALE line from a run last week\n")
        options = SimpleNamespace(
            project=project,
            fresh=False,
            resume=False,
            interval=None,
            transport=None,
            config=None,
            json=False,
        )
        # `_detach` is what runs once the lock looked free: here the winner holds it.
        code = start_module._detach(ProjectPaths.of(project), options)  # type: ignore[arg-type]
        assert code == ExitCode.FAILURE
        said = capsys.readouterr().err
        assert f"already running (pid {service.process.pid})" in said
        assert "STALE" not in said
    finally:
        service.stop()


def _interrupt_a_session(project: Path) -> str:
    """Run a service and kill -9 its supervisor; the interrupted session's id."""
    service = start_service(project)
    session_id: str = service.status()["session_id"]
    service.process.send_signal(signal.SIGKILL)
    service.stop()
    wait_lock_free(project)
    return session_id


def test_detach_on_a_terminal_answering_n_starts_fresh(tmp_path: Path) -> None:
    """On a terminal, answering "n" to "Continue from last session?" starts a new session."""
    project = tmp_path / "novel"
    interrupted = _interrupt_a_session(project)
    config = fast_config(project)
    controller, terminal = pty.openpty()
    command = [
        sys.executable,
        "-m",
        "supervisor",
        "start",
        "--detach",
        "--json",
        "--config",
        str(config),
        "--project",
        str(project),
    ]
    child = subprocess.Popen(
        command, stdin=terminal, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=project
    )
    os.close(terminal)
    try:
        os.write(controller, b"n\n")  # the terminal holds the line until input() reads it
        out, err = child.communicate(timeout=60)
    finally:
        os.close(controller)
    assert child.returncode == ExitCode.OK, err.decode()
    ready = json.loads(out)
    try:
        assert "Continue from last session?" in err.decode()
        assert ready["resumed"] is False
        assert ready["session_id"] != interrupted
    finally:
        run_cli(project, "stop")
        wait_lock_free(project)


def test_detach_without_a_terminal_resumes_the_interrupted_session(tmp_path: Path) -> None:
    """Without a terminal and without --fresh, the interrupted session is resumed."""
    project = tmp_path / "novel"
    interrupted = _interrupt_a_session(project)
    with detached_service(project) as ready:
        assert ready["resumed"] is True
        assert ready["session_id"] == interrupted


def test_current_json_as_a_folder_gives_a_clear_message(tmp_path: Path) -> None:
    """A folder named current.json: `inspect session` says how to move it aside (exit 1);
    `start` moves it aside itself, says so, and serves, with no traceback."""
    project = tmp_path / "novel"
    folder = project / ".session" / "current.json"
    folder.mkdir(parents=True)
    shown = run_cli(project, "inspect", "session")
    assert shown.returncode == ExitCode.FAILURE
    assert "Traceback" not in shown.stderr
    assert "current.json is a folder where a data file belongs" in shown.stderr
    assert f"mv {folder} " in shown.stderr
    with detached_service(project):
        assert folder.is_file()
        assert list(folder.parent.glob("current.json.corrupt-*"))
        console = (project / ".session" / "logs" / "console.log").read_text()
        assert "Traceback" not in console
        assert run_cli(project, "inspect", "session").returncode == ExitCode.OK


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tiny tmpfs to fill needs root")
def test_start_on_a_full_disk_says_the_disk_is_full(tmp_path: Path) -> None:
    """On a full file system `start` (foreground and --detach) exits 1 saying the disk is full."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)],  # noqa: S607
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        project = mount / "novel"
        project.mkdir()
        filler = os.open(mount / "filler", os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            while os.write(filler, b"\0" * 4096):
                pass
        except OSError:
            pass  # ENOSPC: the disk is full, as wanted
        finally:
            os.close(filler)
        for args in (("start",), ("start", "--detach")):
            result = run_cli(project, *args)
            assert result.returncode == ExitCode.FAILURE, args
            assert "Traceback" not in result.stderr
            assert "full" in result.stderr
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)  # noqa: S607


def test_foreground_start_json_prints_the_ready_document_alone_on_stdout(tmp_path: Path) -> None:
    """`start --json` in the foreground prints the ready document on stdout, sentences on stderr."""
    project = tmp_path / "novel"
    project.mkdir()
    config = fast_config(project)
    child = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "supervisor",
            "start",
            "--json",
            "--config",
            str(config),
            "--project",
            str(project),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        cwd=project,
    )
    try:
        assert child.stdout is not None
        text = b""
        decoder = json.JSONDecoder()
        while True:
            line = child.stdout.readline()
            assert line, f"stdout ended before the document: {text!r}"
            text += line
            try:
                ready, _ = decoder.raw_decode(text.decode())
                break
            except ValueError:
                continue
        endpoints = json.loads((project / ".session" / "run" / "endpoints.json").read_text())
        assert ready["supervisor_pid"] == child.pid == endpoints["supervisor_pid"]
        assert ready["session_id"] == endpoints["session_id"]
        assert ready["fresh"] is True
    finally:
        child.send_signal(signal.SIGTERM)
        rest = child.communicate(timeout=30)[0]
    assert child.returncode == 0
    assert rest.strip() == b""  # "Stopped cleanly." went to stderr
