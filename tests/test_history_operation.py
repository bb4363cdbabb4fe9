"""The archiver keeps a `cost.logged` operation the same whichever way it is read."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import cost_operations

from protocol.codec import dumps, dumps_line, loads_exact
from protocol.costs import CostOperation
from services.history.operation import canonical_operation
from services.history_archiver import _as_json, _kept_operation

LEDGER_OPERATION = {
    "timestamp": "2026-11-30T21:00:00.123456Z",
    "operation": "scene_generation",
    "model": "claude-sonnet-3.5",
    "input_tokens": 12450,
    "output_tokens": 3200,
    "cost": Decimal("0.08535"),
    "priced": True,
    "session_id": "2026-11-30-210000",
    "request_id": "r-1",
    "price_source": "genai-prices@0.0.40",
    "cache_read_tokens": 0,
    "cache_write_tokens": 0,
    "reasoning_tokens": 0,
    "provider": None,
}


def _published(operation: CostOperation) -> dict[str, Any]:
    """The operation as the archiver receives it: the ledger's JSON, read exactly."""
    received: dict[str, Any] = loads_exact(dumps(operation))
    return received


def test_the_ledgers_operations_are_kept_as_they_come() -> None:
    """An operation in the ledger's own form is kept as it came, without the model."""
    assert canonical_operation(dict(LEDGER_OPERATION)) is not None
    assert _kept_operation(dict(LEDGER_OPERATION)) == _as_json(
        CostOperation.model_validate(LEDGER_OPERATION)
    )


@settings(max_examples=300)
@given(cost_operations(), st.sampled_from(["", "extra", "missing", "zeros", "whole", "offset"]))
def test_either_way_the_journal_keeps_the_same_operation(
    operation: CostOperation, change: str
) -> None:
    """Taken as it came or through the model, an operation is the same value and line."""
    raw = _published(operation)
    if change == "extra":
        raw["newer"] = 1
    elif change == "missing":
        raw.pop("provider")
    elif change == "zeros" and isinstance(raw["cost"], Decimal):
        # Plain notation first: "1.1E-7" + "000" would be another number.
        text = format(raw["cost"], "f")
        room = len(raw["cost"].as_tuple().digits) + 3 <= 40  # the model's digit bound
        raw["cost"] = Decimal(f"{text}000") if "." in text and room else raw["cost"]
    elif change == "whole":
        raw["cost"] = Decimal("3.0")
    elif change == "offset":
        raw["timestamp"] = raw["timestamp"].replace("Z", "+00:00")
    through_model = _as_json(CostOperation.model_validate(raw))
    kept = _kept_operation(raw)
    assert kept == through_model
    assert dumps_line(kept) == dumps_line(through_model)
    if change in {"extra", "missing", "whole", "offset"}:
        assert canonical_operation(raw) is None  # another form: the model's way


@given(
    st.sampled_from(
        [
            ("input_tokens", -1),
            ("input_tokens", 10**12 + 1),
            ("output_tokens", 1.5),
            ("output_tokens", True),
            ("operation", "x" * 10_001),
            ("model", None),
            ("priced", 1),
            ("cost", Decimal("1E-41")),
            ("cost", 10**40),
            ("timestamp", "2026-13-30T21:00:00Z"),
            ("timestamp", "2026-11-30T21:00:00.000000Z"),
            ("request_id", 7),
        ]
    )
)
def test_what_the_model_would_refuse_or_rewrite_goes_through_it(change: tuple[str, Any]) -> None:
    """A value out of the model's bounds, or in another form, is never kept as it came."""
    name, value = change
    assert canonical_operation({**LEDGER_OPERATION, name: value}) is None
