"""The seed specification's own example tests, ported no further than the service needs.

The seed wrote them against in-process objects (`Session(tmp_path)`); here the
same steps run against the real service: `await Session.open(path)` starts it
(`supervisor start --detach`) when none runs, a crash is a real `kill -9` of
the supervisor, and auto-save runs at a short interval instead of 31 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from service import run_cli, start_service

from protocol.client import CostTracker, Session
from protocol.events import SessionSavedData
from protocol.session import SessionDocument

T = TypeVar("T")

GUARD_S = 30.0
"""Bound of one test body: a service start takes about a second, a restart about two."""


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run one test body in a fresh event loop, bounded."""
    return asyncio.run(asyncio.wait_for(coroutine, GUARD_S))


def _wait_dead(pid: int) -> None:
    """Wait until `pid` has died: gone, or a zombie nobody reaped (as under a container's pid 1)."""
    stat = Path(f"/proc/{pid}/stat")
    deadline = time.monotonic() + 10
    while True:
        try:
            if stat.read_text().rpartition(")")[2].split()[0] == "Z":
                return
        except FileNotFoundError:
            return
        assert time.monotonic() < deadline, f"process {pid} did not die"
        time.sleep(0.01)


def _supervisor_pid(project: Path) -> int | None:
    with contextlib.suppress(OSError, ValueError):
        endpoints = json.loads((project / ".session" / "run" / "endpoints.json").read_bytes())
        return int(endpoints["supervisor_pid"])
    return None


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Path]:
    """A writing project whose service, whatever started it, is stopped after the test."""
    path = tmp_path / "novel"
    path.mkdir()
    yield path
    stopped = run_cli(path, "stop")
    pid = _supervisor_pid(path)
    if stopped.returncode not in (0, 3) and pid is not None:  # never leak a service tree
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def test_session_save_load(project: Path) -> None:
    """A stage set and saved is what the next `Session.open` of the project loads."""

    async def body() -> None:
        session = await Session.open(project)
        await session.set_stage("writing")
        await session.save()
        await session.close()

        loaded = await Session.open(project)
        assert loaded.current_stage == "writing"
        await loaded.close()

    run(body())


def test_cost_calculation(project: Path) -> None:
    """Logging a priced call makes the session total positive."""

    async def body() -> None:
        tracker = await CostTracker.open(project)
        await tracker.log_operation(
            "scene_generation", "claude-sonnet-3.5", input_tokens=10000, output_tokens=2000
        )
        assert tracker.session_total > 0
        await tracker.close()

    run(body())


def test_recovery_on_crash(project: Path) -> None:
    """After a `kill -9` of the supervisor, the next `Session.open` starts anew and recovers."""

    async def body() -> None:
        session = await Session.open(project)
        await session.set_stage("writing")
        await session.save()
        session_id = session.session_id
        pid = _supervisor_pid(project)
        assert pid is not None
        os.kill(pid, signal.SIGKILL)  # the crash: no clean stop, no close()
        _wait_dead(pid)
        await session.close()
        del session

        began = time.monotonic()
        recovered = await Session.open(project)
        assert recovered.was_interrupted()
        assert recovered.current_stage == "writing"
        assert time.monotonic() - began < 15, "a dead socket was tried before restarting"

        # A UI that connects only now still reads the notice, until it acknowledges it.
        late = await Session.open(project)
        notice = late.recovery_notice
        assert notice is not None and notice.interrupted_session_id == session_id
        assert (await late.status()).recovery == notice
        await late.ack_recovery()
        assert late.recovery_notice is None
        assert (await recovered.load()).recovery is None
        await late.close()
        await recovered.close()

    run(body())


def test_recovery_while_the_crashed_supervisor_is_a_zombie(project: Path) -> None:
    """A supervisor killed but not yet reaped (a zombie) counts as dead: the client recovers."""
    service = start_service(project)
    try:
        service.close_sockets()
        os.kill(service.process.pid, signal.SIGKILL)
        _wait_dead(service.process.pid)  # and not reaped, on purpose
        assert Path(f"/proc/{service.process.pid}").exists()

        async def body() -> Session:
            return await Session.open(project, start_timeout_s=15)

        began = time.monotonic()
        recovered = run(body())
        assert time.monotonic() - began < 15
        assert recovered.was_interrupted()
        assert _supervisor_pid(project) != service.process.pid
    finally:
        service.process.wait()
        service.context.term()


def test_auto_save_workflow(project: Path) -> None:
    """Changes reach current.json by auto-save alone, without an explicit save."""
    started = run_cli(project, "start", "--detach", "--interval", "0.5")
    assert started.returncode == 0, started.stdout + started.stderr

    async def body() -> None:
        session = await Session.open(project)
        saved: list[SessionSavedData] = []
        session.on_save(saved.append)
        await session.set_stage("writing")
        changed = await session.set_model_preference("writing", "claude")
        while not any(data.revision >= changed.revision for data in saved):
            await asyncio.sleep(0.01)  # the auto-save, not a sleep of 31 s
        await session.close()

        on_disk = SessionDocument.model_validate_json(
            (project / ".session" / "current.json").read_bytes()
        )
        assert on_disk.current_state.stage == "writing"
        assert on_disk.model_preferences["writing"] == "claude"
        loaded = await Session.open(project)
        assert loaded.current_stage == "writing"
        assert loaded.model_preferences["writing"] == "claude"
        await loaded.close()

    run(body())
