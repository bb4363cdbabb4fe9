"""The history archiver in-process: entries on disk, sessions ending and interrupted, archiving."""

from __future__ import annotations

import errno
import gzip
import itertools
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from config import load_settings
from protocol.codec import dumps_pretty, loads_exact
from protocol.envelopes import Event
from protocol.errors import ErrorCode, ProtocolError
from protocol.history import HistoryDocument, HistoryEntry
from protocol.names import Op, WorkerName
from protocol.ops import parse_args
from services.history.archive import append_entries
from services.history_archiver import HistoryArchiver
from services.inprocess import Published, make_context, pump
from services.readonly.history import read_archive, read_history
from services.runtime.worker import Call
from services.store import FileOps

_seq = itertools.count()


def event(topic: str, data: dict[str, Any], *, source: str = "file_watcher") -> Event:
    """A published event as the supervisor delivers it."""
    return Event(topic=topic, source=source, seq=next(_seq), ts=datetime.now(UTC), data=data)


def cost(request_id: str, amount: str | None, session_id: str | None = None) -> Event:
    """A `cost.logged` event for one operation."""
    operation = {
        "timestamp": "2026-11-23T15:30:00Z",
        "operation": "scene_generation",
        "model": "claude-sonnet-3.5",
        "input_tokens": 12450,
        "output_tokens": 3200,
        "cost": None if amount is None else Decimal(amount),
        "priced": amount is not None,
        "session_id": session_id,
        "request_id": request_id,
    }
    return event("cost.logged", {"operation": operation, "totals": {}}, source="cost_ledger")


def archiver(
    project: Path, session_id: str, *, overrides: dict[str, Any] | None = None, **options: Any
) -> tuple[HistoryArchiver, Published]:
    """A started archiver for `session_id`."""
    ctx, published = make_context(
        project,
        WorkerName.HISTORY_ARCHIVER,
        session_id=session_id,
        settings=load_settings(overrides) if overrides else None,
        options=options,
    )
    worker = HistoryArchiver(ctx)
    worker.start()
    return worker, published


def on_disk(project: Path) -> dict[str, HistoryEntry]:
    """history.json (or .gz) by session id."""
    from services.runtime.paths import ProjectPaths

    return {entry.session_id: entry for entry in read_history(ProjectPaths.of(project)).sessions}


def history_list(worker: HistoryArchiver, **args: Any) -> list[HistoryEntry]:
    """Answer `history.list` as the host would call it."""
    result = worker.handle_batch(
        [Call(id="c1", op=Op.HISTORY_LIST, args=parse_args("history.list", args))]
    )
    assert isinstance(result[0], list)
    return result[0]


def test_start_records_an_active_entry(tmp_path: Path) -> None:
    """As soon as the archiver is ready, history.json shows the session as active."""
    archiver(tmp_path, "2026-11-23-143022")
    entry = on_disk(tmp_path)["2026-11-23-143022"]
    assert entry.status == "active"
    assert entry.end_time is not None


def test_events_reach_history_json_soon(tmp_path: Path) -> None:
    """Files and operations of the session appear in history.json within a second, exactly."""
    worker, published = archiver(tmp_path, "s1")
    worker.on_event(event("file.modified", {"path": "manuscript/ch5.md"}))
    worker.on_event(event("file.created", {"path": "output/reports/voice.md"}))
    worker.on_event(cost("r1", "0.15"))
    worker.on_event(cost("r2", "0.00000007"))
    assert pump(worker, lambda: on_disk(tmp_path)["s1"].total_cost > 0, timeout_s=2.0)
    entry = on_disk(tmp_path)["s1"]
    assert entry.files_modified == ["manuscript/ch5.md"]
    assert entry.files_created == ["output/reports/voice.md"]
    assert entry.total_cost == Decimal("0.15000007")
    assert entry.operations_count == {"scene_generation": 2}
    assert ("history.updated", {"session_id": "s1", "status": "active"}) in published.events


def test_duplicates_are_applied_once(tmp_path: Path) -> None:
    """A re-delivered envelope, or the same request id in a new envelope, counts once."""
    worker, _ = archiver(tmp_path, "s1")
    operation = cost("r1", "0.15")
    worker.on_event(operation)
    worker.on_event(operation)
    worker.on_event(cost("r1", "0.15"))
    assert worker.live.to_entry().total_cost == Decimal("0.15")
    assert worker.duplicates == 2


def test_bad_event_data_is_ignored_not_fatal(tmp_path: Path) -> None:
    """An event with a path escaping the project or a malformed operation is skipped."""
    worker, _ = archiver(tmp_path, "s1")
    worker.on_event(event("file.created", {"path": "../../etc/passwd"}))
    worker.on_event(event("cost.logged", {"operation": {"cost": "lots"}}))
    worker.on_event(cost("r-other", "1", session_id="another-session"))
    entry = worker.live.to_entry()
    assert (entry.files_created, entry.total_cost, entry.operations_count) == ([], 0, {})


def _refuse_appends(worker: HistoryArchiver, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the archiver's journal fail like a full disk."""

    def full(record: Any, **_options: Any) -> None:
        raise OSError(errno.ENOSPC, "No space left on device (simulated)")

    assert worker.journal is not None
    monkeypatch.setattr(worker.journal, "append", full)
    monkeypatch.setattr(worker.journal, "append_many", full)


def test_an_event_the_journal_refused_is_not_acknowledged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An event that could not be journaled is left unacknowledged, so a restart gets it again."""
    worker, _ = archiver(tmp_path, "s1")
    _refuse_appends(worker, monkeypatch)
    operation = cost("r1", "0.15")
    with pytest.raises(OSError, match="waits for the journal"):
        worker.on_event(operation)  # the host does not ACK: the supervisor keeps the event
    monkeypatch.undo()
    again, _ = archiver(tmp_path, "s1")  # the archiver died before the disk came back
    assert again.live.to_entry().total_cost == 0
    again.on_event(operation)  # delivered again to the new incarnation
    again.on_event(operation)
    assert again.live.to_entry().total_cost == Decimal("0.15")


def test_events_that_arrive_together_cost_one_fsync_and_survive_a_restart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch of events is journaled with one append (one fsync) and all are kept."""
    worker, _ = archiver(tmp_path, "s1")
    assert worker.journal is not None
    calls: list[tuple[int, bool]] = []
    real = worker.journal.append_many

    def counting(records: list[dict[str, Any]], *, fsync: bool = True) -> None:
        calls.append((len(records), fsync))
        real(records, fsync=fsync)

    monkeypatch.setattr(worker.journal, "append_many", counting)
    batch = [event("file.created", {"path": f"manuscript/{n}.md"}) for n in range(10)]
    assert worker.on_events(batch) == [True] * 10
    assert calls == [(10, True)]
    again, _ = archiver(tmp_path, "s1")  # killed right after: the journal has all ten
    assert len(again.live.to_entry().files_created) == 10


def test_cost_events_alone_are_written_without_waiting_for_the_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch of only cost.logged events skips the fsync (the ledger holds them durably)."""
    worker, _ = archiver(tmp_path, "s1")
    assert worker.journal is not None
    calls: list[bool] = []
    real = worker.journal.append_many

    def counting(records: list[dict[str, Any]], *, fsync: bool = True) -> None:
        calls.append(fsync)
        real(records, fsync=fsync)

    monkeypatch.setattr(worker.journal, "append_many", counting)
    assert worker.on_events([cost("r1", "0.15"), cost("r2", "0.05")]) == [True, True]
    assert calls == [False]
    again, _ = archiver(tmp_path, "s1")  # a kill -9 keeps the page cache
    assert again.live.to_entry().total_cost == Decimal("0.20")


def test_a_file_event_that_waited_for_the_disk_is_still_fsynced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file event kept through a failed append is fsynced when a later cost batch flushes it."""
    worker, _ = archiver(tmp_path, "s1")
    assert worker.journal is not None
    _refuse_appends(worker, monkeypatch)
    assert worker.on_events([event("file.created", {"path": "manuscript/a.md"})]) == [False]
    monkeypatch.undo()
    calls: list[tuple[int, bool]] = []
    real = worker.journal.append_many

    def counting(records: list[dict[str, Any]], *, fsync: bool = True) -> None:
        calls.append((len(records), fsync))
        real(records, fsync=fsync)

    monkeypatch.setattr(worker.journal, "append_many", counting)
    assert worker.on_events([cost("r1", "0.15")]) == [True]
    assert worker.on_events([cost("r2", "0.05")]) == [True]
    assert calls == [(2, True), (1, False)]


def test_a_cost_is_journaled_as_a_subscriber_reads_it(tmp_path: Path) -> None:
    """The journal keeps a cost's operation in its JSON form: UTC `Z` time, exact digits."""
    from services.history.journal import JOURNAL_NAME
    from services.runtime.paths import ProjectPaths

    worker, _ = archiver(tmp_path, "s1")
    sent = cost("r1", "0.1500", session_id="s1")
    sent.data["operation"]["timestamp"] = "2026-11-23T16:30:00.250000+01:00"
    extra = cost("r2", "5", session_id="s1")
    extra.data["operation"]["vendor_note"] = {"tier": Decimal("1.50")}  # a newer ledger's field
    assert worker.on_events([sent, extra]) == [True, True]
    journal = ProjectPaths.of(tmp_path).archive_dir / JOURNAL_NAME
    lines = [loads_exact(line) for line in journal.read_bytes().splitlines()]
    kept = {
        line["data"]["operation"]["request_id"]: line["data"]["operation"]
        for line in lines
        if line.get("topic") == "cost.logged"
    }
    assert kept["r1"]["timestamp"] == "2026-11-23T15:30:00.250000Z"
    assert kept["r1"]["cost"] == Decimal("0.15") and b"0.15," in journal.read_bytes()
    assert kept["r2"]["cost"] == 5 and kept["r2"]["vendor_note"] == {"tier": Decimal("1.5")}
    again, _ = archiver(tmp_path, "s1")  # replayed from that journal
    assert again.live.to_entry().total_cost == Decimal("5.15")


def test_a_batch_the_journal_refused_is_acknowledged_for_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When a batch cannot be journaled, no event of it is acknowledged (all come again)."""
    worker, _ = archiver(tmp_path, "s1")
    _refuse_appends(worker, monkeypatch)
    batch = [event("file.created", {"path": f"manuscript/{n}.md"}) for n in range(3)]
    assert worker.on_events(batch) == [False] * 3


def test_a_refused_journal_append_is_written_once_the_disk_recovers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Events kept in memory while the disk failed reach the journal, in order, at the retry."""
    worker, _ = archiver(tmp_path, "s1")
    _refuse_appends(worker, monkeypatch)
    for n in range(2):
        with pytest.raises(OSError):
            worker.on_event(event("file.created", {"path": f"manuscript/{n}.md"}))
    assert worker.health()["unjournaled"] == 2
    monkeypatch.undo()
    worker.tick(time.monotonic() + worker.timing.retry_journal_s)
    assert worker.health()["unjournaled"] == 0
    again, _ = archiver(tmp_path, "s1")
    assert again.live.to_entry().files_created == ["manuscript/0.md", "manuscript/1.md"]


def test_a_failing_history_save_is_retried_later_without_sleeping(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """history.json failing to save never sleeps on the main loop; a later tick writes it."""
    worker, _ = archiver(tmp_path, "s1")
    worker.on_event(cost("r1", "0.15"))
    naps: list[float] = []
    monkeypatch.setattr(time, "sleep", naps.append)

    def refuse(self: FileOps, source: Path, target: Path) -> None:
        raise OSError(errno.EIO, "Input/output error (simulated)")

    monkeypatch.setattr(FileOps, "replace", refuse)
    worker.tick(time.monotonic() + worker.timing.min_save_gap_s)
    assert worker.save_failures == 1 and [nap for nap in naps if nap > 0] == []
    monkeypatch.undo()
    worker.tick(time.monotonic() + 2 * worker.timing.min_save_gap_s)
    assert on_disk(tmp_path)["s1"].total_cost == Decimal("0.15")


def test_clean_stop_ends_the_session(tmp_path: Path) -> None:
    """A clean stop finalizes the entry as ended, with its end time and duration."""
    worker, _ = archiver(tmp_path, "s1")
    worker.on_event(cost("r1", "0.15"))
    worker.stop()
    entry = on_disk(tmp_path)["s1"]
    assert entry.status == "ended"
    assert entry.end_time is not None and entry.end_time >= entry.start_time
    assert entry.total_cost == Decimal("0.15")


def test_a_crashed_session_is_interrupted_at_its_last_known_time(tmp_path: Path) -> None:
    """After a crash, the next session's start marks the old one interrupted, nothing lost."""
    first, _ = archiver(tmp_path, "s1")
    first.on_event(event("file.modified", {"path": "manuscript/ch5.md"}))
    first.on_event(cost("r1", "0.15"))
    last_known = datetime.now(UTC)
    # no stop(): the process died
    second, _ = archiver(tmp_path, "s2")
    old = on_disk(tmp_path)["s1"]
    assert old.status == "interrupted"
    assert old.end_time is not None and old.end_time <= last_known + timedelta(seconds=1)
    assert old.files_modified == ["manuscript/ch5.md"]
    assert old.total_cost == Decimal("0.15")
    assert on_disk(tmp_path)["s2"].status == "active"
    assert [entry.session_id for entry in history_list(second)] == ["s2", "s1"]


def test_a_restart_of_the_same_session_continues_it(tmp_path: Path) -> None:
    """A worker restart (same session id) continues the entry: active, nothing lost or doubled."""
    first, _ = archiver(tmp_path, "s1")
    first.on_event(cost("r1", "0.15"))
    first.on_event(event("file.created", {"path": "manuscript/new.md"}))
    again, _ = archiver(tmp_path, "s1")
    again.on_event(cost("r1", "0.15"))  # re-delivered after the restart
    again.on_event(cost("r2", "0.05"))
    entry = again.live.to_entry()
    assert entry.status == "active"
    assert entry.total_cost == Decimal("0.20")
    assert entry.files_created == ["manuscript/new.md"]


def test_resuming_an_ended_session_makes_it_active_again(tmp_path: Path) -> None:
    """`start --resume` of a cleanly stopped session continues the same entry."""
    first, _ = archiver(tmp_path, "s1")
    first.on_event(cost("r1", "0.15"))
    first.stop()
    again, _ = archiver(tmp_path, "s1")
    assert on_disk(tmp_path)["s1"].status == "active"
    again.stop()
    archiver(tmp_path, "s2")
    assert on_disk(tmp_path)["s1"].status == "ended"
    assert on_disk(tmp_path)["s1"].total_cost == Decimal("0.15")


def test_other_active_entries_are_interrupted(tmp_path: Path) -> None:
    """Any other entry still marked active (a crash long ago) is finalized as interrupted."""
    start = datetime(2026, 1, 1, 10, tzinfo=UTC)
    stale = HistoryEntry(session_id="old", start_time=start, end_time=start + timedelta(minutes=42))
    (tmp_path / ".session").mkdir()
    (tmp_path / ".session" / "history.json").write_bytes(
        dumps_pretty(HistoryDocument(sessions=[stale]))
    )
    archiver(tmp_path, "s1")
    old = on_disk(tmp_path)["old"]
    assert (old.status, old.end_time, old.duration_minutes) == ("interrupted", stale.end_time, 42.0)


def test_stop_after_the_supervisor_died_is_an_interruption(tmp_path: Path) -> None:
    """If the supervisor is gone when the worker stops, the session is not 'ended'."""
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    worker, _ = archiver(tmp_path, "s1", supervisor_pid=dead.pid)
    worker.stop()
    assert on_disk(tmp_path)["s1"].status == "active"
    archiver(tmp_path, "s2")
    assert on_disk(tmp_path)["s1"].status == "interrupted"


def test_heartbeat_keeps_the_end_time_fresh(tmp_path: Path) -> None:
    """While a session runs, its end time on disk follows it (so a crash keeps a true end)."""
    worker, _ = archiver(tmp_path, "s1", overrides={"autosave": {"interval_s": 0.05}})
    before = on_disk(tmp_path)["s1"].end_time
    assert before is not None
    assert pump(
        worker, lambda: (on_disk(tmp_path)["s1"].end_time or before) > before, timeout_s=2.0
    )


def test_session_recovered_extends_the_interrupted_end(tmp_path: Path) -> None:
    """`session.recovered` with a later last save moves the interrupted entry's end forward."""
    archiver(tmp_path, "s1")
    second, _ = archiver(tmp_path, "s2")
    later = datetime.now(UTC) + timedelta(minutes=5)
    second.on_event(
        event(
            "session.recovered",
            {
                "session_id": "s2",
                "resumed": False,
                "interrupted_session_id": "s1",
                "last_save_at": later,
            },
            source="session_writer",
        )
    )
    assert on_disk(tmp_path)["s1"].end_time == later


def test_twenty_five_sessions_keep_twenty_and_archive_five(tmp_path: Path) -> None:
    """history.json keeps the newest 20; the 5 oldest move to the archive, none lost."""
    ids = [f"2026-11-{day:02d}-100000" for day in range(1, 26)]
    worker = None
    for number, session_id in enumerate(ids):
        worker, _ = archiver(tmp_path, session_id)
        worker.on_event(cost(f"r{number}", "0.10"))
        worker.stop()
    assert worker is not None
    kept = on_disk(tmp_path)
    archive = read_archive(tmp_path / ".session" / "archive")
    assert sorted(kept) == ids[5:]
    assert [entry.session_id for entry in archive.entries] == list(reversed(ids[:5]))
    assert all(entry.total_cost == Decimal("0.10") for entry in archive.entries)
    assert [e.session_id for e in history_list(worker)] == list(reversed(ids[5:]))
    everything = history_list(worker, limit=30)
    assert [e.session_id for e in everything] == list(reversed(ids))


def test_a_session_in_both_places_is_listed_once(tmp_path: Path) -> None:
    """A crash between archiving and rewriting history.json never shows a session twice."""
    worker, _ = archiver(tmp_path, "s1")
    worker.stop()
    entry = on_disk(tmp_path)["s1"]
    archive_dir = tmp_path / ".session" / "archive"
    append_entries(archive_dir, [entry])
    append_entries(archive_dir, [entry])  # archived twice by a repeated crash
    worker, _ = archiver(tmp_path, "s2")
    assert [e.session_id for e in history_list(worker, limit=10)] == ["s2", "s1"]


def test_a_torn_archive_member_is_cut_before_appending(tmp_path: Path) -> None:
    """A half-written gzip member (crash mid-append) never hides later sessions."""
    archive_dir = tmp_path / "archive"
    start = datetime(2026, 3, 1, tzinfo=UTC)
    one = HistoryEntry(session_id="one", start_time=start)
    two = HistoryEntry(session_id="two", start_time=start + timedelta(days=1))
    append_entries(archive_dir, [one])
    path = archive_dir / "sessions-2026.jsonl.gz"
    with path.open("ab") as handle:
        handle.write(gzip.compress(b'{"session_id": "torn"}\n')[:15])
    assert [e.session_id for e in read_archive(archive_dir).entries] == ["one"]
    append_entries(archive_dir, [two])
    assert [e.session_id for e in read_archive(archive_dir).entries] == ["two", "one"]
    assert gzip.decompress(path.read_bytes()).count(b"\n") == 2


def test_large_history_is_compressed_and_read_either_way(tmp_path: Path) -> None:
    """Past the size limit history.json becomes history.json.gz; readers and the op read both."""
    small = {"history": {"compress_above_bytes": 1024}}
    worker, _ = archiver(tmp_path, "s1", overrides=small)
    for n in range(60):
        worker.on_event(event("file.created", {"path": f"manuscript/chapter-{n:03d}.md"}))
    worker.stop()
    session = tmp_path / ".session"
    assert (session / "history.json.gz").exists()
    assert not (session / "history.json").exists()
    assert len(on_disk(tmp_path)["s1"].files_created) == 60
    worker, _ = archiver(tmp_path, "s2", overrides=small)
    assert [e.session_id for e in history_list(worker)] == ["s2", "s1"]
    worker.stop()
    archiver(tmp_path, "s3")  # default limit (1 MiB): back to plain JSON
    assert (session / "history.json").exists()
    assert not (session / "history.json.gz").exists()
    assert sorted(on_disk(tmp_path)) == ["s1", "s2", "s3"]


def test_an_unreadable_history_is_moved_aside_and_the_live_entry_survives(tmp_path: Path) -> None:
    """A corrupt history.json is kept aside (never overwritten); the journal rebuilds the entry."""
    worker, _ = archiver(tmp_path, "s1")
    worker.on_event(cost("r1", "0.15"))
    history = tmp_path / ".session" / "history.json"
    history.write_text('{"sessions": [')
    again, _ = archiver(tmp_path, "s1")
    assert again.problem is not None
    aside = list((tmp_path / ".session").glob("history.json.corrupt-*"))
    assert len(aside) == 1 and aside[0].read_text() == '{"sessions": ['
    assert on_disk(tmp_path)["s1"].total_cost == Decimal("0.15")


def _ledger_writes(project: Path, session_id: str, calls: list[tuple[str, str, int]]) -> list[Any]:
    """Log `(request id, model, input tokens)` calls with the real cost ledger; its events."""
    from fake_context import make_harness

    from services.cost_ledger import CostLedger

    harness = make_harness(project, session_id=session_id, name=WorkerName.COST_LEDGER)
    ledger = CostLedger(harness.ctx)  # genai-prices' offline table prices these models
    ledger.start()
    for request_id, model, tokens in calls:
        args = {"operation": "scene_generation", "model": model, "input_tokens": tokens}
        harness.call(ledger, Op.COST_LOG, {**args, "output_tokens": 100}, id=request_id)
    ledger.stop()
    return harness.published("cost.logged")


def test_ledger_operations_never_delivered_are_counted_once(tmp_path: Path) -> None:
    """At start, the live session's operations found only in the real ledger are added, once."""
    _ledger_writes(tmp_path, "s0", [("r9", "claude-sonnet-3.5", 1000)])  # another session's
    worker, _ = archiver(tmp_path, "s1")
    logged = _ledger_writes(
        tmp_path,
        "s1",
        [("r1", "claude-sonnet-3.5", 1000), ("r2", "gpt-4", 2000), ("r3", "gpt-9", 10)],
    )
    delivered = Event(
        topic="cost.logged", source="cost_ledger", seq=0, ts=datetime.now(UTC), data=logged[0]
    )
    worker.on_event(delivered)  # only r1 arrived as an event
    expected = sum((data["cost"] for data in logged if data["cost"] is not None), Decimal(0))
    assert worker.reconcile_with_ledger() == 2
    assert worker.reconcile_with_ledger() == 0
    again, _ = archiver(tmp_path, "s1")
    assert again.reconcile_with_ledger() == 0
    entry = again.live.to_entry()
    assert entry.total_cost == expected and expected > 0
    assert entry.operations_count == {"scene_generation": 3}
    assert entry.unpriced_operations == 1


def test_history_updated_is_rate_limited(tmp_path: Path) -> None:
    """A burst of events is a few snapshots and `history.updated` events, not one per event."""
    worker, published = archiver(tmp_path, "s1")
    published.clear()
    for n in range(200):
        worker.on_event(event("file.modified", {"path": f"manuscript/{n}.md"}))
    pump(worker, lambda: False, timeout_s=1.3)  # at most one snapshot a second
    assert published.topics().count("history.updated") == 1
    assert len(on_disk(tmp_path)["s1"].files_modified) == 200


def test_unknown_op_is_refused(tmp_path: Path) -> None:
    """An op the archiver does not own is answered with unknown_op, not a crash."""
    worker, _ = archiver(tmp_path, "s1")
    outcome = worker.handle_batch(
        [Call(id="x", op=Op.SESSION_GET, args=parse_args("session.get", {}))]
    )
    assert isinstance(outcome[0], ProtocolError) and outcome[0].code == ErrorCode.UNKNOWN_OP


def test_history_file_is_human_readable_json(tmp_path: Path) -> None:
    """history.json is indented JSON with exact money, readable by any JSON tool."""
    worker, _ = archiver(tmp_path, "s1")
    worker.on_event(cost("r1", "0.00000007"))
    worker.stop()
    text = (tmp_path / ".session" / "history.json").read_text()
    assert '\n  "sessions": [' in text
    assert '"total_cost": 0.00000007' in text
    assert loads_exact(text)["sessions"][0]["status"] == "ended"


@pytest.mark.parametrize("limit", [1, 2, 5])
def test_history_list_limit(tmp_path: Path, limit: int) -> None:
    """`history.list {limit}` returns at most `limit` sessions, newest first."""
    worker = None
    for session_id in ["a-1", "a-2", "a-3"]:
        worker, _ = archiver(tmp_path, session_id)
        worker.stop()
    worker, _ = archiver(tmp_path, "a-4")
    listed = history_list(worker, limit=limit)
    assert [e.session_id for e in listed] == ["a-4", "a-3", "a-2", "a-1"][:limit]


def test_a_long_journal_is_compacted_and_replays_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past its size limit the journal becomes one checkpoint; a restart sees the same entry."""
    from services.history import journal

    monkeypatch.setattr(journal, "COMPACT_ABOVE_BYTES", 4096)
    worker, _ = archiver(tmp_path, "s1")
    for n in range(60):
        worker.on_event(event("file.modified", {"path": f"manuscript/{n}.md"}))
        worker.on_event(cost(f"r{n}", "0.01"))
    assert worker.journal is not None
    before = worker.journal.size
    worker.tick(worker.next_deadline() or 0.0)
    assert worker.journal.size < before
    again, _ = archiver(tmp_path, "s1")
    again.on_event(cost("r5", "0.01"))  # still known after compaction
    assert again.live.to_entry() == worker.live.to_entry().model_copy(
        update={
            "end_time": again.live.end_time,
            "duration_minutes": again.live.to_entry().duration_minutes,
        }
    )
    assert again.live.to_entry().total_cost == Decimal("0.60")


def test_history_timings_come_from_the_settings_so_a_config_file_can_change_them(
    tmp_path: Path,
) -> None:
    """`[history]` timings in a `--config` file reach the archiver (they were fixed at
    import): after a save, the next change waits the configured gap, not the shipped 1 s."""
    gaps: dict[float, float] = {}
    for gap in (0.5, 7.5):
        timings = {"save_delay_s": 0.0, "min_save_gap_s": gap, "reconcile_delay_s": 600.0}
        worker, _ = archiver(tmp_path / str(gap), "s1", overrides={"history": timings})
        worker.on_event(cost("r1", "0.15"))
        worker.tick(time.monotonic())  # the first save is due at once
        saved_at = time.monotonic()
        worker.on_event(cost("r2", "0.25"))
        due = worker.next_deadline()
        assert due is not None
        gaps[gap] = due - saved_at
    assert 0.3 < gaps[0.5] <= 0.5
    assert 7.3 < gaps[7.5] <= 7.5
