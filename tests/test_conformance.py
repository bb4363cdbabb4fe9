"""Every conformance case in `protocol/conformance/cases/`, played by the Python runner.

Most cases share one real service tree (started once for this module); cases
marked `"service": "fresh"` (they leave a worker failed, or need an empty
ledger) get a tree of their own.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from service import RunningService, running_service, start_service

from protocol.conformance import CaseFailed, Runner, case_names, load_case
from protocol.conformance.matching import ExactNumber
from protocol.conformance.tamper import Tamper
from services.session.recovery import pid_alive

CASES = case_names()

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def shared_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningService]:
    """One service tree for every case that does not need its own."""
    with running_service(tmp_path_factory.mktemp("conformance") / "project") as service:
        yield service


@pytest.fixture(scope="module")
def shared_runner(shared_service: RunningService) -> Iterator[Runner]:
    """The runner connected to the shared tree."""
    runner = Runner.for_project(shared_service.project)
    yield runner
    runner.close()


@contextlib.contextmanager
def fresh_runner(case: dict[str, Any], project: Path) -> Iterator[Runner]:
    """A service of the case's own (its `transport`), and a runner that can crash and restart it."""
    extra = ("--transport", str(case["transport"])) if case.get("transport") else ()
    services = [start_service(project, *extra)]

    def restart() -> dict[str, Any]:
        current = services[-1]
        pids = [current.process.pid, *current.worker_pids()]
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        current.process.wait(timeout=10)
        deadline = time.monotonic() + 10
        while any(pid_alive(pid) for pid in pids) and time.monotonic() < deadline:
            time.sleep(0.02)
        services.append(start_service(project, *extra))
        return services[-1].endpoints

    runner = Runner.for_project(project, restart=restart)
    try:
        yield runner
    finally:
        runner.close()
        for service in services:
            leftover = []
            with contextlib.suppress(Exception):
                leftover = service.worker_pids() if service.process.poll() is None else []
            service.stop()
            for pid in leftover:
                if pid_alive(pid):
                    os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize("name", CASES)
def test_case(name: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    """The service answers and publishes exactly what the case file says."""
    case = load_case(name)
    if case.get("service") != "fresh":
        request.getfixturevalue("shared_runner").run_case(case)
        return
    with fresh_runner(case, tmp_path / "project") as runner:
        runner.run_case(case)


def test_the_cases_cover_every_op_and_error_code() -> None:
    """Each op and each error code is the subject of at least one case (except `internal`)."""
    from protocol.errors import ErrorCode
    from protocol.names import Op

    covered = {tag for name in CASES for tag in load_case(name)["covers"]}
    missing_ops = {f"op:{op.value}" for op in Op} - covered
    missing_codes = {
        f"error:{code.value}" for code in ErrorCode if code is not ErrorCode.INTERNAL
    } - covered
    assert not missing_ops and not missing_codes, (missing_ops, missing_codes)


@pytest.mark.parametrize(
    ("name", "field", "value"),
    [
        ("op.session.set_stage", "result.current_state.stage", "scoring"),
        ("op.cost.log", "result.operation.cost", ExactNumber("0.08536")),
        ("error.bad_request.version_2", "error.code", "invalid_args"),
    ],
)
def test_a_reply_with_one_wrong_field_fails_the_runner(
    name: str, field: str, value: object, shared_service: RunningService, tmp_path: Path
) -> None:
    """Behind a proxy that changes one field of each reply, the case fails and names the field."""
    proxy = Tamper(
        shared_service.endpoints["command"], f"ipc://{tmp_path}/tamper.sock", field, value
    )
    serving = threading.Thread(target=proxy.serve)
    serving.start()
    runner = Runner(proxy.endpoint, shared_service.endpoints["events"])
    try:
        with pytest.raises(CaseFailed, match=re.escape(field.rsplit(".", maxsplit=1)[-1])):
            runner.run_case(load_case(name))
    finally:
        runner.close()
        proxy.stop()
        serving.join()
    assert proxy.tampered > 0
