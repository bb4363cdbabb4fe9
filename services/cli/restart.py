"""`supervisor restart [WORKER|all]`: a graceful restart, or a failed worker brought back.

Sends `supervisor.restart {"worker": NAME or "all"}` (the supervisor stops the
worker gracefully, resets its restart-intensity count and starts it again, as
`systemctl restart` plus `reset-failed` would), then waits until each worker
named runs again as a new process, so the prompt returns when it is usable.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any, Final

from config import default_value
from services.cli.control import query, running_pid
from services.cli.exits import ExitCode
from services.cli.output import WaitNotice, print_json
from services.cli.parser import WORKER_NAMES

__all__ = ["RESTART_WAIT_S", "restart", "restart_command"]

RESTART_WAIT_S: Final = float(default_value("cli", "restart_wait_s"))
"""How long `restart` waits for the workers to run again (a stop takes up to ~6 s)."""


def _workers(project: Path) -> dict[str, dict[str, Any]]:
    status = query(project, "supervisor.status")
    return {worker["name"]: worker for worker in status["workers"]}


def restart(project: Path, worker: str, *, as_json: bool) -> int:
    """Restart `worker` (or every worker); exit 0 once each runs again as a new process."""
    pid = running_pid(project)
    if pid is None:
        if as_json:
            print_json({"restarted": [], "running": False, "project": str(project.resolve())})
        print(f"supervisor: not running for {project.resolve()}", file=sys.stderr)
        return ExitCode.NOT_RUNNING
    names = list(WORKER_NAMES) if worker == "all" else [worker]
    try:
        before = _workers(project)
        result = query(project, "supervisor.restart", {"worker": worker}, timeout_s=RESTART_WAIT_S)
    except RuntimeError as exc:
        text = str(exc)
        if text.startswith("unknown_op"):
            text = (
                "this service predates `supervisor.restart`; stop and start it to restart workers"
            )
        return _failed(text, as_json)
    except (ConnectionError, TimeoutError) as exc:
        return _failed(f"the supervisor (pid {pid}) did not answer: {exc}", as_json)
    deadline = time.monotonic() + RESTART_WAIT_S
    old_pids = {name: before.get(name, {}).get("pid") for name in names}
    after = before
    with WaitNotice(f"Waiting for {', '.join(names)} to run again") as notice:
        while time.monotonic() < deadline:
            after = _workers(project)
            if all(_runs_anew(after.get(name), old_pids[name]) for name in names):
                break
            notice.tick()
            time.sleep(0.05)
    stuck = [name for name in names if not _runs_anew(after.get(name), old_pids[name])]
    if as_json:
        print_json(
            {
                "restarted": [name for name in names if name not in stuck],
                "not_running": stuck,
                "workers": [after[name] for name in names if name in after],
                "result": result,
            }
        )
    else:
        for name in names:
            entry = after.get(name, {})
            print(f"{name:<18} {entry.get('state', '?'):<9} pid {entry.get('pid') or '-'}")
    if stuck:
        print(
            f"supervisor: {', '.join(stuck)} did not run again within {RESTART_WAIT_S:g} s; "
            f"`supervisor logs {stuck[0]}` shows why",
            file=sys.stderr,
        )
        return ExitCode.FAILURE
    return ExitCode.OK


def _runs_anew(entry: dict[str, Any] | None, old_pid: int | None) -> bool:
    return bool(entry and entry["state"] == "running" and entry["pid"] and entry["pid"] != old_pid)


def _failed(message: str, as_json: bool) -> int:
    if as_json:
        print_json({"restarted": [], "error": message})
    print(f"supervisor: {message}", file=sys.stderr)
    return ExitCode.FAILURE


def restart_command(options: argparse.Namespace) -> int:
    """`supervisor restart`."""
    return restart(options.project, options.worker, as_json=options.json)
