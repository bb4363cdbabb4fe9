"""The ledger's lines as the cost ledger builds them, and the reply each one answers.

The shapes are `protocol.ledger`'s models (`LedgerLine`, keyed on `kind`):
`op`, `budget`, `reset` and `warned`; `docs/storage.md` section 7.2 shows
each. Here they are built from the ledger's own values: a `reset` line is
built before its reply is known, applied to the state, then given its reply
(`with_reply`); a `cost.log`'s view (`op_view`) is folded into the state
first, then its `op` line is written once with its reply
(`services.cost.oplines`, which falls back on `op_record` for what its hand
check does not vouch for). So the line that reaches the disk carries the
reply it answered and a re-sent id is answered with exactly its first
result, even after restarts, without being applied again.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, TypeVar

from protocol.costs import Budget, CostTotals
from protocol.ledger import LedgerBudget, LedgerLine, LedgerOperation, LedgerReset, LedgerWarned
from services.cost.budget import BudgetLimits
from services.cost.pricing import Price

__all__ = [
    "budget_record",
    "line_form",
    "op_record",
    "op_view",
    "operation_view",
    "reply_of",
    "request_id_of",
    "reset_record",
    "warned_record",
    "with_reply",
]

Answered = TypeVar("Answered", LedgerOperation, LedgerReset)


def op_view(
    *,
    request_id: str,
    ts: datetime,
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
    """A call about to be recorded, as its `CostOperation`-shaped view.

    Exactly `operation_view` of the `op` line `op_record` builds from it (`ts`
    in UTC, as the line's `Timestamp` keeps it): the ledger folds the view
    into its state first, then builds the line once, with the reply it got.
    """
    return {
        "timestamp": ts if ts.tzinfo is UTC else _as_utc(ts),
        "operation": operation,
        "model": model,
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "cost": None if price is None else price.cost,
        "priced": price is not None,
        "session_id": session_id,
        "request_id": request_id,
        "price_source": None if price is None else price.source,
        "cache_read_tokens": cache_read_tokens,
        "cache_write_tokens": cache_write_tokens,
        "reasoning_tokens": reasoning_tokens,
        "provider": provider,
    }


def op_record(
    view: dict[str, Any], *, totals: dict[str, Any], warning: str | None
) -> LedgerOperation:
    """The `op` line of a call (`op_view`), carrying its reply: `totals`, `warning`.

    The model path of `oplines.written_call` (which writes the same bytes
    without the model when its own check vouches for the fields, and is
    tested against this). The line is validated here (its bounds guard what
    reaches the disk);
    `totals` is `LedgerState.totals()`, the ledger's own exact values, built
    into `CostTotals` without validating them again.
    """
    return LedgerOperation(
        id=view["request_id"],
        ts=view["timestamp"],
        session_id=view["session_id"],
        operation=view["operation"],
        model=view["model"],
        input_tokens=view["input_tokens"],
        output_tokens=view["output_tokens"],
        cache_read_tokens=view["cache_read_tokens"],
        cache_write_tokens=view["cache_write_tokens"],
        reasoning_tokens=view["reasoning_tokens"],
        provider=view["provider"],
        cost=view["cost"],
        priced=view["priced"],
        price_source=view["price_source"],
        totals=CostTotals.model_construct(**totals),
        warning=warning,
    )


def _as_utc(moment: datetime) -> datetime:
    """`moment` as `protocol.base.Timestamp` keeps it: aware, in UTC (naive is UTC)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def budget_record(
    limits: BudgetLimits,
    *,
    ts: datetime,
    request_id: str | None,
    session_id: str,
    carried: bool = False,
) -> LedgerBudget:
    """A `budget` line: the whole budget in force from `ts` on."""
    return LedgerBudget(
        id=request_id,
        ts=ts,
        session_id=session_id,
        budget=Budget(**limits.as_dict()),
        carried=carried,
    )


def reset_record(*, request_id: str, ts: datetime, session_id: str) -> LedgerReset:
    """A `reset` line before its reply (`totals`) is known."""
    return LedgerReset(id=request_id, ts=ts, session_id=session_id)


def warned_record(
    key: tuple[str, str, str, str], *, ts: datetime, spent: Decimal, message: str
) -> LedgerWarned:
    """A `warned` line: this warning fired and must not fire again."""
    period, window, level, limit = key
    return LedgerWarned(
        ts=ts,
        period=period,  # validated by the model
        window=window,
        level=level,  # validated by the model
        limit=Decimal(limit),
        spent=spent,
        message=message,
    )


def with_reply(record: Answered, *, totals: dict[str, Any], warning: str | None = None) -> Answered:
    """`record` carrying the reply it got: the totals just after it (and an op's warning).

    (`cost.log` builds its `op` line once, with its reply: see `op_record`.)

    `totals` is `LedgerState.totals()`: every `CostTotals` field, the ledger's
    own exact values, so the model is built without validating them again
    (pydantic's `model_construct` is half the time of validation here).
    """
    answer = CostTotals.model_construct(**totals)
    if isinstance(record, LedgerOperation):
        return record.model_copy(update={"totals": answer, "warning": warning})
    return record.model_copy(update={"totals": answer})


def line_form(record: LedgerLine) -> object:
    """What `dumps_line` writes for `record`: an `op` line as the plain dict of its
    fields (and of its totals'), in their order: the same bytes as the model's
    dump, without the dump (~3 us a `cost.log`). Any other line, or one holding
    fields from a newer version, as itself."""
    if type(record) is not LedgerOperation or record.__pydantic_extra__:
        return record
    totals = record.totals
    if totals is None:
        return record.__dict__
    if type(totals) is not CostTotals or totals.__pydantic_extra__:
        return record
    fields = dict(record.__dict__)
    fields["totals"] = totals.__dict__
    return fields


def operation_view(record: LedgerOperation) -> dict[str, Any]:
    """An `op` line as a `CostOperation`-shaped dict (replies, events, costs.json)."""
    return {
        "timestamp": record.ts,
        "operation": record.operation,
        "model": record.model,
        "input_tokens": record.input_tokens,
        "output_tokens": record.output_tokens,
        "cost": record.cost,
        "priced": record.priced,
        "session_id": record.session_id,
        "request_id": record.id,
        "price_source": record.price_source,
        "cache_read_tokens": record.cache_read_tokens,
        "cache_write_tokens": record.cache_write_tokens,
        "reasoning_tokens": record.reasoning_tokens,
        "provider": record.provider,
    }


def reply_of(record: LedgerLine) -> Any:
    """The first reply to the request a line records (None for lines without one)."""
    if isinstance(record, LedgerOperation):
        return {
            "operation": operation_view(record),
            "totals": record.totals,
            "warning": record.warning,
        }
    if isinstance(record, LedgerBudget):
        return record.budget
    if isinstance(record, LedgerReset):
        return record.totals
    return None


def request_id_of(record: LedgerLine) -> str | None:
    """The id of the request a line records (None for `warned` and carried budgets)."""
    return None if isinstance(record, LedgerWarned) else record.id
