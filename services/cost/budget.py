"""Budget limits and the warnings they raise, in words a writer understands.

A limit warns from `fraction` (preference `budget_warning_fraction`, 0.8) of
it and is *exceeded* at 100%: "Daily budget: $41.20 of $50.00 spent (82%);
$8.80 left." Unpriced calls are never counted as $0: when a window holds
some, the message says how many are not included.

Which warnings already fired is the ledger's business (a `warned` record per
period, window, level and limit); this module only says what is due.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import ROUND_HALF_EVEN, Decimal
from functools import lru_cache
from typing import Any, Literal, NamedTuple

from protocol.costs import BudgetWarning
from services.cost.money import MONEY, percent_text, usd
from services.cost.windows import PERIODS, Period

__all__ = [
    "PERIOD_TITLES",
    "BudgetLimits",
    "DueWarning",
    "Level",
    "PeriodRule",
    "PeriodSpend",
    "budget_warnings",
    "due_warnings",
    "limit_text",
    "most_severe",
    "most_severe_due",
    "period_rules",
    "refusal",
    "warning_words",
    "warns",
]

Level = Literal["warning", "exceeded"]

PERIOD_TITLES: dict[Period, str] = {
    "daily": "Daily budget",
    "weekly": "Weekly budget",
    "monthly": "Monthly budget",
}

_FRACTION_PLACES = Decimal("0.0001")


@dataclass(frozen=True)
class BudgetLimits:
    """The budget in force; a None limit means no limit for that period."""

    daily_limit: Decimal | None
    weekly_limit: Decimal | None
    monthly_limit: Decimal | None
    warnings_enabled: bool = True
    daily_hard_limit: Decimal | None = None
    weekly_hard_limit: Decimal | None = None
    monthly_hard_limit: Decimal | None = None

    def limit(self, period: Period) -> Decimal | None:
        """The (warning) limit of `period`."""
        value: Decimal | None = getattr(self, f"{period}_limit")
        return value

    def hard_limit(self, period: Period) -> Decimal | None:
        """The hard limit of `period`: `cost.estimate` refuses a call that would pass it."""
        value: Decimal | None = getattr(self, f"{period}_hard_limit")
        return value

    def updated(self, changes: dict[str, Any]) -> BudgetLimits:
        """A copy with `changes` applied (only the keys given change)."""
        return replace(self, **changes)

    def as_dict(self) -> dict[str, Any]:
        """The `Budget` shape (costs.json, `cost.set_budget` replies, ledger records)."""
        return {
            "daily_limit": self.daily_limit,
            "weekly_limit": self.weekly_limit,
            "monthly_limit": self.monthly_limit,
            "warnings_enabled": self.warnings_enabled,
            "daily_hard_limit": self.daily_hard_limit,
            "weekly_hard_limit": self.weekly_hard_limit,
            "monthly_hard_limit": self.monthly_hard_limit,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BudgetLimits:
        """Read the `Budget` shape back (money exact: Decimal, int or its text)."""

        def limit(key: str) -> Decimal | None:
            value = data.get(key)
            return None if value is None else Decimal(value)

        return cls(
            limit("daily_limit"),
            limit("weekly_limit"),
            limit("monthly_limit"),
            bool(data.get("warnings_enabled", True)),
            limit("daily_hard_limit"),
            limit("weekly_hard_limit"),
            limit("monthly_hard_limit"),
        )


class PeriodSpend(NamedTuple):
    """What was spent in one current window (a tuple: three are built per `cost.log`)."""

    period: Period
    window: str
    spent: Decimal
    unpriced: int = 0


@lru_cache(maxsize=256)
def limit_text(limit: Decimal) -> str:
    """A limit as the fired-warning key spells it (`50`, never `5E+1` or `50.0`).

    Cached: every `cost.log` spells the key of each due warning, and limits
    are few (equal Decimals hash alike and spell alike).
    """
    return format(MONEY.normalize(limit), "f")


class DueWarning(NamedTuple):
    """A warning that is due, before its words are written (cheap to compute per call)."""

    spend: PeriodSpend
    limit: Decimal
    exceeded: bool
    fraction: Decimal
    key: tuple[str, str, str, str]
    """What makes it 'the same warning': period, window, level and limit (`limit_text`)."""

    @property
    def level(self) -> Level:
        """`exceeded` at 100% and beyond, else `warning`."""
        return "exceeded" if self.exceeded else "warning"

    def message(self) -> str:
        """The sentence a writer reads."""
        spend = self.spend
        return warning_words(spend.period, spend.spent, self.limit, self.exceeded, spend.unpriced)

    def warning(self) -> BudgetWarning:
        """The `BudgetWarning` (event data and UI)."""
        spend = self.spend
        return BudgetWarning.model_construct(  # our own values: no validation needed
            period=spend.period,
            spent=spend.spent,
            limit=self.limit,
            remaining=MONEY.subtract(self.limit, spend.spent),
            fraction=self.fraction,
            exceeded=self.exceeded,
            window=spend.window,
            message=self.message(),
            unpriced_operations=spend.unpriced,
        )


def warning_words(
    period: Period,
    spent: Decimal,
    limit: Decimal,
    exceeded: bool,
    unpriced: int,
    *,
    limit_usd: str | None = None,
) -> str:
    """A due warning's sentence (`DueWarning.message`); `limit_usd` is `usd(limit)` if known."""
    title = PERIOD_TITLES[period]
    left = MONEY.subtract(limit, spent)
    share = percent_text(spent / limit) if limit > 0 else "all"
    if limit_usd is None:
        limit_usd = _limit_usd(limit)
    if exceeded:
        text = (
            f"{title} exceeded: {usd(spent)} spent of {limit_usd} ({share}); "
            f"{usd(-left)} over the limit."
        )
    else:
        text = f"{title}: {usd(spent)} of {limit_usd} spent ({share}); {usd(left)} left."
    if unpriced:
        calls = "call" if unpriced == 1 else "calls"
        text += f" {unpriced} unpriced {calls} not included."
    return text


class PeriodRule(NamedTuple):
    """A period's limit and the spend from which it warns (`limit x fraction`)."""

    limit: Decimal
    threshold: Decimal | None
    """None for a zero limit: due (exceeded) as soon as anything is spent."""
    limit_key: str
    """The limit as a fired warning's key spells it (`limit_text`)."""


@lru_cache(maxsize=64)
def period_rules(limits: BudgetLimits, fraction: Decimal) -> dict[Period, PeriodRule]:
    """Each limited period's rule, in `PERIODS` order, worked out once per budget and
    fraction (not per call)."""
    rules: dict[Period, PeriodRule] = {}
    for period in PERIODS:
        limit = limits.limit(period)
        if limit is not None:
            threshold = None if limit == 0 else limit * fraction
            rules[period] = PeriodRule(limit, threshold, limit_text(limit))
    return rules


@lru_cache(maxsize=256)
def _limit_usd(limit: Decimal) -> str:
    """`usd(limit)`, cached: a message names its limit on every call over the fraction."""
    return usd(limit)


_ONE = Decimal(1)


def warns(spent: Decimal, rule: PeriodRule) -> tuple[bool, Decimal] | None:
    """Whether a period that spent `spent` warns under `rule`: (exceeded, share), or None."""
    limit, threshold, _key = rule
    if threshold is None:  # a zero limit: exceeded as soon as anything is spent
        return (True, _ONE) if spent > 0 else None
    if spent < threshold:
        return None
    return spent >= limit, (spent / limit).quantize(_FRACTION_PLACES, rounding=ROUND_HALF_EVEN)


def due_warnings(
    limits: BudgetLimits, spends: list[PeriodSpend], fraction: Decimal
) -> list[DueWarning]:
    """Every warning due now, one per period at most (none if warnings are off)."""
    if not limits.warnings_enabled:
        return []
    rules = period_rules(limits, fraction)
    due: list[DueWarning] = []
    for spend in spends:
        rule = rules.get(spend.period)
        judged = None if rule is None else warns(spend.spent, rule)
        if rule is None or judged is None:
            continue
        exceeded, share = judged
        level = "exceeded" if exceeded else "warning"
        key = (spend.period, spend.window, level, rule.limit_key)
        due.append(DueWarning(spend, rule.limit, exceeded, share, key))
    return due


def refusal(limits: BudgetLimits, spends: list[PeriodSpend], cost: Decimal) -> str | None:
    """Why a call costing `cost` may not run (a hard limit it would pass), or None.

    `spends` are the windows' spending before the call. Reaching a hard limit
    exactly is allowed; passing it is not. Unpriced calls are not counted (their
    cost is unknown), as everywhere else.
    """
    for spend in spends:
        hard = limits.hard_limit(spend.period)
        if hard is None:
            continue
        after = MONEY.add(spend.spent, cost)
        if after > hard:
            title = PERIOD_TITLES[spend.period].replace("budget", "hard limit")
            return (
                f"{title} {usd(hard)} would be passed: {usd(spend.spent)} spent + "
                f"{usd(cost)} for this call = {usd(after)}."
            )
    return None


def budget_warnings(
    limits: BudgetLimits, spends: list[PeriodSpend], fraction: Decimal
) -> list[BudgetWarning]:
    """Every warning due now, in words."""
    return [due.warning() for due in due_warnings(limits, spends, fraction)]


_RANK: dict[str, int] = {period: rank for rank, period in enumerate(PERIODS)}


def _severity(item: DueWarning | BudgetWarning) -> tuple[bool, Decimal, int]:
    period: Period = item.spend.period if isinstance(item, DueWarning) else item.period
    return (item.exceeded, item.fraction, _RANK[period])


def most_severe_due(due: list[DueWarning]) -> DueWarning | None:
    """Exceeded before approaching, then the largest share, then the longest period."""
    if len(due) == 1:
        return due[0]
    return max(due, key=_severity) if due else None


def most_severe(warnings: list[BudgetWarning]) -> BudgetWarning | None:
    """The same order as `most_severe_due`, for warnings already in words."""
    return max(warnings, key=_severity) if warnings else None
