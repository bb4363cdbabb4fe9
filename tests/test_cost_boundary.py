"""The ledger's next calendar boundary, kept by `refresh` instead of looked for each turn."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from services.cost.budget import BudgetLimits
from services.cost.state import LedgerState
from services.cost.windows import windows_at

ZONES = ["UTC", "Europe/Paris", "America/New_York", "Asia/Kolkata", "Pacific/Chatham"]


@settings(max_examples=200, deadline=None)
@given(
    start=st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2030, 1, 1)),
    steps=st.lists(st.integers(0, 40 * 86_400), min_size=1, max_size=6),
    zone=st.sampled_from(ZONES),
    moved=st.sampled_from(ZONES),
)
def test_the_next_boundary_is_the_end_of_the_earliest_window(
    start: datetime, steps: list[int], zone: str, moved: str
) -> None:
    """However time moves and the zone changes, it is when the first current window ends."""
    now = start.replace(tzinfo=UTC)
    budget = BudgetLimits(Decimal(50), Decimal(200), Decimal(500))
    state = LedgerState(session_id="s", zone=ZoneInfo(zone), budget=budget, now=now)
    for index, step in enumerate(steps):
        now += timedelta(seconds=step)
        state.refresh(now)
        if index == 1:
            state.set_zone(ZoneInfo(moved), now)
        expected = min(window.end for window in windows_at(now, state.zone).values())
        assert state.next_boundary() == expected
        assert now < state.next_boundary()
