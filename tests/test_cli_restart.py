"""`supervisor restart` and `status`'s exit 4, against a real service."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from cli_service import detached_service
from service import run_cli

from services.cli.control import query
from services.cli.exits import ExitCode

pytestmark = pytest.mark.slow

NO_RESTARTS = {"supervisor": {"max_restarts": 0}}
"""The first crash marks the worker failed."""


def _workers(project: Path) -> dict[str, dict[str, Any]]:
    """The workers as `supervisor.status` reports them (asked in process: this is the check)."""
    return {w["name"]: w for w in query(project, "supervisor.status")["workers"]}


def test_restart_replaces_running_workers_with_new_processes(tmp_path: Path) -> None:
    """`restart cost_ledger` renews one worker, `restart` all of them; with no service, exit 3."""
    project = tmp_path / "novel"
    project.mkdir()
    assert run_cli(project, "restart").returncode == ExitCode.NOT_RUNNING
    with detached_service(project):
        before = _workers(project)
        restarted = run_cli(project, "restart", "cost_ledger", "--json")
        assert restarted.returncode == ExitCode.OK, restarted.stderr
        assert json.loads(restarted.stdout)["restarted"] == ["cost_ledger"]
        after = _workers(project)
        assert after["cost_ledger"]["state"] == "running"
        assert after["cost_ledger"]["pid"] != before["cost_ledger"]["pid"]
        assert after["session_writer"]["pid"] == before["session_writer"]["pid"]

        everything = run_cli(project, "restart")
        assert everything.returncode == ExitCode.OK, everything.stderr
        renewed = _workers(project)
        assert all(renewed[name]["pid"] != entry["pid"] for name, entry in after.items())
        assert all(entry["state"] == "running" for entry in renewed.values())


def test_a_failed_worker_makes_status_exit_4_until_restart_brings_it_back(
    tmp_path: Path,
) -> None:
    """A failed worker: `status` exits 4 and names the command; `restart` brings it back (0)."""
    project = tmp_path / "novel"
    with detached_service(project, config=NO_RESTARTS):
        os.kill(_workers(project)["history_archiver"]["pid"], signal.SIGKILL)
        deadline = time.monotonic() + 15
        while _workers(project)["history_archiver"]["state"] != "failed":
            assert time.monotonic() < deadline, "the worker never became failed"
            time.sleep(0.05)
        status = run_cli(project, "status")
        assert status.returncode == ExitCode.WORKER_FAILED
        assert "supervisor restart history_archiver" in status.stdout
        assert run_cli(project, "status", "--json").returncode == ExitCode.WORKER_FAILED

        restarted = run_cli(project, "restart", "history_archiver")
        assert restarted.returncode == ExitCode.OK, restarted.stderr
        assert _workers(project)["history_archiver"]["state"] == "running"
        assert run_cli(project, "status").returncode == ExitCode.OK
