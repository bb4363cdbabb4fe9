"""Calendar windows in the writer's time zone: day, ISO week, calendar month.

Pure functions of an instant and a `ZoneInfo`. A day runs from one local
midnight to the next (23 or 25 hours on a DST change), a week from Monday's
midnight (ISO 8601), a month from the 1st's midnight to the next 1st's - never
"24 hours after some moment" and never a 28-day month.

Operations are also counted in `BUCKET_S` (15-minute) UTC buckets. Every time
zone in use today has an offset that is a whole number of quarter hours, so a
window is exactly a run of whole buckets: a window's total is the sum of its
buckets, and changing the time zone re-derives every total from the buckets
without reading the ledger again.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Literal, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = [
    "BUCKET_S",
    "LOOKBACK_DAYS",
    "PERIODS",
    "Period",
    "Window",
    "bucket_of",
    "local_midnight",
    "system_zone",
    "window_of",
    "windows_at",
    "zone_named",
]

Period = Literal["daily", "weekly", "monthly"]
PERIODS: tuple[Period, ...] = get_args(Period)

BUCKET_S = 900
"""Width of one UTC bucket in seconds; windows start on bucket boundaries."""

LOOKBACK_DAYS = 40
"""How far back buckets are kept: the longest month, a week and any offset fit."""


@dataclass(frozen=True)
class Window:
    """One calendar window: its name and its UTC bounds `[start, end)`."""

    period: Period
    key: str
    """`2026-11-23`, `2026-W48` or `2026-11` (the ISO week's year may differ)."""
    start: datetime
    end: datetime
    first_bucket: int = field(init=False, compare=False)
    """The first bucket inside the window."""
    end_bucket: int = field(init=False, compare=False)
    """The first bucket after the window."""

    def __post_init__(self) -> None:
        # Computed once: the ledger compares every operation with these.
        object.__setattr__(self, "first_bucket", bucket_of(self.start))
        object.__setattr__(self, "end_bucket", bucket_of(self.end))

    def hours(self) -> float:
        """Its length in hours (24 on most days, 23 or 25 on a DST change)."""
        return (self.end - self.start).total_seconds() / 3600


def bucket_of(instant: datetime) -> int:
    """The UTC bucket holding `instant`."""
    return int(instant.timestamp()) // BUCKET_S


def local_midnight(day: date, zone: ZoneInfo) -> datetime:
    """The UTC instant at which `day` begins in `zone`.

    `fold=0` picks the offset in force before a transition: when midnight
    falls in a spring-forward gap, that is the first instant that exists on
    the new day; when midnight repeats, it is the first of the two.
    """
    return datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)


def _month_after(day: date) -> date:
    return date(day.year + 1, 1, 1) if day.month == 12 else date(day.year, day.month + 1, 1)


def window_of(period: Period, instant: datetime, zone: ZoneInfo) -> Window:
    """The `period` window of `zone` that contains `instant`."""
    local = instant.astimezone(zone).date()
    if period == "daily":
        first, after, key = local, local + timedelta(days=1), local.isoformat()
    elif period == "weekly":
        first = local - timedelta(days=local.weekday())
        after = first + timedelta(days=7)
        iso = first.isocalendar()
        key = f"{iso.year}-W{iso.week:02d}"
    else:
        first = local.replace(day=1)
        after = _month_after(first)
        key = f"{first.year}-{first.month:02d}"
    return Window(period, key, local_midnight(first, zone), local_midnight(after, zone))


def windows_at(instant: datetime, zone: ZoneInfo) -> dict[Period, Window]:
    """The day, week and month that contain `instant`."""
    return {period: window_of(period, instant, zone) for period in PERIODS}


def zone_named(name: str | None) -> ZoneInfo:
    """The zone `name`, or the system's when None (never raises for None)."""
    if name is None:
        return system_zone()
    return ZoneInfo(name)


def system_zone() -> ZoneInfo:
    """The system's time zone as a full IANA zone (with its DST rules).

    `datetime.now().astimezone()` would give a fixed offset that is wrong half
    the year, so: `$TZ` if it names a zone, else the zone `/etc/localtime`
    links to, else that file's rules, else UTC.
    """
    name = os.environ.get("TZ", "").lstrip(":")
    if name:
        with contextlib.suppress(ZoneInfoNotFoundError, ValueError, OSError):
            return ZoneInfo(name)
    localtime = Path("/etc/localtime")
    with contextlib.suppress(OSError, ZoneInfoNotFoundError, ValueError):
        target = str(localtime.resolve())
        marker = "zoneinfo/"
        if marker in target:
            return ZoneInfo(target.split(marker, 1)[1])
    with contextlib.suppress(OSError, ValueError), localtime.open("rb") as handle:
        return ZoneInfo.from_file(handle, key="localtime")
    return ZoneInfo("UTC")
