"""The warnings of each `cost.log`, worked out the quick way, are those the plain rules give."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from hypothesis import example, given, settings
from hypothesis import strategies as st

from services.cost.budget import BudgetLimits, due_warnings, most_severe_due
from services.cost.call_warnings import CallWarnings
from services.cost.state import LedgerState

_NOW = datetime(2026, 11, 30, 15, 0, tzinfo=UTC)
_limit = st.one_of(
    st.none(),
    st.sampled_from([Decimal(0), Decimal(10), Decimal("50.00")]),
    st.decimals(min_value=0, max_value=600, places=2),
)
_spent = st.one_of(
    st.sampled_from([Decimal(0), Decimal(8), Decimal(10), Decimal(40), Decimal("50.000")]),
    st.decimals(allow_nan=False, allow_infinity=False, places=6, min_value=0, max_value=900),
)
"""Any amount, and those on a threshold or a limit below (fraction 0.8 of 10 and 50)."""
_SHARED = CallWarnings()
"""One instance for every example, as the ledger keeps one: budgets change under it."""


def _state(limits: BudgetLimits) -> LedgerState:
    return LedgerState(session_id="s", zone=ZoneInfo("Europe/Paris"), budget=limits, now=_NOW)


@settings(max_examples=400, deadline=None)
@given(
    limits=st.builds(BudgetLimits, _limit, _limit, _limit, st.booleans()),
    spent=st.tuples(_spent, _spent, _spent),
    unpriced=st.tuples(*[st.integers(0, 3)] * 3),
    fraction=st.sampled_from([Decimal("0.8"), Decimal("0.5"), Decimal("1"), Decimal("0.95")]),
    fired_levels=st.lists(st.sampled_from(["warning", "exceeded"]), max_size=6),
)
@example(  # on the threshold, on the limit, and a zero limit with nothing spent
    limits=BudgetLimits(Decimal(10), Decimal(50), Decimal(0)),
    spent=(Decimal(8), Decimal("50.000"), Decimal(0)),
    unpriced=(0, 1, 2),
    fraction=Decimal("0.8"),
    fired_levels=[],
)
def test_warnings_of_a_call_match_the_plain_rules(
    limits: BudgetLimits,
    spent: tuple[Decimal, Decimal, Decimal],
    unpriced: tuple[int, int, int],
    fraction: Decimal,
    fired_levels: list[str],
) -> None:
    """For any budget, spending and warnings fired: the same warnings fire, with the same words."""
    state = _state(limits)
    for current, amount, count in zip(state.windows.values(), spent, unpriced, strict=True):
        current.total, current.unpriced = amount, count
    for level, (period, current) in zip(fired_levels, state.windows.items(), strict=False):
        limit = limits.limit(period)
        if limit is not None:
            state.fired.add((period, current.window.key, level, format(limit.normalize(), "f")))
    due = due_warnings(limits, state.spends(), fraction)
    worst = most_severe_due(due)
    got = _SHARED.now(state, fraction)
    assert got.to_fire == [item for item in due if item.key not in state.fired]
    assert got.worst == (worst.message() if worst else None)


def test_a_new_budget_gives_new_warnings_at_once() -> None:
    """Raising a limit under the same state re-derives the rule: the warning goes away."""
    warnings = CallWarnings()
    state = _state(BudgetLimits(Decimal(10), None, None))
    state.windows["daily"].total = Decimal("12.5")
    first = warnings.now(state, Decimal("0.8"))
    words = "Daily budget exceeded: $12.50 spent of $10.00 (125%); $2.50 over the limit."
    assert first.worst == words
    state.budget = BudgetLimits(Decimal(100), None, None)
    assert warnings.now(state, Decimal("0.8")) == ([], None)
