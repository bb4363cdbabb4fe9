"""The command line itself: --version, --help, the one exit-code table in the docs."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

from services.cli.exits import ExitCode, exit_code_table

ROOT = Path(__file__).resolve().parent.parent


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "supervisor", *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        cwd=ROOT,
    )


def test_version_prints_the_projects_version() -> None:
    """`--version` names the version in pyproject.toml and exits 0."""
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    shown = _run("--version")
    assert shown.returncode == ExitCode.OK
    assert shown.stdout.strip().endswith(version)


def test_the_exit_code_table_is_the_same_in_help_readme_and_docs() -> None:
    """README, docs/cli.md, docs/protocol.md and `--help` show the table of the exit codes."""
    table = exit_code_table()
    assert table in (ROOT / "README.md").read_text(encoding="utf-8")
    assert table in (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    assert table in (ROOT / "docs" / "protocol.md").read_text(encoding="utf-8")
    assert table in _run("--help").stdout
    assert [code.value for code in ExitCode] == [0, 1, 2, 3, 4, 130]


def test_every_command_takes_json_and_bad_usage_exits_2() -> None:
    """Each subcommand offers --json; an unknown option or a bad value exits 2."""
    import argparse

    from services.cli.commands import COMMANDS
    from services.cli.parser import build_parser

    parser = build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert set(subparsers.choices) == set(COMMANDS)
    for name, sub in subparsers.choices.items():
        assert any("--json" in action.option_strings for action in sub._actions), name
    assert _run("status", "--no-such-option").returncode == ExitCode.USAGE
    assert _run("report", "--days", "0").returncode == ExitCode.USAGE
