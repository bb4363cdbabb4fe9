"""Prices: the user's overrides, then pricing.toml and its aliases, then genai-prices."""

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

SEED_ALIASES = {
    "claude-sonnet-3.5": ("0.003", "0.015"),
    "claude-opus-3": ("0.015", "0.075"),
    "gemini-flash": ("0.00007", "0.00021"),
    "gemini-pro": ("0.00035", "0.00105"),
    "gpt-4": ("0.03", "0.06"),
    "gpt-4-turbo": ("0.01", "0.03"),
}


@pytest.fixture(scope="module")
def book() -> PriceBook:
    """The shipped table with genai-prices behind it, no overrides."""
    return PriceBook.load(None)


@pytest.mark.parametrize("model", sorted(SEED_ALIASES))
def test_seed_names_are_priced_per_thousand_tokens_exactly(book: PriceBook, model: str) -> None:
    """Every short name of the seed costs exactly tokens x price / 1000, dated."""
    rate_in, rate_out = (Decimal(r) for r in SEED_ALIASES[model])
    price = book.price(model, 12_450, 3_200)
    assert price is not None
    assert price.cost == (12_450 * rate_in + 3_200 * rate_out) / 1000
    assert price.source == "pricing.toml@2024-11-13"


def test_one_gemini_flash_token_is_not_rounded_away(book: PriceBook) -> None:
    """One gemini-flash input token is $0.00000007, not $0."""
    price = book.price("gemini-flash", 1, 0)
    assert price is not None and price.cost == Decimal("0.00000007")
    assert usd(price.cost) == "$0.00000007"


def test_gemini_pro_is_our_alias_not_gemini_1_0(book: PriceBook) -> None:
    """`gemini-pro` resolves through pricing.toml, which wins over genai-prices' Gemini 1.0 Pro."""
    price = book.price("gemini-pro", 1_000_000, 0)
    assert price is not None
    assert price.cost == Decimal("0.35") and price.model_id == "gemini-1.5-pro"


def test_names_match_case_insensitively(book: PriceBook) -> None:
    """`GPT-4` is priced like `gpt-4`."""
    assert book.price("GPT-4", 1000, 0) == book.price("gpt-4", 1000, 0)


def test_current_model_ids_come_from_genai_prices(book: PriceBook) -> None:
    """A current id the seed never knew is priced from genai-prices' bundled data."""
    price = book.price("gpt-4o", 1000, 1000, at=datetime(2025, 6, 1, tzinfo=UTC))
    assert price is not None and price.cost == Decimal("0.0125")
    assert price.source == f"genai-prices@{genai_prices_version()}"


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
    writer = book.price("writer", 1000, 0)
    assert writer is not None and writer.cost == Decimal("0.015")
    assert writer.source.startswith("pricing.toml@")
    assert book.describe().startswith("2 override(s); pricing.toml as of 2024-11-13")


def test_a_broken_overrides_file_is_reported_and_ignored(tmp_path: Path) -> None:
    """An overrides file that does not parse is reported; the seed's prices still apply."""
    overrides = tmp_path / "pricing.toml"
    overrides.write_text('[models."x"]\ninput = "cheap"\n', encoding="utf-8")
    table, problem = read_overrides(overrides)
    assert table is None and problem is not None and "pricing.toml" in problem
    book = PriceBook.load(overrides, use_genai_prices=False)
    assert book.overrides is None and book.overrides_problem
    assert book.price("gpt-4", 1000, 0) is not None


def test_missing_overrides_file_is_no_problem(tmp_path: Path) -> None:
    """No overrides file is the normal case: nothing to report."""
    assert read_overrides(tmp_path / "pricing.toml") == (None, None)


def test_genai_prices_is_imported_only_when_our_tables_miss() -> None:
    """Pricing a seed model never imports genai-prices (0.2 s); an unknown one does, offline."""
    code = (
        "import sys\n"
        "from services.cost.pricing import PriceBook\n"
        "book = PriceBook.load(None)\n"
        "book.price('gpt-4', 10, 10)\n"
        "print('genai_prices' in sys.modules)\n"
        "book.price('gpt-4o-mini', 10, 10)\n"
        "import threading\n"
        "print('genai_prices' in sys.modules, threading.active_count())\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=True
    )
    assert result.stdout.split() == ["False", "True", "1"]


def test_tiered_prices_are_taken_from_genai_prices(book: PriceBook) -> None:
    """genai-prices' own rules (tiers by size) apply per call, so costs are its exact totals."""
    price = book.price("claude-sonnet-4-5", 1000, 1000, at=datetime(2025, 11, 1, tzinfo=UTC))
    assert price is not None and price.cost == Decimal("0.018")


def test_shipped_table_is_dated() -> None:
    """pricing.toml says when its prices were true."""
    assert load_pricing().meta.as_of == "2024-11-13"
