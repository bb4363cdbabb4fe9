"""A project with 40 days of real ledger and history, for the report's tests.

Driven through the real workers in process, with a settable clock: the cost
ledger (`LedgerHarness` from the ledger's own tests) writes every `op` line
and the history archiver turns the ledger's `cost.logged` events and file
events into history entries. Nothing here shapes a ledger line by hand;
the expected figures are summed afterwards from the lines the ledger wrote.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from itertools import count
from pathlib import Path
from typing import Any

import pytest
from test_cost_ledger import LedgerHarness

from protocol.envelopes import Event
from protocol.names import WorkerName
from services.history_archiver import HistoryArchiver
from services.inprocess import make_context

MODELS = ("claude-sonnet-3.5", "claude-opus-3", "gpt-4o", "gemini-flash")
OPERATIONS = ("scene_generation", "enhancement", "analysis", "scoring")
DAILY_LIMIT = Decimal(6)


@dataclass(frozen=True)
class GeneratedProject:
    """What was written, summed from the ledger's own lines."""

    project: Path
    by_day: dict[date, Decimal]
    by_model: dict[str, Decimal]
    by_operation: dict[str, Decimal]
    calls: int
    sessions: list[str]
    generated_s: float


@contextmanager
def _clock_at(monkeypatch: pytest.MonkeyPatch, holder: list[datetime]) -> Iterator[None]:
    """Point the archiver's clock (`utc_now`, which stamps its journal) at `holder[0]`."""
    with monkeypatch.context() as patch:
        patch.setattr("services.history_archiver.utc_now", lambda: holder[0])
        patch.setattr("services.history.live.utc_now", lambda: holder[0])
        yield


def write_days(
    project: Path, monkeypatch: pytest.MonkeyPatch, *, days: int = 40, seed: int = 12
) -> GeneratedProject:
    """`days` days of writing sessions ending now (UTC), some days idle, a few over the limit."""
    import time

    started = time.perf_counter()
    rng = random.Random(seed)
    now = datetime.now(UTC)
    harness = LedgerHarness(project, now=now - timedelta(days=days))  # zone: UTC
    seq = count()
    sessions: list[str] = []
    first = now.date() - timedelta(days=days - 1)
    budget_set = False
    for offset in range(days):
        day = first + timedelta(days=offset)
        if rng.random() < 0.2 and day != now.date():
            continue  # an idle day: its bar is there, at $0
        begin = datetime(day.year, day.month, day.day, 9, tzinfo=UTC) + timedelta(
            minutes=rng.randint(0, 240)
        )
        if day == now.date():
            begin = max(
                datetime(day.year, day.month, day.day, tzinfo=UTC), now - timedelta(hours=1)
            )
        session_id = f"{day.isoformat()}-{begin:%H%M%S}"
        clock = [begin]
        harness.now = begin
        ledger = harness.open(session_id)
        if not budget_set:  # through the ledger's own op, as a user would
            harness.one(ledger, harness.call("cost.set_budget", daily_limit=str(DAILY_LIMIT)))
            budget_set = True
        with _clock_at(monkeypatch, clock):
            ctx, _ = make_context(project, WorkerName.HISTORY_ARCHIVER, session_id=session_id)
            archiver = HistoryArchiver(ctx)
            archiver.start()
            heavy = rng.random() < 0.15
            harness.events.clear()
            for _ in range(rng.randint(3, 25)):
                harness.log(
                    ledger,
                    rng.choice(MODELS[:2] if heavy else MODELS),
                    rng.randint(500, 90_000 if heavy else 30_000),
                    rng.randint(50, 8_000),
                    operation=rng.choice(OPERATIONS),
                )
                harness.now = min(harness.now + timedelta(seconds=rng.randint(20, 300)), now)
                clock[0] = harness.now
            for topic, data in harness.events:
                if topic == "cost.logged":
                    at = datetime.fromisoformat(data["operation"]["timestamp"])
                    archiver.on_event(_event(topic, data, next(seq), "cost_ledger", at))
            for chapter in range(rng.randint(0, 3)):
                path = {"path": f"manuscript/ch{chapter + 1}.md"}
                archiver.on_event(
                    _event("file.modified", path, next(seq), "file_watcher", harness.now)
                )
            clock[0] = harness.now
            archiver.stop()
        ledger.stop()
        ledger.close()
        sessions.append(session_id)
    return _summed(project, harness, sessions, time.perf_counter() - started)


def _event(topic: str, data: dict[str, Any], seq: int, source: str, at: datetime) -> Event:
    return Event(topic=topic, source=source, seq=seq, ts=at, data=data)


def _summed(
    project: Path, harness: LedgerHarness, sessions: list[str], elapsed: float
) -> GeneratedProject:
    by_day: dict[date, Decimal] = defaultdict(Decimal)
    by_model: dict[str, Decimal] = defaultdict(Decimal)
    by_operation: dict[str, Decimal] = defaultdict(Decimal)
    operations = harness.records("op")
    for record in operations:
        cost = Decimal(str(record["cost"]))  # loads_exact: the line's own digits
        by_day[datetime.fromisoformat(record["ts"]).astimezone(UTC).date()] += cost
        by_model[record["model"]] += cost
        by_operation[record["operation"]] += cost
    return GeneratedProject(
        project,
        dict(by_day),
        dict(by_model),
        dict(by_operation),
        len(operations),
        sessions,
        elapsed,
    )
