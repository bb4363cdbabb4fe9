"""Workloads for the crash-state explorer, and the checks run on every crash state.

Each workload drives one worker in process (`services.inprocess`) on a
fresh project while `bench.crashfs.CrashRecorder` records every durable step,
and counts an operation acknowledged at the moment its reply would leave.
Each check restarts that worker's logic on one materialised crash state and
returns what is wrong, in sentences (empty: the state is fine):

* session writer (journal, snapshot with `.prev`, compaction): every
  acknowledged `open_file` is in the recovered session; current.json and its
  `.prev` parse; a real `SessionWriter` starts on the state.
* cost ledger (append, checkpoint, month roll, costs.json): a restarted
  ledger holds every acknowledged call once (re-sending each id changes no
  total), its session total is the exact sum of the ledger's calls, and
  costs.json parses.
* history archiver (journal, history rotation into the gzip archive): a
  restarted archiver lists every session begun, each acknowledged file event
  is in its session, and history.json parses or is rebuilt.
"""

from __future__ import annotations

import functools
import itertools
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from unittest import mock

from bench.crashfs import CrashRecorder
from config import Settings, load_settings
from protocol.codec import loads_exact
from protocol.envelopes import Event
from protocol.errors import ProtocolError
from protocol.names import Op, WorkerName
from protocol.ops import parse_args
from protocol.session import Preferences, SessionDocument
from services.inprocess import make_context
from services.runtime.worker import Call, Worker
from services.store import previous_name, read_document

__all__ = ["WORKLOADS", "Workload", "WorkloadRun"]

_SETTINGS = {"store": {"wait_initial_s": 0.0, "wait_max_s": 0.0}, "history": {"size": 2}}
_FOLDERS = (".session/journal", ".session/ledger", ".session/archive")


@dataclass
class WorkloadRun:
    """A recorded run: the recorder and what was acknowledged, in order."""

    recorder: CrashRecorder
    acknowledged: list[Any] = field(default_factory=list)


Check = Callable[[Path, list[Any], bool], list[str]]
"""(materialised project, acknowledged so far, full restart?) -> problems."""


@dataclass(frozen=True)
class Workload:
    """One worker's workload and its check."""

    name: str
    run: Callable[[Path, int], WorkloadRun]
    check: Check
    folders: tuple[str, ...] = _FOLDERS


def _call(worker: Worker, op: Op, args: dict[str, Any], request_id: str) -> Any:
    outcome = worker.handle_batch([Call(id=request_id, op=op, args=parse_args(op, args))])[0]
    if isinstance(outcome, ProtocolError):
        raise RuntimeError(f"{op.value} {request_id} failed: {outcome.message}")  # noqa: TRY004
    return outcome


@functools.cache
def _settings() -> Settings:
    return load_settings(_SETTINGS)


def _context(project: Path, name: WorkerName, session_id: str) -> Any:
    ctx, published = make_context(
        project,
        name,
        session_id=session_id,
        settings=_settings(),
        options={"supervisor_pid": os.getpid()},
    )
    return ctx, published


def _drain(published: Any) -> None:
    while not published.callbacks.empty():
        published.callbacks.get_nowait()()


# -- session writer ---------------------------------------------------------------

_SESSION = "2026-02-01-100000"


def _session_run(project: Path, size: int) -> WorkloadRun:
    from services.session_writer import SessionWriter

    project.mkdir(parents=True, exist_ok=True)
    run = WorkloadRun(CrashRecorder(project))
    with run.recorder.recording() as recorder:
        ctx, published = _context(project, WorkerName.SESSION_WRITER, _SESSION)
        writer = SessionWriter(ctx)
        writer.start()
        for index in range(size):
            path = f"manuscript/chapter-{index}.md"
            _call(writer, Op.SESSION_OPEN_FILE, {"path": path, "cursor_line": index}, f"o-{index}")
            run.acknowledged.append(path)
            recorder.ack()
            if index % 4 == 3:  # a snapshot, then the journal compacts
                _call(writer, Op.SESSION_SIGNIFICANT_ACTION, {"action": "scene"}, f"a-{index}")
                writer.autosave.saver.wait_idle(5)
                _drain(published)
                writer.autosave.take_reports()
        writer.autosave.saver.wait_idle(5)
        _drain(published)
        writer.stop()
    return run


def _session_check(project: Path, acknowledged: list[Any], restart: bool) -> list[str]:
    from services.runtime.paths import ProjectPaths
    from services.session.recovery import previous_document

    problems: list[str] = []
    paths = ProjectPaths.of(project)
    for path in (paths.current, previous_name(paths.current)):
        if path.exists() and read_document(path, SessionDocument).status != "ok":
            problems.append(f"{path.name} does not parse")
    if paths.preferences.exists() and read_document(paths.preferences, Preferences).status != "ok":
        problems.append("preferences.json does not parse")
    document = previous_document(paths)
    have = {entry.path for entry in document.open_files} if document else set()
    missing = [path for path in acknowledged if path not in have]
    if missing:
        problems.append(f"acknowledged open_file lost: {missing}")
    if restart:
        from services.session_writer import SessionWriter

        ctx, published = _context(project, WorkerName.SESSION_WRITER, _SESSION)
        writer = SessionWriter(ctx)
        writer.start()
        opened = {entry.path for entry in writer.document.open_files}
        writer.autosave.saver.wait_idle(5)
        _drain(published)
        writer.stop()
        if any(path not in opened for path in acknowledged):
            problems.append("a restarted session writer lost an acknowledged open_file")
    return problems


# -- cost ledger ------------------------------------------------------------------

_LEDGER_SESSION = "2026-01-31-235900"
_LEDGER_START = datetime(2026, 1, 31, 23, 59, 40, tzinfo=UTC)


class _Clock:
    def __init__(self, start: datetime) -> None:
        self.now = start
        self.tick = 1000.0

    def __call__(self) -> datetime:
        return self.now

    def monotonic(self) -> float:
        return self.tick


@functools.cache
def _price_book() -> Any:
    from services.cost.pricing import PriceBook

    return PriceBook.load(None, use_genai_prices=False)


class _Prices:
    """Stands in for `PriceBook` during a start: the same book for every state
    (no state holds a pricing override), read from pricing.toml once."""

    @staticmethod
    def load(*_args: Any, **_kwargs: Any) -> Any:
        return _price_book()


def _start_ledger(ledger: Any) -> None:
    import services.cost_ledger

    with mock.patch.object(services.cost_ledger, "PriceBook", _Prices):
        ledger.start()


def _ledger(project: Path, clock: _Clock) -> Any:
    from services.cost_ledger import CostLedger

    ctx, _ = _context(project, WorkerName.COST_LEDGER, _LEDGER_SESSION)
    ledger = CostLedger(ctx, clock=clock, monotonic=clock.monotonic, use_genai_prices=False)
    ledger.checkpoint_every_records = 3
    ledger.snapshot_delay_s = 0.0
    return ledger


def _cost_args(index: int) -> dict[str, Any]:
    return {
        "operation": f"draft-{index}",
        "model": "gpt-4",
        "input_tokens": 100 + index,
        "output_tokens": 7,
    }


def _ledger_run(project: Path, size: int) -> WorkloadRun:
    project.mkdir(parents=True, exist_ok=True)
    run = WorkloadRun(CrashRecorder(project))
    clock = _Clock(_LEDGER_START)
    with run.recorder.recording() as recorder:
        ledger = _ledger(project, clock)
        _start_ledger(ledger)
        for index in range(size):
            clock.now += timedelta(seconds=3)  # crosses into February: a month roll
            clock.tick += 1.0
            result = _call(ledger, Op.COST_LOG, _cost_args(index), f"c-{index}")
            run.acknowledged.append((f"c-{index}", index, result["operation"]["cost"]))
            recorder.ack()
            ledger.tick(clock.tick)  # checkpoint every 3 records, costs.json at once
        ledger.stop()
    return run


def _ledger_totals(ledger: Any) -> Any:
    return _call(ledger, Op.COST_TOTALS, {}, f"t-{next(_totals_ids)}")


_totals_ids = itertools.count()

_RESENT = 3
"""How many of the newest acknowledged ids each ledger check re-sends."""


def _ledger_lines(project: Path) -> dict[str, Decimal]:
    """Every call the ledger files hold, by request id (the first line of each id)."""
    costs: dict[str, Decimal] = {}
    for path in sorted((project / ".session" / "ledger").glob("*.jsonl")):
        for line in path.read_bytes().splitlines():
            try:
                record = loads_exact(line)
            except ValueError:
                continue
            if isinstance(record, dict) and record.get("kind") == "op":
                costs.setdefault(str(record["id"]), Decimal(str(record.get("cost") or 0)))
    return costs


def _ledger_check(project: Path, acknowledged: list[Any], restart: bool) -> list[str]:
    from protocol.costs import CostsDocument

    problems: list[str] = []
    costs = project / ".session" / "costs.json"
    if costs.exists() and read_document(costs, CostsDocument).status != "ok":
        problems.append("costs.json does not parse")
    clock = _Clock(_LEDGER_START + timedelta(minutes=10))
    ledger = _ledger(project, clock)
    _start_ledger(ledger)
    before = _ledger_totals(ledger)
    lines = _ledger_lines(project)
    if Decimal(str(before["session_total"])) != sum(lines.values(), Decimal(0)):
        problems.append(
            f"session total {before['session_total']} != ledger sum {sum(lines.values())}"
        )
    for request_id, _index, _cost in acknowledged:
        if request_id not in lines:
            problems.append(f"acknowledged {request_id} is not in the ledger")
    # Re-sending every id would make the run quadratic: the newest few are the
    # ones a power cut can touch (older ones sit behind a checkpoint).
    for request_id, index, cost in acknowledged[-_RESENT:]:
        again = _call(ledger, Op.COST_LOG, _cost_args(index), request_id)
        if again["operation"]["cost"] != cost:
            problems.append(f"re-sent {request_id} answered another cost")
    after = _ledger_totals(ledger)
    if after["session_total"] != before["session_total"]:
        problems.append("re-sending acknowledged ids changed the totals (lost or counted twice)")
    ledger.stop()
    return problems


# -- history archiver ---------------------------------------------------------------


def _archiver_session(index: int) -> str:
    return f"2026-03-{index + 1:02d}-090000"


def _archiver_run(project: Path, size: int) -> WorkloadRun:
    from services.history_archiver import HistoryArchiver

    project.mkdir(parents=True, exist_ok=True)
    run = WorkloadRun(CrashRecorder(project))
    seq = itertools.count()
    sessions = max(3, size // 3)  # more than the history keeps (2): rotation into the archive
    with run.recorder.recording() as recorder:
        for number in range(sessions):
            session_id = _archiver_session(number)
            ctx, _ = _context(project, WorkerName.HISTORY_ARCHIVER, session_id)
            archiver = HistoryArchiver(ctx)
            archiver.start()
            run.acknowledged.append((session_id, None))
            recorder.ack()
            for event_number in range(3):
                path = f"manuscript/s{number}-e{event_number}.md"
                event = Event(
                    topic="file.modified",
                    source="file_watcher",
                    seq=next(seq),
                    ts=datetime.now(UTC),
                    data={"path": path},
                )
                if all(archiver.on_events([event])):
                    run.acknowledged.append((session_id, path))
                    recorder.ack()
            archiver.tick(time.monotonic() + 3600)
            archiver.stop()
    return run


def _archiver_check(project: Path, acknowledged: list[Any], restart: bool) -> list[str]:
    from protocol.history import HistoryDocument
    from services.history.read import parse_history
    from services.history_archiver import HistoryArchiver

    problems: list[str] = []
    history = project / ".session" / "history.json"
    for path in (history, previous_name(history)):
        if path.exists():
            try:
                parse_history(path.read_bytes(), compressed=False)
            except ValueError:
                problems.append(f"{path.name} does not parse")
    ctx, _ = _context(project, WorkerName.HISTORY_ARCHIVER, "2026-04-01-090000")
    archiver = HistoryArchiver(ctx)
    archiver.start()
    listed = archiver.handle(
        Call(id="h", op=Op.HISTORY_LIST, args=parse_args(Op.HISTORY_LIST, {"limit": 10000}))
    )
    archiver.stop()
    entries = HistoryDocument.model_validate({"sessions": listed}).sessions
    by_id = {entry.session_id: entry for entry in entries}
    for session_id, path in acknowledged:
        entry = by_id.get(session_id)
        if entry is None:
            problems.append(f"session {session_id} is missing from the history")
        elif path is not None and path not in entry.files_modified + entry.files_created:
            problems.append(f"acknowledged file event {path} missing from {session_id}")
    return problems


WORKLOADS: dict[str, Workload] = {
    "session_writer": Workload("session_writer", _session_run, _session_check),
    "cost_ledger": Workload("cost_ledger", _ledger_run, _ledger_check),
    "history_archiver": Workload("history_archiver", _archiver_run, _archiver_check),
}
"""Every workload by the worker it covers."""
