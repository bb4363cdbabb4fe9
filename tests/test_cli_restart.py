"""`supervisor restart` and `status`'s exit 4, against a real service.

`supervisor.restart` is served by the supervisor; these tests need it there.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest
from cli_service import detached_service
from service import run_cli

from services.cli.exits import ExitCode

pytestmark = pytest.mark.slow


def _status(project: Path) -> dict[str, dict[str, object]]:
    shown = run_cli(project, "status", "--json")
    return {w["name"]: w for w in json.loads(shown.stdout)["workers"]}


def test_restart_replaces_a_running_worker_with_a_new_process(tmp_path: Path) -> None:
    """`restart cost_ledger` exits 0 once a new cost_ledger process runs."""
    project = tmp_path / "novel"
    with detached_service(project):
        before = _status(project)["cost_ledger"]["pid"]
        restarted = run_cli(project, "restart", "cost_ledger", "--json")
        assert restarted.returncode == ExitCode.OK, restarted.stderr
        document = json.loads(restarted.stdout)
        assert document["restarted"] == ["cost_ledger"]
        after = _status(project)["cost_ledger"]
        assert after["state"] == "running" and after["pid"] != before


def _fail_history_archiver(project: Path) -> None:
    """Kill -9 the archiver of a service allowed no restart, and wait until it is failed."""
    victim = _status(project)["history_archiver"]["pid"]
    assert isinstance(victim, int)
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 15
    while _status(project)["history_archiver"]["state"] != "failed":
        assert time.monotonic() < deadline, "the worker never became failed"
        time.sleep(0.05)


NO_RESTARTS = {"supervisor": {"max_restarts": 0}}
"""The first crash marks the worker failed."""


def test_a_failed_worker_makes_status_exit_4_and_name_the_command(tmp_path: Path) -> None:
    """With a failed worker, `status` (text and JSON) exits 4 and says `supervisor restart X`."""
    project = tmp_path / "novel"
    with detached_service(project, config=NO_RESTARTS):
        _fail_history_archiver(project)
        status = run_cli(project, "status")
        assert status.returncode == ExitCode.WORKER_FAILED
        assert "supervisor restart history_archiver" in status.stdout
        assert run_cli(project, "status", "--json").returncode == ExitCode.WORKER_FAILED


def test_restart_brings_a_failed_worker_back(tmp_path: Path) -> None:
    """`restart history_archiver` makes a failed worker run again; `status` then exits 0."""
    project = tmp_path / "novel"
    with detached_service(project, config=NO_RESTARTS):
        _fail_history_archiver(project)
        restarted = run_cli(project, "restart", "history_archiver")
        assert restarted.returncode == ExitCode.OK, restarted.stderr
        assert _status(project)["history_archiver"]["state"] == "running"
        assert run_cli(project, "status").returncode == ExitCode.OK


def test_restart_all_and_nothing_running(tmp_path: Path) -> None:
    """`restart` (all) renews every worker; with no service it exits 3."""
    project = tmp_path / "novel"
    project.mkdir()
    assert run_cli(project, "restart").returncode == ExitCode.NOT_RUNNING
    with detached_service(project):
        before = {name: entry["pid"] for name, entry in _status(project).items()}
        restarted = run_cli(project, "restart", "all")
        assert restarted.returncode == ExitCode.OK, restarted.stderr
        after = _status(project)
        assert all(after[name]["pid"] != pid for name, pid in before.items())
