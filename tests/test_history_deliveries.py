"""The archiver takes events as delivered bytes exactly as it takes them read as `Event`s."""

from __future__ import annotations

import errno
import itertools
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from protocol.base import utc_text
from protocol.codec import dumps, dumps_line
from protocol.history_journal import decode_history_journal_line
from protocol.names import WorkerName
from services.cost.oplines import written_call
from services.cost.rates import Price
from services.cost.records import op_view
from services.history.journal import JOURNAL_NAME
from services.history_archiver import HistoryArchiver
from services.inprocess import make_context
from services.runtime.delivery import read_event
from services.runtime.eventbus import stamp_event
from services.runtime.paths import ProjectPaths

SESSION = "2026-11-30-210000"
_seq = itertools.count()


def archiver(project: Path) -> HistoryArchiver:
    """A started archiver of `SESSION` in `project`."""
    ctx, _ = make_context(project, WorkerName.HISTORY_ARCHIVER, session_id=SESSION)
    worker = HistoryArchiver(ctx)
    worker.start()
    return worker


def published(topic: str, data: Any, *, source: bytes) -> tuple[int, bytes, bytes]:
    """A delivery as the supervisor stamps a worker's event (`EventBus.fan_out`)."""
    seq = next(_seq)
    body = stamp_event(topic.encode(), source, seq, utc_text().encode(), dumps(data))
    return seq, topic.encode(), body


def logged(request_id: str, cost: str | None, *, session_id: str = SESSION) -> Any:
    """A `cost.logged` delivery of one call, its data as the cost ledger writes it."""
    price = None if cost is None else Price(cost=Decimal(cost), source="g@1", model_id="m")
    view = op_view(
        request_id=request_id,
        ts=datetime(2026, 11, 30, 21, 0, tzinfo=UTC),
        session_id=session_id,
        operation="scene_generation",
        model="claude-sonnet-3.5",
        input_tokens=12450,
        output_tokens=3200,
        price=price,
    )
    event = written_call(view, totals={"session_total": Decimal(0)}, warning=None).event
    return published("cost.logged", event, source=b"cost_ledger")


def journal_records(project: Path) -> list[Any]:
    """The journal's records after its checkpoint, each without its time of writing."""
    path = ProjectPaths.of(project).archive_dir / JOURNAL_NAME
    records = []
    for line in path.read_bytes().splitlines(keepends=True)[1:]:
        record = decode_history_journal_line(line)
        assert dumps_line(record) == line  # the journal's own shape, byte for byte
        records.append(record.model_dump(exclude={"ts"}))
    return records


def mixed_batch() -> list[tuple[int, bytes, bytes]]:
    """Costs and files interleaved, with a re-delivery, a repeated id, another
    session's call, an operation in an older form, and a frame that is no event."""
    first = logged("r1", "0.15")
    odd = logged("r4", "0.5")
    return [
        published("file.created", {"path": "manuscript/a.md"}, source=b"file_watcher"),
        first,
        logged("r2", None),
        published("file.deleted", {"path": "manuscript/a.md"}, source=b"file_watcher"),
        first,  # delivered again
        logged("r1", "0.15"),  # the same call in a new envelope
        logged("r3", "1", session_id="another-session"),
        (odd[0], odd[1], odd[2].replace(b'"cost":0.5,', b'"cost":0.50,', 1)),
        (99, b"cost.logged", b"not json"),
        published("file.modified", {"path": "manuscript/b.md"}, source=b"file_watcher"),
    ]


def test_delivered_bytes_make_the_same_entry_and_journal_as_events(tmp_path: Path) -> None:
    """Applied from their bytes or read as Events, a batch gives the same entry and records."""
    quick, general = archiver(tmp_path / "quick"), archiver(tmp_path / "general")
    batch = mixed_batch()
    assert quick.on_deliveries(batch) == [True] * len(batch)
    readable = [read_event(topic, body) for _, topic, body in batch if body != b"not json"]
    assert general.on_events(readable) == [True] * len(readable)
    entry = quick.live.to_entry()
    assert entry.model_dump(exclude={"end_time", "start_time", "duration_minutes"}) == (
        general.live.to_entry().model_dump(exclude={"end_time", "start_time", "duration_minutes"})
    )
    assert entry.total_cost == Decimal("0.65")
    assert entry.operations_count == {"scene_generation": 3}
    assert entry.unpriced_operations == 1
    assert entry.files_created == [] and entry.files_modified == ["manuscript/b.md"]
    assert quick.duplicates == general.duplicates == 2
    assert journal_records(tmp_path / "quick") == journal_records(tmp_path / "general")


def test_a_batch_taken_from_bytes_survives_a_kill(tmp_path: Path) -> None:
    """A new incarnation replays the journal into the same entry, and re-deliveries count once."""
    worker = archiver(tmp_path)
    batch = mixed_batch()
    worker.on_deliveries(batch)
    before = worker.live.to_entry()
    again = archiver(tmp_path)  # the first one was killed: no stop, no history.json rewrite
    assert again.live.to_entry().total_cost == before.total_cost
    assert again.live.to_entry().operations_count == before.operations_count
    assert again.on_deliveries(batch) == [True] * len(batch)  # delivered again, unacknowledged
    assert again.live.to_entry().total_cost == Decimal("0.65")
    topics = [record["topic"] for record in journal_records(tmp_path)]
    assert topics.count("cost.logged") == 3  # r1, r2 and r4, each once
    assert len(topics) == 6


def test_a_batch_the_journal_refused_is_acknowledged_for_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the journal cannot take a batch of delivered costs, none of it is acknowledged."""
    worker = archiver(tmp_path)

    def full(records: Any, **_options: Any) -> None:
        raise OSError(errno.ENOSPC, "No space left on device (simulated)")

    assert worker.journal is not None
    monkeypatch.setattr(worker.journal, "append_many", full)
    batch = [logged("r1", "0.15"), logged("r2", "0.05")]
    assert worker.on_deliveries(batch) == [False, False]
    monkeypatch.undo()
    again = archiver(tmp_path)  # died before the disk came back: delivered again
    assert again.on_deliveries(batch) == [True, True]
    assert again.live.to_entry().total_cost == Decimal("0.20")


def test_a_cost_delivered_after_stop_is_not_acknowledged(tmp_path: Path) -> None:
    """With its journal closed the archiver takes no event, so none is acknowledged unwritten."""
    worker = archiver(tmp_path)
    worker.stop()
    assert worker.on_deliveries([logged("r1", "0.15")]) == [False]
