"""`supervisor inspect costs`: spending against the budgets at a glance.

Read-only, whether or not the service runs: the figures are rebuilt from the
ledger (checkpoint and tail, exactly as the ledger does at start) without
writing, moving or locking anything - a torn last line is skipped, not cut.
costs.json is only a fallback for the session id.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from config import load_settings
from protocol.costs import CostsDocument
from protocol.session import SessionDocument
from services.cost.budget import (
    BudgetLimits,
    PeriodSpend,
    budget_warnings,
    most_severe,
)
from services.cost.ledger_files import LedgerFiles
from services.cost.loader import load_state
from services.cost.money import percent_text, usd
from services.cost.preferences import CostPreferences, PreferenceWatch
from services.cost.pricing import OVERRIDES_NAME, PriceBook
from services.cost.state import LedgerState
from services.cost.windows import Period
from services.runtime.paths import ProjectPaths
from services.store import read_document

__all__ = [
    "BAR_WIDTH",
    "CostsView",
    "costs_summary",
    "load_costs_view",
    "price_sources",
    "render_costs",
]

BAR_WIDTH = 20

_LABELS: dict[Period, str] = {"daily": "today", "weekly": "this week", "monthly": "this month"}


@dataclass(frozen=True)
class CostsView:
    """Everything `inspect costs` shows, rebuilt read-only from the ledger."""

    state: LedgerState
    preferences: CostPreferences
    prices: str
    now: datetime
    ledger_files: int


def _session_id(paths: ProjectPaths) -> str:
    current = read_document(paths.current, SessionDocument)
    if current.value is not None:
        return current.value.session_id
    costs = read_document(paths.costs, CostsDocument)
    if costs.value is not None and costs.value.session_id:
        return costs.value.session_id
    return ""


def load_costs_view(paths: ProjectPaths, *, now: datetime | None = None) -> CostsView:
    """Rebuild the ledger's figures as of `now` without changing any file."""
    moment = now or datetime.now(UTC)
    settings = load_settings()
    preferences = PreferenceWatch(paths.preferences, settings).current
    files = LedgerFiles(paths.ledger_dir)
    budget = settings.budget
    loaded = load_state(
        files,
        session_id=_session_id(paths),
        zone=preferences.zone,
        now=moment,
        default_budget=BudgetLimits(budget.daily_limit, budget.weekly_limit, budget.monthly_limit),
    )
    prices = PriceBook.load(paths.session_dir / OVERRIDES_NAME, use_genai_prices=True)
    return CostsView(loaded.state, preferences, prices.describe(), moment, len(files.month_files()))


def _bar(spent: Decimal, limit: Decimal) -> str:
    """`[#####...............]`, with `!` once the limit is reached."""
    if limit == 0:
        filled = BAR_WIDTH if spent > 0 else 0
    else:
        filled = min(BAR_WIDTH, int(spent * BAR_WIDTH / limit))
    reached = spent >= limit and spent > 0
    return "[" + "#" * filled + "." * (BAR_WIDTH - filled) + "]" + ("!" if reached else " ")


def _period_line(spend: PeriodSpend, limit: Decimal | None) -> str:
    label = _LABELS[spend.period]
    if limit is None:
        text = f"  {label:<11}{usd(spend.spent):>12}   no limit"
    else:
        used = percent_text(spend.spent / limit) if limit > 0 else "-"
        left = limit - spend.spent
        rest = f"{usd(left)} left" if left >= 0 else f"{usd(-left)} over"
        text = (
            f"  {label:<11}{usd(spend.spent):>12} of {usd(limit):>10}  {used:>5}  "
            f"{_bar(spend.spent, limit)} {rest}"
        )
    if spend.unpriced:
        text += f"  (+{spend.unpriced} unpriced)"
    return text


def render_costs(paths: ProjectPaths, *, now: datetime | None = None) -> str:
    """Today, this week and this month against the budgets; session; models; prices."""
    view = load_costs_view(paths, now=now)
    state, prefs = view.state, view.preferences
    local = view.now.astimezone(prefs.zone)
    lines = [f"Costs as of {local:%Y-%m-%d %H:%M} ({prefs.zone_label})"]
    for spend in state.spends():
        lines.append(_period_line(spend, state.budget.limit(spend.period)))
    totals = state.totals()
    lines.append(f"  {'projected':<11}{usd(totals['monthly_projection']):>12}   by the month's end")
    hard = [
        f"{_LABELS[p]} {usd(limit)}"
        for p in ("daily", "weekly", "monthly")
        if (limit := state.budget.hard_limit(p)) is not None
    ]
    if hard:
        lines.append(f"  hard limit {', '.join(hard)} (estimates past them are refused)")
    session = state.session
    calls = "operation" if session.count == 1 else "operations"
    lines.append(
        f"  {'session':<11}{usd(session.total):>12}   "
        f"{session.session_id or '-'}, {session.count} {calls}"
    )
    if session.by_model:
        lines.append("  by model")
        width = max(len(model) for model in session.by_model)
        for model, amount in sorted(session.by_model.items(), key=lambda kv: -kv[1]):
            lines.append(f"    {model:<{width}}  {usd(amount):>12}")
    if session.unpriced:
        names = ", ".join(f"{m} x{n}" for m, n in sorted(session.unpriced_by_model.items()))
        lines.append(
            f"  unpriced   {session.unpriced} call(s) not included above ({names}); "
            f"add prices to .session/{OVERRIDES_NAME}"
        )
    if not state.budget.warnings_enabled:
        lines.append("  warnings   off")
    else:
        warning = most_severe(budget_warnings(state.budget, state.spends(), prefs.warning_fraction))
        if warning is not None:
            lines.append(f"  warning    {warning.message}")
    lines.append(f"  prices     {view.prices}")
    sources = price_sources(state)
    if sources:
        used = ", ".join(f"{source} x{count}" for source, count in sources.items())
        lines.append(f"  priced by  {used} (this session's last operations)")
    if view.ledger_files == 0:
        lines.append("  ledger     empty (no operation logged yet)")
    return "\n".join(lines)


def costs_summary(paths: ProjectPaths, *, now: datetime | None = None) -> dict[str, Any]:
    """The same figures as one JSON-able document (`cost.totals` shape and more)."""
    view = load_costs_view(paths, now=now)
    state = view.state
    warning = most_severe(
        budget_warnings(state.budget, state.spends(), view.preferences.warning_fraction)
    )
    return {
        **state.totals(),
        "session_id": state.session.session_id or None,
        "operations_count": state.session.count,
        "unpriced_by_model": dict(state.session.unpriced_by_model),
        "budget": state.budget.as_dict(),
        "timezone": view.preferences.zone_label,
        "day": state.windows["daily"].window.key,
        "week": state.windows["weekly"].window.key,
        "month": state.windows["monthly"].window.key,
        "warning": warning.message if warning else None,
        "prices": view.prices,
        "price_sources": price_sources(state),
    }


def price_sources(state: LedgerState) -> dict[str, int]:
    """How many of the session's kept operations each price source priced, most first."""
    counts: dict[str, int] = {}
    for view in state.session.operations:
        source = view.get("price_source")
        if source:
            counts[source] = counts.get(source, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
