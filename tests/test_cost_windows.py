"""Calendar windows in the writer's zone: midnight, Monday, month end, DST days."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_cost_ledger import LedgerHarness

from protocol.codec import loads_exact
from services.cost.ledger_files import month_file_name
from services.cost.windows import (
    BUCKET_S,
    PERIODS,
    bucket_of,
    system_zone,
    window_of,
    windows_at,
    zone_named,
)

PARIS = ZoneInfo("Europe/Paris")
NEW_YORK = ZoneInfo("America/New_York")


@pytest.fixture
def harness(tmp_path: Path) -> LedgerHarness:
    """A ledger harness over a fresh project (UTC until a test says otherwise)."""
    return LedgerHarness(tmp_path / "project")


def test_day_runs_from_local_midnight_to_local_midnight() -> None:
    """Today in Paris is 23:00 UTC yesterday to 23:00 UTC today in winter."""
    day = window_of("daily", datetime(2026, 1, 15, 12, tzinfo=UTC), PARIS)
    assert day.key == "2026-01-15"
    assert day.start == datetime(2026, 1, 14, 23, tzinfo=UTC)
    assert day.end == datetime(2026, 1, 15, 23, tzinfo=UTC)


def test_an_instant_after_utc_midnight_can_still_be_yesterday_locally() -> None:
    """At 02:00 UTC it is still the previous evening in New York."""
    day = window_of("daily", datetime(2026, 1, 16, 2, tzinfo=UTC), NEW_YORK)
    assert day.key == "2026-01-15"


@pytest.mark.parametrize(
    ("zone", "day", "hours"),
    [
        (PARIS, datetime(2026, 3, 29, 12, tzinfo=UTC), 23),
        (PARIS, datetime(2026, 10, 25, 12, tzinfo=UTC), 25),
        (NEW_YORK, datetime(2026, 3, 8, 17, tzinfo=UTC), 23),
        (NEW_YORK, datetime(2026, 11, 1, 17, tzinfo=UTC), 25),
        (PARIS, datetime(2026, 7, 1, 12, tzinfo=UTC), 24),
    ],
)
def test_dst_days_have_23_or_25_hours(zone: ZoneInfo, day: datetime, hours: int) -> None:
    """A DST change makes the local day 23 or 25 hours long, and the window follows it."""
    assert window_of("daily", day, zone).hours() == hours


def test_midnight_in_a_spring_forward_gap_starts_the_day_at_the_first_real_instant() -> None:
    """In Havana, clocks jump from 00:00 to 01:00: the day starts at 01:00 local (05:00 UTC)."""
    havana = ZoneInfo("America/Havana")
    day = window_of("daily", datetime(2026, 3, 8, 15, tzinfo=UTC), havana)
    assert day.start == datetime(2026, 3, 8, 5, tzinfo=UTC)
    assert day.hours() == 23
    previous = window_of("daily", day.start - timedelta(seconds=1), havana)
    assert previous.end == day.start


def test_week_starts_on_monday_and_has_its_iso_name() -> None:
    """The ISO week runs Monday to Monday; its name may belong to the next year."""
    week = window_of("weekly", datetime(2026, 11, 22, 20, tzinfo=UTC), PARIS)  # a Sunday
    assert week.key == "2026-W47"
    assert week.start == datetime(2026, 11, 15, 23, tzinfo=UTC)  # Monday 16th, 00:00 Paris
    assert week.end == datetime(2026, 11, 22, 23, tzinfo=UTC)
    new_year = window_of("weekly", datetime(2025, 12, 31, 12, tzinfo=UTC), PARIS)
    assert new_year.key == "2026-W01"


def test_week_across_a_dst_change_has_167_hours() -> None:
    """The week holding Paris' spring change is an hour short."""
    week = window_of("weekly", datetime(2026, 3, 27, 12, tzinfo=UTC), PARIS)
    assert (week.end - week.start) == timedelta(hours=167)


def test_month_is_the_calendar_month_not_28_days() -> None:
    """February, a 31-day month and December's year change all end on the 1st's midnight."""
    feb = window_of("monthly", datetime(2026, 2, 10, tzinfo=UTC), NEW_YORK)
    assert feb.key == "2026-02" and (feb.end - feb.start) == timedelta(days=28)
    march = window_of("monthly", datetime(2026, 3, 31, 12, tzinfo=UTC), NEW_YORK)
    assert (march.end - march.start) == timedelta(days=31, hours=-1)  # the DST hour
    dec = window_of("monthly", datetime(2026, 12, 31, 23, tzinfo=UTC), NEW_YORK)
    assert dec.key == "2026-12" and dec.end == datetime(2027, 1, 1, 5, tzinfo=UTC)


@given(
    st.datetimes(
        min_value=datetime(2000, 1, 1), max_value=datetime(2040, 1, 1), timezones=st.just(UTC)
    ),
    st.sampled_from(["Europe/Paris", "America/New_York", "Asia/Kolkata", "Australia/Lord_Howe"]),
)
def test_windows_contain_their_instant_and_start_on_bucket_boundaries(
    instant: datetime, zone_name: str
) -> None:
    """Every window holds its instant and is a run of whole 15-minute buckets."""
    zone = ZoneInfo(zone_name)
    for period, window in windows_at(instant, zone).items():
        assert window.period == period
        assert window.start <= instant < window.end
        assert window.start.timestamp() % BUCKET_S == 0 == window.end.timestamp() % BUCKET_S
        assert window.first_bucket <= bucket_of(instant) < window.end_bucket
        after = window_of(period, window.end, zone)
        assert after.start == window.end and after.key != window.key


def test_zone_names_and_the_system_zone() -> None:
    """A named zone is used as given; None means the system's zone, which has DST rules."""
    assert zone_named("Asia/Kolkata") == ZoneInfo("Asia/Kolkata")
    assert isinstance(zone_named(None), ZoneInfo)
    assert isinstance(system_zone(), ZoneInfo)
    assert PERIODS == ("daily", "weekly", "monthly")


def test_daily_total_restarts_at_local_midnight(harness: LedgerHarness) -> None:
    """A call at 23:59 and one at 00:01 Paris time land on different days, same week and month."""
    harness.set_zone("Europe/Paris")
    harness.now = datetime(2026, 11, 18, 22, 59, tzinfo=UTC)  # 23:59 in Paris
    ledger = harness.open()
    harness.log(ledger, "gpt-4", 1000, 0)
    harness.now = datetime(2026, 11, 18, 23, 1, tzinfo=UTC)  # 00:01 on the 19th in Paris
    totals = harness.log(ledger, "gpt-4", 2000, 0)["totals"]
    assert totals["daily_total"] == Decimal("0.06")
    assert totals["weekly_total"] == totals["monthly_total"] == Decimal("0.09")


def test_weekly_total_restarts_on_monday(harness: LedgerHarness) -> None:
    """Sunday's spending is not in Monday's week; the month keeps both."""
    harness.set_zone("America/New_York")
    harness.now = datetime(2026, 11, 23, 4, 30, tzinfo=UTC)  # Sunday 23:30 in New York
    ledger = harness.open()
    harness.log(ledger, "gpt-4", 1000, 0)
    harness.now += timedelta(hours=1)  # Monday 00:30
    totals = harness.log(ledger, "gpt-4", 1000, 0)["totals"]
    assert totals["weekly_total"] == Decimal("0.03") and totals["monthly_total"] == Decimal("0.06")


def test_monthly_total_restarts_on_the_first(harness: LedgerHarness) -> None:
    """The month ends at local midnight of the 1st, even when UTC is already in the next month."""
    harness.set_zone("America/New_York")
    harness.now = datetime(2026, 12, 1, 3, tzinfo=UTC)  # still 30 November, 22:00 local
    ledger = harness.open()
    assert harness.log(ledger, "gpt-4", 1000, 0)["totals"]["monthly_total"] == Decimal("0.03")
    harness.now = datetime(2026, 12, 1, 6, tzinfo=UTC)  # 1 December, 01:00 local
    totals = harness.log(ledger, "gpt-4", 1000, 0)["totals"]
    assert totals["monthly_total"] == Decimal("0.03") and totals["weekly_total"] == Decimal("0.06")


def test_dst_day_in_the_ledger_counts_25_hours(harness: LedgerHarness) -> None:
    """On Paris' 25-hour day, a call in the repeated hour and one at 23:30 share the day."""
    harness.set_zone("Europe/Paris")
    harness.now = datetime(2026, 10, 24, 22, 30, tzinfo=UTC)  # 25 Oct, 00:30 CEST
    ledger = harness.open()
    harness.log(ledger, "gpt-4", 1000, 0)
    harness.now = datetime(2026, 10, 25, 0, 30, tzinfo=UTC)  # 02:30 CEST (first pass)
    harness.log(ledger, "gpt-4", 1000, 0)
    harness.now = datetime(2026, 10, 25, 22, 30, tzinfo=UTC)  # 23:30 CET, still the 25th
    totals = harness.log(ledger, "gpt-4", 1000, 0)["totals"]
    assert totals["daily_total"] == Decimal("0.09")
    harness.now = datetime(2026, 10, 25, 23, 0, tzinfo=UTC)  # midnight: the 26th
    assert harness.one(ledger, harness.call("cost.totals"))["daily_total"] == 0


def test_changing_the_time_zone_rederives_the_windows(harness: LedgerHarness) -> None:
    """When the writer moves from UTC to Tokyo, today's total is recomputed for Tokyo's day."""
    harness.now = datetime(2026, 11, 18, 10, tzinfo=UTC)
    ledger = harness.open()
    harness.log(ledger, "gpt-4", 1000, 0)  # 19:00 in Tokyo
    harness.now = datetime(2026, 11, 18, 16, tzinfo=UTC)  # 01:00 on the 19th in Tokyo
    harness.log(ledger, "gpt-4", 2000, 0)
    assert harness.one(ledger, harness.call("cost.totals"))["daily_total"] == Decimal("0.09")
    harness.change_preferences(ledger, timezone="Asia/Tokyo")
    totals = harness.one(ledger, harness.call("cost.totals"))
    assert totals["daily_total"] == Decimal("0.06") and totals["monthly_total"] == Decimal("0.09")


def test_costs_json_turns_the_day_at_local_midnight_without_any_call(
    harness: LedgerHarness,
) -> None:
    """At local midnight the ledger wakes up by itself and costs.json shows the new day at $0."""
    harness.set_zone("Europe/Paris")
    harness.now = datetime(2026, 11, 18, 22, 59, 30, tzinfo=UTC)  # 23:59:30 in Paris
    ledger = harness.open()
    harness.log(ledger, "gpt-4", 1000, 0)
    harness.tick(ledger, 1.0)
    deadline = ledger.next_deadline()
    assert deadline is not None and deadline - harness.mono <= 29.0
    harness.tick(ledger, 30.0)  # 00:00:01 on the 19th
    harness.tick(ledger, 1.0)
    document = loads_exact(harness.paths.costs.read_bytes())
    assert document["day"] == "2026-11-19" and document["daily_total"] == 0
    assert document["monthly_total"] == Decimal("0.03")


def test_month_files_are_named_by_the_utc_month() -> None:
    """00:30 on 1 December in Paris is still November in UTC, so the record goes to November's."""
    assert month_file_name(datetime(2026, 12, 1, 0, 30, tzinfo=PARIS)) == "2026-11.jsonl"
    assert month_file_name(datetime(2026, 12, 1, 0, 30, tzinfo=UTC)) == "2026-12.jsonl"
