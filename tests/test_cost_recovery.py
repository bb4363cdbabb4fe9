"""Crashes: torn lines, checkpoints that match or not, corrupt costs.json, kill -9 under load."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from test_cost_ledger import LedgerHarness

from protocol.codec import loads_exact
from protocol.costs import CostsDocument
from protocol.errors import ErrorCode, ProtocolError
from services.store import FileOps, JsonLinesLog


@pytest.fixture
def harness(tmp_path: Path) -> LedgerHarness:
    """A ledger harness over a fresh project in UTC."""
    return LedgerHarness(tmp_path / "project")


def month_file(harness: LedgerHarness) -> Path:
    """The one month file these tests write."""
    (path,) = harness.paths.ledger_dir.glob("*.jsonl")
    return path


def test_a_torn_last_line_is_cut_and_nothing_acknowledged_is_lost(harness: LedgerHarness) -> None:
    """A crash mid-write leaves half a line; the restart drops it and keeps every full one."""
    ledger = harness.open()
    for tokens in (1000, 2000, 3000):
        harness.log(ledger, "gpt-4", tokens, 0)
    path = month_file(harness)
    good = path.read_bytes()
    with path.open("ab") as handle:
        handle.write(b'{"kind":"op","id":"half","ts":"2026-11-18T12:00:00Z","cost":0.0')
    restarted = harness.open()
    assert path.read_bytes() == good
    assert harness.one(restarted, harness.call("cost.totals"))["session_total"] == Decimal("0.18")
    harness.log(restarted, "gpt-4", 1000, 0, request_id="half")  # never acknowledged: applied
    assert [r["id"] for r in harness.records("op")][-1] == "half"
    assert harness.one(restarted, harness.call("cost.totals"))["session_total"] == Decimal("0.21")


def test_a_complete_but_garbled_last_line_is_cut_too(harness: LedgerHarness) -> None:
    """A last line that ends but does not parse was never acknowledged either."""
    ledger = harness.open()
    harness.log(ledger, "gpt-4", 1000, 0)
    path = month_file(harness)
    with path.open("ab") as handle:
        handle.write(b'{"kind":"op","id":\x00\x00\n')
    restarted = harness.open()
    assert harness.one(restarted, harness.call("cost.totals"))["session_total"] == Decimal("0.03")
    assert all(line.startswith(b"{") for line in path.read_bytes().splitlines())


def test_a_hand_edited_line_in_the_middle_is_skipped_and_reported(
    harness: LedgerHarness,
) -> None:
    """A line that is JSON but not a record never stops the ledger; the others still count."""
    ledger = harness.open()
    harness.log(ledger, "gpt-4", 1000, 0)
    path = month_file(harness)
    with path.open("ab") as handle:
        handle.write(b'{"kind":"op","id":"edited"}\n[1, 2]\nnot json at all\n')
    harness.log(ledger, "gpt-4", 2000, 0)
    restarted = harness.open()
    assert restarted.loaded_info["bad_lines"] == 3  # each line that is not a record is reported
    assert harness.one(restarted, harness.call("cost.totals"))["session_total"] == Decimal("0.09")


def test_restart_with_a_checkpoint_replays_only_the_tail(harness: LedgerHarness) -> None:
    """After a checkpoint, a restart reads only the records written since."""
    ledger = harness.open()
    ledger.checkpoint_every_records = 5
    for tokens in range(1, 11):
        harness.log(ledger, "gpt-4", tokens * 1000, 0)
    harness.tick(ledger)  # the checkpoint is due at once
    assert (harness.paths.ledger_dir / "checkpoint.json").exists()
    for tokens in range(3):
        harness.log(ledger, "gemini-flash", tokens, 0)
    restarted = harness.open()  # crash: no stop
    assert restarted.loaded_info["checkpoint_used"] is True
    assert restarted.loaded_info["records_replayed"] == 3
    totals = harness.one(restarted, harness.call("cost.totals"))
    assert totals["session_total"] == Decimal("1.650000225")
    assert totals["by_model"] == {"gpt-4": Decimal("1.65"), "gemini-flash": Decimal("0.000000225")}


def test_a_checkpoint_the_ledger_no_longer_matches_is_ignored(harness: LedgerHarness) -> None:
    """If the ledger was cut or edited below the checkpoint, totals are rebuilt from the ledger."""
    ledger = harness.open()
    for tokens in (1000, 2000, 3000):
        harness.log(ledger, "gpt-4", tokens, 0)
    ledger.stop()  # writes the checkpoint
    path = month_file(harness)
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[:-1]))  # the last operation is gone
    restarted = harness.open()
    assert restarted.loaded_info["checkpoint_used"] is False
    assert "no longer" in restarted.loaded_info["checkpoint_problem"]
    assert harness.one(restarted, harness.call("cost.totals"))["session_total"] == Decimal("0.09")


def test_a_corrupt_checkpoint_is_ignored(harness: LedgerHarness) -> None:
    """A checkpoint that does not parse only costs a longer start."""
    ledger = harness.open()
    harness.log(ledger, "gpt-4", 1000, 0)
    ledger.stop()
    (harness.paths.ledger_dir / "checkpoint.json").write_bytes(b"{not json")
    restarted = harness.open()
    assert restarted.loaded_info["checkpoint_used"] is False
    assert harness.one(restarted, harness.call("cost.totals"))["session_total"] == Decimal("0.03")


def test_a_corrupt_costs_json_is_moved_aside_and_rebuilt(harness: LedgerHarness) -> None:
    """A costs.json that does not parse is kept as NAME.corrupt-* and rebuilt from the ledger."""
    ledger = harness.open()
    harness.log(ledger, "gpt-4", 1000, 0)
    ledger.stop()
    harness.paths.costs.write_bytes(b'{"session_total": 1.')
    restarted = harness.open()
    harness.tick(restarted, 1.0)
    (moved,) = harness.paths.session_dir.glob("costs.json.corrupt-*")
    assert moved.read_bytes() == b'{"session_total": 1.'
    document = CostsDocument.model_validate(loads_exact(harness.paths.costs.read_bytes()))
    assert document.session_total == Decimal("0.03")


def test_without_checkpoint_the_budget_comes_from_the_month_files(tmp_path: Path) -> None:
    """Each month file starts with the budget in force, so a rebuild of recent months finds it."""
    harness = LedgerHarness(tmp_path, now=datetime(2026, 1, 10, tzinfo=UTC))
    ledger = harness.open()
    harness.one(ledger, harness.call("cost.set_budget", monthly_limit=42, daily_limit=None))
    for month in range(2, 7):
        harness.now = datetime(2026, month, 10, tzinfo=UTC)
        harness.log(ledger, "gpt-4", 1000, 0)
    ledger.stop()
    (harness.paths.ledger_dir / "checkpoint.json").unlink()
    restarted = harness.open()
    assert restarted.loaded_info["files_read"] == ["2026-05.jsonl", "2026-06.jsonl"]
    budget = harness.one(restarted, harness.call("cost.set_budget"))
    assert budget["monthly_limit"] == 42 and budget["daily_limit"] is None
    totals = harness.one(restarted, harness.call("cost.totals"))
    assert totals["monthly_total"] == Decimal("0.03")


def test_a_failed_append_publishes_nothing(
    harness: LedgerHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Events follow the fsync: a batch that could not be written announces nothing, and its
    reply says nothing was recorded."""
    ledger = harness.open()

    def broken(self: JsonLinesLog, records: Any) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(JsonLinesLog, "append_many", broken)
    (outcome,) = ledger.handle_batch([harness.log_call("my-local-llm", 10)])
    assert harness.events == []
    assert isinstance(outcome, ProtocolError) and outcome.code is ErrorCode.INTERNAL
    assert "nothing was recorded" in outcome.message
    monkeypatch.undo()
    assert harness.one(ledger, harness.call("cost.totals"))["unpriced_operations"] == 0


def test_a_failing_costs_json_is_retried_later_without_sleeping(
    harness: LedgerHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """costs.json is a cache: a failed save never sleeps on the main loop, and a later tick
    writes it."""
    ledger = harness.open()
    harness.tick(ledger, 1.0)
    harness.log(ledger, "gpt-4", 1000, 0)
    naps: list[float] = []
    monkeypatch.setattr(time, "sleep", naps.append)

    def refuse(self: FileOps, source: Path, target: Path) -> None:
        raise OSError(errno.EIO, "Input/output error (simulated)")

    monkeypatch.setattr(FileOps, "replace", refuse)
    harness.tick(ledger, 1.0)
    assert [nap for nap in naps if nap > 0] == []
    monkeypatch.undo()
    harness.tick(ledger, 1.0)
    document = CostsDocument.model_validate(loads_exact(harness.paths.costs.read_bytes()))
    assert document.session_total == Decimal("0.03")


_CHILD = textwrap.dedent(
    """
    import random, sys, time
    from pathlib import Path
    import structlog
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))
    from protocol.names import Op, WorkerName
    from protocol.ops import parse_args
    from services.cost_ledger import CostLedger
    from services.inprocess import worker_context
    from services.runtime.worker import Call

    project, first, seed = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    ctx = worker_context(project, WorkerName.COST_LEDGER, session_id="s1")
    ledger = CostLedger(ctx)
    ledger.checkpoint_every_records = 40
    ledger.snapshot_delay_s = 0.0
    ledger.start()
    rng = random.Random(seed)
    models = ["gpt-4", "gemini-flash", "claude-sonnet-3.5", "my-local-llm"]
    number, previous = first, []
    while True:
        calls = []
        for _ in range(rng.randint(1, 8)):  # eight clients' requests arriving together
            args = {"operation": "load", "model": rng.choice(models),
                    "input_tokens": rng.randint(0, 9999), "output_tokens": rng.randint(0, 999)}
            calls.append(Call(id=f"k-{number}", op=Op.COST_LOG,
                              args=parse_args("cost.log", args)))
            number += 1
        if previous and rng.random() < 0.3:
            calls.append(rng.choice(previous))  # a client re-sending after a timeout
        outcomes = ledger.handle_batch(calls)
        lines = [f"ACK {c.id} {o['operation']['cost']}" for c, o in zip(calls, outcomes)]
        sys.stdout.write("\\n".join(lines) + "\\n")
        sys.stdout.flush()
        previous = calls
        ledger.tick(time.monotonic())
    """
)


def _run_and_kill(project: Path, first: int, seed: int, acks_wanted: int) -> dict[str, str]:
    """Run the ledger loop in a child, SIGKILL it mid-load, return what it acknowledged."""
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(project), str(first), str(seed)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    acked: dict[str, str] = {}
    assert child.stdout is not None
    try:
        while len(acked) < acks_wanted:
            line = child.stdout.readline()
            assert line, "the child stopped before it was killed"
            if line.startswith(b"ACK "):
                _, request_id, cost = line.decode().split()
                acked.setdefault(request_id, cost)
        child.send_signal(signal.SIGKILL)
        for line in child.stdout:  # acknowledgements already written before it died
            if line.startswith(b"ACK ") and line.endswith(b"\n"):
                _, request_id, cost = line.decode().split()
                acked.setdefault(request_id, cost)
    finally:
        if child.poll() is None:
            child.kill()
        child.wait(timeout=10)
        child.stdout.close()
    return acked


def test_kill_9_under_load_loses_and_duplicates_nothing(harness: LedgerHarness) -> None:
    """Two SIGKILLs mid-batch: every acknowledged call is in the ledger exactly once, exact."""
    harness.paths.session_dir.mkdir(parents=True, exist_ok=True)
    acked = _run_and_kill(harness.project, 0, seed=1, acks_wanted=600)
    acked.update(_run_and_kill(harness.project, 100_000, seed=2, acks_wanted=600))
    ops = harness.records("op")
    ids = [op["id"] for op in ops]
    assert len(ids) == len(set(ids)), "a call was recorded twice"
    recorded: dict[str, Any] = {op["id"]: op for op in ops}
    missing = set(acked) - set(recorded)
    assert not missing, f"acknowledged but lost: {sorted(missing)[:5]}"
    for request_id, cost in acked.items():
        expected = None if cost == "None" else Decimal(cost)
        assert recorded[request_id]["cost"] == expected, request_id
    ledger = harness.open()
    totals = harness.one(ledger, harness.call("cost.totals"))
    assert totals["session_total"] == sum(op["cost"] or Decimal(0) for op in ops)
    assert totals["unpriced_operations"] == sum(op["cost"] is None for op in ops)
    resent = ledger.handle_batch(
        [harness.log_call("gpt-4", 1, request_id=request_id) for request_id in list(acked)[:200]]
    )
    assert len(harness.records("op")) == len(ops)  # re-sends are answered, not applied
    assert [o["operation"]["request_id"] for o in resent] == list(acked)[:200]


def test_a_state_the_checkpoint_model_refuses_is_a_failed_save_not_a_crash(
    harness: LedgerHarness,
) -> None:
    """A checkpoint whose state has an unknown field is not written, and the ledger says why."""
    from zoneinfo import ZoneInfo

    from services.cost.budget import BudgetLimits
    from services.cost.ledger_files import LedgerFiles, Position
    from services.cost.state import LedgerState

    files = LedgerFiles(harness.paths.ledger_dir)
    ledger_state = LedgerState(
        session_id="s1",
        zone=ZoneInfo("UTC"),
        budget=BudgetLimits(None, None, None),
        now=harness.now,
    )
    state = {**ledger_state.to_checkpoint(), "surprise": 1}
    outcome = files.write_checkpoint(Position("2026-11.jsonl", 0, ""), state)
    assert not outcome.ok and outcome.error is not None and "surprise" in outcome.error
    assert not files.checkpoint_path.exists()
