"""costs.json: the seed's shape, built from the ledger's state.

A snapshot for people and for readers that do not speak the protocol. It never
embeds the whole history (rewriting such a file costs 8 ms at 1 k operations
and a second at 100 k): `operations` is the current session's last
`SESSION_OPERATIONS_KEPT` operations, `operations_count` how many the session
has, and `operations_note` says where the rest are.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from protocol.base import utc_text
from services.cost.preferences import CostPreferences
from services.cost.state import LedgerState

__all__ = ["costs_document"]


def costs_document(
    state: LedgerState,
    *,
    preferences: CostPreferences,
    prices: str,
    warning: str | None,
    now: datetime,
) -> dict[str, Any]:
    """The costs.json document (the `CostsDocument` shape) as plain data."""
    totals = state.totals()
    session = state.session
    kept = len(session.operations)
    note = None
    if session.count > kept:
        note = (
            f"the last {kept} of this session's {session.count} operations; "
            "every operation is in .session/ledger/"
        )
    return {
        "session_id": session.session_id,
        "session_total": totals["session_total"],
        "daily_total": totals["daily_total"],
        "weekly_total": totals["weekly_total"],
        "monthly_total": totals["monthly_total"],
        "operations": list(session.operations),
        "by_model": totals["by_model"],
        "budget": state.budget.as_dict(),
        "unpriced_operations": totals["unpriced_operations"],
        "timezone": preferences.zone_label,
        "day": state.windows["daily"].window.key,
        "week": state.windows["weekly"].window.key,
        "month": state.windows["monthly"].window.key,
        "updated_at": utc_text(now),
        "daily_unpriced": totals["daily_unpriced"],
        "weekly_unpriced": totals["weekly_unpriced"],
        "monthly_unpriced": totals["monthly_unpriced"],
        "unpriced_by_model": dict(session.unpriced_by_model),
        "operations_count": session.count,
        "operations_note": note,
        "warning": warning,
        "prices": prices,
    }
