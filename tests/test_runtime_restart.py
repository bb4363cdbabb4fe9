"""`supervisor.restart` against a real service tree, through the Python client."""

from __future__ import annotations

import asyncio
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
