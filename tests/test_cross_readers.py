"""One worker reads what another really wrote, through the real process tree.

The history archiver counts, at start, operations the cost ledger recorded
but never delivered to it. This is proven with real processes: the archiver
is frozen so the `cost.logged` events never reach it, every process is then
SIGKILLed (so no supervisor is left to deliver them again), and the next
start must find those operations in the ledger the real `CostLedger` wrote.
"""

from __future__ import annotations

import os
import signal
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from service import RunningService, running_service, start_service

from protocol.codec import loads_exact
from protocol.history_journal import HistoryEvent, decode_history_journal_line

pytestmark = pytest.mark.slow

_QUIET_HEARTBEATS = {"supervisor": {"heartbeat_liveness": 1000}}
"""A frozen archiver is not declared dead (and re-fed) before the crash."""


def _ok(reply: dict[str, Any]) -> Any:
    assert reply["ok"], reply
    return reply["result"]


def _entry(service: RunningService, session_id: str) -> dict[str, Any]:
    entries = {entry["session_id"]: entry for entry in _ok(service.request("history.list"))}
    found: dict[str, Any] = entries.get(session_id, {})
    return found


def _wait_for_entry(
    service: RunningService, session_id: str, operations: int, timeout_s: float = 15.0
) -> dict[str, Any]:
    """The session's history entry once it counts `operations` (or the last one seen)."""
    deadline = time.monotonic() + timeout_s
    while True:
        entry = _entry(service, session_id)
        if sum(entry.get("operations_count", {}).values()) >= operations:
            return entry
        if time.monotonic() > deadline:
            return entry
        time.sleep(0.05)


def _log(service: RunningService, operation: str) -> Decimal:
    result = _ok(
        service.request(
            "cost.log",
            {"operation": operation, "model": "gpt-4", "input_tokens": 100, "output_tokens": 100},
        )
    )
    return Decimal(str(result["operation"]["cost"]))


def test_operations_only_the_ledger_has_are_counted_after_the_archiver_was_killed(
    tmp_path: Path,
) -> None:
    """Calls logged while the archiver could not hear them reach the history from the ledger."""
    project = tmp_path / "novel"
    service = start_service(project, config=_QUIET_HEARTBEATS)
    try:
        session_id = _ok(service.request("session.get"))["session_id"]
        spent = _log(service, "heard")
        assert _wait_for_entry(service, session_id, 1)["operations_count"] == {"heard": 1}
        archiver = service.worker("history_archiver")["pid"]
        os.kill(archiver, signal.SIGSTOP)
        spent += _log(service, "unheard") + _log(service, "unheard")
        service.crash()  # the archiver dies frozen: those two events are nowhere but the ledger
    finally:
        service.stop()
    with running_service(project) as again:
        assert _ok(again.request("session.get"))["session_id"] == session_id
        entry = _wait_for_entry(again, session_id, 3)
        assert entry["operations_count"] == {"heard": 1, "unheard": 2}
        assert Decimal(str(entry["total_cost"])) == spent
    live = project / ".session" / "archive" / "live.jsonl"
    keys = [
        record.key
        for record in map(decode_history_journal_line, live.read_bytes().splitlines())
        if isinstance(record, HistoryEvent)
    ]
    assert sum(key.startswith("ledger:") for key in keys) == 2
    log = (project / ".session" / "logs" / "history_archiver.log").read_text()
    reconciled = [
        loads_exact(line) for line in log.splitlines() if "history.reconciled_from_ledger" in line
    ]
    assert [line["operations"] for line in reconciled] == [2]
