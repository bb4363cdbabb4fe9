"""A corrupt history.json is rebuilt from `.prev`, the archive, the journal and the ledger
(issue 10, defect 7)."""

from __future__ import annotations

import json
import time
from decimal import Decimal
from pathlib import Path

from protocol.history import HistoryDocument
from services.history.rebuild import rebuild_history
from services.runtime.paths import ProjectPaths
from services.store import previous_name
from tests.service import running_service


def _sessions_with_costs(project: Path, count: int) -> dict[str, Decimal]:
    """Run `count` sessions one after another, each logging one call; their totals."""
    totals: dict[str, Decimal] = {}
    for n in range(count):
        with running_service(project) as svc:
            session_id = svc.endpoints["session_id"]
            reply = svc.request(
                "cost.log",
                {
                    "operation": f"draft-{n}",
                    "model": "gpt-4",
                    "input_tokens": 1000,
                    "output_tokens": 10,
                },
            )
            assert reply["ok"], reply
            totals[session_id] = Decimal(str(reply["result"]["operation"]["cost"]))
    return totals


def test_a_corrupt_history_keeps_every_older_session(tmp_path: Path) -> None:
    """After history.json is garbled, history.list still shows every earlier session with its cost,
    and `.prev` plus the ledger were the sources."""
    project = tmp_path / "novel"
    totals = _sessions_with_costs(project, 3)
    session = project / ".session"
    (session / "history.json").write_bytes(b'{"sessions": [{"session_id": "x", "sta')
    with running_service(project) as svc:
        listed = svc.request("history.list")["result"]
        current = svc.endpoints["session_id"]
    by_id = {entry["session_id"]: entry for entry in listed}
    assert set(totals) | {current} <= set(by_id), sorted(by_id)
    for session_id, total in totals.items():
        assert Decimal(str(by_id[session_id]["total_cost"])) == total
    assert len(list(session.glob("history.json.corrupt-*"))) == 1
    log = (session / "logs" / "history_archiver.log").read_text()
    assert "history.rebuilt" in log


def test_rebuild_without_prev_uses_the_ledger(tmp_path: Path) -> None:
    """With no `.prev` at all, every session the ledger knows comes back, interrupted, exact."""
    project = tmp_path / "novel"
    totals = _sessions_with_costs(project, 2)
    paths = ProjectPaths.of(project)
    previous_name(paths.history).unlink(missing_ok=True)
    previous_name(paths.history_gz).unlink(missing_ok=True)
    rebuilt = rebuild_history(paths)
    assert rebuilt.from_previous == 0 and rebuilt.from_ledger == 2
    assert {e.session_id: e.total_cost for e in rebuilt.sessions} == totals
    assert all(e.status == "interrupted" for e in rebuilt.sessions)
    assert rebuilt.sessions == sorted(rebuilt.sessions, key=lambda e: e.start_time, reverse=True)


def test_prev_is_the_generation_before_the_current_history(tmp_path: Path) -> None:
    """history.json.prev parses and lacks at most the newest change of history.json."""
    project = tmp_path / "novel"
    _sessions_with_costs(project, 2)
    paths = ProjectPaths.of(project)
    current = HistoryDocument.model_validate(json.loads(paths.history.read_text()))
    prev = HistoryDocument.model_validate(json.loads(previous_name(paths.history).read_text()))
    assert {e.session_id for e in prev.sessions} <= {e.session_id for e in current.sessions}
    assert prev.sessions, "the previous generation holds the earlier session"


def test_start_tells_the_console_what_it_moved_aside_and_rebuilt(tmp_path: Path) -> None:
    """`supervisor start` prints one line per file moved aside, naming what replaced it."""
    project = tmp_path / "novel"
    _sessions_with_costs(project, 1)
    session = project / ".session"
    (session / "history.json").write_bytes(b"\x00garbage")
    (session / "preferences.json").unlink()
    (session / "preferences.json").mkdir()
    with running_service(project) as svc:
        # endpoints.json appears a moment before the console lines are printed
        deadline = time.monotonic() + 10
        while "Moved aside .session/history" not in svc.log_text() and time.monotonic() < deadline:
            time.sleep(0.02)
        printed = svc.log_text()
    assert "Moved aside .session/history.json (unreadable)" in printed, printed
    assert "history was rebuilt from history.json.prev" in printed
    assert "Moved aside .session/preferences.json (a folder)" in printed
