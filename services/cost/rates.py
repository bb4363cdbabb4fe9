"""Prices applied to token counts: genai-prices' plain rates and the tables' per-1K prices.

The arithmetic of `services.cost.pricing`, apart from where a price comes
from: `PlainRates` applies a genai-prices model price to plain token counts
without its generic unit machinery (~1 ms a call), `table_price` a table's
dollars per 1,000 tokens, and a `Route` remembers, per model and day, which of
them prices a call (or that nothing does), so a `cost.log` pays only for the
arithmetic. Every amount is exact (`services.cost.money.MONEY`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from config import ModelPrice
from services.cost.money import MONEY, tidy
from services.cost.usage import TokenUsage

__all__ = [
    "NO_RATES",
    "PlainRates",
    "Price",
    "Route",
    "conditions_change_within_day",
    "plain_rates_of",
    "table_price",
]

_THOUSAND = Decimal(1000)


@dataclass(frozen=True)
class Price:
    """The exact cost of one call and the source of its price."""

    cost: Decimal
    source: str
    model_id: str
    """The id the price belongs to (an alias resolved)."""


_PLAIN_KEYS = {
    "input_mtok": "input",
    "output_mtok": "output",
    "cache_read_mtok": "cache_read",
    "cache_write_mtok": "cache_write",
}
"""genai-prices' price keys for the four counts a `TokenUsage` without details has."""

_MTOK = Decimal(1_000_000)


@dataclass(frozen=True)
class PlainRates:
    """A genai-prices model price over plain token counts, applied without its
    generic unit machinery (~1 ms a call): the same arithmetic, exactly - every
    token pays the tier its call's total input tokens reach ("cliff" tiers),
    cached tokens their own rate when there is one, else the input rate."""

    input: Any
    output: Any
    cache_read: Any = None
    cache_write: Any = None

    def cost(self, usage: TokenUsage) -> Decimal:
        """Exactly what genai-prices' `calc_price` gives for `usage`."""
        total_input = usage.input_tokens
        cost = _ZERO
        if usage.output_tokens:
            output = MONEY.multiply(usage.output_tokens, _rate(self.output, total_input))
            cost = MONEY.add(cost, output)
        plain = total_input
        for tokens, price in (
            (usage.cache_read_tokens, self.cache_read),
            (usage.cache_write_tokens, self.cache_write),
        ):
            if price is not None:
                plain -= tokens
                if tokens:
                    cost = MONEY.add(cost, MONEY.multiply(tokens, _rate(price, total_input)))
        if plain:
            cost = MONEY.add(cost, MONEY.multiply(plain, _rate(self.input, total_input)))
        return MONEY.divide(cost, _MTOK)


_ZERO = Decimal(0)


def _rate(price: Any, total_input: int) -> Decimal:
    """A genai-prices price per million tokens for a call with `total_input` input
    tokens: the tier that total reaches ("cliff" tiers: every token pays it), else the base."""
    if type(price) is Decimal:
        return price
    tiers = getattr(price, "tiers", None)
    if tiers is None:
        return Decimal(price)
    chosen = price.base
    for tier in reversed(tiers):
        if total_input > tier.start:
            chosen = tier.price
            break
    return Decimal(chosen)


NO_RATES = PlainRates(None, None)
"""A route's `rates` when they are not genai-prices' (a table's price, or none)."""


@dataclass(frozen=True)
class Route:
    """Where calls on one model are priced on one day: genai-prices' plain rates,
    a table's per-1K price, or nothing (`rates` and `table` both empty)."""

    rates: PlainRates
    table: ModelPrice | None
    source: str
    model_id: str

    def price(self, usage: TokenUsage) -> Price | None:
        """The exact cost of a call without provider details, as `_price_slowly` gives it."""
        if self.table is not None:
            return table_price(self.model_id, self.table, self.source, usage)
        if self.rates is NO_RATES:
            return None
        return Price(tidy(self.rates.cost(usage)), self.source, self.model_id)


def plain_rates_of(model_price: Any, registry: Any) -> PlainRates | None:
    """The four plain rates of a genai-prices `ModelPrice`, or None when it prices
    anything a plain call could be charged for besides them (e.g. per request)."""
    rates: dict[str, Any] = {}
    for key, value in model_price.__dict__.items():
        if key.startswith("_") or value is None:
            continue
        if key in _PLAIN_KEYS:
            rates[_PLAIN_KEYS[key]] = value
            continue
        try:
            usage_key = registry.unit_for_price_key(key).usage_key
        except KeyError:
            return None
        if usage_key in {"requests", "input_tokens", "output_tokens", "output_reasoning_tokens"}:
            return None  # charged per request, or a count a plain call has: the generic way
    if "input" not in rates or "output" not in rates:
        return None
    return PlainRates(**rates)


def table_price(model_id: str, rate: ModelPrice, source: str, usage: TokenUsage) -> Price:
    """tokens x rate / 1000, each share of the input at its own rate, exactly."""
    parts = [
        (usage.uncached_input_tokens, rate.input),
        (usage.cache_read_tokens, rate.input if rate.cache_read is None else rate.cache_read),
        (usage.cache_write_tokens, rate.input if rate.cache_write is None else rate.cache_write),
        (usage.output_tokens, rate.output),
    ]
    cost = Decimal(0)
    for tokens, per_thousand in parts:
        cost = MONEY.add(cost, MONEY.multiply(Decimal(tokens), per_thousand))
    return Price(tidy(MONEY.divide(cost, _THOUSAND)), source, model_id)


def conditions_change_within_day(info: Any) -> bool:
    """Whether a model's prices switch at a moment other than midnight UTC (then
    the per-day cache could be wrong for part of a day: use the generic way)."""
    prices = getattr(info, "prices", None)
    if not isinstance(prices, list):
        return False
    for conditional in prices:
        constraint = getattr(conditional, "constraint", None)
        if constraint is None:
            continue
        start = getattr(constraint, "start_date", None)
        if isinstance(start, datetime) and start.time() != datetime.min.time():
            return True
        if start is None and not hasattr(constraint, "start_date"):
            return True  # a kind of condition we do not know (time of day...)
    return False
