"""Hard limits refuse in advance, warnings fire once, and the month-end projection."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from test_cost_ledger import LedgerHarness

from protocol.ops import CostEstimateResult
from services.cost_ledger import CostLedger


@pytest.fixture
def harness(tmp_path: Path) -> LedgerHarness:
    """A ledger harness over a fresh project in UTC (18 November 2026, noon)."""
    return LedgerHarness(tmp_path / "project")


def estimate(harness: LedgerHarness, ledger: CostLedger, tokens: int) -> CostEstimateResult:
    """`cost.estimate` of a gpt-4 call with `tokens` input tokens ($30 per MTok)."""
    call = harness.call("cost.estimate", model="gpt-4", input_tokens=tokens)
    return CostEstimateResult.model_validate(harness.one(ledger, call))


def test_estimate_refuses_a_call_that_would_pass_a_hard_limit(harness: LedgerHarness) -> None:
    """Passing the daily hard limit: `allowed` false with the reason; reaching it is allowed."""
    ledger = harness.open()
    harness.one(ledger, harness.call("cost.set_budget", daily_hard_limit=12))
    harness.log(ledger, "gpt-4", 300_000, 0)  # $9.00 spent today
    exact = estimate(harness, ledger, 100_000)  # $3.00: exactly $12.00
    assert exact.allowed is True and exact.reason is None
    over = estimate(harness, ledger, 100_001)
    assert over.allowed is False and over.reason is not None
    assert "Daily hard limit $12.00 would be passed" in over.reason
    assert "$9.00 spent" in over.reason
    assert len(harness.records("op")) == 1  # an estimate records nothing


def test_a_call_that_happened_is_recorded_even_past_a_hard_limit(harness: LedgerHarness) -> None:
    """cost.log never refuses: the money is spent; the next estimate says no."""
    ledger = harness.open()
    harness.one(ledger, harness.call("cost.set_budget", monthly_hard_limit="1.5"))
    reply = harness.log(ledger, "gpt-4", 100_000, 0)  # $3.00
    assert reply["operation"]["cost"] == Decimal(3)
    assert estimate(harness, ledger, 1).allowed is False


def test_hard_limits_survive_a_restart_and_null_removes_one(harness: LedgerHarness) -> None:
    """Hard limits are part of the durable budget; `null` removes one, others unchanged."""
    ledger = harness.open()
    harness.one(ledger, harness.call("cost.set_budget", weekly_hard_limit=20, daily_hard_limit=5))
    restarted = harness.open()
    budget = harness.one(restarted, harness.call("cost.set_budget", daily_hard_limit=None))
    assert budget["weekly_hard_limit"] == 20 and budget["daily_hard_limit"] is None
    assert budget["daily_limit"] == 50  # the warning limit is untouched


def test_warnings_fire_once_per_limit_level_and_window(harness: LedgerHarness) -> None:
    """With hard limits set, each warning still fires once per limit, level and window."""
    ledger = harness.open()
    harness.one(ledger, harness.call("cost.set_budget", daily_limit=10, daily_hard_limit=20))
    for _ in range(6):
        harness.log(ledger, "gpt-4", 100_000, 0)  # $3 each: 9 (warning), 12 (exceeded), ...
    warned = [(r["period"], r["level"]) for r in harness.records("warned")]
    assert warned.count(("daily", "warning")) == 1
    assert warned.count(("daily", "exceeded")) == 1
    assert harness.topics().count("budget.warning") == len(warned)


def test_totals_project_the_month_end(harness: LedgerHarness) -> None:
    """$9 by 18 November (a 30-day month) projects $15.00 at the month's end."""
    ledger = harness.open()
    harness.log(ledger, "gpt-4", 300_000, 0)
    totals = harness.one(ledger, harness.call("cost.totals"))
    assert totals["monthly_projection"] == Decimal("15.00")
