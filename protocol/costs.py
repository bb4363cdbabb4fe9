"""costs.json, one priced operation, budgets, totals and warnings."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Literal

from pydantic import Field

from protocol.base import Document, Money, ShortText, Timestamp

__all__ = [
    "Budget",
    "BudgetPeriod",
    "BudgetWarning",
    "CostOperation",
    "CostSeries",
    "CostTotals",
    "CostsDocument",
    "SpendBucket",
]

BudgetPeriod = Literal["daily", "weekly", "monthly"]

Tokens = Annotated[int, Field(ge=0, le=10**12)]


class CostOperation(Document):
    """One LLM call as the ledger recorded it.

    `cost` is None exactly when `priced` is False: a call on a model we have no
    price for is recorded and counted, never shown as $0. Token counts follow
    genai-prices: `input_tokens` counts every input token, the cached ones
    (`cache_read_tokens`, `cache_write_tokens`) included; `reasoning_tokens`
    are part of `output_tokens`. A call logged with the provider's `usage`
    keeps these normalised counts (and `provider`), not the raw report.
    """

    timestamp: Timestamp
    operation: ShortText
    model: ShortText
    input_tokens: Tokens
    output_tokens: Tokens
    cost: Money | None
    priced: bool = True
    session_id: str | None = None
    request_id: str | None = None
    price_source: str | None = None
    cache_read_tokens: Tokens = 0
    cache_write_tokens: Tokens = 0
    reasoning_tokens: Tokens = 0
    provider: str | None = None


class Budget(Document):
    """Spending limits in dollars; None means no limit for that period.

    `*_limit` warn (from the warning fraction, and at 100%); `*_hard_limit`
    refuse in advance through `cost.estimate`.
    """

    daily_limit: Annotated[Money, Field(ge=0)] | None = Decimal("50")
    weekly_limit: Annotated[Money, Field(ge=0)] | None = Decimal("200")
    monthly_limit: Annotated[Money, Field(ge=0)] | None = Decimal("500")
    warnings_enabled: bool = True
    daily_hard_limit: Annotated[Money, Field(ge=0)] | None = None
    weekly_hard_limit: Annotated[Money, Field(ge=0)] | None = None
    monthly_hard_limit: Annotated[Money, Field(ge=0)] | None = None
    """Hard limits (None: none): `cost.estimate` answers `allowed: false` for a call
    that would pass one. Calls already made are always recorded."""


class CostTotals(Document):
    """The result of `cost.totals`: every figure the exact sum of its operations.

    `session_total`, `by_model` and `unpriced_operations` cover the current
    session (since its last `cost.reset_session`); the daily, weekly and monthly
    figures cover the calendar windows of now in the writer's time zone.
    Unpriced calls are counted, never added as $0.
    """

    session_total: Money = Decimal(0)
    daily_total: Money = Decimal(0)
    weekly_total: Money = Decimal(0)
    monthly_total: Money = Decimal(0)
    by_model: dict[str, Money] = Field(default_factory=dict)
    unpriced_operations: Annotated[int, Field(ge=0)] = 0
    daily_unpriced: Annotated[int, Field(ge=0)] = 0
    weekly_unpriced: Annotated[int, Field(ge=0)] = 0
    monthly_unpriced: Annotated[int, Field(ge=0)] = 0
    monthly_projection: Money | None = None
    """Month-end spend at this pace: `monthly_total` x days in the month / days
    elapsed (today counted), rounded half-even to the cent - an estimate, not a sum."""


class BudgetWarning(Document):
    """A budget warning, for the UI and the `budget.warning` event."""

    period: BudgetPeriod
    spent: Money
    limit: Money
    remaining: Money
    fraction: Decimal
    """spent / limit, a ratio (not money): rounded half-even to 4 decimal places."""
    exceeded: bool
    window: str
    message: str
    unpriced_operations: Annotated[int, Field(ge=0)] = 0
    """Calls in the window with no price (not included in `spent`)."""


class SpendBucket(Document):
    """One bucket of `cost.series`: exact spend from `start` (local date or hour) on."""

    start: str
    """`2026-11-23` (day, week's Monday, month's 1st) or `2026-11-23T14:00+01:00` (hour)."""
    total: Money
    by_model: dict[str, Money] = Field(default_factory=dict)
    by_operation: dict[str, Money] = Field(default_factory=dict)
    limit: Money | None = None
    """The budget's limit for this kind of bucket (daily, weekly, monthly; none per hour)."""
    unpriced_operations: Annotated[int, Field(ge=0)] = 0


class CostSeries(Document):
    """The result of `cost.series`: every bucket of the range, empty ones included.

    `total` is the exact sum of the buckets, which are the exact sums of the
    ledger's operations; unpriced calls are counted, never added as $0.
    """

    buckets: list[SpendBucket]
    total: Money
    unpriced_operations: Annotated[int, Field(ge=0)] = 0
    bucket: Literal["hour", "day", "week", "month"] = "day"
    since: str | None = None
    until: str | None = None
    timezone: str | None = None
    complete: bool = True
    """False while the ledger still reads older month files after a start without
    a checkpoint holding the series (a few seconds per million operations)."""


class CostsDocument(Document):
    """costs.json: the seed's shape plus `unpriced_operations` and the windows.

    A snapshot for people and readers, rewritten atomically within a second of
    a change; the ledger (`.session/ledger/`) is the truth. `operations` holds
    the current session's most recent operations only (at most 1,000, oldest
    first); `operations_count` says how many the session has and
    `operations_note` where the others are.
    """

    session_id: str | None = None
    session_total: Money = Decimal(0)
    daily_total: Money = Decimal(0)
    weekly_total: Money = Decimal(0)
    monthly_total: Money = Decimal(0)
    operations: list[CostOperation] = Field(default_factory=list)
    by_model: dict[str, Money] = Field(default_factory=dict)
    budget: Budget = Field(default_factory=Budget)
    unpriced_operations: Annotated[int, Field(ge=0)] = 0
    timezone: str | None = None
    day: str | None = None
    week: str | None = None
    month: str | None = None
    updated_at: Timestamp | None = None
    daily_unpriced: Annotated[int, Field(ge=0)] = 0
    weekly_unpriced: Annotated[int, Field(ge=0)] = 0
    monthly_unpriced: Annotated[int, Field(ge=0)] = 0
    unpriced_by_model: dict[str, Annotated[int, Field(ge=0)]] = Field(default_factory=dict)
    operations_count: Annotated[int, Field(ge=0)] = 0
    operations_note: str | None = None
    warning: str | None = None
    prices: str | None = None
