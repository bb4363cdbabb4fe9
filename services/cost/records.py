"""The ledger's lines: what each kind of record holds, and the reply it answers.

One JSON object a line, in monthly files `.session/ledger/YYYY-MM.jsonl` (the
UTC month of the record's time). Kinds:

- `op` - one LLM call: `id` (the request id), `ts`, `session_id`, `operation`,
  `model`, `input_tokens`, `output_tokens`, `cost` (exact JSON number, or null
  when unpriced), `priced`, `price_source`, and the reply it got: `totals`
  (the `cost.totals` shape just after it) and `warning`. Optional, present
  only when not 0/null: `cache_read_tokens`, `cache_write_tokens`,
  `reasoning_tokens` (genai-prices' counts) and `provider`.
- `budget` - the budget in force from then on (`cost.set_budget`); also the
  first line of every month file (`"carried": true`, no id) so each month file
  is readable on its own.
- `reset` - `cost.reset_session`: the session's totals start again after it;
  `totals` is the reply it got.
- `warned` - a `budget.warning` that fired: `period`, `window`, `level`,
  `limit` (never fired twice for the same four).

Because each request's reply is on its line, a re-sent id is answered with
exactly its first result even after restarts, without being applied again.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from services.cost.budget import BudgetLimits
from services.cost.pricing import Price

__all__ = [
    "BUDGET",
    "OP",
    "RESET",
    "WARNED",
    "budget_record",
    "format_ts",
    "op_record",
    "operation_view",
    "parse_ts",
    "reply_of",
    "reset_record",
    "warned_record",
]

OP, BUDGET, RESET, WARNED = "op", "budget", "reset", "warned"


def format_ts(moment: datetime) -> str:
    """ISO 8601 in UTC with microseconds and `Z` (CONTRACT section 2)."""
    text = moment.astimezone(UTC).isoformat(timespec="microseconds")
    return text.replace("+00:00", "Z")


def parse_ts(text: str) -> datetime:
    """A stored timestamp back as an aware datetime."""
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def op_record(
    *,
    request_id: str,
    ts: str,
    session_id: str,
    operation: str,
    model: str,
    input_tokens: int,
    output_tokens: int,
    price: Price | None,
    cache_read_tokens: int = 0,
    cache_write_tokens: int = 0,
    reasoning_tokens: int = 0,
    provider: str | None = None,
) -> dict[str, Any]:
    """An `op` line before its reply (`totals`, `warning`) is known.

    The cached and reasoning counts and `provider` are written only when not
    0/None, so a plain call's line keeps its old shape.
    """
    extra: dict[str, Any] = {
        "cache_read_tokens": cache_read_tokens,
        "cache_write_tokens": cache_write_tokens,
        "reasoning_tokens": reasoning_tokens,
        "provider": provider,
    }
    return {
        "kind": OP,
        "id": request_id,
        "ts": ts,
        "session_id": session_id,
        "operation": operation,
        "model": model,
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "cost": None if price is None else price.cost,
        "priced": price is not None,
        "price_source": None if price is None else price.source,
        **{key: value for key, value in extra.items() if value},
    }


def budget_record(
    limits: BudgetLimits, *, ts: str, request_id: str | None, session_id: str, carried: bool = False
) -> dict[str, Any]:
    """A `budget` line: the whole budget in force from `ts` on."""
    record: dict[str, Any] = {
        "kind": BUDGET,
        "id": request_id,
        "ts": ts,
        "session_id": session_id,
        "budget": limits.as_dict(),
    }
    if carried:
        record["carried"] = True
    return record


def reset_record(*, request_id: str, ts: str, session_id: str) -> dict[str, Any]:
    """A `reset` line before its reply (`totals`) is known."""
    return {"kind": RESET, "id": request_id, "ts": ts, "session_id": session_id}


def warned_record(
    key: tuple[str, str, str, str], *, ts: str, spent: Decimal, message: str
) -> dict[str, Any]:
    """A `warned` line: this warning fired and must not fire again."""
    period, window, level, limit = key
    return {
        "kind": WARNED,
        "ts": ts,
        "period": period,
        "window": window,
        "level": level,
        "limit": Decimal(limit),
        "spent": spent,
        "message": message,
    }


def _money(value: Any) -> Decimal | None:
    return None if value is None else Decimal(value)


def operation_view(record: dict[str, Any]) -> dict[str, Any]:
    """An `op` line as a `CostOperation` (replies, events, costs.json)."""
    return {
        "timestamp": record["ts"],
        "operation": record["operation"],
        "model": record["model"],
        "input_tokens": record["input_tokens"],
        "output_tokens": record["output_tokens"],
        "cost": _money(record.get("cost")),
        "priced": bool(record.get("priced", record.get("cost") is not None)),
        "session_id": record.get("session_id"),
        "request_id": record.get("id"),
        "price_source": record.get("price_source"),
        "cache_read_tokens": record.get("cache_read_tokens", 0),
        "cache_write_tokens": record.get("cache_write_tokens", 0),
        "reasoning_tokens": record.get("reasoning_tokens", 0),
        "provider": record.get("provider"),
    }


def reply_of(record: dict[str, Any]) -> Any:
    """The first reply to the request a line records (None for lines without one)."""
    kind = record.get("kind")
    if kind == OP:
        return {
            "operation": operation_view(record),
            "totals": record.get("totals"),
            "warning": record.get("warning"),
        }
    if kind == BUDGET:
        return record.get("budget")
    if kind == RESET:
        return record.get("totals")
    return None
