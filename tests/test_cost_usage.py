"""Cached and reasoning tokens, and providers' own usage reports, priced as the provider bills."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from test_cost_ledger import LedgerHarness

from protocol.errors import ErrorCode, ProtocolError
from protocol.ops import CostLogResult, parse_args

SAMPLES = Path(__file__).parent / "provider_usage"
MTOK = Decimal(1_000_000)


def sample(name: str) -> dict[str, Any]:
    """A provider response body checked in under tests/provider_usage/."""
    data: dict[str, Any] = json.loads((SAMPLES / f"{name}.json").read_text(encoding="utf-8"))
    return data


@pytest.fixture
def harness(tmp_path: Path) -> LedgerHarness:
    """A ledger harness over a fresh project in UTC."""
    return LedgerHarness(tmp_path / "project")


def log_usage(harness: LedgerHarness, usage: dict[str, Any], provider: str, **extra: Any) -> Any:
    """Log one call from a provider's usage, in one request, as a UI would."""
    ledger = harness.open()
    call = harness.call(
        "cost.log", operation="scene_generation", usage=usage, provider=provider, **extra
    )
    return harness.one(ledger, call)


# (sample, provider, expected record counts, cost by the provider's list prices per MTok)
CASES = [
    (
        "anthropic_messages_cache_read",
        "anthropic",
        # claude-sonnet-4-5 <= 200k: $3 input, $0.30 cache read, $15 output
        {"input_tokens": 189_095, "cache_read_tokens": 187_000, "output_tokens": 503},
        (2_095 * Decimal(3) + 187_000 * Decimal("0.30") + 503 * Decimal(15)) / MTOK,
    ),
    (
        "anthropic_messages_cache_write",
        "anthropic",
        # a 5-minute cache write costs $3.75 per MTok
        {"input_tokens": 188_107, "cache_write_tokens": 188_086, "output_tokens": 393},
        (21 * Decimal(3) + 188_086 * Decimal("3.75") + 393 * Decimal(15)) / MTOK,
    ),
    (
        "openai_chat_completion_cached",
        "openai",
        # gpt-4o: $2.50 input, $1.25 cached input, $10 output; prompt_tokens include cached
        {"input_tokens": 2_006, "cache_read_tokens": 1_920, "output_tokens": 300},
        (86 * Decimal("2.50") + 1_920 * Decimal("1.25") + 300 * Decimal(10)) / MTOK,
    ),
    (
        "openai_responses_reasoning",
        "openai",
        # gpt-5: $1.25 input, $0.125 cached input, $10 output (reasoning billed as output)
        {
            "input_tokens": 5_000,
            "cache_read_tokens": 4_096,
            "output_tokens": 1_500,
            "reasoning_tokens": 1_024,
        },
        (904 * Decimal("1.25") + 4_096 * Decimal("0.125") + 1_500 * Decimal(10)) / MTOK,
    ),
    (
        "google_generate_content_long",
        "google",
        # gemini-1.5-pro above 128k prompt tokens: $2.50 input, $10 output
        {"input_tokens": 150_000, "output_tokens": 800},
        (150_000 * Decimal("2.50") + 800 * Decimal(10)) / MTOK,
    ),
]


@pytest.mark.parametrize(("name", "provider", "counts", "cost"), CASES, ids=[c[0] for c in CASES])
def test_a_whole_response_body_is_priced_to_the_last_digit(
    harness: LedgerHarness, name: str, provider: str, counts: dict[str, int], cost: Decimal
) -> None:
    """A provider's whole response, logged as is, costs what the provider bills, exactly."""
    body = sample(name)
    reply = CostLogResult.model_validate(log_usage(harness, body, provider))
    operation = reply.operation
    assert operation.cost == cost
    assert operation.model == body.get("model", body.get("modelVersion"))
    assert operation.provider == provider
    (record,) = harness.records("op")
    for field in ("cache_read_tokens", "cache_write_tokens", "reasoning_tokens"):
        assert record.get(field, 0) == counts.get(field, 0), field
        assert getattr(operation, field) == counts.get(field, 0)
    assert record["input_tokens"] == counts["input_tokens"]
    assert record["output_tokens"] == counts["output_tokens"]
    assert record["provider"] == provider and "usage" not in record


@pytest.mark.parametrize(("name", "provider", "counts", "cost"), CASES, ids=[c[0] for c in CASES])
def test_just_the_usage_object_with_the_model_is_priced_the_same(
    harness: LedgerHarness, name: str, provider: str, counts: dict[str, int], cost: Decimal
) -> None:
    """The usage object alone, with the model named, gives the same cost as the whole body."""
    body = sample(name)
    usage = body["usageMetadata"] if provider == "google" else body["usage"]
    model = body.get("model", body.get("modelVersion"))
    reply = log_usage(harness, usage, provider, model=model)
    assert reply["operation"]["cost"] == cost
    assert reply["operation"]["input_tokens"] == counts["input_tokens"]


def test_counts_given_by_hand_are_priced_like_the_providers_report(
    harness: LedgerHarness,
) -> None:
    """Cached tokens given as fields (input_tokens including them) cost the same as the body."""
    ledger = harness.open()
    call = harness.call(
        "cost.log",
        operation="scene_generation",
        model="claude-sonnet-4-5",
        input_tokens=189_095,
        output_tokens=503,
        cache_read_tokens=187_000,
        provider="anthropic",
    )
    reply = harness.one(ledger, call)
    assert reply["operation"]["cost"] == CASES[0][3]
    assert reply["operation"]["cache_read_tokens"] == 187_000


def test_a_usage_object_without_a_model_is_refused(harness: LedgerHarness) -> None:
    """A bare usage object names no model: the call is refused, with the reason, not recorded."""
    usage = sample("openai_chat_completion_cached")["usage"]
    with pytest.raises(ProtocolError) as caught:
        log_usage(harness, usage, "openai")
    assert caught.value.code == ErrorCode.INVALID_ARGS and "model" in caught.value.message
    assert harness.records() == []


def test_usage_that_fits_no_provider_shape_is_invalid_args(harness: LedgerHarness) -> None:
    """A usage the provider's extractors cannot read is refused in words, nothing recorded."""
    with pytest.raises(ProtocolError) as caught:
        log_usage(harness, {"tokens": 12}, "openai", model="gpt-4o")
    assert caught.value.code == ErrorCode.INVALID_ARGS and "openai" in caught.value.message
    with pytest.raises(ProtocolError) as unknown:
        log_usage(harness, {"tokens": 12}, "no-such-provider", model="gpt-4o")
    assert "unknown provider" in unknown.value.message
    assert harness.records() == []


@pytest.mark.parametrize(
    ("args", "words"),
    [
        ({"usage": {"input_tokens": 1}}, "provider"),
        ({"usage": {}, "provider": "openai", "input_tokens": 3}, "not both"),
        (
            {"model": "gpt-4o", "input_tokens": 10, "output_tokens": 1, "cache_read_tokens": 11},
            "exceed",
        ),
        (
            {"model": "gpt-4o", "input_tokens": 10, "output_tokens": 1, "reasoning_tokens": 2},
            "exceed",
        ),
        ({"input_tokens": 10, "output_tokens": 1}, "model is required"),
    ],
)
def test_inconsistent_counts_are_refused_before_the_ledger(
    args: dict[str, Any], words: str
) -> None:
    """Cached tokens beyond the input, usage without provider, both forms at once: invalid_args."""
    with pytest.raises(ProtocolError) as caught:
        parse_args("cost.log", {"operation": "x", **args})
    assert caught.value.code == ErrorCode.INVALID_ARGS and words in caught.value.message


def test_estimate_takes_cached_tokens_too(harness: LedgerHarness) -> None:
    """An estimate with cached tokens costs what the call would, cache discount included."""
    ledger = harness.open()
    call = harness.call(
        "cost.estimate",
        model="gpt-4o",
        input_tokens=2_006,
        output_tokens=300,
        cache_read_tokens=1_920,
    )
    assert harness.one(ledger, call)["cost"] == CASES[2][3]
    assert harness.records() == []


def test_a_restart_reads_the_normalised_counts_back(harness: LedgerHarness) -> None:
    """The recorded counts survive a restart: costs.json and the session show them."""
    log_usage(harness, sample("openai_responses_reasoning"), "openai")
    restarted = harness.open()
    (view,) = restarted._state.session.operations
    assert view["reasoning_tokens"] == 1_024 and view["provider"] == "openai"


def test_the_python_client_logs_a_response_usage_in_one_call(tmp_path: Path) -> None:
    """`CostTracker.log_usage` sends the provider's body as is and reads back the exact cost."""
    from test_client import GUARD_S, FakeService, run

    from protocol.client import CostTracker
    from protocol.names import Op
    from services.cost.pricing import PriceBook
    from services.cost.usage import call_usage

    book = PriceBook.load(None)

    async def body() -> tuple[CostLogResult, list[dict[str, Any]]]:
        async with FakeService(tmp_path) as fake:

            def cost_log(args: dict[str, Any]) -> dict[str, Any]:
                used = call_usage(parse_args("cost.log", args), "r")  # as the ledger reads it
                price = book.price(used.model, used.usage, provider=used.provider)
                assert price is not None
                operation = {
                    "timestamp": "2026-11-23T15:30:00Z",
                    "operation": args["operation"],
                    "model": used.model,
                    "cost": price.cost,
                    "provider": used.provider,
                    **used.usage.counts(),
                }
                return {"operation": operation, "totals": fake._totals(), "warning": None}

            fake.handlers[Op.COST_LOG] = cost_log
            tracker = await CostTracker.open(tmp_path, timeout_s=GUARD_S)
            try:
                logged = await tracker.log_usage(
                    "scene_generation", sample("anthropic_messages_cache_read"), "anthropic"
                )
            finally:
                await tracker.close()
            return logged, list(fake.arrivals)

    logged, arrivals = run(body())
    assert logged.operation.cost == CASES[0][3]
    assert logged.operation.cache_read_tokens == 187_000
    (sent,) = [a for a in arrivals if a["op"] == Op.COST_LOG]
    assert sent["args"]["usage"] == sample("anthropic_messages_cache_read")
