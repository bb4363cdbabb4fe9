"""Workers talk by messages: no worker's code imports another worker's package.

Each worker is a module (`services/session_writer.py`...) and its package
(`services/session/`...). What several of them read lives in the neutral
`services/readonly/`, which imports no worker at all; the shapes they share
are `protocol/`'s. Imports inside functions count too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SERVICES = ROOT / "services"

WORKERS = {
    "session_writer": "session",
    "cost_ledger": "cost",
    "history_archiver": "history",
    "file_watcher": "watch",
}
"""Each worker module and the package that is its own."""

NEUTRAL = ("readonly",)
"""Packages every worker may import, which import no worker."""


def _imported(source: str) -> set[str]:
    """Every module `source` imports, at any depth (absolute names)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _worker_parts(module: str) -> set[str]:
    """The workers a module name belongs to (`services.cost.state` -> {"cost_ledger"})."""
    parts = module.split(".")
    if len(parts) < 2 or parts[0] != "services":
        return set()
    return {worker for worker, package in WORKERS.items() if parts[1] in {worker, package}}


def violations(owner: str | None, source: str, where: str) -> list[str]:
    """The imports of `source` (code of worker `owner`, or of none) that break the rule."""
    return [
        f"{where} imports {module}"
        for module in sorted(_imported(source))
        for worker in _worker_parts(module)
        if worker != owner
    ]


def _checked_files() -> list[tuple[str | None, Path]]:
    files: list[tuple[str | None, Path]] = []
    for worker, package in WORKERS.items():
        files.append((worker, SERVICES / f"{worker}.py"))
        files.extend((worker, path) for path in sorted((SERVICES / package).rglob("*.py")))
    for package in NEUTRAL:
        files.extend((None, path) for path in sorted((SERVICES / package).rglob("*.py")))
    return files


def test_no_worker_imports_another_workers_package() -> None:
    """Every worker module and package imports only its own worker's code (or neutral code)."""
    checked = _checked_files()
    assert len(checked) > 40  # the walk found the packages
    problems = [
        problem
        for owner, path in checked
        for problem in violations(
            owner, path.read_text(encoding="utf-8"), str(path.relative_to(ROOT))
        )
    ]
    assert problems == []


@pytest.mark.parametrize(
    ("owner", "source"),
    [
        ("session_writer", "from services.history.live import LiveSession\n"),
        ("history_archiver", "def stop():\n    from services.session.recovery import x\n"),
        ("cost_ledger", "import services.watch.scan\n"),
        ("file_watcher", "from services import cost_ledger\n"),
        (None, "from services.session import journal\n"),
    ],
)
def test_the_rule_sees_each_kind_of_cross_import(owner: str | None, source: str) -> None:
    """A cross import at module level, inside a function, or from the neutral package is caught."""
    assert violations(owner, source, "probe.py")
    assert not violations(owner, "from protocol.envelopes import Event\n", "probe.py")
