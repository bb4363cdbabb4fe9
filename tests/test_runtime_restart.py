"""`supervisor.restart` against a real service tree, through the Python client."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from service import running_service

from protocol.client import ServiceClient, ServiceError
from protocol.envelopes import EndpointsFile

pytestmark = pytest.mark.slow


async def _ask(endpoints: dict[str, Any], op: str, args: dict[str, Any]) -> Any:
    async with ServiceClient(EndpointsFile.model_validate(endpoints)) as client:
        return await client.request(op, args)


def test_restart_of_a_running_worker_replaces_it_and_it_answers(tmp_path: Path) -> None:
    """The reply lists the worker running with a new pid; its data survives the restart."""
    with running_service(tmp_path / "novel") as service:
        assert service.request("session.set_screen", {"screen": "chapter 3"})["ok"]
        before = service.wait_running("session_writer")
        result = asyncio.run(
            _ask(service.endpoints, "supervisor.restart", {"worker": "session_writer"})
        )
        (status,) = result["workers"]
        assert status["name"] == "session_writer" and status["state"] == "running"
        assert status["pid"] not in (None, before["pid"])
        assert service.worker("session_writer")["last_exit"] == "exit 0 (restart requested)"
        document = service.request("session.get")["result"]
        assert document["current_state"]["screen"] == "chapter 3"


def test_restart_brings_a_failed_worker_back(tmp_path: Path) -> None:
    """A worker failed by its crash loop runs again after its cause is fixed and it is restarted."""
    project = tmp_path / "novel"
    (project / ".session").mkdir(parents=True)
    blocker = project / ".session" / "archive"
    blocker.write_text("not a folder")
    with running_service(project) as service:
        deadline = time.monotonic() + 15
        while service.worker("history_archiver")["state"] != "failed":
            assert time.monotonic() < deadline, "history_archiver never failed"
            time.sleep(0.05)
        refused = service.request("history.list")
        assert "supervisor restart history_archiver" in refused["error"]["message"]
        blocker.unlink()
        result = asyncio.run(
            _ask(service.endpoints, "supervisor.restart", {"worker": "history_archiver"})
        )
        assert result["workers"][0]["state"] == "running"
        assert service.request("history.list")["ok"]


def test_restart_of_an_unknown_worker_is_invalid_args(tmp_path: Path) -> None:
    """The client gets invalid_args naming the field for a worker that does not exist."""
    with running_service(tmp_path / "novel") as service:
        with pytest.raises(ServiceError) as caught:
            asyncio.run(_ask(service.endpoints, "supervisor.restart", {"worker": "typist"}))
        assert caught.value.code == "invalid_args"
        assert "worker" in str(caught.value)


def _exits_logged(project: Path, worker: str) -> list[dict[str, Any]]:
    log = project / ".session" / "logs" / "supervisor.log"
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    return [x for x in lines if x.get("event") == "worker.exited" and x.get("worker") == worker]


def test_a_worker_killed_after_serving_a_while_restarts_at_once_every_time(tmp_path: Path) -> None:
    """Three kill -9s of a worker that served over stable_s never back off (rule stable_run)."""
    with running_service(tmp_path / "novel") as service:
        for _ in range(3):
            entry = service.wait_running("cost_ledger")
            while entry["uptime_s"] < 1.5:  # well past stable_s (counted from READY)
                time.sleep(0.05)
                entry = service.worker("cost_ledger")
            os.kill(entry["pid"], signal.SIGKILL)
            assert service.request("cost.totals", timeout_s=5)["ok"]
        exits = _exits_logged(service.project, "cost_ledger")
        assert [x["restart_in_s"] for x in exits] == [0.0] * 3
        # The first kill is also the first crash of a quiet period; the later
        # ones are what used to back off.
        assert exits[0]["rule"] in {"stable_run", "first_crash"}
        assert [x["rule"] for x in exits[1:]] == ["stable_run"] * 2
        assert service.worker("cost_ledger")["restarts"] == 3


def _children(pid: int) -> set[int]:
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return {int(child) for child in text.split()}


def test_a_restart_takes_the_spare_host_and_a_new_spare_is_forked(tmp_path: Path) -> None:
    """The spare waiting beside the workers becomes the replacement; another spare follows."""
    with running_service(tmp_path / "novel") as service:
        supervisor = service.process.pid

        def spares() -> set[int]:
            status = service.status()
            known = {w["pid"] for w in status["workers"]} | {status["fork_server_pid"]}
            return _children(supervisor) - known

        deadline = time.monotonic() + 10
        while len(spares()) != 1:
            assert time.monotonic() < deadline, "no spare worker host was forked"
            time.sleep(0.05)
        (spare,) = spares()
        victim = service.wait_running("history_archiver")["pid"]
        os.kill(victim, signal.SIGKILL)
        assert service.request("history.list", timeout_s=5)["ok"]
        assert service.wait_running("history_archiver")["pid"] == spare
        while len(spares()) != 1:
            assert time.monotonic() < deadline, "the spare was not replaced"
            time.sleep(0.05)
        assert spares() != {spare}
