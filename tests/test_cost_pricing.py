"""Prices: the user's overrides, then genai-prices, then the shipped table and its aliases."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from config import load_pricing
from services.cost.money import usd
from services.cost.pricing import PriceBook, genai_prices_version, read_overrides
from services.cost.usage import TokenUsage

SEED_ALIASES = {
    # The providers' list prices today, dollars per million tokens (measured: docs/benchmarks.md).
    "claude-sonnet-3.5": ("3", "15"),
    "claude-opus-3": ("15", "75"),
    "gemini-flash": ("0.075", "0.30"),
    "gemini-pro": ("1.25", "5"),
    "gpt-4": ("30", "60"),
    "gpt-4-turbo": ("10", "30"),
}
GENAI = f"genai-prices@{genai_prices_version()}"


@pytest.fixture(scope="module")
def book() -> PriceBook:
    """The shipped table with genai-prices behind it, no overrides."""
    return PriceBook.load(None)


@pytest.mark.parametrize("model", sorted(SEED_ALIASES))
def test_seed_names_are_priced_at_todays_provider_prices(book: PriceBook, model: str) -> None:
    """Every short name of the seed costs exactly tokens x today's price, from genai-prices."""
    rate_in, rate_out = (Decimal(r) for r in SEED_ALIASES[model])
    price = book.price(model, 12_450, 3_200)
    assert price is not None
    assert price.cost == (12_450 * rate_in + 3_200 * rate_out) / 1_000_000
    assert price.source == GENAI


def test_one_gemini_flash_token_is_not_rounded_away(book: PriceBook) -> None:
    """One gemini-flash input token is $0.000000075, not $0."""
    price = book.price("gemini-flash", 1, 0)
    assert price is not None and price.cost == Decimal("0.000000075")
    assert usd(price.cost) == "$0.000000075"


def test_gemini_pro_is_our_alias_not_gemini_1_0(book: PriceBook) -> None:
    """`gemini-pro` follows the shipped alias to Gemini 1.5 Pro, not to Gemini 1.0 Pro."""
    price = book.price("gemini-pro", 1_000_000, 0)
    assert price is not None
    assert price.cost == Decimal("2.5") and price.model_id == "gemini-1.5-pro"


def test_names_match_case_insensitively(book: PriceBook) -> None:
    """`GPT-4` is priced like `gpt-4`."""
    assert book.price("GPT-4", 1000, 0) == book.price("gpt-4", 1000, 0)


def test_current_model_ids_come_from_genai_prices(book: PriceBook) -> None:
    """A current id the seed never knew is priced from genai-prices' bundled data."""
    price = book.price("gpt-4o", 1000, 1000, at=datetime(2025, 6, 1, tzinfo=UTC))
    assert price is not None and price.cost == Decimal("0.0125")
    assert price.source == GENAI


def test_unknown_model_has_no_price(book: PriceBook) -> None:
    """A model nobody knows is None (the ledger records it unpriced), never $0."""
    assert book.price("totally-made-up-model-9", 10, 10) is None
    assert not book.knows("totally-made-up-model-9")


def test_overrides_win_and_may_alias_seed_ids(tmp_path: Path) -> None:
    """The user's .session/pricing.toml beats both other sources; its aliases reach the seed's."""
    overrides = tmp_path / "pricing.toml"
    overrides.write_text(
        '[models."gpt-4"]\ninput = 0.001\noutput = 0.002\n'
        '[models."house-llm"]\ninput = 0.5\noutput = 1\n'
        '[aliases]\n"writer" = "claude-3-opus-20240229"\n"house" = "house-llm"\n',
        encoding="utf-8",
    )
    book = PriceBook.load(overrides, use_genai_prices=False)
    gpt4 = book.price("gpt-4", 1000, 1000)
    assert gpt4 is not None and gpt4.cost == Decimal("0.003") and gpt4.source == "override"
    house = book.price("house", 2000, 0)
    assert house is not None and house.cost == Decimal(1) and house.source == "override"
    assert book.price("writer", 1000, 0) is None  # genai-prices off: nothing else prices it
    assert book.describe() == "2 override(s); pricing.toml as of 2026-11-30"


def test_override_aliases_reach_genai_prices_ids(tmp_path: Path, book: PriceBook) -> None:
    """An override alias to a current id is priced by genai-prices, tiers included."""
    overrides = tmp_path / "pricing.toml"
    overrides.write_text('[aliases]\n"writer" = "claude-sonnet-4-5"\n', encoding="utf-8")
    aliased = PriceBook.load(overrides)
    assert aliased.price("writer", 300_000, 0) == book.price("claude-sonnet-4-5", 300_000, 0)


def test_a_broken_overrides_file_is_reported_and_ignored(tmp_path: Path) -> None:
    """An overrides file that does not parse is reported; the seed's prices still apply."""
    overrides = tmp_path / "pricing.toml"
    overrides.write_text('[models."x"]\ninput = "cheap"\n', encoding="utf-8")
    table, problem = read_overrides(overrides)
    assert table is None and problem is not None and "pricing.toml" in problem
    book = PriceBook.load(overrides)
    assert book.overrides is None and book.overrides_problem
    assert book.price("gpt-4", 1000, 0) is not None


def test_missing_overrides_file_is_no_problem(tmp_path: Path) -> None:
    """No overrides file is the normal case: nothing to report."""
    assert read_overrides(tmp_path / "pricing.toml") == (None, None)


def test_genai_prices_never_starts_its_network_updater() -> None:
    """Pricing imports genai-prices' bundled data and starts no thread (no network updater)."""
    code = (
        "import sys, threading\n"
        "from services.cost.pricing import PriceBook\n"
        "book = PriceBook.load(None)\n"
        "print('genai_prices' in sys.modules)\n"
        "book.price('gpt-4o-mini', 10, 10)\n"
        "from genai_prices import data_snapshot\n"
        "print('genai_prices' in sys.modules, threading.active_count(),\n"
        "      data_snapshot.get_snapshot().from_auto_update)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=True
    )
    assert result.stdout.split() == ["False", "True", "1", "False"]


def test_tiered_prices_are_taken_from_genai_prices(book: PriceBook) -> None:
    """genai-prices' own rules (tiers by size) apply per call, so costs are its exact totals."""
    price = book.price("claude-sonnet-4-5", 1000, 1000, at=datetime(2025, 11, 1, tzinfo=UTC))
    assert price is not None and price.cost == Decimal("0.018")


def test_shipped_table_is_dated_and_prices_only_what_genai_prices_lacks(book: PriceBook) -> None:
    """pricing.toml is dated, and genai-prices knows every model its aliases lead to."""
    table = load_pricing()
    assert table.meta.as_of == "2026-11-30"
    for alias, target in table.aliases.items():
        price = book.price(alias, 1000, 1000)
        assert price is not None and price.source == GENAI, alias
        assert target not in table.models


def test_shipped_table_prices_a_model_genai_prices_lacks() -> None:
    """A model only the shipped table knows is priced from it, cached tokens at its rates."""
    from config import ModelPrice, PricingTable

    table = PricingTable.model_validate(
        {
            "meta": {"as_of": "2026-01-01"},
            "models": {"house-llm": {"input": "0.002", "output": "0.008", "cache_read": "0.0002"}},
            "aliases": {"house": "house-llm"},
        }
    )
    assert isinstance(table.models["house-llm"], ModelPrice)
    book = PriceBook(table)
    usage = TokenUsage(10_000, 1_000, cache_read_tokens=8_000, cache_write_tokens=1_000)
    price = book.price("house", usage)
    # 1,000 plain + 1,000 written (no cache_write rate: input rate) at 0.002, 8,000 read at
    # 0.0002, 1,000 output at 0.008 - per thousand.
    assert price is not None and price.cost == Decimal("0.0136")
    assert price.source == "pricing.toml@2026-01-01" and price.model_id == "house-llm"


# (model, input tokens, output tokens, dollars per MTok in, out) - the providers' list prices.
TIER_CASES = [
    ("gemini-pro", 128_000, 1_000, "1.25", "5"),  # a seed alias, at the threshold
    ("gemini-pro", 128_001, 1_000, "2.50", "10"),  # ...and one token above it
    ("gemini-1.5-pro", 100_000, 2_000, "1.25", "5"),  # the current id, below
    ("gemini-1.5-pro", 250_000, 2_000, "2.50", "10"),  # ...and above
    ("claude-sonnet-4-5", 200_000, 1_000, "3", "15"),  # a current id, at 200 k
    ("claude-sonnet-4-5", 250_000, 1_000, "6", "22.50"),  # ...and above
    ("claude-sonnet-3.5", 1_000, 1_000, "3", "15"),  # a seed alias, small prompt
    ("claude-sonnet-3.5", 190_000, 4_000, "3", "15"),  # ...large prompt: no tier
]


@pytest.mark.parametrize("case", TIER_CASES, ids=[f"{c[0]}-{c[1]}" for c in TIER_CASES])
def test_tiers_apply_above_each_threshold(
    book: PriceBook, case: tuple[str, int, int, str, str]
) -> None:
    """A long prompt pays the provider's higher tier, on seed aliases and current ids, exactly."""
    model, tokens_in, tokens_out, rate_in, rate_out = case
    price = book.price(model, tokens_in, tokens_out)
    expected = (tokens_in * Decimal(rate_in) + tokens_out * Decimal(rate_out)) / 1_000_000
    assert price is not None and price.cost == expected
    assert isinstance(price.cost, Decimal)  # exact, never a float


def test_cached_tokens_count_toward_the_tier_threshold(book: PriceBook) -> None:
    """A 250 k prompt that is mostly cache reads still pays the above-200 k rates."""
    usage = TokenUsage(250_000, 1_000, cache_read_tokens=240_000)
    price = book.price("claude-sonnet-4-5", usage)
    # above 200 k: input $6, cache read $0.60, output $22.50 per MTok
    expected = (10_000 * Decimal(6) + 240_000 * Decimal("0.60") + 1_000 * Decimal("22.50")) / 10**6
    assert price is not None and price.cost == expected


def _genai_total(model: str, usage: TokenUsage, at: datetime) -> Decimal | None:
    """genai-prices' own generic calculation (the slow, general path)."""
    import genai_prices

    from services.cost.usage import genai_usage

    try:
        calculation = genai_prices.calc_price(genai_usage(usage), model, genai_request_timestamp=at)
    except LookupError:
        return None
    return Decimal(calculation.total_price)


def _current_models() -> list[str]:
    """Every model id genai-prices knows for the providers the UI uses."""
    from genai_prices.data import providers

    aliases = set(load_pricing().aliases)  # ours win over genai-prices' own reading
    return sorted(
        model.id
        for provider in providers
        if provider.id in {"anthropic", "openai", "google"}
        for model in provider.models
        if model.id not in aliases
    )


@pytest.mark.parametrize("model", _current_models())
def test_the_fast_path_equals_genai_prices_generic_calculation(model: str) -> None:
    """For every model of the UI's providers, our arithmetic is genai-prices' to the digit."""
    import random

    book = PriceBook.load(None)
    rng = random.Random(model)
    at = datetime(2026, 11, 30, 12, tzinfo=UTC)
    for _ in range(12):
        input_tokens = rng.choice([0, 1, 999, 128_000, 128_001, 200_000, 200_001, 250_000, 10**6])
        cache_read = rng.randint(0, input_tokens // 2)
        cache_write = rng.randint(0, (input_tokens - cache_read) // 2)
        output_tokens = rng.randint(0, 40_000)
        usage = TokenUsage(
            input_tokens,
            output_tokens,
            cache_read_tokens=cache_read,
            cache_write_tokens=cache_write,
            reasoning_tokens=rng.randint(0, output_tokens),
        )
        expected = _genai_total(model, usage, at)
        price = book.price(model, usage, at=at)
        if expected is None:
            assert price is None
        else:
            assert price is not None and price.cost == expected, (model, usage)
