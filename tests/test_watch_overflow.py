"""When events are lost (kernel queue overflow) or watches run out (inotify limit)."""

from __future__ import annotations

import errno
import os
import struct
from pathlib import Path
from typing import Any

import pytest
import structlog

from protocol.names import WorkerName
from services.file_watcher import FileWatcher
from services.inprocess import make_context, pump, settled_events
from services.watch import overflow
from services.watch.observers import Backend, default_observer


class DeafObserver:
    """An observer that never reports anything: every change is 'lost'."""

    def start(self) -> None:
        """Nothing to start."""

    def schedule(
        self, handler: Any, path: str, *, recursive: bool = False, event_filter: Any = None
    ) -> object:
        """Accept the watch and stay silent."""
        return object()

    def unschedule(self, watch: object) -> None:
        """Nothing to stop."""

    def stop(self) -> None:
        """Nothing to stop."""

    def join(self, timeout: float | None = None) -> None:
        """Nothing to wait for."""


def deaf(kind: Backend) -> DeafObserver:
    """Factory of deaf observers."""
    return DeafObserver()


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project with three files in manuscript/."""
    root = tmp_path / "book"
    (root / "manuscript").mkdir(parents=True)
    for name in ("keep.md", "edit.md", "gone.md", "old-name.md"):
        (root / "manuscript" / name).write_text(f"{name}\n")
    return root


def test_overflow_rescan_publishes_what_changed(project: Path) -> None:
    """After an overflow, every change missed is published, compared with the last known tree."""
    ctx, published = make_context(project, WorkerName.FILE_WATCHER)
    worker = FileWatcher(ctx, observer_factory=deaf)
    worker.start()
    try:
        (project / "manuscript" / "edit.md").write_text("edited, longer\n")
        (project / "manuscript" / "gone.md").unlink()
        (project / "manuscript" / "old-name.md").rename(project / "manuscript" / "new-name.md")
        (project / "manuscript" / "born.md").write_text("new\n")
        (project / "manuscript" / ".born.md.swp").write_text("litter\n")
        assert settled_events(worker, published, 1, timeout_s=0.1) == []  # lost
        overflow.notify_overflow()  # what the kernel's IN_Q_OVERFLOW triggers
        events = settled_events(worker, published, 4)
        assert events == [
            (
                "file.moved",
                {"path": "manuscript/old-name.md", "dest_path": "manuscript/new-name.md"},
            ),
            ("file.deleted", {"path": "manuscript/gone.md"}),
            ("file.created", {"path": "manuscript/born.md"}),
            ("file.modified", {"path": "manuscript/edit.md"}),
        ]
        assert worker.health()["overflows"] == 1
        assert worker.health()["rescans"] == 1
    finally:
        worker.stop()


def test_events_queued_before_an_overflow_are_not_published_twice(project: Path) -> None:
    """Real events still in flight when the rescan ran do not duplicate what it published."""
    ctx, published = make_context(project, WorkerName.FILE_WATCHER)
    worker = FileWatcher(ctx)
    worker.start()
    try:
        (project / "manuscript" / "born.md").write_text("new\n")
        (project / "manuscript" / "edit.md").write_text("edited, longer\n")
        worker.rescan("test")  # runs before the queued inotify events are taken
        events = settled_events(worker, published, 2, quiet_s=0.2)
        assert sorted(events, key=str) == [
            ("file.created", {"path": "manuscript/born.md"}),
            ("file.modified", {"path": "manuscript/edit.md"}),
        ]
    finally:
        worker.stop()


def test_kernel_overflow_record_reaches_the_watcher() -> None:
    """watchdog's inotify parser, which drops IN_Q_OVERFLOW, now tells us first."""
    inotify_c = pytest.importorskip("watchdog.observers.inotify_c")
    assert overflow.install()
    seen: list[bool] = []

    def listener() -> None:
        seen.append(True)

    overflow.add_listener(listener)
    try:
        buffer = struct.pack("iIII", -1, overflow.IN_Q_OVERFLOW, 0, 0)
        buffer += struct.pack("iIII", 1, 0x2, 0, 0)  # an ordinary IN_MODIFY passes through
        parsed = list(inotify_c.Inotify._parse_event_buffer(buffer))
    finally:
        overflow.remove_listener(listener)
    assert seen == [True]
    assert [(wd, mask) for wd, mask, _, _ in parsed] == [(-1, overflow.IN_Q_OVERFLOW), (1, 0x2)]


class LimitedObserver:
    """The native observer, refusing new watches once `allowed` are in place (ENOSPC)."""

    def __init__(self, allowed: int) -> None:
        self.inner = default_observer("native")
        self.allowed = allowed

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def schedule(self, handler: Any, path: str, **kwargs: Any) -> Any:
        """Schedule, or fail as inotify does at its limit."""
        if self.allowed <= 0:
            raise OSError(errno.ENOSPC, "inotify watch limit reached")
        self.allowed -= 1
        return self.inner.schedule(handler, path, **kwargs)


def test_watch_limit_falls_back_to_polling_and_says_so(project: Path) -> None:
    """At the inotify limit the rest is polled: events still arrive, health and logs say why."""
    from watchdog.observers.polling import PollingObserverVFS

    def factory(kind: Backend) -> Any:
        if kind == "native":
            return LimitedObserver(allowed=1)  # the project root only
        return PollingObserverVFS(stat=os.lstat, listdir=os.scandir, polling_interval=0.1)  # type: ignore[arg-type]

    ctx, published = make_context(project, WorkerName.FILE_WATCHER)
    worker = FileWatcher(ctx, observer_factory=factory)
    with structlog.testing.capture_logs() as logs:
        worker.start()
    try:
        health = worker.health()
        assert health["watch_limit_reached"] is True
        assert health["backend"] == "native+polling"
        assert health["polling"] == ["manuscript"]
        assert "inotify watch limit reached" in (health["watch_limit_error"] or "")
        assert any(entry["event"] == "watch.limit_reached" for entry in logs)
        (project / "manuscript" / "edit.md").write_text("edited by a polling-watched writer\n")
        events = settled_events(worker, published, 1, timeout_s=2.0)
        assert events == [("file.modified", {"path": "manuscript/edit.md"})]
        (project / "reference").mkdir()
        (project / "reference" / "bible.md").write_text("lore\n")
        assert pump(worker, lambda: len(published.events) == 2, timeout_s=2.0)
        assert published.events[1] == ("file.created", {"path": "reference/bible.md"})
        assert worker.health()["polling"] == ["manuscript", "reference"]
    finally:
        worker.stop()


def test_a_subfolder_made_beyond_the_limit_is_polled(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """watchdog silently skips a new subfolder at the limit; we notice and poll it."""
    from watchdog.observers import inotify_c
    from watchdog.observers.polling import PollingObserverVFS

    original = inotify_c.Inotify._add_watch

    def at_the_limit(self: Any, path: bytes, mask: int) -> int:
        if path.endswith(b"/act-2"):
            raise OSError(errno.ENOSPC, "inotify watch limit reached")
        return original(self, path, mask)

    monkeypatch.setattr(inotify_c.Inotify, "_add_watch", at_the_limit)

    def factory(kind: Backend) -> Any:
        if kind == "native":
            return default_observer("native")
        return PollingObserverVFS(stat=os.lstat, listdir=os.scandir, polling_interval=0.1)  # type: ignore[arg-type]

    ctx, published = make_context(project, WorkerName.FILE_WATCHER)
    worker = FileWatcher(ctx, observer_factory=factory)
    worker.start()
    try:
        (project / "manuscript" / "act-2").mkdir()
        (project / "manuscript" / "act-2" / "scene-1.md").write_text("A new act.\n")
        assert pump(worker, lambda: len(published.events) >= 1, timeout_s=2.0)
        assert published.events == [("file.created", {"path": "manuscript/act-2/scene-1.md"})]
        published.clear()
        (project / "manuscript" / "act-2" / "scene-2.md").write_text("More.\n")
        events = settled_events(worker, published, 1, timeout_s=2.0, quiet_s=0.3)
        assert events == [("file.created", {"path": "manuscript/act-2/scene-2.md"})]
        health = worker.health()
        assert health["watch_limit_reached"] is True
        assert health["polling"] == ["manuscript/act-2"]
    finally:
        worker.stop()


def test_a_real_kernel_queue_overflow_is_recovered(tmp_path: Path) -> None:
    """The kernel drops events past its queue limit; a rescan still reports each new file once."""
    queue_limit = int(Path("/proc/sys/fs/inotify/max_queued_events").read_text())
    if queue_limit > 20_000:
        pytest.skip(f"max_queued_events is {queue_limit}: too many files to write in a test")
    project = tmp_path / "book"
    (project / "manuscript").mkdir(parents=True)
    ctx, published = make_context(project, WorkerName.FILE_WATCHER)
    worker = FileWatcher(ctx)
    worker.start()
    try:
        watch = worker.watches._watches["manuscript"]
        inotify = watch.observer._emitter_for_watch[watch.handle]._inotify._inotify
        # Two events a file (IN_CREATE, IN_CLOSE_WRITE); the reader may still take
        # one 64 KiB buffer (~2,000 events) before it stalls: 1.5x the limit overflows.
        count = queue_limit * 3 // 4
        folder = os.fspath(project / "manuscript")
        with inotify._lock:  # watchdog's reader stalls: the kernel queue fills and overflows
            for n in range(count):
                os.close(os.open(f"{folder}/f{n:05d}.md", os.O_CREAT | os.O_WRONLY, 0o644))
        assert pump(worker, lambda: len(published.events) >= count, timeout_s=10.0)
        settled_events(worker, published, count, quiet_s=0.2)
        paths = [data["path"] for topic, data in published.events if topic == "file.created"]
        assert len(published.events) == count == len(set(paths))
        assert worker.health()["overflows"] >= 1
    finally:
        worker.stop()
