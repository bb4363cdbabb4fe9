"""The budget warnings of one `cost.log`, worked out with as little as possible per call.

Every `cost.log` reply carries the sentence of the worst warning due, and
every call must fire (record, announce) a warning the first time it is due in
its window. `budget.due_warnings` says that from a list of `PeriodSpend`s;
this module says the same straight from the state's current windows, on the
reply's path (docs/benchmarks.md, "The ledger, fourth pass"):

- the periods' rules (limit, threshold, the limit's key) are kept while the
  budget and the fraction are the same objects (no hashing of the budget);
- a period under its threshold costs one comparison: no `PeriodSpend`, no share;
- the worst is picked as it goes, and only its sentence is written
  (`budget.warning_words`, `DueWarning.message`'s), once per call.

What it returns is what `due_warnings`, the `fired` filter and
`most_severe_due` return for `state.spends()` (tests/test_cost_call_warnings.py
checks it for any budget, fraction, spending and fired set).
"""

from __future__ import annotations

from decimal import Decimal
from typing import NamedTuple

from services.cost.budget import (
    BudgetLimits,
    DueWarning,
    PeriodRule,
    PeriodSpend,
    period_rules,
    warning_words,
    warns,
)
from services.cost.money import usd
from services.cost.state import FiredKey, LedgerState
from services.cost.windows import PERIODS, Period

__all__ = ["CallWarnings", "WarningsNow"]


class _RankedRule(NamedTuple):
    period: Period
    rank: int
    """The period's place in `PERIODS`: the longer period is the worse of two equal shares."""
    rule: PeriodRule
    limit_usd: str


class WarningsNow(NamedTuple):
    """What a call's warnings come to."""

    to_fire: list[DueWarning]
    """Due and not fired yet in their window, in period order (as `due_warnings`)."""
    worst: str | None
    """The sentence of the most severe warning due (fired before or not), or None."""


_NOTHING = WarningsNow([], None)


class CallWarnings:
    """Works out the warnings due after each call; remembers the rules of one budget."""

    def __init__(self) -> None:
        self._limits: BudgetLimits | None = None
        self._fraction: Decimal | None = None
        self._rules: tuple[_RankedRule, ...] = ()

    def _rules_of(self, limits: BudgetLimits, fraction: Decimal) -> tuple[_RankedRule, ...]:
        """`period_rules` with each period's rank and limit in words, looked up again
        only for another budget or fraction (no hashing of the budget per call)."""
        if limits is self._limits and fraction is self._fraction:
            return self._rules
        rules = period_rules(limits, fraction)
        self._rules = tuple(
            _RankedRule(period, PERIODS.index(period), rule, usd(rule.limit))
            for period, rule in rules.items()
        )
        self._limits, self._fraction = limits, fraction
        return self._rules

    def now(self, state: LedgerState, fraction: Decimal) -> WarningsNow:
        """The warnings to fire and the worst one's words for the state's current windows.

        The worst is `most_severe_due`'s: exceeded first, then the largest
        share, then the longest period (the rank makes every two differ).
        """
        limits = state.budget
        if not limits.warnings_enabled:
            return _NOTHING
        windows, fired = state.windows, state.fired
        to_fire: list[DueWarning] = []
        worst: tuple[bool, Decimal, int] | None = None
        words: tuple[Period, Decimal, Decimal, bool, int] | None = None
        words_limit = ""
        for period, rank, rule, limit_usd in self._rules_of(limits, fraction):
            current = windows[period]
            spent = current.total
            judged = warns(spent, rule)
            if judged is None:
                continue  # the common case while a period is under its threshold
            exceeded, share = judged
            limit = rule.limit
            window = current.window.key
            key: FiredKey = (period, window, "exceeded" if exceeded else "warning", rule.limit_key)
            if key not in fired:
                spend = PeriodSpend(period, window, spent, current.unpriced)
                to_fire.append(DueWarning(spend, limit, exceeded, share, key))
            severity = (exceeded, share, rank)
            if worst is None or severity > worst:
                worst = severity
                words = (period, spent, limit, exceeded, current.unpriced)
                words_limit = limit_usd
        if words is None:
            return _NOTHING
        return WarningsNow(to_fire, warning_words(*words, limit_usd=words_limit))
