"""Budget warnings: in time, in words, once per limit per window, and durable."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from test_cost_ledger import LedgerHarness

from protocol.codec import dumps
from protocol.costs import BudgetWarning
from services.cost.budget import BudgetLimits, PeriodSpend, budget_warnings, most_severe
from services.cost.money import percent_text, usd


@pytest.fixture
def harness(tmp_path: Path) -> LedgerHarness:
    """A ledger in UTC with a $1 daily limit (gpt-4: 1,000 input tokens = $0.03)."""
    harness = LedgerHarness(tmp_path / "project")
    ledger = harness.open()
    harness.one(ledger, harness.call("cost.set_budget", daily_limit=1))
    ledger.stop()
    return harness


def warnings_published(harness: LedgerHarness) -> list[BudgetWarning]:
    """The budget.warning events so far."""
    return [BudgetWarning.model_validate(d) for t, d in harness.events if t == "budget.warning"]


def test_warning_at_80_percent_names_period_spent_limit_and_what_is_left(
    harness: LedgerHarness,
) -> None:
    """Crossing 80% of the daily limit warns with the amounts, in the reply and as an event."""
    ledger = harness.open()
    reply = harness.log(ledger, "gpt-4", 26_000, 0)  # $0.78
    assert reply["warning"] is None and warnings_published(harness) == []
    reply = harness.log(ledger, "gpt-4", 1_000, 0)  # $0.81
    assert reply["warning"] == "Daily budget: $0.81 of $1.00 spent (81%); $0.19 left."
    (warning,) = warnings_published(harness)
    assert warning.period == "daily" and warning.window == "2026-11-18"
    assert warning.spent == Decimal("0.81") and warning.limit == 1
    assert warning.remaining == Decimal("0.19") and warning.exceeded is False


def test_warning_fires_once_per_window_and_exceeded_once_more(harness: LedgerHarness) -> None:
    """Further calls repeat the warning in replies but announce it only when the level changes."""
    ledger = harness.open()
    for _ in range(5):
        harness.log(ledger, "gpt-4", 6_000, 0)  # $0.18 each: 0.90 after five
    assert [w.exceeded for w in warnings_published(harness)] == [False]
    reply = harness.log(ledger, "gpt-4", 6_000, 0)  # $1.08
    assert reply["warning"] == (
        "Daily budget exceeded: $1.08 spent of $1.00 (108%); $0.08 over the limit."
    )
    harness.log(ledger, "gpt-4", 6_000, 0)
    assert [w.exceeded for w in warnings_published(harness)] == [False, True]
    assert harness.one(ledger, harness.call("cost.warning"))["warning"].startswith(
        "Daily budget exceeded"
    )


def test_next_day_starts_clean_and_can_warn_again(harness: LedgerHarness) -> None:
    """After midnight the daily warning is gone and fires again when today's spending earns it."""
    ledger = harness.open()
    harness.log(ledger, "gpt-4", 30_000, 0)  # $0.90
    harness.now += timedelta(days=1)
    assert harness.one(ledger, harness.call("cost.warning")) == {"warning": None}
    harness.log(ledger, "gpt-4", 30_000, 0)
    assert [w.window for w in warnings_published(harness)] == ["2026-11-18", "2026-11-19"]


def test_a_restart_does_not_fire_the_same_warning_again(harness: LedgerHarness) -> None:
    """Which warnings fired is in the ledger: a restarted ledger stays quiet for them."""
    ledger = harness.open()
    harness.log(ledger, "gpt-4", 28_000, 0)
    assert len(warnings_published(harness)) == 1
    restarted = harness.open()  # a crash: no stop
    reply = harness.log(restarted, "gpt-4", 1_000, 0)
    assert reply["warning"] is not None and len(warnings_published(harness)) == 1
    assert len(harness.records("warned")) == 1


def test_a_new_limit_rearms_the_warning(harness: LedgerHarness) -> None:
    """Raising the limit after a warning lets the next 80% of the new limit warn again."""
    ledger = harness.open()
    harness.log(ledger, "gpt-4", 28_000, 0)  # $0.84 of $1
    harness.one(ledger, harness.call("cost.set_budget", daily_limit=2))
    assert harness.one(ledger, harness.call("cost.warning")) == {"warning": None}
    harness.log(ledger, "gpt-4", 28_000, 0)  # $1.68 of $2
    assert [w.limit for w in warnings_published(harness)] == [1, 2]


def test_lowering_a_limit_below_spending_warns_at_once(harness: LedgerHarness) -> None:
    """Setting a limit already exceeded announces it with the budget change."""
    ledger = harness.open()
    harness.log(ledger, "gpt-4", 10_000, 0)  # $0.30
    harness.one(ledger, harness.call("cost.set_budget", weekly_limit=Decimal("0.25")))
    (warning,) = warnings_published(harness)
    assert warning.period == "weekly" and warning.exceeded


def test_warnings_disabled_means_silence_but_totals_continue(harness: LedgerHarness) -> None:
    """With warnings off nothing warns; the money is still counted."""
    ledger = harness.open()
    harness.one(ledger, harness.call("cost.set_budget", warnings_enabled=False))
    reply = harness.log(ledger, "gpt-4", 100_000, 0)
    assert reply["warning"] is None and warnings_published(harness) == []
    assert reply["totals"]["daily_total"] == 3
    estimate = harness.one(ledger, harness.call("cost.estimate", model="gpt-4", input_tokens=1))
    assert estimate["warning"] is None


def test_estimate_says_which_warning_the_call_would_trigger(harness: LedgerHarness) -> None:
    """Before an expensive call, the estimate tells the UI the limit it would push past."""
    ledger = harness.open()
    harness.log(ledger, "gpt-4", 20_000, 0)  # $0.60
    estimate = harness.one(
        ledger, harness.call("cost.estimate", model="gpt-4", input_tokens=10_000)
    )  # +$0.30
    assert estimate["cost"] == Decimal("0.3")
    assert estimate["warning"] == "Daily budget: $0.90 of $1.00 spent (90%); $0.10 left."
    assert estimate["confirm"] is True
    assert warnings_published(harness) == []  # an estimate changes nothing
    assert harness.one(ledger, harness.call("cost.totals"))["daily_total"] == Decimal("0.6")


def test_warning_fraction_comes_from_preferences(harness: LedgerHarness) -> None:
    """With `budget_warning_fraction` 0.5 the warning starts at half the limit."""
    harness.paths.preferences.write_bytes(
        dumps({"timezone": "UTC", "budget_warning_fraction": Decimal("0.5")})
    )
    ledger = harness.open()
    assert harness.log(ledger, "gpt-4", 17_000, 0)["warning"] is not None  # $0.51


def test_unpriced_calls_are_mentioned_in_the_warning() -> None:
    """A warning says how many unpriced calls its amount leaves out."""
    limits = BudgetLimits(Decimal(10), None, None)
    (warning,) = budget_warnings(
        limits, [PeriodSpend("daily", "2026-11-18", Decimal(9), unpriced=2)], Decimal("0.8")
    )
    assert warning.message.endswith("2 unpriced calls not included.")
    assert warning.unpriced_operations == 2


def test_most_severe_prefers_exceeded_then_share() -> None:
    """An exceeded limit outranks an approached one; otherwise the larger share wins."""
    limits = BudgetLimits(Decimal(10), Decimal(100), Decimal(20))
    spends = [
        PeriodSpend("daily", "d", Decimal(9)),
        PeriodSpend("weekly", "w", Decimal(85)),
        PeriodSpend("monthly", "m", Decimal(21)),
    ]
    warnings = budget_warnings(limits, spends, Decimal("0.8"))
    assert [w.period for w in warnings] == ["daily", "weekly", "monthly"]
    worst = most_severe(warnings)
    assert worst is not None and worst.period == "monthly" and worst.exceeded
    assert most_severe(warnings[:2]).period == "daily"  # type: ignore[union-attr]


def test_a_zero_limit_is_exceeded_by_any_spending() -> None:
    """A $0 limit warns as exceeded at the first cent and not before."""
    limits = BudgetLimits(Decimal(0), None, None)
    assert budget_warnings(limits, [PeriodSpend("daily", "d", Decimal(0))], Decimal("0.8")) == []
    (warning,) = budget_warnings(
        limits, [PeriodSpend("daily", "d", Decimal("0.01"))], Decimal("0.8")
    )
    assert warning.exceeded


def test_amounts_read_like_money() -> None:
    """Messages show cents, thousands separators, and tiny amounts with their own digits."""
    assert usd(Decimal("1234.5")) == "$1,234.50"
    assert usd(Decimal("0.00000007")) == "$0.00000007"
    assert usd(Decimal("-2.3")) == "-$2.30"
    assert usd(Decimal(0)) == "$0.00"
    assert percent_text(Decimal("0.99999")) == "99%"


def test_week_and_month_windows_warn_independently(tmp_path: Path) -> None:
    """Each limit has its own window: the weekly warning does not stop the monthly one."""
    harness = LedgerHarness(tmp_path, now=datetime(2026, 11, 18, tzinfo=UTC))
    ledger = harness.open()
    harness.one(
        ledger,
        harness.call(
            "cost.set_budget", daily_limit=None, weekly_limit=1, monthly_limit=Decimal("1.5")
        ),
    )
    harness.log(ledger, "gpt-4", 30_000, 0)  # $0.90: weekly 90%
    harness.now += timedelta(days=7)
    harness.log(ledger, "gpt-4", 12_000, 0)  # month $1.26: 84%, new week 36%
    assert [(w.period, w.exceeded) for w in warnings_published(harness)] == [
        ("weekly", False),
        ("monthly", False),
    ]
