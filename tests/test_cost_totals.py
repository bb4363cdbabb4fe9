"""Every total is the exact sum of its operations, checked against a Decimal recomputation."""

from __future__ import annotations

import calendar
import random
import tempfile
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import genai_prices
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_cost_ledger import LedgerHarness

from config import load_pricing
from services.cost.windows import window_of

SEED = load_pricing()
MODELS = [
    "claude-sonnet-3.5",
    "claude-opus-3",
    "gemini-flash",
    "gemini-pro",
    "gpt-4",
    "gpt-4-turbo",
    "my-local-llm",
]
ZONES = ["UTC", "Europe/Paris", "America/New_York", "Asia/Kolkata"]


def seed_cost(model: str, input_tokens: int, output_tokens: int) -> Decimal | None:
    """The cost by the book: genai-prices' total for the alias's id (None: no price)."""
    if model == "my-local-llm":
        return None
    usage = genai_prices.Usage(input_tokens=input_tokens, output_tokens=output_tokens)
    total = genai_prices.calc_price(usage, SEED.aliases.get(model, model)).total_price
    return Decimal(total)


def recompute(harness: LedgerHarness, zone: str, session_id: str = "s1") -> dict[str, Any]:
    """The totals as of `harness.now`, summed again from the ledger's op lines."""
    ops = harness.records("op")
    windows = {p: window_of(p, harness.now, ZoneInfo(zone)) for p in ("daily", "weekly", "monthly")}
    totals: dict[str, Any] = {f"{p}_total": Decimal(0) for p in windows}
    totals.update({f"{p}_unpriced": 0 for p in windows})
    totals.update(session_total=Decimal(0), by_model={}, unpriced_operations=0)
    for op in ops:
        stamp = datetime.fromisoformat(op["ts"])
        cost = op["cost"]
        assert cost == seed_cost(op["model"], op["input_tokens"], op["output_tokens"])
        for period, window in windows.items():
            if window.start <= stamp < window.end:
                if cost is None:
                    totals[f"{period}_unpriced"] += 1
                else:
                    totals[f"{period}_total"] += cost
        if op["session_id"] == session_id:
            if cost is None:
                totals["unpriced_operations"] += 1
            else:
                totals["session_total"] += cost
                totals["by_model"][op["model"]] = totals["by_model"].get(op["model"], 0) + cost
    local = harness.now.astimezone(ZoneInfo(zone))
    days = calendar.monthrange(local.year, local.month)[1]
    projection = totals["monthly_total"] * days / local.day
    totals["monthly_projection"] = projection.quantize(Decimal("0.01"), ROUND_HALF_EVEN)
    return totals


operations = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=3 * 24 * 60),  # minutes until this call
        st.sampled_from(MODELS),
        st.integers(min_value=0, max_value=200_000),
        st.integers(min_value=0, max_value=20_000),
    ),
    min_size=1,
    max_size=25,
)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(operations, st.sampled_from(ZONES))
def test_totals_equal_decimal_recomputation(
    ops: list[tuple[int, str, int, int]], zone: str
) -> None:
    """Whatever calls happen whenever, every total equals the exact sum of its calls."""
    with tempfile.TemporaryDirectory() as folder:
        harness = LedgerHarness(Path(folder), now=datetime(2026, 10, 20, tzinfo=UTC), zone=zone)
        ledger = harness.open()
        for minutes, model, input_tokens, output_tokens in ops:
            harness.now += timedelta(minutes=minutes)
            harness.log(ledger, model, input_tokens, output_tokens)
        totals = harness.one(ledger, harness.call("cost.totals"))
        assert totals == recompute(harness, zone)
        restarted = harness.open()
        assert harness.one(restarted, harness.call("cost.totals")) == totals


def test_thousands_of_random_operations_stay_exact(tmp_path: Path) -> None:
    """3,000 calls over six weeks across a DST change, in batches, never drift by a digit."""
    rng = random.Random(20261025)
    harness = LedgerHarness(tmp_path, now=datetime(2026, 10, 1, tzinfo=UTC), zone="Europe/Paris")
    ledger = harness.open()
    ledger.checkpoint_every_records = 700
    for round_number in range(60):
        harness.now += timedelta(minutes=rng.randint(1, 24 * 60))
        batch = [
            harness.log_call(rng.choice(MODELS), rng.randint(0, 50_000), rng.randint(0, 5_000))
            for _ in range(50)
        ]
        ledger.handle_batch(batch)
        harness.tick(ledger, 1.0)  # snapshots and checkpoints as the host loop would
        if round_number % 20 == 19:
            assert harness.one(ledger, harness.call("cost.totals")) == recompute(
                harness, "Europe/Paris"
            )
    assert len(harness.records("op")) == 3000
    restarted = harness.open()
    assert restarted.loaded_info["checkpoint_used"] is True
    assert harness.one(restarted, harness.call("cost.totals")) == recompute(harness, "Europe/Paris")
