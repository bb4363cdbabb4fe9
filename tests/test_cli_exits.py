"""The exit-code table: one module, the same numbers as the documentation promises."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from services.cli.exits import ExitCode

ROOT = Path(__file__).resolve().parents[1]


def _documented_codes() -> set[int]:
    text = (ROOT / "docs" / "protocol.md").read_text(encoding="utf-8")
    table = text.split("Exit codes:", 1)[1].split("\n\n", 2)[1]
    return {int(code) for code in re.findall(r"^\| `(\d+)` \|", table, flags=re.MULTILINE)}


def test_every_exit_code_is_documented_and_nothing_more() -> None:
    """docs/protocol.md's exit-code table lists exactly the codes of `ExitCode`."""
    assert _documented_codes() == {code.value for code in ExitCode}


def _supervisor(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "supervisor.py"), *args],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=cwd,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        check=False,
    )


def test_a_bad_command_exits_with_the_usage_code(tmp_path: Path) -> None:
    """`supervisor` with an unknown command exits with `ExitCode.USAGE`."""
    result = _supervisor(tmp_path, "no-such-command")
    assert result.returncode == ExitCode.USAGE
    assert "no-such-command" in result.stderr


def test_status_of_a_project_without_a_service_exits_not_running(tmp_path: Path) -> None:
    """`supervisor status` where nothing runs exits with `ExitCode.NOT_RUNNING`."""
    result = _supervisor(tmp_path, "status", "--project", str(tmp_path))
    assert result.returncode == ExitCode.NOT_RUNNING, result.stderr
