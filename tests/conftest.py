"""Fixtures shared by every test module.

`tests/` is not a package: pytest puts this folder on `sys.path`, so helpers
such as `strategies` are imported as top-level modules. The project root is
appended (not prepended, so an installed copy of `protocol`/`services`/`config`
still wins) because `bench/` and `examples/` are not installed packages.
Keep this file small: fixtures that only one module needs live in that module.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from services.store import RetryPolicy

PROJECT_ROOT = Path(__file__).resolve().parent.parent

if str(PROJECT_ROOT) not in sys.path:
    sys.path.append(str(PROJECT_ROOT))

SpawnPython = Callable[[str], subprocess.Popen[bytes]]


@pytest.fixture
def session_dir(tmp_path: Path) -> Path:
    """A fresh, not yet created `<project>/.session` folder inside `tmp_path`."""
    return tmp_path / "project" / ".session"


@pytest.fixture
def fast_retry() -> RetryPolicy:
    """The default three attempts, without waiting between them."""
    return RetryPolicy(attempts=3, wait_initial_s=0, wait_max_s=0)


@pytest.fixture
def spawn_python() -> Iterator[SpawnPython]:
    """Start `python -c CODE` children (stdout piped) that are killed and reaped at teardown.

    The child runs this interpreter (so it imports the project as the test
    does) in its own session, so signalling it never reaches pytest itself.
    """
    children: list[subprocess.Popen[bytes]] = []

    def spawn(code: str) -> subprocess.Popen[bytes]:
        child = subprocess.Popen(
            [sys.executable, "-c", code],
            stdout=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        children.append(child)
        return child

    yield spawn
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
        if child.stdout is not None:
            child.stdout.close()
