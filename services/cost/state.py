"""The ledger's running state: window totals, the session, budget, ids applied.

`LedgerState.apply` folds one ledger record into the state. The same function
serves the live path (a record about to be appended) and the replay at start,
so what a restart rebuilds is what the running ledger had - by construction.

All of it is small and bounded whatever the ledger's size: buckets of the last
`LOOKBACK_DAYS`, the session's last `SESSION_OPERATIONS_KEPT` operations, the
last `APPLIED_IDS_KEPT` request ids, the warnings of the current windows.
That is why the cost of `cost.log` does not grow with the ledger.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any
from zoneinfo import ZoneInfo

from protocol.ledger import LedgerBudget, LedgerLine, LedgerOperation, LedgerReset, LedgerWarned
from services.cost.budget import BudgetLimits, PeriodSpend, limit_text
from services.cost.money import CENT, MONEY, ZERO, parse_money, tidy
from services.cost.records import operation_view, request_id_of
from services.cost.series import SeriesIndex
from services.cost.windows import (
    LOOKBACK_DAYS,
    PERIODS,
    Period,
    Window,
    bucket_of,
    windows_at,
)

__all__ = [
    "APPLIED_IDS_KEPT",
    "SESSION_OPERATIONS_KEPT",
    "AppliedIds",
    "FiredKey",
    "LedgerState",
    "SessionAccount",
    "WindowSum",
]

APPLIED_IDS_KEPT = 100_000
"""Request ids remembered for idempotency: a re-send is recognised within the
last this-many mutating requests (months of heavy use; re-sends come seconds
after the first try)."""

SESSION_OPERATIONS_KEPT = 1000
"""The session's most recent operations kept for costs.json."""

FiredKey = tuple[str, str, str, str]
"""(period, window, level, limit) of a warning that fired."""


class AppliedIds:
    """The last `capacity` request ids applied, oldest forgotten first."""

    def __init__(self, capacity: int = APPLIED_IDS_KEPT, ids: list[str] | None = None) -> None:
        self.capacity = capacity
        kept = (ids or [])[-capacity:]  # a checkpoint's ids: unique, oldest first
        self._order: deque[str] = deque(kept)
        self._set: set[str] = set(kept)
        if len(self._set) != len(self._order):  # not unique after all: rebuild carefully
            self._order, self._set = deque(), set()
            for request_id in kept:
                self.add(request_id)

    def __contains__(self, request_id: object) -> bool:
        return request_id in self._set

    def __len__(self) -> int:
        return len(self._order)

    def add(self, request_id: str) -> None:
        """Remember `request_id`."""
        if request_id in self._set:
            return
        self._order.append(request_id)
        self._set.add(request_id)
        while len(self._order) > self.capacity:
            self._set.discard(self._order.popleft())

    def as_list(self) -> list[str]:
        """Oldest first (the order a checkpoint stores)."""
        return list(self._order)


@dataclass
class SessionAccount:
    """One session's spending since its last reset."""

    session_id: str
    total: Decimal = ZERO
    by_model: dict[str, Decimal] = field(default_factory=dict)
    unpriced: int = 0
    unpriced_by_model: dict[str, int] = field(default_factory=dict)
    count: int = 0
    operations: deque[dict[str, Any]] = field(
        default_factory=lambda: deque(maxlen=SESSION_OPERATIONS_KEPT)
    )

    def add(self, view: dict[str, Any]) -> None:
        """Count one operation (a `CostOperation`-shaped view)."""
        model, cost = view["model"], view["cost"]
        if cost is None:
            self.unpriced += 1
            self.unpriced_by_model[model] = self.unpriced_by_model.get(model, 0) + 1
        else:
            self.total = MONEY.add(self.total, cost)
            self.by_model[model] = MONEY.add(self.by_model.get(model, ZERO), cost)
        self.count += 1
        self.operations.append(view)

    def to_dict(self) -> dict[str, Any]:
        """Checkpoint form (money as exact text)."""
        return {
            "session_id": self.session_id,
            "total": str(self.total),
            "by_model": {model: str(value) for model, value in self.by_model.items()},
            "unpriced": self.unpriced,
            "unpriced_by_model": dict(self.unpriced_by_model),
            "count": self.count,
            "operations": [
                {**view, "cost": None if view["cost"] is None else str(view["cost"])}
                for view in self.operations
            ],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SessionAccount:
        """Read the checkpoint form back."""
        account = cls(
            session_id=str(data["session_id"]),
            total=parse_money(data["total"]),
            by_model={str(k): parse_money(v) for k, v in data["by_model"].items()},
            unpriced=int(data["unpriced"]),
            unpriced_by_model={str(k): int(v) for k, v in data["unpriced_by_model"].items()},
            count=int(data["count"]),
        )
        for view in data["operations"]:
            cost = view.get("cost")
            account.operations.append({**view, "cost": None if cost is None else Decimal(cost)})
        return account


@dataclass
class WindowSum:
    """The running total of one current window."""

    window: Window
    total: Decimal = ZERO
    unpriced: int = 0


class LedgerState:
    """Everything the ledger needs to answer, rebuilt from records."""

    _current_from: datetime
    _current_until: datetime
    """Between these instants every current window is still current."""
    _pace: tuple[int, int] | None
    """The month projection's (days in month, days elapsed) for the current local day."""

    def __init__(
        self, *, session_id: str, zone: ZoneInfo, budget: BudgetLimits, now: datetime
    ) -> None:
        self.zone = zone
        self.buckets: dict[int, list[Any]] = {}
        """UTC bucket -> [exact total, unpriced count]."""
        self.session = SessionAccount(session_id)
        self.budget = budget
        self.fired: set[FiredKey] = set()
        self.applied = AppliedIds()
        self.series = SeriesIndex()
        """Every operation by 15-minute bucket, model and operation, never pruned."""
        self.windows: dict[Period, WindowSum] = {}
        self.refresh(now)

    # -- folding records ------------------------------------------------------------

    def apply(self, record: LedgerLine) -> dict[str, Any] | None:
        """Fold one record in; for an `op`, return its `CostOperation` view."""
        view = None
        if isinstance(record, LedgerOperation):
            view = self._apply_op(record)  # reads every field before it changes anything
        elif isinstance(record, LedgerBudget):
            self.budget = BudgetLimits.from_dict(record.budget.model_dump())
        elif isinstance(record, LedgerReset) and record.session_id == self.session.session_id:
            self.session = SessionAccount(self.session.session_id)
        elif isinstance(record, LedgerWarned):
            self.fired.add((record.period, record.window, record.level, limit_text(record.limit)))
        request_id = request_id_of(record)
        if request_id is not None:
            self.applied.add(request_id)
        return view

    def _apply_op(self, record: LedgerOperation) -> dict[str, Any]:
        view = operation_view(record)
        self.fold_operation(view)
        return view

    def fold_operation(self, view: dict[str, Any], *, count_series: bool = True) -> int:
        """Fold one operation in, given as its `CostOperation` view (`operation_view`); its bucket.

        What `apply` does for an `op` line except remembering its request id:
        the live path folds the view before the line (which carries the totals
        just after it) is built, so the line is built once. With
        `count_series=False` the caller adds it to `series` itself, later
        (the ledger does so after the replies: no reply reads the series).
        """
        cost: Decimal | None = view["cost"]
        bucket = bucket_of(view["timestamp"])
        if cost is not None and not cost.is_finite():
            raise ValueError(f"cost {cost} is not an amount")
        cell = self.buckets.get(bucket)
        if cell is None:
            cell = self.buckets[bucket] = [ZERO, 0]
        if cost is None:
            cell[1] += 1
        else:
            cell[0] = MONEY.add(cell[0], cost)
        for current in self.windows.values():
            if current.window.first_bucket <= bucket < current.window.end_bucket:
                if cost is None:
                    current.unpriced += 1
                else:
                    current.total = MONEY.add(current.total, cost)
        if count_series:
            self.series.add(bucket, view["model"], view["operation"], cost)
        if view["session_id"] == self.session.session_id:
            self.session.add(view)
        return bucket

    # -- time -----------------------------------------------------------------------

    def refresh(self, now: datetime) -> bool:
        """Make the windows those of `now`; True when any of them changed."""
        self.now = now
        if self.windows and self._current_from <= now < self._current_until:
            return False  # the common case, checked per batch: no calendar arithmetic
        wanted = windows_at(now, self.zone)
        self._pace = None  # the local day may have changed
        self._current_from = max(window.start for window in wanted.values())
        self._current_until = min(window.end for window in wanted.values())
        changed = False
        for period, window in wanted.items():
            current = self.windows.get(period)
            if current is None or current.window != window:
                self.windows[period] = self._summed(window)
                changed = True
        if changed:
            self.prune(now)
        return changed

    def prune(self, now: datetime) -> None:
        """Forget buckets older than the lookback and warnings of past windows."""
        oldest = bucket_of(now - timedelta(days=LOOKBACK_DAYS))
        for bucket in [b for b in self.buckets if b < oldest]:
            del self.buckets[bucket]
        keys = {(p, w.window.key) for p, w in self.windows.items()}
        self.fired = {key for key in self.fired if (key[0], key[1]) in keys}

    def set_zone(self, zone: ZoneInfo, now: datetime) -> None:
        """Re-derive every window in another time zone (from the buckets)."""
        self.zone = zone
        self.windows = {}
        self.refresh(now)

    def _summed(self, window: Window) -> WindowSum:
        total, unpriced = ZERO, 0
        first, end = window.first_bucket, window.end_bucket
        for bucket, (amount, count) in self.buckets.items():
            if first <= bucket < end:
                total = MONEY.add(total, amount)
                unpriced += count
        return WindowSum(window, total, unpriced)

    def next_boundary(self) -> datetime:
        """When the earliest current window ends (the day's, normally).

        Kept by `refresh`, which makes every window that of its `now` (the host
        asks twice per turn of its loop)."""
        return self._current_until

    # -- views ----------------------------------------------------------------------

    def totals(self) -> dict[str, Any]:
        """The `cost.totals` shape (session since reset; windows of now)."""
        w = self.windows
        return {
            "session_total": self.session.total,
            "daily_total": w["daily"].total,
            "weekly_total": w["weekly"].total,
            "monthly_total": w["monthly"].total,
            "by_model": dict(self.session.by_model),
            "unpriced_operations": self.session.unpriced,
            "daily_unpriced": w["daily"].unpriced,
            "weekly_unpriced": w["weekly"].unpriced,
            "monthly_unpriced": w["monthly"].unpriced,
            "monthly_projection": self.month_end_projection(),
        }

    def month_end_projection(self) -> Decimal:
        """This month's spend at its pace so far: total x days in month / days elapsed."""
        pace = self._pace
        if pace is None:  # once per window change, not per call (see `refresh`)
            month = self.windows["monthly"].window
            first = month.start.astimezone(self.zone).date()
            days = (month.end.astimezone(self.zone).date() - first).days
            elapsed = (self.now.astimezone(self.zone).date() - first).days + 1
            pace = self._pace = (days, max(1, min(elapsed, days)))
        days, divisor = pace
        projected = self.windows["monthly"].total * days / divisor
        return tidy(projected.quantize(CENT, rounding=ROUND_HALF_EVEN))

    def spends(self, extra: Decimal | None = None) -> list[PeriodSpend]:
        """Each current window's spending, plus `extra` (a projected call)."""
        spends = []
        for period in PERIODS:
            current = self.windows[period]
            total = current.total if extra is None else MONEY.add(current.total, extra)
            spends.append(PeriodSpend(period, current.window.key, total, current.unpriced))
        return spends

    # -- checkpoint -----------------------------------------------------------------

    def to_checkpoint(self) -> dict[str, Any]:
        """Everything above as plain JSON (money as exact text)."""
        return {
            "buckets": [[b, str(total), n] for b, (total, n) in sorted(self.buckets.items())],
            "session": self.session.to_dict(),
            "budget": {
                k: (str(v) if isinstance(v, Decimal) else v)
                for k, v in self.budget.as_dict().items()
            },
            "fired": sorted([list(key) for key in self.fired]),
            "applied_ids": self.applied.as_list(),
        }

    @classmethod
    def from_checkpoint(
        cls, data: dict[str, Any], *, session_id: str, zone: ZoneInfo, now: datetime
    ) -> LedgerState:
        """Rebuild from `to_checkpoint` output; the session only if it is `session_id`."""
        state = cls.__new__(cls)
        state.zone = zone
        state.buckets = {int(b): [parse_money(t), int(n)] for b, t, n in data["buckets"]}
        saved = data.get("session")
        if isinstance(saved, dict) and saved.get("session_id") == session_id:
            state.session = SessionAccount.from_dict(saved)
        else:
            state.session = SessionAccount(session_id)
        state.budget = BudgetLimits.from_dict(data["budget"])
        state.fired = {(str(a), str(b), str(c), str(d)) for a, b, c, d in data["fired"]}
        ids = data["applied_ids"]
        if not isinstance(ids, list):
            raise TypeError("applied_ids must be a list")
        state.applied = AppliedIds(ids=ids)  # orjson gave str; anything else never matches
        # The series index is not in the checkpoint (it grows with the ledger's age and
        # would slow every start): the ledger loads it in the background (series.py).
        state.series = SeriesIndex(complete=False)
        state.windows = {}
        state.refresh(now)
        return state
