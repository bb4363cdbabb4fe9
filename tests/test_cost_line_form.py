"""The cost ledger's lines: written as their models would write them."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from protocol.codec import dumps_line, loads_exact
from protocol.costs import CostTotals
from protocol.ledger import LedgerLine, LedgerOperation, LedgerReset
from services.cost.records import line_form

AT = datetime(2026, 11, 30, 21, 0, 0, 123456, tzinfo=UTC)
TOTALS: dict[str, Any] = {
    "session_total": Decimal("1.5"),
    "daily_total": Decimal("0.000000007"),
    "weekly_total": Decimal("12.25"),
    "monthly_total": Decimal("40"),
    "by_model": {"claude-sonnet-3.5": Decimal("1.5")},
    "unpriced_operations": 1,
    "daily_unpriced": 0,
    "weekly_unpriced": 1,
    "monthly_unpriced": 1,
    "monthly_projection": Decimal("120.00"),
}


def _operation(**changes: object) -> LedgerOperation:
    fields: dict[str, object] = {
        "id": "r-1",
        "ts": AT,
        "session_id": "2026-11-30-210000",
        "operation": "scene_generation",
        "model": "claude-sonnet-3.5",
        "input_tokens": 12450,
        "output_tokens": 3200,
        "cost": Decimal("0.08535"),
        "price_source": "genai-prices@0.0.40",
        **changes,
    }
    return LedgerOperation.model_validate(fields)


def test_every_line_is_the_bytes_of_its_model() -> None:
    """An op line with or without its reply, unpriced or from a newer version: the model's bytes."""
    records: list[LedgerLine] = [
        _operation(),
        _operation(totals=CostTotals.model_construct(**TOTALS), warning="Daily budget: ..."),
        _operation(totals=CostTotals.model_validate(TOTALS), provider="anthropic"),
        _operation(cost=None, priced=False, price_source=None, totals=CostTotals()),
        _operation(newer={"field": 1}),
        _operation(totals=CostTotals.model_validate({**TOTALS, "newer": 2})),
        LedgerReset(id="r-2", ts=AT, session_id="s"),
    ]
    for record in records:
        assert dumps_line(line_form(record)) == dumps_line(record)
        assert loads_exact(dumps_line(line_form(record))) == loads_exact(dumps_line(record))
