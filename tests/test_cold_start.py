"""Start-up keeps import work off its critical path, and prices stay exact meanwhile."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from services.cost.pricing import PriceBook, genai_prices_version
from tests.service import running_service

ROOT = Path(__file__).resolve().parent.parent

HEAVY = ("pydantic", "zmq", "structlog", "protocol", "genai_prices")
"""Packages that cost tens of ms or more to import."""


def _modules_after(code: str) -> set[str]:
    """The top-level packages a fresh interpreter holds after running `code`."""
    probe = f"{code}\nimport sys\nprint(' '.join(sorted({{m.split('.')[0] for m in sys.modules}})))"
    result = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return set(result.stdout.split())


def test_start_spawns_the_fork_server_before_any_heavy_import(tmp_path: Path) -> None:
    """What `supervisor start` runs before it spawns the fork server imports no pydantic,
    zmq, structlog or protocol: the server's imports run beside the supervisor's own."""
    code = (
        "from services.cli.commands import COMMANDS\n"
        "from services.cli.parser import build_parser\n"
        "from services.cli.start import start\n"
        "from services.runtime.lock import SupervisorLock\n"
        "from services.runtime.paths import ProjectPaths\n"
        "from services.store.fileops import ensure_private_dir\n"
        "from services.runtime.forkserver import ForkServer\n"
        f"build_parser().parse_args(['start', '--project', {str(tmp_path)!r}, '--fresh'])\n"
    )
    loaded = _modules_after(code)
    assert "services" in loaded  # the probe did import the start path
    assert loaded.isdisjoint(HEAVY), sorted(loaded & set(HEAVY))


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
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    started, not_again, source, cost = result.stdout.split()
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
