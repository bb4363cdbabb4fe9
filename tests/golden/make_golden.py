"""Write one real sample of every stored file and line kind, with the real writers.

How the golden files were made: this script runs the real workers in this
process (`SessionWriter`, `CostLedger`, `HistoryArchiver`, each with the
context its host would give it), routes the events one publishes to the
others as the supervisor would, and copies what they wrote on disk into
`tests/golden/<label>/` (journal segments are copied just before compaction
deletes them, so every line the session writer wrote is kept). Only the
file watcher is played by the script (its events are plain `file.*`
envelopes; nothing of it is stored). Three runs:

1. session A: a budget, priced and unpriced calls, a warning that fires, a
   reset, file events, a preference change; a clean stop.
2. session B (history keeps one session, so A goes to the yearly archive):
   more calls and file events; a clean stop.
3. session B again under another supervisor pid: the session writer journals
   an `owner` line, the archiver a `resume`; a clean stop.

`tests/golden/0.1.0/` was written by this script run on the 0.1.0 code,
before the record models of `protocol/` existed: it is the format those
versions left on disk, and every reader of this version must still read it.
`tests/golden/current/` is rewritten by running it again on this version::

    PYTHONPATH=$PWD python tests/golden/make_golden.py current

and `tests/test_golden.py` fails when the writers of this version write
something those files do not show (so a format change is always seen).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # fake_context
sys.path.insert(0, str(HERE.parent.parent))  # the project

from fake_context import make_harness, quiesce  # noqa: E402

from protocol.names import WORKER_SUBSCRIPTIONS, Op, WorkerName  # noqa: E402
from services.cost_ledger import CostLedger  # noqa: E402
from services.history_archiver import HistoryArchiver  # noqa: E402
from services.session_writer import SessionWriter  # noqa: E402

__all__ = ["FILES", "generate", "main"]

FILES = (
    "current.json",
    "preferences.json",
    "costs.json",
    "history.json",
    "ledger/checkpoint.json",
    "archive/live.jsonl",
)
"""Copied as they are after the last run (month, year and segment files are found)."""

_OVERRIDES: dict[str, Any] = {"history": {"size": 1}}


class _Tree:
    """The three workers of one session, wired as the supervisor would wire them."""

    def __init__(self, project: Path, session_id: str, supervisor_pid: int, run: str) -> None:
        self.run = run
        self._ids = 0
        options = {"supervisor_pid": supervisor_pid, "interval_s": 3600}
        self.writer_h = make_harness(
            project, session_id=session_id, options=options, settings_overrides=_OVERRIDES
        )
        self.ledger_h = make_harness(
            project,
            session_id=session_id,
            name=WorkerName.COST_LEDGER,
            options=options,
            settings_overrides=_OVERRIDES,
        )
        self.archiver_h = make_harness(
            project,
            session_id=session_id,
            name=WorkerName.HISTORY_ARCHIVER,
            options=options,
            settings_overrides=_OVERRIDES,
        )
        self.archiver = HistoryArchiver(self.archiver_h.ctx)
        self.archiver.start()
        self.ledger = CostLedger(self.ledger_h.ctx)
        self.ledger.start()
        self.writer = SessionWriter(self.writer_h.ctx)
        self.writer.start()
        self.writer_h.settle(self.writer)
        quiesce(self.writer_h, self.writer)
        self._routed = 0
        self._seq = 0

    def _route(self) -> None:
        """Deliver what the ledger published to its subscribers, as the supervisor does."""
        for topic, data in self.ledger_h.events[self._routed :]:
            self._seq += 1
            for harness, worker in (
                (self.archiver_h, self.archiver),
                (self.writer_h, self.writer),
            ):
                if topic.startswith(WORKER_SUBSCRIPTIONS[worker.name]):
                    harness.deliver(worker, topic, data, source="cost_ledger", seq=self._seq)
        self._routed = len(self.ledger_h.events)

    def cost(self, op: Op, args: dict[str, Any]) -> None:
        """A `cost.*` request, answered, its events delivered."""
        self.ledger_h.call(self.ledger, op, args, id=self._next_id())
        self._route()

    def session(self, op: Op, args: dict[str, Any]) -> None:
        """A `session.*` or `preferences.*` request."""
        self.writer_h.call(self.writer, op, args, id=self._next_id())

    def _next_id(self) -> str:
        # Each run is a new client: its ids must not repeat an earlier run's.
        self._ids += 1
        return f"{self.run}-{self._ids:06d}"

    def file(self, topic: str, path: str) -> None:
        """A `file.*` event as the file watcher publishes it."""
        self._seq += 1
        for harness, worker in ((self.archiver_h, self.archiver), (self.writer_h, self.writer)):
            harness.deliver(worker, topic, {"path": path}, source="file_watcher", seq=self._seq)

    def stop(self) -> None:
        """A clean stop of every worker."""
        self.archiver_h.settle(self.archiver)
        self.writer.stop()
        self.ledger.stop()
        self.archiver.stop()


def _copy(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)


@contextlib.contextmanager
def _keep_compacted_segments(keep: Path) -> Iterator[None]:
    """Copy each journal segment aside just before compaction deletes it.

    A clean stop leaves only a header; the lines that show every kind live in
    the segments a snapshot made obsolete, so they are kept as written. The
    real `drop_segments` is back in place when the block ends.
    """
    from services.session import autosave

    real_drop = autosave.drop_segments

    def drop(paths: Any, ops: Any = None) -> list[Path]:
        listed = list(paths)
        for path in listed:
            if path.exists():
                _copy(path, keep / path.name)
        return real_drop(listed, ops)

    autosave.drop_segments = drop  # type: ignore[assignment]
    try:
        yield
    finally:
        autosave.drop_segments = real_drop


def _run_sessions(project: Path) -> None:
    """The three runs of the module docstring, with the real workers."""
    first = _Tree(project, "2026-11-20-090000", os.getpid(), "c1")
    first.cost(Op.COST_SET_BUDGET, {"daily_limit": 0.2})
    first.cost(
        Op.COST_LOG,
        {
            "operation": "scene_generation",
            "model": "claude-sonnet-3.5",
            "input_tokens": 12450,
            "output_tokens": 3200,
        },
    )
    first.cost(
        Op.COST_LOG,
        {
            "operation": "scene_generation",
            "model": "claude-sonnet-3.5",
            "input_tokens": 30000,
            "output_tokens": 9000,
        },
    )
    first.cost(
        Op.COST_LOG,
        {"operation": "mystery", "model": "gpt-9", "input_tokens": 10, "output_tokens": 2},
    )
    first.cost(Op.COST_RESET_SESSION, {})
    first.session(Op.SESSION_SET_STAGE, {"stage": "writing"})
    first.session(Op.PREFERENCES_SET, {"values": {"confirm_above": 0.25}})
    first.file("file.created", "manuscript/ch1.md")
    first.file("file.modified", "manuscript/ch1.md")
    first.stop()

    second = _Tree(project, "2026-11-21-090000", os.getpid(), "c2")
    second.session(Op.SESSION_OPEN_FILE, {"path": "manuscript/ch1.md"})
    second.cost(
        Op.COST_LOG,
        {
            "operation": "brainstorm",
            "model": "claude-sonnet-3.5",
            "input_tokens": 100,
            "output_tokens": 50,
        },
    )
    second.file("file.created", "manuscript/ch2.md")
    second.stop()

    third = _Tree(project, "2026-11-21-090000", os.getpid() + 1_000_000, "c3")
    third.file("file.deleted", "manuscript/ch2.md")
    third.stop()


def generate(target: Path) -> None:
    """Run the three sessions in a scratch project and copy the samples to `target`."""
    with tempfile.TemporaryDirectory() as scratch:
        project = Path(scratch) / "novel"
        (project / "manuscript").mkdir(parents=True)
        session = project / ".session"
        compacted = Path(scratch) / "compacted"
        with _keep_compacted_segments(compacted):
            _run_sessions(project)

        for name in FILES:
            _copy(session / name, target / name)
        for pattern in ("journal/*.jsonl", "ledger/*.jsonl", "archive/sessions-*.jsonl.gz"):
            for path in sorted(session.glob(pattern)):
                _copy(path, target / path.relative_to(session))
        for path in sorted(compacted.glob("*.jsonl")):
            _copy(path, target / "journal" / path.name)


def main(argv: list[str] | None = None) -> int:
    """`make_golden.py LABEL`: (re)write `tests/golden/LABEL/`."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: make_golden.py LABEL   (e.g. current)", file=sys.stderr)
        return 2
    target = HERE / args[0]
    shutil.rmtree(target, ignore_errors=True)
    generate(target)
    print(f"wrote {sorted(str(p.relative_to(target)) for p in target.rglob('*') if p.is_file())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
