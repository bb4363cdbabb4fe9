"""A detached service (`supervisor start --detach --json`) for the CLI's tests.

It yields the document `start --json` printed, and always stops the tree at
the end (by `supervisor stop`, then SIGKILL for anything left).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from service import FAST_TIMINGS, run_cli, write_config

from services.runtime.lock import SupervisorLock


def fast_config(project: Path, extra: dict[str, dict[str, Any]] | None = None) -> Path:
    """A --config file with the suite's short timings (and `extra` on top)."""
    sections = {key: dict(value) for key, value in FAST_TIMINGS.items()}
    for key, value in (extra or {}).items():
        sections.setdefault(key, {}).update(value)
    project.mkdir(parents=True, exist_ok=True)
    return write_config(project.parent / f"{project.name}-config.toml", sections)


def wait_lock_free(project: Path, timeout_s: float = 15.0) -> None:
    """Wait until no process holds the project's supervisor lock."""
    lock = SupervisorLock(project / ".session" / "run" / "supervisor.lock")
    deadline = time.monotonic() + timeout_s
    while lock.is_held_elsewhere():
        if time.monotonic() > deadline:
            raise TimeoutError("the supervisor lock is still held")
        time.sleep(0.02)


@contextlib.contextmanager
def detached_service(
    project: Path, *extra: str, config: dict[str, dict[str, Any]] | None = None
) -> Iterator[dict[str, Any]]:
    """`start --detach --json` with fast timings (and `config`); the ready document; stopped."""
    config_path = fast_config(project, config)
    result = run_cli(project, "start", "--detach", "--json", "--config", str(config_path), *extra)
    assert result.returncode == 0, result.stderr
    document: dict[str, Any] = json.loads(result.stdout)
    try:
        yield document
    finally:
        pid = document["supervisor_pid"]
        run_cli(project, "stop", "--timeout", "20")
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)  # the detached tree is its own process group
        wait_lock_free(project)
