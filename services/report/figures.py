"""The report's figures, summed exactly from the ledger's own lines.

Every amount is the exact Decimal sum of the `op` lines it covers (the same
digits the ledger wrote), so a figure in the report can be checked against
the ledger line by line. Days and months are the writer's (preference
`timezone`), as for the budget.
"""

from __future__ import annotations

import calendar
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from protocol.ledger import LedgerOperation
from services.cost.ledger_files import LedgerFiles
from services.runtime.paths import ProjectPaths

__all__ = [
    "SESSIONS_SHOWN_MAX",
    "DaySpend",
    "PriceSource",
    "ReportFigures",
    "SessionSpan",
    "daily_totals",
    "gather",
    "ledger_operations",
]

ZERO = Decimal(0)
SESSIONS_SHOWN_MAX = 500
"""At most this many sessions are read for the timeline (newest first)."""


@dataclass(frozen=True)
class Operation:
    """What the report needs of one `op` line."""

    at: datetime
    model: str
    operation: str
    cost: Decimal | None
    price_source: str | None


@dataclass(frozen=True)
class DaySpend:
    """One local day: the exact sum of its priced calls, and its calls."""

    day: date
    total: Decimal
    calls: int
    unpriced: int


@dataclass(frozen=True)
class PriceSource:
    """A price source the ledger used, and when."""

    source: str
    first: datetime
    last: datetime
    calls: int


@dataclass(frozen=True)
class SessionSpan:
    """One writing session from the history."""

    session_id: str
    start: datetime
    minutes: float
    cost: Decimal
    files: int
    status: str


@dataclass
class ReportFigures:
    """Everything the page shows."""

    generated_at: datetime
    zone: str
    days: list[DaySpend]
    daily_limit: Decimal | None
    monthly_limit: Decimal | None
    month_to_date: Decimal
    month_days_elapsed: int
    month_days: int
    by_model: dict[str, Decimal]
    by_operation: dict[str, Decimal]
    period_total: Decimal
    period_calls: int
    period_unpriced: int
    sessions: list[SessionSpan]
    price_sources: list[PriceSource]
    prices_now: str
    history_problem: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def projection(self) -> Decimal:
        """Month to date, continued at its daily average to the month's end."""
        if self.month_days_elapsed == 0:
            return self.month_to_date
        return self.month_to_date * self.month_days / self.month_days_elapsed


def _month_key(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m")


def ledger_operations(paths: ProjectPaths, since: datetime) -> list[Operation]:
    """Every `op` line at or after `since`, oldest file first (month files before it skipped)."""
    files = LedgerFiles(paths.ledger_dir)
    # Month files are named by the UTC month of their lines: earlier ones hold nothing newer.
    first_month = _month_key(since - timedelta(days=1))
    found: list[Operation] = []
    for path in files.month_files():
        if path.stem < first_month:
            continue
        for _, record, _ in files.records(path):
            if not isinstance(record, LedgerOperation) or record.ts < since:
                continue
            found.append(
                Operation(
                    at=record.ts,
                    model=record.model,
                    operation=record.operation,
                    cost=record.cost,
                    price_source=record.price_source,
                )
            )
    return found


def _local_midnight(day: date, zone: ZoneInfo) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=zone)


def daily_totals(
    operations: list[Operation], *, first_day: date, last_day: date, zone: ZoneInfo
) -> list[DaySpend]:
    """One entry per local day from `first_day` to `last_day`, days without calls at 0."""
    totals: dict[date, Decimal] = defaultdict(lambda: ZERO)
    calls: dict[date, int] = defaultdict(int)
    unpriced: dict[date, int] = defaultdict(int)
    for op in operations:
        day = op.at.astimezone(zone).date()
        calls[day] += 1
        if op.cost is None:
            unpriced[day] += 1
        else:
            totals[day] += op.cost
    days: list[DaySpend] = []
    day = first_day
    while day <= last_day:
        days.append(DaySpend(day, totals[day], calls[day], unpriced[day]))
        day += timedelta(days=1)
    return days


def _sessions(paths: ProjectPaths, since: datetime) -> tuple[list[SessionSpan], str | None]:
    from services.history.read import list_sessions, read_history_file

    read = read_history_file(paths)
    # history.json keeps the last sessions; older ones are read from the archive.
    entries = list_sessions(paths, limit=SESSIONS_SHOWN_MAX)
    spans = [
        SessionSpan(
            session_id=entry.session_id,
            start=entry.start_time,
            minutes=float(entry.duration_minutes),
            cost=entry.total_cost,
            files=len(set(entry.files_modified) | set(entry.files_created)),
            status=str(entry.status),
        )
        for entry in entries
        if entry.start_time >= since
    ]
    spans.sort(key=lambda span: span.start)
    problem = f"history.json is {read.status}: {read.error}" if read.status == "corrupt" else None
    return spans, problem


def _sources(operations: list[Operation]) -> list[PriceSource]:
    seen: dict[str, list[datetime]] = {}
    counts: dict[str, int] = defaultdict(int)
    for op in operations:
        name = op.price_source or "unpriced"
        counts[name] += 1
        span = seen.setdefault(name, [op.at, op.at])
        span[0], span[1] = min(span[0], op.at), max(span[1], op.at)
    return [
        PriceSource(name, first, last, counts[name])
        for name, (first, last) in sorted(seen.items(), key=lambda kv: kv[1][1], reverse=True)
    ]


def gather(paths: ProjectPaths, *, days: int, now: datetime | None = None) -> ReportFigures:
    """Read the ledger, the budget in force and the history; compute every figure."""
    from services.cost.render import load_costs_view

    moment = now or datetime.now(UTC)
    view = load_costs_view(paths, now=moment)
    zone = view.preferences.zone
    today = moment.astimezone(zone).date()
    first_day = today - timedelta(days=days - 1)
    month_start = today.replace(day=1)
    since = _local_midnight(min(first_day, month_start), zone)
    operations = ledger_operations(paths, since)
    window = [op for op in operations if op.at >= _local_midnight(first_day, zone)]
    by_model: dict[str, Decimal] = defaultdict(lambda: ZERO)
    by_operation: dict[str, Decimal] = defaultdict(lambda: ZERO)
    for op in window:
        if op.cost is not None:
            by_model[op.model] += op.cost
            by_operation[op.operation] += op.cost
    month_ops = [op for op in operations if op.at >= _local_midnight(month_start, zone)]
    sessions, history_problem = _sessions(paths, _local_midnight(first_day, zone))
    budget = view.state.budget
    return ReportFigures(
        generated_at=moment,
        zone=view.preferences.zone_label,
        days=daily_totals(window, first_day=first_day, last_day=today, zone=zone),
        daily_limit=budget.limit("daily"),
        monthly_limit=budget.limit("monthly"),
        month_to_date=sum((op.cost for op in month_ops if op.cost is not None), ZERO),
        month_days_elapsed=today.day,
        month_days=calendar.monthrange(today.year, today.month)[1],
        by_model=dict(sorted(by_model.items(), key=lambda kv: (-kv[1], kv[0]))),
        by_operation=dict(sorted(by_operation.items(), key=lambda kv: (-kv[1], kv[0]))),
        period_total=sum((op.cost for op in window if op.cost is not None), ZERO),
        period_calls=len(window),
        period_unpriced=sum(1 for op in window if op.cost is None),
        sessions=sessions,
        price_sources=_sources(window),
        prices_now=view.prices,
        history_problem=history_problem,
    )
