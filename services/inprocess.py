"""Drive a worker in this process, without its host: for tests and benchmarks.

The host process (`services.runtime.host`) owns sockets and the event loop.
A test or a benchmark wants the worker's own logic with real files and real
watchdog threads, and its published events in a list. `worker_context` is the
one builder of an in-process `WorkerContext` (every test helper and benchmark
goes through it); `make_context` adds a `Published` list, and `pump` is the
host's loop in miniature (pollables, deadlines, ticks) that runs until a
condition holds or a bounded time passes.
"""

from __future__ import annotations

import queue
import select
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from config import Settings, load_settings
from protocol.names import WorkerName
from services.runtime.paths import ProjectPaths
from services.runtime.worker import Publish, Worker, WorkerContext

__all__ = ["Published", "make_context", "pump", "pump_for", "settled_events", "worker_context"]


def _drop(topic: str, data: Any, *, minor: bool = False) -> None:
    """Publish nowhere."""


def _run_now(callback: Callable[[], None]) -> None:
    callback()


def worker_context(
    project: Path,
    name: WorkerName,
    *,
    session_id: str = "2026-01-01-000000",
    settings: Settings | None = None,
    settings_overrides: dict[str, Any] | None = None,
    options: dict[str, Any] | None = None,
    publish: Publish = _drop,
    call_soon_threadsafe: Callable[[Callable[[], None]], None] = _run_now,
    log: Any = None,
) -> WorkerContext:
    """A `WorkerContext` for `name` over `project`, as the host would build it, without sockets.

    `settings` wins over `settings_overrides` (the shape of defaults.toml) over
    the shipped defaults. By default events go nowhere, a callback scheduled
    "from another thread" runs at once, and the log is structlog's, bound to
    the worker's name.
    """
    return WorkerContext(
        name=name,
        paths=ProjectPaths.of(project),
        settings=settings or load_settings(settings_overrides),
        session_id=session_id,
        options=dict(options or {}),
        publish=publish,
        call_soon_threadsafe=call_soon_threadsafe,
        log=log if log is not None else structlog.get_logger().bind(worker=name.value),
    )


@dataclass
class Published:
    """Events a worker published, in order, with when (monotonic) they were."""

    events: list[tuple[str, Any]] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    callbacks: queue.SimpleQueue[Callable[[], None]] = field(default_factory=queue.SimpleQueue)

    def publish(self, topic: str, data: Any, *, minor: bool = False) -> None:
        """The context's `publish` (`minor` does not matter in process)."""
        self.events.append((topic, data))
        self.times.append(time.monotonic())

    def topics(self) -> list[str]:
        """Just the topics, in order."""
        return [topic for topic, _ in self.events]

    def clear(self) -> None:
        """Forget what was published so far."""
        self.events.clear()
        self.times.clear()


def make_context(
    project: Path,
    name: WorkerName,
    *,
    session_id: str = "2026-01-01-000000",
    settings: Settings | None = None,
    options: dict[str, Any] | None = None,
) -> tuple[WorkerContext, Published]:
    """A context whose `publish` appends to the returned `Published`."""
    published = Published()
    ctx = worker_context(
        project,
        name,
        session_id=session_id,
        settings=settings,
        options=options,
        publish=published.publish,
        call_soon_threadsafe=published.callbacks.put,
    )
    return ctx, published


def _run_callbacks(published: Published | None) -> None:
    if published is None:
        return
    while True:
        try:
            callback = published.callbacks.get_nowait()
        except queue.Empty:
            return
        callback()


def pump(
    worker: Worker,
    until: Callable[[], bool],
    *,
    timeout_s: float = 2.0,
    published: Published | None = None,
) -> bool:
    """Run the worker's loop until `until()` is true (True) or `timeout_s` passes (False)."""
    handlers = dict(worker.pollables())
    give_up = time.monotonic() + timeout_s
    while True:
        _run_callbacks(published)
        if until():
            return True
        now = time.monotonic()
        if now >= give_up:
            return False
        wait = give_up - now
        wanted = worker.next_deadline()
        if wanted is not None:
            wait = max(0.0, min(wait, wanted - now))
        # Short waits keep call_soon_threadsafe callbacks (no fd of their own) prompt.
        ready, _, _ = select.select(list(handlers), [], [], min(wait, 0.01))
        for fd in ready:
            handlers[fd]()
        now = time.monotonic()
        wanted = worker.next_deadline()
        if wanted is not None and now >= wanted:
            worker.tick(now)


def pump_for(worker: Worker, seconds: float, *, published: Published | None = None) -> None:
    """Run the worker's loop for `seconds` (to see that nothing more happens)."""
    pump(worker, lambda: False, timeout_s=seconds, published=published)


def settled_events(
    worker: Worker,
    published: Published,
    count: int,
    *,
    quiet_s: float = 0.15,
    timeout_s: float = 2.0,
) -> list[tuple[str, Any]]:
    """Pump until `count` events arrived, then `quiet_s` more to catch any extra ones."""
    pump(worker, lambda: len(published.events) >= count, timeout_s=timeout_s, published=published)
    pump_for(worker, quiet_s, published=published)
    return list(published.events)
