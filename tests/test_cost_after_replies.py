"""Bookkeeping after the replies: nothing a client can see waits for it or misses it."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from test_cost_ledger import LedgerHarness

from protocol.codec import dumps, loads_exact
from protocol.ledger import LedgerCheckpoint
from protocol.names import Topic


def test_a_batch_right_after_another_sees_its_ids_and_series(tmp_path: Path) -> None:
    """Without a tick in between, a re-sent id gets its first reply and a series counts
    the calls of the batch before."""
    harness = LedgerHarness(tmp_path / "project")
    ledger = harness.open()
    first = harness.log(ledger, "gpt-4", 1000, 0, request_id="once")
    assert ledger.next_deadline() == 0.0  # the host ticks at once, after the replies
    again = harness.log(ledger, "gpt-4", 1000, 0, request_id="once")
    assert again == first
    series = harness.one(ledger, harness.call("cost.series", bucket="day"))
    assert Decimal(series["total"]) == Decimal("0.03")
    assert harness.topics().count(Topic.COST_LOGGED.value) == 1


def test_a_crash_before_the_bookkeeping_loses_nothing(tmp_path: Path) -> None:
    """A ledger that dies right after answering comes back with the call applied once."""
    harness = LedgerHarness(tmp_path / "project")
    ledger = harness.open()
    first = harness.log(ledger, "gpt-4", 1000, 0, request_id="before-crash")
    ledger.close()  # no tick, no stop: what a kill -9 leaves
    restarted = harness.open()
    assert harness.log(restarted, "gpt-4", 1000, 0, request_id="before-crash") == first
    totals = harness.one(restarted, harness.call("cost.totals"))
    assert totals["session_total"] == Decimal("0.03")
    assert restarted.wait_series(30)
    series = harness.one(restarted, harness.call("cost.series", bucket="day"))
    assert Decimal(series["total"]) == Decimal("0.03")


def test_a_tick_settles_the_bookkeeping(tmp_path: Path) -> None:
    """After the host's tick the ledger asks for no further tick until its next timer."""
    harness = LedgerHarness(tmp_path / "project")
    ledger = harness.open()
    harness.log(ledger, "gpt-4", 1000, 0)
    harness.tick(ledger)
    deadline = ledger.next_deadline()
    assert deadline is not None and deadline > 0.0


def test_the_checkpoint_is_written_as_its_model_would_write_it(tmp_path: Path) -> None:
    """checkpoint.json is byte for byte the validated model's JSON: windows, session,
    budget, warnings fired, ids applied, unpriced calls and all."""
    harness = LedgerHarness(tmp_path / "project")
    ledger = harness.open()
    harness.one(ledger, harness.call("cost.set_budget", daily_limit="0.05"))
    for tokens in (1000, 2000, 3000):
        harness.log(ledger, "gpt-4", tokens, 10)
    harness.log(ledger, "my-local-llm", 10, 0)
    ledger.stop()
    written = (harness.paths.ledger_dir / "checkpoint.json").read_bytes()
    model = LedgerCheckpoint.model_validate(loads_exact(written))
    assert written == dumps(model)
    assert model.fired and model.session.operations and len(model.applied_ids) == 5
