"""A model's price route, remembered per day: the same prices as working them out each time."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from config import PricingTable, load_pricing
from services.cost.pricing import PriceBook, read_overrides
from services.cost.usage import TokenUsage

MODELS = [
    "claude-sonnet-3.5",  # a shipped alias to a genai-prices id
    "CLAUDE-SONNET-3.5",  # ...in other letters
    "gemini-pro",  # an alias to a tiered model
    "claude-sonnet-4-5",  # a current id, tiered
    "gpt-4",  # an override in one book
    "writer",  # an override alias to a genai-prices id
    "house",  # an override alias to an override price
    "house-llm-shipped",  # only the shipped table knows it
    "no-such-model",  # nobody knows it
]


def _books(tmp_path: Path) -> list[tuple[str, PriceBook, PriceBook]]:
    """(name, book whose routes are remembered, a twin used only through the slow way)."""
    overrides = tmp_path / "pricing.toml"
    overrides.write_text(
        '[models."gpt-4"]\ninput = 0.001\noutput = 0.002\ncache_read = 0.0001\n'
        '[models."house-llm"]\ninput = 0.5\noutput = 1\n'
        '[aliases]\n"writer" = "claude-sonnet-4-5"\n"house" = "house-llm"\n',
        encoding="utf-8",
    )
    seed = load_pricing().model_dump()
    seed["models"]["house-llm-shipped"] = {"input": "0.002", "output": "0.008"}
    shipped = PricingTable.model_validate(seed)
    table, _problem = read_overrides(overrides)
    books = []
    for genai in (True, False):
        for user in (None, table):
            name = f"genai={genai} overrides={user is not None}"
            books.append(
                (
                    name,
                    PriceBook(shipped, user, use_genai_prices=genai),
                    PriceBook(shipped, user, use_genai_prices=genai),
                )
            )
    return books


@pytest.mark.parametrize("provider", [None, "anthropic", "google"])
def test_a_remembered_route_prices_as_the_slow_way(tmp_path: Path, provider: str | None) -> None:
    """Every source, alias and tier gives the same cost, source and id, asked again and again."""
    rng = random.Random(7)
    start = datetime(2026, 11, 30, 23, 59, 59, tzinfo=UTC)
    for name, book, twin in _books(tmp_path):
        for round_ in range(6):
            at = start + timedelta(seconds=round_)  # across midnight UTC
            for model in MODELS:
                tokens_in = rng.choice([0, 1, 999, 128_001, 200_001, 250_000])
                cache_read = rng.randint(0, tokens_in // 2)
                tokens_out = rng.randint(0, 40_000)
                usage = TokenUsage(tokens_in, tokens_out, cache_read_tokens=cache_read)
                got = book.price(model, usage, at=at, provider=provider)
                expected = twin._price_slowly(model, usage, at=at, provider=provider)
                assert got == expected, (name, model, usage)
                if got is not None:
                    assert str(got.cost) == str(expected.cost if expected else None)
