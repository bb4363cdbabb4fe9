"""`[watch]` timings in a `--config` file reach the file watcher (they were fixed at import)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from config import load_settings
from protocol.names import WorkerName
from services.file_watcher import FileWatcher
from services.inprocess import make_context, pump
from services.watch import overflow

_TIMINGS = {
    "settle_s": 0.75,
    "max_hold_s": 5.0,
    "blind_rescan_interval_s": 7.0,
    "poll_interval_s": 3,
}


def _watcher(project: Path) -> FileWatcher:
    (project / "manuscript").mkdir(parents=True)
    settings = load_settings({"watch": _TIMINGS})
    ctx, _ = make_context(project, WorkerName.FILE_WATCHER, settings=settings)
    return FileWatcher(ctx)


def test_a_configured_settle_time_holds_a_change_that_long(tmp_path: Path) -> None:
    """A saved chapter is held for the configured 0.75 s of quiet, not the shipped 0.02 s."""
    worker = _watcher(tmp_path / "novel")
    worker.start()
    try:
        (tmp_path / "novel" / "manuscript" / "ch1.md").write_text("draft\n")
        saved = time.monotonic()
        pending = worker.coalescer.next_deadline
        assert pump(worker, lambda: pending() is not None, timeout_s=5.0), "the save was unseen"
        due = pending()
        assert due is not None
        assert saved + 0.6 < due <= time.monotonic() + 0.75
    finally:
        worker.stop()


def test_a_configured_blind_rescan_interval_is_used_without_overflow_detection(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where queue overflows cannot be noticed, the tree is rescanned every configured 7 s."""
    monkeypatch.setattr(overflow, "install", lambda: False)
    worker = _watcher(tmp_path / "novel")
    began = time.monotonic()
    worker.start()
    try:
        due = worker.next_deadline()
        assert due is not None
        assert 6.5 < due - began <= 7.0 + (time.monotonic() - began)
    finally:
        worker.stop()


def test_the_polling_fallback_lists_the_tree_at_the_configured_interval(tmp_path: Path) -> None:
    """Past the watch limit, folders are polled every configured 3 s, and health says so."""
    worker = _watcher(tmp_path / "novel")
    observer = worker.watches.factory("polling")
    assert observer.timeout == 3
    assert worker.watches.poll_interval_s == 3
