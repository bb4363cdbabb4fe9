"""Start-up keeps import work off its critical path, and prices stay exact meanwhile."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from service import run_cli, running_service

from services.cli.exits import ExitCode
from services.cost.pricing import PriceBook, genai_prices_version
from services.runtime.forklaunch import end_launch, launch_for_argv

ROOT = Path(__file__).resolve().parent.parent

HEAVY = ("pydantic", "zmq", "structlog", "protocol", "genai_prices")
"""Packages that cost tens of ms or more to import."""


def _python(code: str) -> str:
    """What a fresh interpreter prints running `code` in the project (it must succeed)."""
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def _modules_after(code: str) -> set[str]:
    """The top-level packages a fresh interpreter holds after running `code`."""
    probe = f"{code}\nimport sys\nprint(' '.join(sorted({{m.split('.')[0] for m in sys.modules}})))"
    return set(_python(probe).split())


def test_start_forks_its_fork_server_once_the_shared_imports_are_done(tmp_path: Path) -> None:
    """`supervisor start` forks its fork server after importing what the workers need too
    (pydantic, zmq, structlog, the protocol), before anything of its own loop and without
    any worker module: one copy of the shared imports, no worker's cost in the supervisor,
    and no thread started by those imports for the fork to copy half-way."""
    code = (
        "import supervisor\n"
        "from services.runtime.forklaunch import launch_for_argv\n"
        f"early = launch_for_argv(['start', '--project', {str(tmp_path)!r}])\n"
        "assert early is not None\n"
        "early.abandon()\n"
        "import sys, threading\n"
        "assert threading.active_count() == 1, threading.enumerate()\n"
        "print(' '.join(sorted(sys.modules)))\n"
    )
    loaded = set(_python(code).split())
    assert {"pydantic", "zmq", "structlog", "protocol.internal", "config.settings"} <= loaded
    own = (
        "services.runtime.arbiter",
        "services.runtime.routing",
        "services.runtime.host",
        "services.session_writer",
        "services.cost_ledger",
        "services.file_watcher",
        "services.history_archiver",
        "genai_prices",
    )
    assert not {name for name in loaded if name.startswith(own)}


def test_the_running_fork_server_is_a_fork_of_its_supervisor(tmp_path: Path) -> None:
    """A foreground start's fork server runs the supervisor's own command line (a fork,
    not a second interpreter importing everything again), and the workers it forks serve."""
    with running_service(tmp_path / "novel") as service:
        server = service.status()["fork_server_pid"]
        assert server is not None
        cmdline = Path(f"/proc/{server}/cmdline").read_bytes()
        assert cmdline == Path(f"/proc/{service.process.pid}/cmdline").read_bytes()
        assert service.request("session.get")["ok"]


def test_the_fork_server_preloads_every_worker_but_not_genai_prices() -> None:
    """The fork server imports every worker module (restarts stay fast) and not
    genai-prices, which no worker needs to say READY."""
    code = (
        "from services.runtime.forkserver import _preload\n"
        "_preload()\n"
        "import sys\n"
        "workers = ('session_writer', 'cost_ledger', 'file_watcher', 'history_archiver')\n"
        "assert all(f'services.{name}' in sys.modules for name in workers)\n"
    )
    loaded = _modules_after(code)
    assert {"pydantic", "zmq", "protocol"} <= loaded
    assert "genai_prices" not in loaded


def test_a_price_wanted_while_genai_prices_loads_waits_for_it() -> None:
    """A call priced while genai-prices still loads in the background gets genai-prices'
    exact price, never the shipped table's or none; a second load is not started."""
    code = (
        "from services.cost.pricing import PriceBook, load_genai_prices_in_background\n"
        "book = PriceBook.load(None)\n"
        "loading = load_genai_prices_in_background()\n"
        "price = book.price('gpt-4o-mini', 12000, 3000)\n"
        "print(loading is not None, load_genai_prices_in_background() is None,\n"
        "      price.source, price.cost)\n"
    )
    started, not_again, source, cost = _python(code).split()
    expected = PriceBook.load(None).price("gpt-4o-mini", 12000, 3000)
    assert expected is not None
    assert (started, not_again) == ("True", "True")
    assert (source, cost) == (f"genai-prices@{genai_prices_version()}", str(expected.cost))


def test_a_cost_log_right_after_ready_is_priced_by_genai_prices(tmp_path: Path) -> None:
    """The first `cost.log` after start-up, sent as soon as endpoints.json exists, is priced
    by genai-prices exactly as later ones are (the ledger loads it after READY)."""
    expected = PriceBook.load(None).price("claude-sonnet-4-5", 1200, 300)
    assert expected is not None
    with running_service(tmp_path / "novel") as service:
        reply = service.request(
            "cost.log",
            {
                "operation": "scene_generation",
                "model": "claude-sonnet-4-5",
                "input_tokens": 1200,
                "output_tokens": 300,
            },
        )
    assert reply["ok"], reply
    operation = reply["result"]["operation"]
    assert operation["price_source"] == f"genai-prices@{genai_prices_version()}"
    assert str(operation["cost"]) == str(expected.cost)


def _processes_in(folder: Path) -> set[int]:
    """Pids of the processes working in `folder` (a child's working folder is set
    before it runs anything, so a process just spawned is never missed)."""
    found: set[int] = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "cwd").readlink() == folder.resolve():
                found.add(int(entry.name))
        except OSError:
            continue  # gone meanwhile, or not ours to read
    return found


def _wait_until(condition: Callable[[], bool], timeout_s: float = 10.0) -> bool:
    """Whether `condition` holds within `timeout_s` (checked every few ms)."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


def _parent_of(pid: int) -> int:
    """The parent pid of `pid` (from /proc)."""
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("PPid:")))


def test_a_start_refused_by_the_lock_leaves_no_fork_server_behind(tmp_path: Path) -> None:
    """A second `start` launches its fork server before it meets the lock; it still
    fails with exit 1 naming the running supervisor, and its server is gone with it."""
    project = tmp_path / "novel"
    with running_service(project) as service:
        supervisor, own = service.process.pid, service.status()["fork_server_pid"]
        assert {supervisor, own} <= _processes_in(project)
        refused = run_cli(project, "start", "--fresh")
        assert refused.returncode == ExitCode.FAILURE
        assert f"already running (pid {supervisor})" in refused.stderr
        # What works in the project now is the running tree: its supervisor (a child
        # of this test), the children of its supervisor (fork server, workers, the
        # spare) or of its fork server (mid-fork). An abandoned early server would
        # have been adopted by init.
        parents = {_parent_of(pid) for pid in _processes_in(project) - {supervisor}}
        assert parents <= {supervisor, own}


def test_only_a_foreground_start_of_an_existing_folder_launches_early(tmp_path: Path) -> None:
    """`supervisor start` launches the fork server before parsing its options only when
    the command line plainly names a foreground start of an existing folder."""
    assert launch_for_argv(["status", "--project", str(tmp_path)]) is None
    assert launch_for_argv(["start", "--project", str(tmp_path), "--detach"]) is None
    assert launch_for_argv(["start", "--help"]) is None
    assert launch_for_argv(["start", "--project", str(tmp_path / "not-yet")]) is None
    for argv in (["start", "--project", str(tmp_path)], ["start", f"--project={tmp_path}"]):
        early = launch_for_argv(argv)
        assert early is not None
        try:
            assert early.take(tmp_path / "elsewhere") is None  # another project's start
            # The forked server enters the project folder first thing.
            assert _wait_until(lambda: len(_processes_in(tmp_path)) == 1)
        finally:
            early.abandon()
        assert _processes_in(tmp_path) == set()  # killed and reaped
        assert early.take(tmp_path) is None  # abandoned: nothing left to hand over


def test_the_early_fork_server_is_handed_over_once(tmp_path: Path) -> None:
    """`start` gets the server launched for its project once; `abandon` then leaves it be."""
    early = launch_for_argv(["start", "--project", str(tmp_path)])
    assert early is not None
    launched = early.take(tmp_path)
    assert launched is not None and early.take(tmp_path) is None
    server, control = launched
    try:
        early.abandon()
        assert _wait_until(lambda: _processes_in(tmp_path) == {server.pid})  # it was taken
        assert server.reap() is None
    finally:
        end_launch(server, control)
    assert _processes_in(tmp_path) == set()  # killed and reaped


def test_start_up_imports_run_without_the_cyclic_collector_and_stay_frozen(
    tmp_path: Path,
) -> None:
    """An early start imports with the collector off (its collections cost ~10% of the
    imports); once the imports are done it is on again and what they built is frozen, so
    no later collection walks it (no pause in the running service)."""
    code = (
        "import gc\n"
        "from services.runtime.forklaunch import imports_done, launch_for_argv\n"
        f"early = launch_for_argv(['start', '--project', {str(tmp_path)!r}])\n"
        "assert early is not None\n"
        "off = not gc.isenabled()\n"
        "early.abandon()\n"
        "imports_done()\n"
        "print(off, gc.isenabled(), gc.get_freeze_count() > 10000)\n"
    )
    assert _python(code).split() == ["True", "True", "True"]


def test_the_ready_file_is_replaced_atomically_without_waiting_for_the_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """endpoints.json describes the running process (a crash of the machine makes it stale
    anyway), so "ready" does not wait for an fsync: it is still written whole, by rename."""
    from protocol.envelopes import EndpointsFile
    from services.store import AtomicJsonFile
    from services.store.fileops import RunFileOps

    synced: list[int] = []
    monkeypatch.setattr("os.fsync", synced.append)
    target = tmp_path / "run" / "endpoints.json"
    document = EndpointsFile(
        command="ipc:///run/command.sock",
        events="ipc:///run/events.sock",
        supervisor_pid=4242,
        session_id="2026-12-01-020000",
        started_at="2026-12-01T02:00:00Z",
    )
    assert AtomicJsonFile(target, ops=RunFileOps()).save(document).ok
    assert EndpointsFile.model_validate_json(target.read_bytes()) == document
    assert synced == []
    assert [path.name for path in target.parent.iterdir()] == ["endpoints.json"]
