"""A price wanted while genai-prices still loads waits for the load and keeps the ledger alive.

The ledger loads genai-prices on a thread after READY (`prices_load_delay_s`).
A `cost.log` that needs it sooner must not wait out the delay, must not be
priced from another source, and must not look like a hung worker to the
supervisor while it waits (on a busy machine the load takes seconds).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from services.cost import pricing


@pytest.fixture
def unloaded(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[float]]:
    """genai-prices as if not loaded yet, with a load slowed to 0.6 s; yields load start times."""
    monkeypatch.setattr(pricing, "_genai_loaded", False)
    monkeypatch.setattr(pricing, "_background", None)
    real = pricing._load_now
    starts: list[float] = []

    def slow_load() -> Any:
        starts.append(time.monotonic())
        if len(starts) == 1:
            time.sleep(0.6)  # a busy machine
        return real()

    monkeypatch.setattr(pricing, "_load_now", slow_load)
    yield starts


def test_a_price_wanted_early_starts_the_load_and_beats_while_it_waits(
    unloaded: list[float],
) -> None:
    """The wait ends with the load, not the 60 s delay, and beats at least every 0.1 s."""
    beats: list[float] = []
    thread = pricing.load_genai_prices_in_background(
        60.0, keep_alive=lambda: beats.append(time.monotonic()), every_s=0.1
    )
    assert thread is not None
    asked = time.monotonic()
    module = pricing.load_genai_prices()
    waited = time.monotonic() - asked
    assert module.__name__ == "genai_prices"
    assert waited < 5.0  # the delay of 60 s was cut short
    assert unloaded[0] - asked < 0.5  # the thread began the load at once
    assert len(beats) >= 4  # 0.6 s of load, a beat every 0.1 s
    gaps = [later - earlier for earlier, later in zip([asked, *beats], beats, strict=False)]
    assert max(gaps) < 0.35
    assert not thread.is_alive()


def test_a_price_book_waiting_for_the_load_prices_from_genai_prices(
    unloaded: list[float],
) -> None:
    """The call is priced by genai-prices once the load it waited for is done."""
    beats: list[float] = []
    pricing.load_genai_prices_in_background(
        60.0, keep_alive=lambda: beats.append(time.monotonic()), every_s=0.1
    )
    book = pricing.PriceBook.load(None, use_genai_prices=True)
    price = book.price("claude-sonnet-4-5", 1000, 200)
    assert price is not None
    assert price.source.startswith("genai-prices@")
    assert beats  # it waited, and said so
