"""A fake `WorkerContext` for driving any worker in-process, as its host would.

The real host (`services.runtime.host`) owns sockets, heartbeats and the main
loop. Tests need none of that: they want to call `handle_batch`, deliver an
event, run the callbacks a background thread scheduled, and see what was
published. `make_harness` gives exactly that::

    from fake_context import make_harness

    harness = make_harness(tmp_path / "project", session_id="2026-01-02-030405")
    worker = SessionWriter(harness.ctx)
    worker.start()
    harness.call(worker, Op.SESSION_SET_STAGE, {"stage": "writing"})
    harness.wait_for(lambda: harness.published("session.saved"))

Published event data goes through the wire codec (`dumps` then `loads_exact`),
so tests see what a subscriber would see. `harness.log` records every log
call (`harness.log.events("error")`) so a test can check that something was
reported loudly. Other engineers may import this module from their tests.

Also here, because several test modules need them: `FailingDisk` and
`CountingDisk` (a `FileOps` whose rename fails or stalls on demand, and one
that counts or fails fsyncs), and `start_session_writer` / `quiesce` to run
the session writer as its host would.
"""

from __future__ import annotations

import errno
import itertools
import os
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from config import Settings, load_settings
from protocol.codec import dumps, loads_exact
from protocol.envelopes import Event
from protocol.errors import ProtocolError
from protocol.names import Op, WorkerName
from protocol.ops import parse_args
from services.inprocess import worker_context
from services.runtime.worker import Call, Outcome, Worker, WorkerContext
from services.store import FileOps

__all__ = [
    "CountingDisk",
    "FailingDisk",
    "FakeHarness",
    "RecordingLog",
    "make_harness",
    "ok",
    "on_disk",
    "outcome_json",
    "quiesce",
    "start_session_writer",
]


@dataclass
class RecordingLog:
    """A structlog-like logger that remembers `(level, event, fields)`."""

    records: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)

    def _record(self, level: str) -> Callable[..., None]:
        def log(event: str, *args: Any, **fields: Any) -> None:
            self.records.append((level, event, fields))

        return log

    def __getattr__(self, level: str) -> Callable[..., None]:
        if level in {"debug", "info", "warning", "warn", "error", "exception", "critical", "msg"}:
            return self._record(level)
        raise AttributeError(level)

    def bind(self, **_fields: Any) -> RecordingLog:
        """Loggers bind context; this one ignores it."""
        return self

    def events(self, *levels: str) -> list[str]:
        """Event names logged at any of `levels` (all levels when none given)."""
        return [event for level, event, _ in self.records if not levels or level in levels]


def outcome_json(outcome: Outcome) -> Any:
    """An outcome as the client would decode it (errors become `{"error": code}`)."""
    if isinstance(outcome, ProtocolError):
        return {"error": outcome.code.value, "message": outcome.message}
    return loads_exact(dumps(outcome))


def ok(outcome: Outcome) -> Any:
    """The outcome as a client decodes it, asserting it is not an error."""
    assert not isinstance(outcome, ProtocolError), outcome
    return outcome_json(outcome)


def on_disk(project: Path) -> dict[str, Any]:
    """The session writer's current.json as a person would read it."""
    data = loads_exact((project / ".session" / "current.json").read_bytes())
    assert isinstance(data, dict)
    return data


@dataclass
class FakeHarness:
    """The fake context plus what tests inspect: events, log, pending callbacks."""

    ctx: WorkerContext
    log: RecordingLog
    events: list[tuple[str, Any]] = field(default_factory=list)
    callbacks: queue.SimpleQueue[Callable[[], None]] = field(default_factory=queue.SimpleQueue)
    _ids: itertools.count[int] = field(default_factory=itertools.count)
    _seq: itertools.count[int] = field(default_factory=itertools.count)

    @property
    def project(self) -> Path:
        """The project root."""
        return self.ctx.paths.project

    def next_id(self) -> str:
        """A fresh request id."""
        return f"t-{next(self._ids):06d}"

    def make_call(
        self, op: Op, args: dict[str, Any] | None = None, *, id: str | None = None
    ) -> Call:
        """A `Call` with args validated as the host would (`ProtocolError` if invalid)."""
        request_id = id or self.next_id()
        return Call(id=request_id, op=op, args=parse_args(op, args or {}, request_id=request_id))

    def call(
        self, worker: Worker, op: Op, args: dict[str, Any] | None = None, *, id: str | None = None
    ) -> Outcome:
        """One request in its own batch; returns the outcome (a result or a `ProtocolError`)."""
        return worker.handle_batch([self.make_call(op, args, id=id)])[0]

    def batch(
        self, worker: Worker, requests: Sequence[tuple[Op, dict[str, Any] | None]]
    ) -> list[Outcome]:
        """Several requests arriving together, answered as one batch."""
        return worker.handle_batch([self.make_call(op, args) for op, args in requests])

    def deliver(
        self,
        worker: Worker,
        topic: str,
        data: Any,
        *,
        source: str = "file_watcher",
        seq: int | None = None,
        ts: datetime | None = None,
    ) -> Event:
        """Deliver an event as the host would (decoded exactly); returns it for re-delivery."""
        event = Event(
            topic=topic,
            source=source,
            seq=next(self._seq) if seq is None else seq,
            ts=ts or datetime.now(UTC),
            data=loads_exact(dumps(data)),
        )
        worker.on_event(event)
        return event

    def run_callbacks(self, wait_s: float = 0.0) -> int:
        """Run callbacks queued by threads; wait up to `wait_s` for the first one."""
        ran = 0
        try:
            callback = (
                self.callbacks.get(timeout=wait_s) if wait_s > 0 else self.callbacks.get_nowait()
            )
        except queue.Empty:
            return 0
        while True:
            callback()
            ran += 1
            try:
                callback = self.callbacks.get_nowait()
            except queue.Empty:
                return ran

    def settle(self, worker: Worker, now: float | None = None) -> None:
        """Run pending callbacks, then `tick` if the worker's deadline has passed."""
        self.run_callbacks()
        moment = time.monotonic() if now is None else now
        deadline = worker.next_deadline()
        if deadline is not None and moment >= deadline:
            worker.tick(moment)
        self.run_callbacks()

    def wait_for(self, predicate: Callable[[], Any], timeout: float = 3.0) -> bool:
        """Run callbacks until `predicate()` is true; False after `timeout` seconds."""
        end = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() >= end:
                return False
            self.run_callbacks(wait_s=0.01)
        return True

    def published(self, topic: str) -> list[Any]:
        """The data of every event published on `topic`, oldest first."""
        return [data for name, data in self.events if name == topic]

    def topics(self) -> list[str]:
        """Every published topic, in order."""
        return [name for name, _ in self.events]


def make_harness(
    project: Path,
    *,
    session_id: str = "2026-01-02-030405",
    name: WorkerName = WorkerName.SESSION_WRITER,
    options: dict[str, Any] | None = None,
    settings: Settings | None = None,
    settings_overrides: dict[str, Any] | None = None,
) -> FakeHarness:
    """A harness for `project` (created if missing) with a real `WorkerContext` inside.

    `settings_overrides` has the shape of `config/defaults.toml`; by default
    saves retry without waiting, so tests of failing disks stay fast.
    """
    project.mkdir(parents=True, exist_ok=True)
    overrides: dict[str, Any] = {"store": {"wait_initial_s": 0.0, "wait_max_s": 0.0}}
    for section, values in (settings_overrides or {}).items():
        overrides[section] = {**overrides.get(section, {}), **values}
    log = RecordingLog()
    harness_events: list[tuple[str, Any]] = []
    callbacks: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
    ctx = worker_context(
        project,
        name,
        session_id=session_id,
        settings=settings or load_settings(overrides),
        options=options,
        publish=lambda topic, data, minor=False: harness_events.append(
            (topic, loads_exact(dumps(data)))
        ),
        call_soon_threadsafe=callbacks.put,
        log=log,
    )
    return FakeHarness(ctx=ctx, log=log, events=harness_events, callbacks=callbacks)


class CountingDisk(FileOps):
    """File operations that count fsyncs and can fail them like a full disk."""

    def __init__(self) -> None:
        self.fsyncs = 0
        self.fail = False

    def fsync(self, fd: int) -> None:
        """Count, or fail with ENOSPC."""
        if self.fail:
            raise OSError(errno.ENOSPC, "No space left on device (simulated)")
        self.fsyncs += 1
        super().fsync(fd)


class FailingDisk(FileOps):
    """File operations whose rename fails or stalls on demand (a failing or slow disk).

    `failures`: how many next renames fail (-1: every one). `hold_at`: the
    rename number (counted in `calls`) that sets `held` and waits for `gate`.
    `delay_s`: a pause before every rename.
    """

    def __init__(self) -> None:
        self.failures = 0
        self.delay_s = 0.0
        self.hold_at: int | None = None
        self.gate = threading.Event()
        self.held = threading.Event()
        self.calls = 0

    def replace(self, source: Path, target: Path) -> None:
        """Fail, stall or rename."""
        self.calls += 1
        if self.calls == self.hold_at:
            self.held.set()
            self.gate.wait(5)
        time.sleep(self.delay_s)
        if self.failures:
            self.failures -= 1 if self.failures > 0 else 0
            raise OSError(errno.EIO, "Input/output error (simulated)")
        super().replace(source, target)


def quiesce(harness: FakeHarness, writer: Any) -> None:
    """Wait until the session writer has no snapshot in flight and applied every report."""
    for _ in range(20):
        assert writer.autosave.saver.wait_idle(5)
        harness.run_callbacks()
        writer.autosave.take_reports()
        if not writer.autosave.saver.busy:
            return
    raise AssertionError("the saver never went idle")


def start_session_writer(
    project: Path,
    *,
    session_id: str = "2026-03-01-090000",
    options: dict[str, Any] | None = None,
    **kwargs: Any,
) -> tuple[Any, FakeHarness]:
    """Start a `SessionWriter` as its host would and let its start-up snapshot finish.

    `options` default to this test process as the supervisor (`supervisor_pid`);
    `kwargs` go to the writer (`snapshot_ops=FailingDisk()`, `journal_ops=...`).
    """
    from services.session_writer import SessionWriter

    harness = make_harness(
        project, session_id=session_id, options={"supervisor_pid": os.getpid(), **(options or {})}
    )
    writer = SessionWriter(harness.ctx, **kwargs)
    writer.start()
    harness.settle(writer)
    quiesce(harness, writer)
    return writer, harness
