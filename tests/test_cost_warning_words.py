"""Budget warnings worked out per call: the quick way says what the plain rules say."""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from services.cost.budget import BudgetLimits, PeriodSpend, due_warnings, most_severe_due
from services.cost.money import CENT, usd

_amount = st.decimals(
    allow_nan=False, allow_infinity=False, places=6, min_value=-5000, max_value=5000
)


def _plain_usd(amount: Decimal) -> str:
    """`usd` as first written: cents with a thousands separator, or the exact digits."""
    sign = "-" if amount < 0 else ""
    magnitude = abs(amount)
    if magnitude == 0:
        return "$0.00"
    if magnitude < CENT:
        return f"{sign}${format(magnitude.normalize(), 'f')}"
    cents = magnitude.quantize(CENT, rounding=ROUND_HALF_EVEN)
    return f"{sign}${cents:,.2f}"


@settings(max_examples=300, deadline=None)
@given(
    amount=st.one_of(
        _amount, st.sampled_from([Decimal("999.995"), Decimal("1000"), Decimal("0.005")])
    )
)
def test_dollars_read_as_the_separator_rule_writes_them(amount: Decimal) -> None:
    """An amount under $1,000 is written without the separator as `,.2f` would write it."""
    assert usd(amount) == _plain_usd(amount)


def _plain_due(
    limits: BudgetLimits, spends: list[PeriodSpend], fraction: Decimal
) -> list[tuple[str, Decimal, bool, Decimal]]:
    """The rule in words: from `fraction` of a limit it warns, from 100% it is exceeded."""
    if not limits.warnings_enabled:
        return []
    due = []
    for spend in spends:
        limit = getattr(limits, f"{spend.period}_limit")
        if limit is None:
            continue
        if limit == 0:
            if spend.spent > 0:
                due.append((spend.period, limit, True, Decimal(1)))
            continue
        if spend.spent >= limit * fraction:
            share = (spend.spent / limit).quantize(Decimal("0.0001"), rounding=ROUND_HALF_EVEN)
            due.append((spend.period, limit, spend.spent >= limit, share))
    return due


_limit = st.one_of(st.none(), st.decimals(min_value=0, max_value=600, places=2))


@settings(max_examples=300, deadline=None)
@given(
    limits=st.builds(BudgetLimits, _limit, _limit, _limit, st.booleans()),
    spent=st.tuples(_amount, _amount, _amount),
    fraction=st.sampled_from([Decimal("0.8"), Decimal("0.5"), Decimal("1"), Decimal("0.95")]),
)
def test_due_warnings_follow_the_rule(
    limits: BudgetLimits, spent: tuple[Decimal, Decimal, Decimal], fraction: Decimal
) -> None:
    """Which periods warn, at which level and share, and the worst one's words, for any budget."""
    spends = [
        PeriodSpend("daily", "2026-11-30", abs(spent[0])),
        PeriodSpend("weekly", "2026-W49", abs(spent[1]), unpriced=1),
        PeriodSpend("monthly", "2026-11", abs(spent[2])),
    ]
    for _ in range(2):  # the second time from the rules worked out the first time
        due = due_warnings(limits, spends, fraction)
        got = [(d.spend.period, d.limit, d.exceeded, d.fraction) for d in due]
        assert got == _plain_due(limits, spends, fraction)
    worst = most_severe_due(due)
    if worst is not None:
        assert worst.message().startswith(("Daily", "Weekly", "Monthly"))
        assert usd(worst.limit) in worst.message()
