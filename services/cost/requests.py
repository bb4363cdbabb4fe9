"""What each `cost.*` op does to the state: records to append, a reply, events.

No I/O here. `CostDesk` applies a call to the `LedgerState` and collects, in a
`Batch`, the ledger records to append (with one fsync, by the worker), the
first replies by request id and the events to publish once the records are
durable. A `cost.log` record carries its own reply (`totals`, `warning`) so the
ledger can answer a re-sent id exactly, even after restarts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar

from protocol.base import Message
from protocol.errors import ErrorCode, ProtocolError
from protocol.ledger import LedgerLine
from protocol.names import MUTATING_OPS, Op, Topic
from protocol.ops import CostEstimateArgs, CostLogArgs, CostSeriesArgs, SetBudgetArgs
from services.cost.budget import BudgetLimits, due_warnings, most_severe_due, refusal
from services.cost.call_warnings import CallWarnings
from services.cost.oplines import WrittenLine, written_call
from services.cost.preferences import CostPreferences
from services.cost.pricing import OVERRIDES_NAME, PriceBook
from services.cost.records import (
    budget_record,
    op_view,
    reply_of,
    reset_record,
    warned_record,
    with_reply,
)
from services.cost.series import (
    DEFAULT_DAYS,
    MAX_BUCKETS,
    MAX_HOURS,
    bucket_count,
    spend_series,
)
from services.cost.state import LedgerState
from services.cost.usage import call_usage
from services.runtime.worker import Call

__all__ = ["MUTATING", "Batch", "CostDesk"]

A = TypeVar("A", bound=Message)

_COST_LOGGED = Topic.COST_LOGGED.value
"""The topic's text, read once (an enum's `.value` is a Python-level property)."""

MUTATING = frozenset(op for op in MUTATING_OPS if op.value.startswith("cost."))
"""The ledger's ops whose request id is an idempotency key (each leaves a ledger record)."""


@dataclass
class Batch:
    """What one batch adds: records to append, first replies, events to publish."""

    now: datetime
    budget_before: BudgetLimits
    """The budget in force before the batch (a new month file starts with it)."""
    records: list[LedgerLine | WrittenLine] = field(default_factory=list)
    replies: dict[str, Any] = field(default_factory=dict)
    events: list[tuple[str, Any]] = field(default_factory=list)
    series: list[tuple[int, str, str, Decimal | None]] = field(default_factory=list)
    """Operations for `LedgerState.series` (bucket, model, operation, cost), counted
    after the replies: no reply reads the series, and a crash before they are counted
    loses nothing (a start rebuilds the series from the ledger's lines)."""
    applied: list[str] = field(default_factory=list)
    """Request ids for `LedgerState.applied`, remembered after the replies (an id
    re-sent within the batch is found in `replies`)."""

    @property
    def ts(self) -> datetime:
        """The batch's time: every record of the batch carries it."""
        return self.now


def _args_of(call: Call, model: type[A]) -> A:
    """The call's args as the model its op takes (the host validated them)."""
    if isinstance(call.args, model):
        return call.args
    raise ProtocolError(
        ErrorCode.INVALID_ARGS, f"{call.op.value} takes {model.__name__}", request_id=call.id
    )


class CostDesk:
    """Answers `cost.*` calls against a state, prices and preferences."""

    def __init__(
        self,
        *,
        state: Callable[[], LedgerState],
        prices: PriceBook,
        preferences: Callable[[], CostPreferences],
        session_id: str,
    ) -> None:
        self._state = state
        self.prices = prices
        self._preferences = preferences
        self.session_id = session_id
        self._warnings = CallWarnings()
        self.handlers: dict[Op, Callable[[Call, Batch], Any]] = {
            Op.COST_LOG: self.log_operation,
            Op.COST_SET_BUDGET: self.set_budget,
            Op.COST_RESET_SESSION: self.reset_session,
            Op.COST_ESTIMATE: self.estimate,
            Op.COST_TOTALS: lambda _call, _batch: self._state().totals(),
            Op.COST_WARNING: lambda _call, _batch: {"warning": self.current_warning()},
            Op.COST_SERIES: self.series,
        }

    def log_operation(self, call: Call, batch: Batch) -> Any:
        """`cost.log`: price, record, total, warn; unknown models recorded unpriced."""
        args, state = _args_of(call, CostLogArgs), self._state()
        used = call_usage(args, call.id)
        price = self.prices.price(used.model, used.usage, at=batch.now, provider=used.provider)
        view = op_view(
            request_id=call.id,
            ts=batch.ts,
            session_id=self.session_id,
            operation=args.operation,
            model=used.model,
            input_tokens=used.usage.input_tokens,
            output_tokens=used.usage.output_tokens,
            price=price,
            cache_read_tokens=used.usage.cache_read_tokens,
            cache_write_tokens=used.usage.cache_write_tokens,
            reasoning_tokens=used.usage.reasoning_tokens,
            provider=used.provider,
        )
        # Folded first, then the line is written once with its reply (a line that
        # fails validation fails the batch, and the ledger reloads from disk).
        bucket = state.fold_operation(view, count_series=False)
        batch.series.append((bucket, view["model"], view["operation"], view["cost"]))
        batch.applied.append(call.id)
        at = len(batch.records)
        warning = self._fire_due_warnings(batch)
        written = written_call(view, totals=state.totals(), warning=warning)
        batch.records.insert(at, written.line)  # before the warnings it fired, as on disk
        reply = batch.replies[call.id] = written.reply
        batch.events.append((_COST_LOGGED, written.event))
        if price is None:
            message = (
                f"no price for model {used.model!r}: the call was recorded unpriced "
                f"(add it to .session/{OVERRIDES_NAME})"
            )
            unpriced = {"operation": view, "message": message}
            batch.events.append((Topic.COST_UNPRICED.value, unpriced))
        return reply

    def set_budget(self, call: Call, batch: Batch) -> Any:
        """`cost.set_budget`: absent fields unchanged, null removes a limit."""
        args, state = _args_of(call, SetBudgetArgs), self._state()
        changes = {name: getattr(args, name) for name in args.model_fields_set}
        if "warnings_enabled" in changes and changes["warnings_enabled"] is None:
            raise ProtocolError(
                ErrorCode.INVALID_ARGS, "warnings_enabled must be true or false", request_id=call.id
            )
        record = budget_record(
            state.budget.updated(changes),
            ts=batch.ts,
            request_id=call.id,
            session_id=self.session_id,
        )
        state.apply(record)
        batch.records.append(record)
        self._fire_due_warnings(batch)  # a limit set below what is spent says so at once
        reply = batch.replies[call.id] = reply_of(record)
        return reply

    def reset_session(self, call: Call, batch: Batch) -> Any:
        """`cost.reset_session`: the session total starts again; windows untouched."""
        state = self._state()
        record = reset_record(request_id=call.id, ts=batch.ts, session_id=self.session_id)
        state.apply(record)
        record = with_reply(record, totals=state.totals())
        batch.records.append(record)
        reply = batch.replies[call.id] = reply_of(record)
        return reply

    def estimate(self, call: Call, batch: Batch) -> Any:
        """`cost.estimate`: the cost, the warning it would trigger, whether to ask first."""
        args, state = _args_of(call, CostEstimateArgs), self._state()
        used = call_usage(args, call.id)
        price = self.prices.price(used.model, used.usage, at=batch.now, provider=used.provider)
        if price is None:
            example = next(iter(self.prices.seed.aliases), "gpt-4")
            raise ProtocolError(
                ErrorCode.UNKNOWN_MODEL,
                f"no price for model {used.model!r}; add it to .session/{OVERRIDES_NAME} "
                f"or use a known id such as {example!r}",
                request_id=call.id,
            )
        prefs = self._preferences()
        projected = due_warnings(
            state.budget, state.spends(extra=price.cost), prefs.warning_fraction
        )
        worst = most_severe_due(projected)
        reason = refusal(state.budget, state.spends(), price.cost)
        return {
            "cost": price.cost,
            "warning": worst.message() if worst else None,
            "confirm": price.cost > prefs.confirm_above,
            "price_source": price.source,
            "allowed": reason is None,
            "reason": reason,
        }

    def series(self, call: Call, batch: Batch) -> Any:
        """`cost.series`: exact spend per hour/day/week/month over local dates, by model and op."""
        args, state = _args_of(call, CostSeriesArgs), self._state()
        today = batch.now.astimezone(state.zone).date()
        until = args.until or today + timedelta(days=1)
        since = args.since or today - timedelta(days=DEFAULT_DAYS)
        if since >= until:
            raise ProtocolError(
                ErrorCode.INVALID_ARGS,
                f"since ({since}) must be before until ({until})",
                request_id=call.id,
            )
        most = MAX_HOURS if args.bucket == "hour" else MAX_BUCKETS
        if bucket_count(since, until, args.bucket) > most:
            raise ProtocolError(
                ErrorCode.INVALID_ARGS,
                f"{since} to {until} by {args.bucket} is more than {most} buckets; "
                "use a shorter range or a wider bucket",
                request_id=call.id,
            )
        return spend_series(
            state.series,
            since=since,
            until=until,
            kind=args.bucket,
            zone=state.zone,
            budget=state.budget,
        )

    def current_warning(self) -> str | None:
        """The most severe warning of now, in words, or None."""
        state = self._state()
        due = due_warnings(state.budget, state.spends(), self._preferences().warning_fraction)
        worst = most_severe_due(due)
        return worst.message() if worst else None

    def _fire_due_warnings(self, batch: Batch) -> str | None:
        """Record and announce each warning not yet fired in its window; the worst's words."""
        state = self._state()
        to_fire, worst = self._warnings.now(state, self._preferences().warning_fraction)
        for item in to_fire:
            warning = item.warning()
            record = warned_record(
                item.key, ts=batch.ts, spent=warning.spent, message=warning.message
            )
            state.apply(record)
            batch.records.append(record)
            batch.events.append((Topic.BUDGET_WARNING.value, warning))
        return worst
