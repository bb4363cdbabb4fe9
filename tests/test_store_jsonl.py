"""services.store.jsonl: an acknowledged line is never lost; a torn tail is cut at open."""

from __future__ import annotations

import errno
import random
import select
import signal
import textwrap
import threading
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from conftest import SpawnPython

from protocol import dumps_line
from services.store import FileOps, JsonLinesLog, TailRepair


class CountingOps(FileOps):
    """Counts fsyncs; each takes at least 0.5 ms so concurrent appends really overlap."""

    def __init__(self) -> None:
        self.fsyncs = 0
        self._lock = threading.Lock()

    def fsync(self, fd: int) -> None:
        with self._lock:
            self.fsyncs += 1
        time.sleep(0.0005)
        super().fsync(fd)


class FailingWriteOps(FileOps):
    """Armed, the next append writes a few bytes and then fails (a full disk mid-line)."""

    def __init__(self) -> None:
        self.armed = False
        self.writes_in_append = 0

    def write(self, fd: int, data: bytes | memoryview) -> int:
        if not self.armed:
            return super().write(fd, data)
        self.writes_in_append += 1
        if self.writes_in_append == 1:
            return super().write(fd, data[:7])  # a short write: half a record is on disk
        self.armed = False
        raise OSError(errno.ENOSPC, "No space left on device")


class FailingFsyncOps(FileOps):
    """Armed, the next fsync fails after the bytes were written."""

    def __init__(self) -> None:
        self.armed = False

    def fsync(self, fd: int) -> None:
        if self.armed:
            self.armed = False
            raise OSError(errno.EIO, "fsync failed")
        super().fsync(fd)


def _read_back(path: Path) -> list[Any]:
    with JsonLinesLog(path) as log:
        return [record for _, record in log.records(exact=True)]


def _lines(*records: Any) -> bytes:
    return b"".join(dumps_line(record) for record in records)


# --- durability ------------------------------------------------------------------


def test_appended_records_are_there_after_reopening(tmp_path: Path) -> None:
    """Records appended one by one and in bulk are all read back, in order, after a reopen."""
    path = tmp_path / "journal" / "session.jsonl"
    with JsonLinesLog(path) as log:
        log.append({"n": 0})
        log.append_many([{"n": 1}, {"n": 2}])
        log.append_many([])
        log.append({"n": 3, "cost": Decimal("0.00000007")})
        assert log.size == path.stat().st_size
    records = _read_back(path)
    assert [record["n"] for record in records] == [0, 1, 2, 3]
    assert records[3]["cost"] == Decimal("0.00000007")


def test_each_record_is_one_line_of_compact_json(tmp_path: Path) -> None:
    """The log is JSON Lines: one compact object per line, even for text holding newlines."""
    path = tmp_path / "ledger.jsonl"
    with JsonLinesLog(path) as log:
        log.append({"query": "line one\nline two"})
        log.append({"n": 2})
    assert path.read_bytes() == b'{"query":"line one\\nline two"}\n{"n":2}\n'


def test_append_many_is_one_write_and_one_fsync(tmp_path: Path) -> None:
    """A batch of records costs one fsync, not one per record."""
    ops = CountingOps()
    with JsonLinesLog(tmp_path / "l.jsonl", ops=ops) as log:
        before = ops.fsyncs
        log.append_many([{"n": n} for n in range(50)])
        assert ops.fsyncs - before == 1


def test_records_can_resume_from_an_offset(tmp_path: Path) -> None:
    """`records(start=offset)` yields only what was appended after that offset."""
    with JsonLinesLog(tmp_path / "l.jsonl") as log:
        log.append({"n": 0})
        mark = log.size
        log.append({"n": 1})
        assert [(offset, r["n"]) for offset, r in log.records(start=mark)] == [(mark, 1)]


def test_appending_after_close_fails_loudly(tmp_path: Path) -> None:
    """A closed log refuses appends instead of dropping them."""
    log = JsonLinesLog(tmp_path / "l.jsonl")
    log.close()
    with pytest.raises(OSError):
        log.append({"n": 1})


# --- group commit ---------------------------------------------------------------------


def test_eight_threads_share_fsyncs_and_lose_nothing(tmp_path: Path) -> None:
    """8 threads x 200 appends: each record once, each thread's order kept, fewer fsyncs."""
    threads_n, per_thread = 8, 200
    ops = CountingOps()
    path = tmp_path / "ledger.jsonl"
    log = JsonLinesLog(path, ops=ops)
    start_fsyncs = ops.fsyncs
    barrier = threading.Barrier(threads_n)
    errors: list[BaseException] = []

    def producer(thread: int) -> None:
        try:
            barrier.wait()
            for n in range(per_thread):
                log.append({"t": thread, "n": n})
        except BaseException as exc:  # reported below, never swallowed
            errors.append(exc)

    workers = [threading.Thread(target=producer, args=(t,)) for t in range(threads_n)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=30)
    log.close()
    assert not errors
    records = _read_back(path)
    assert len(records) == threads_n * per_thread
    assert {(r["t"], r["n"]) for r in records} == {
        (t, n) for t in range(threads_n) for n in range(per_thread)
    }
    for thread in range(threads_n):
        assert [r["n"] for r in records if r["t"] == thread] == list(range(per_thread))
    fsyncs = ops.fsyncs - start_fsyncs
    assert 0 < fsyncs < threads_n * per_thread


# --- torn tails ----------------------------------------------------------------------

GOOD = _lines({"n": 0}, {"n": 1, "text": "kept"}, {"n": 2})


@pytest.mark.parametrize(
    "tail",
    [
        pytest.param(b'{"n": 3, "text": "half wri', id="no-newline"),
        pytest.param(b'{"n": 3}', id="whole-json-but-no-newline"),
        pytest.param(b"garbage that is not json\n", id="complete-garbage-line"),
        pytest.param(b'{"n": 3, "te\n', id="complete-but-cut-json"),
        pytest.param(b"\x00\x00\x00\x00", id="zero-bytes"),
        pytest.param(b"\n", id="empty-line"),
    ],
)
def test_torn_tail_is_cut_at_open_and_complete_lines_kept(tmp_path: Path, tail: bytes) -> None:
    """A torn last line is detected at open, reported with offset and size, and cut off."""
    path = tmp_path / "journal.jsonl"
    path.write_bytes(GOOD + tail)
    with JsonLinesLog(path) as log:
        assert log.repair == TailRepair(
            offset=len(GOOD), removed_bytes=len(tail), preview=tail[:80]
        )
        assert path.read_bytes() == GOOD
        assert [r["n"] for _, r in log.records()] == [0, 1, 2]
        log.append({"n": 3})
    assert path.read_bytes() == GOOD + _lines({"n": 3})
    with JsonLinesLog(path) as again:
        assert again.repair is None


def test_a_log_that_is_only_a_torn_line_becomes_empty(tmp_path: Path) -> None:
    """A first record torn by a crash is removed entirely, leaving a usable empty log."""
    path = tmp_path / "journal.jsonl"
    path.write_bytes(b'{"n": 0, "half')
    with JsonLinesLog(path) as log:
        assert log.repair is not None
        assert log.repair.offset == 0
        assert log.repair.removed_bytes == 14
        assert list(log.records()) == []
        log.append({"n": 0})
    assert _read_back(path) == [{"n": 0}]


def test_torn_tail_longer_than_a_read_chunk_is_cut_exactly(tmp_path: Path) -> None:
    """A torn record bigger than the 64 KiB scan chunk is still found and cut at its start."""
    path = tmp_path / "journal.jsonl"
    torn = b'{"blob": "' + b"x" * 200_000
    path.write_bytes(GOOD + torn)
    with JsonLinesLog(path) as log:
        assert log.repair is not None
        assert (log.repair.offset, log.repair.removed_bytes) == (len(GOOD), len(torn))
    assert path.read_bytes() == GOOD


def test_healthy_and_empty_logs_need_no_repair(tmp_path: Path) -> None:
    """Opening a log that ends with a complete line, or an empty one, changes nothing."""
    path = tmp_path / "journal.jsonl"
    with JsonLinesLog(path) as log:
        assert log.repair is None
    path.write_bytes(GOOD)
    with JsonLinesLog(path) as log:
        assert log.repair is None
    assert path.read_bytes() == GOOD


def test_corrupt_line_in_the_middle_is_skipped_reported_and_kept(tmp_path: Path) -> None:
    """A bad complete line inside the log is skipped by records(), listed in bad_lines, and kept."""
    path = tmp_path / "ledger.jsonl"
    bad = b"{this is not json}\n"
    content = _lines({"n": 0}) + bad + _lines({"n": 1})
    path.write_bytes(content)
    with JsonLinesLog(path) as log:
        assert log.repair is None
        assert [r["n"] for _, r in log.records()] == [0, 1]
        assert len(log.bad_lines) == 1
        assert log.bad_lines[0].offset == len(_lines({"n": 0}))
        assert log.bad_lines[0].error
    assert path.read_bytes() == content


# --- failures while appending ------------------------------------------------------------


def test_failed_write_mid_append_is_cut_back_so_the_next_append_is_clean(tmp_path: Path) -> None:
    """A write failing half way through a record raises, leaves no partial line, and recovers."""
    ops = FailingWriteOps()
    path = tmp_path / "journal.jsonl"
    with JsonLinesLog(path, ops=ops) as log:
        log.append({"n": 0})
        ops.armed = True
        with pytest.raises(OSError, match="No space left"):
            log.append({"n": "never acknowledged", "pad": "x" * 100})
        assert path.read_bytes() == _lines({"n": 0})
        assert log.size == len(_lines({"n": 0}))
        log.append({"n": 1})
    assert path.read_bytes() == _lines({"n": 0}, {"n": 1})
    with JsonLinesLog(path) as again:
        assert again.repair is None
        assert [r["n"] for _, r in again.records()] == [0, 1]


def test_failed_fsync_is_reported_and_its_record_removed(tmp_path: Path) -> None:
    """When fsync fails the append raises (not acknowledged) and the unsynced line is cut."""
    ops = FailingFsyncOps()
    path = tmp_path / "journal.jsonl"
    with JsonLinesLog(path, ops=ops) as log:
        log.append({"n": 0})
        ops.armed = True
        with pytest.raises(OSError, match="fsync failed"):
            log.append({"n": 99})
        log.append({"n": 1})
    assert _read_back(path) == [{"n": 0}, {"n": 1}]


# --- a real crash ------------------------------------------------------------------------

_APPENDER = textwrap.dedent(
    """
    import os
    from pathlib import Path
    from services.store import JsonLinesLog
    log = JsonLinesLog(Path({path!r}))
    n = {start}
    while True:
        log.append({{"n": n, "pad": "p" * (n % 13 * 700)}})
        os.write(1, b"%d\\n" % n)  # acknowledged: the append returned
        n += 1
    """
)


def test_sigkill_while_appending_loses_no_acknowledged_line(
    tmp_path: Path, spawn_python: SpawnPython
) -> None:
    """After SIGKILL, reopening repairs the tail and every line the child acknowledged is there."""
    path = tmp_path / "journal" / "session.jsonl"
    rng = random.Random(1123)
    acknowledged: list[int] = []
    start = 0
    for _ in range(5):
        child = spawn_python(_APPENDER.format(path=str(path), start=start))
        assert child.stdout is not None
        ready, _, _ = select.select([child.stdout], [], [], 15)
        assert ready, "the appender never acknowledged a line"
        time.sleep(rng.uniform(0, 0.05))
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
        this_round = [int(line) for line in child.stdout.read().split()]
        acknowledged += this_round
        with JsonLinesLog(path) as log:
            present = [record["n"] for _, record in log.records()]
            assert log.bad_lines == []
        assert set(acknowledged) <= set(present)
        assert present == list(range(len(present))), "lines are whole, in order, never doubled"
        # Beyond the acknowledged lines, at most the one being written at the kill survives.
        assert len(present) - start <= len(this_round) + 1
        start = len(present)
    assert acknowledged


def test_append_without_fsync_writes_but_does_not_wait_for_the_disk(tmp_path: Path) -> None:
    """fsync=False records are readable at once (and after a reopen) but cost no fsync."""
    ops = CountingOps()
    log = JsonLinesLog(tmp_path / "j.jsonl", ops=ops)
    before = ops.fsyncs
    log.append_many([{"n": 1}, {"n": 2}], fsync=False)
    assert ops.fsyncs == before
    log.append_many([{"n": 3}])
    assert ops.fsyncs == before + 1
    log.close()
    reopened = JsonLinesLog(tmp_path / "j.jsonl")
    assert [record["n"] for _, record in reopened.records()] == [1, 2, 3]
