"""The archiver's journal lines: written as their models would write them."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import json_values, names, utc_timestamps

from protocol.codec import dumps_line
from protocol.history_journal import (
    HistoryEnd,
    HistoryEvent,
    HistoryResume,
    decode_history_journal_line,
)
from services.history.journal import LiveJournal, event_line

AT = datetime(2026, 11, 30, 21, 0, 0, 123456, tzinfo=UTC)


def test_event_lines_are_the_bytes_of_their_models(tmp_path: Path) -> None:
    """Every record the journal appends reads back byte for byte as the model's own line."""
    operation = {
        "timestamp": "2026-11-30T20:59:59.5Z",
        "operation": "scene_generation",
        "model": "claude-sonnet-3.5",
        "input_tokens": 12450,
        "output_tokens": 3200,
        "cost": Decimal("0.085350"),
        "priced": True,
        "request_id": "r-1",
    }
    records: list[HistoryEvent | HistoryResume | HistoryEnd] = [
        HistoryEvent(
            key="cost_ledger:7:t", topic="cost.logged", data={"operation": operation}, ts=AT
        ),
        HistoryEvent(key="file_watcher:3:t", topic="file.created", data={"path": "a.md"}, ts=AT),
        HistoryEvent.model_validate(
            {"key": "k", "topic": "file.deleted", "data": {"path": "b.md"}, "ts": AT, "newer": 1}
        ),
        HistoryResume(ts=AT),
        HistoryEnd(ts=AT),
    ]
    journal = LiveJournal(tmp_path)
    journal.append_many(records, fsync=False)
    journal.close()
    assert (tmp_path / "live.jsonl").read_bytes() == b"".join(dumps_line(r) for r in records)


@settings(max_examples=200)
@given(
    key=names,
    topic=names,
    data=st.dictionaries(names, json_values(), max_size=3),
    ts=utc_timestamps(),
)
def test_an_event_line_without_its_model_is_the_models_line(
    key: str, topic: str, data: dict[str, Any], ts: datetime
) -> None:
    """The archiver's per-event line (no model built) is the bytes `HistoryEvent` writes."""
    model = HistoryEvent(key=key, topic=topic, data=data, ts=ts)
    assert dumps_line(event_line(key, topic, data, ts)) == dumps_line(model)
    assert decode_history_journal_line(dumps_line(event_line(key, topic, data, ts))) == model
