"""The cost ledger's files: every line of `ledger/YYYY-MM.jsonl`, and `checkpoint.json`.

A ledger line is one `LedgerLine`, a union keyed on `kind`:

- `op` (`LedgerOperation`) - one LLM call and the reply it got (`totals`,
  `warning`), so a re-sent request id is answered exactly, even after restarts;
- `budget` (`LedgerBudget`) - the whole budget in force from `ts` on; also the
  first line of every month file (`carried`, no id);
- `reset` (`LedgerReset`) - `cost.reset_session` and the totals it answered;
- `warned` (`LedgerWarned`) - a `budget.warning` that fired (never twice for
  the same period, window, level and limit).

Lines are `Record`s: a field a newer ledger adds is kept, not refused, so the
models grow by adding optional fields with defaults (as the token kinds and
`provider` below did). `checkpoint.json` is the opposite: a cache read only by
the ledger that wrote it, versioned by `format`, so its model forbids unknown
fields and a checkpoint of another shape is simply rebuilt.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from protocol.base import Money, Record, ShortText, Timestamp
from protocol.codec import loads_exact
from protocol.costs import Budget, BudgetPeriod, CostOperation, CostTotals

__all__ = [
    "CHECKPOINT_FORMAT",
    "LEDGER_LINE",
    "CheckpointPosition",
    "CheckpointSession",
    "LedgerBudget",
    "LedgerCheckpoint",
    "LedgerLine",
    "LedgerOperation",
    "LedgerReset",
    "LedgerWarned",
    "SeriesCache",
    "SeriesCells",
    "WarningLevel",
    "decode_ledger_line",
]

CHECKPOINT_FORMAT: Literal[1] = 1

Tokens = Annotated[int, Field(ge=0, le=10**12)]
WarningLevel = Literal["warning", "exceeded"]


class LedgerOperation(Record):
    """`op`: one priced (or unpriced) LLM call, with the reply it got."""

    kind: Literal["op"] = "op"
    id: str
    """The request id of the `cost.log` that recorded it."""
    ts: Timestamp
    session_id: str
    operation: ShortText
    model: ShortText
    input_tokens: Tokens
    output_tokens: Tokens
    cache_read_tokens: Tokens = 0
    cache_write_tokens: Tokens = 0
    reasoning_tokens: Tokens = 0
    provider: str | None = None
    cost: Money | None
    """Exact dollars; None exactly when the model had no price."""
    priced: bool = True
    price_source: str | None = None
    totals: CostTotals | None = None
    """The `cost.totals` just after this call (part of its first reply)."""
    warning: str | None = None
    """The warning its reply carried."""

    def as_operation(self) -> CostOperation:
        """This call as a `CostOperation` (replies, events, costs.json, history)."""
        return CostOperation(
            timestamp=self.ts,
            operation=self.operation,
            model=self.model,
            input_tokens=self.input_tokens,
            output_tokens=self.output_tokens,
            cost=self.cost,
            priced=self.priced,
            session_id=self.session_id,
            request_id=self.id,
            price_source=self.price_source,
            cache_read_tokens=self.cache_read_tokens,
            cache_write_tokens=self.cache_write_tokens,
            reasoning_tokens=self.reasoning_tokens,
            provider=self.provider,
        )


class LedgerBudget(Record):
    """`budget`: the whole budget in force from `ts` on."""

    kind: Literal["budget"] = "budget"
    id: str | None = None
    """The `cost.set_budget` request id; None on a month file's carried first line."""
    ts: Timestamp
    session_id: str
    budget: Budget
    carried: bool = False
    """True on the first line of a month file (the budget carried over)."""


class LedgerReset(Record):
    """`reset`: the session's totals start again after this line."""

    kind: Literal["reset"] = "reset"
    id: str
    ts: Timestamp
    session_id: str
    totals: CostTotals | None = None
    """The reply it got."""


class LedgerWarned(Record):
    """`warned`: a budget warning fired in its window and must not fire again."""

    kind: Literal["warned"] = "warned"
    ts: Timestamp
    period: BudgetPeriod
    window: str
    """`2026-11-24`, `2026-W48` or `2026-11`."""
    level: WarningLevel
    limit: Money
    spent: Money
    message: str


LedgerLine = Annotated[
    LedgerOperation | LedgerBudget | LedgerReset | LedgerWarned, Field(discriminator="kind")
]
"""One line of a ledger month file."""

LEDGER_LINE: TypeAdapter[LedgerOperation | LedgerBudget | LedgerReset | LedgerWarned] = TypeAdapter(
    LedgerLine
)


def decode_ledger_line(
    line: bytes | str | dict[str, Any],
) -> LedgerOperation | LedgerBudget | LedgerReset | LedgerWarned:
    """One ledger line as its model, money exact; ValueError when it is not one.

    A dict is a line already parsed with exact numbers (`loads_exact`).
    """
    value = line if isinstance(line, dict) else loads_exact(line)
    return LEDGER_LINE.validate_python(value)


class CheckpointPosition(BaseModel):
    """Where a checkpoint was taken: just after the line ending at `offset` in `file`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    file: str
    offset: Annotated[int, Field(ge=0)]
    digest: str
    """sha256 of the line that ends at `offset` ("" when `offset` is 0)."""


class CheckpointSession(BaseModel):
    """The session's account in a checkpoint (money as exact decimal text)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    session_id: str
    total: str
    by_model: dict[str, str]
    unpriced: Annotated[int, Field(ge=0)]
    unpriced_by_model: dict[str, Annotated[int, Field(ge=0)]]
    count: Annotated[int, Field(ge=0)]
    operations: list[dict[str, Any]]
    """The session's latest operations, `CostOperation`-shaped, `cost` as text."""


class LedgerCheckpoint(BaseModel):
    """`ledger/checkpoint.json`: the ledger's state at a position (a cache, money as text)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    format: Literal[1] = CHECKPOINT_FORMAT
    position: CheckpointPosition
    buckets: list[tuple[int, str, int]]
    """[UTC bucket, exact total, unpriced count] of the last days."""
    session: CheckpointSession
    budget: dict[str, Decimal | str | bool | None]
    """The `Budget` shape with money as text."""
    fired: list[tuple[str, str, str, str]]
    """(period, window, level, limit) of each warning fired in a current window."""
    applied_ids: list[str]
    """Request ids applied, oldest first."""

    def state(self) -> dict[str, Any]:
        """The state part, in the form `LedgerState.from_checkpoint` reads."""
        return {
            "buckets": [list(bucket) for bucket in self.buckets],
            "session": self.session.model_dump(),
            "budget": dict(self.budget),
            "fired": [list(key) for key in self.fired],
            "applied_ids": list(self.applied_ids),
        }


class SeriesCells(BaseModel):
    """The 15-minute spend index: one row per bucket that saw an operation."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    complete: bool
    cells: list[tuple[int, str, int, dict[str, str], dict[str, str]]]
    """[UTC bucket number, exact total, unpriced count, {model: total}, {operation: total}],
    money as exact decimal text."""


class SeriesCache(BaseModel):
    """`ledger/series.json`: the `cost.series` index up to a ledger position (a cache).

    Written by the cost ledger at most every few minutes and at stop, read at
    start in a background thread. Hand-decoded on that path for speed (a year
    is ~35,000 rows); a file that does not match this shape or the ledger's
    position is ignored and rebuilt from the ledger, never trusted.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    format: Literal[1] = 1
    position: CheckpointPosition
    series: SeriesCells
