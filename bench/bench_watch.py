"""`watch`: how soon a save becomes an event, and what watching 10,000 files costs.

* Write-to-event latency, in process: the time from the start of a save to
  the file watcher's `publish` of its one `file.modified` (the ZeroMQ hop to
  a subscriber adds ~0.2 ms, measured). The baseline is raw watchdog in
  the same run, watching the same folder: the time to its *first* event for
  the same save, before any coalescing (and before it would have sent the
  duplicates we suppress). Our figure includes the 20 ms settle window on
  purpose; the issue's bound is p50 < 60 ms, checked in a row of its own.
* Watcher start on a tree of 10,000 files (four folders, nested): the time of
  `FileWatcher.start()` (watches plus the tree scan) and the RSS it adds,
  each in a fresh interpreter, against watchdog's own observer scheduling
  the same folders. Generated on the project's disk (the harness's workdir),
  never on tmpfs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from watchdog.events import FileSystemEvent, FileSystemEventHandler

from bench.harness import BenchContext, Row, Target, benchmark, percentile
from protocol.names import WorkerName
from services.file_watcher import FileWatcher
from services.inprocess import make_context, pump
from services.runtime.paths import WATCHED_FOLDERS

__all__ = ["LATENCY_BUDGET_S", "make_tree", "watch"]

LATENCY_BUDGET_S = 0.060
"""The issue's bound on the write-to-event p50."""

TREE_FILES = 10_000
_FILES_PER_FOLDER = 100


_CHANGES = frozenset({"created", "modified", "deleted", "moved"})


class _FirstEvents(FileSystemEventHandler):
    """A raw watchdog handler remembering when each path was first seen after `arm`."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._armed: dict[str, float | None] = {}
        self.counts: dict[str, int] = {}

    def arm(self, path: str) -> None:
        with self._lock:
            self._armed[path] = None
            self.counts[path] = 0

    def seen(self, path: str) -> float | None:
        with self._lock:
            return self._armed.get(path)

    def dispatch(self, event: FileSystemEvent) -> None:
        if event.is_directory or event.event_type not in _CHANGES:
            return  # opens and closes are not changes a watcher would report
        now = time.monotonic()
        with self._lock:
            for path in (event.src_path, getattr(event, "dest_path", "")):
                if path in self._armed:
                    self.counts[path] = self.counts.get(path, 0) + 1
                    if self._armed[path] is None:
                        self._armed[path] = now


def _in_place(path: Path, text: str) -> None:
    with path.open("w") as handle:
        handle.write(text)


def _safe_write(path: Path, text: str) -> None:
    temp = path.with_name(f"{path.name}.tmp")
    temp.write_text(text)
    temp.replace(path)


def _latency(
    ctx: BenchContext, writes: int, save: Any, folder: str
) -> tuple[list[float], list[float]]:
    """Samples (ours, raw watchdog's) for `writes` saves done by `save`."""
    from watchdog.observers import Observer

    project = ctx.workdir / f"latency-{folder}"
    chapters = project / "manuscript" / folder
    chapters.mkdir(parents=True, exist_ok=True)
    paths = [chapters / f"chapter-{n}.md" for n in range(10)]
    for path in paths:
        path.write_text("draft\n")
    raw = _FirstEvents()
    observer = Observer()
    observer.start()
    observer.schedule(raw, str(project / "manuscript"), recursive=True)
    context, published = make_context(project, WorkerName.FILE_WATCHER)
    watcher = FileWatcher(context)
    watcher.start()
    ours: list[float] = []
    theirs: list[float] = []
    raw_events = 0
    try:
        for n in range(writes + 2):  # two warm-up saves
            path = paths[n % len(paths)]
            raw.arm(str(path))
            before = len(published.events)
            started = time.monotonic()
            save(path, f"draft {n}\n" * (1 + n % 7))

            def arrived(before: int = before) -> bool:
                return len(published.events) > before

            if not pump(watcher, arrived, timeout_s=2.0):
                raise RuntimeError(f"no event for save {n} within 2 s")
            # Let duplicates (if any) surface, and keep saves apart as a writer's are.
            pump(watcher, lambda: False, timeout_s=0.03)
            seen = raw.seen(str(path))
            if n >= 2 and seen is not None:
                ours.append(published.times[before] - started)
                theirs.append(seen - started)
                raw_events += raw.counts.get(str(path), 0)
            if len(published.events) != before + 1:
                ctx.notes.append(f"save {n} gave {len(published.events) - before} events")
    finally:
        watcher.stop()
        observer.stop()
        observer.join()
    ctx.notes.append(
        f"{folder}: raw watchdog delivered {raw_events / max(1, len(ours)):.1f} events per save "
        f"(created/modified/deleted/moved on the path); the watcher published "
        f"{(len(published.events)) / (writes + 2):.2f}"
    )
    return ours, theirs


def make_tree(root: Path, files: int = TREE_FILES) -> None:
    """`files` small files spread over the four watched folders, 100 per subfolder."""
    for n in range(files):
        folder = WATCHED_FOLDERS[n % len(WATCHED_FOLDERS)]
        sub = root / folder / f"part-{n // len(WATCHED_FOLDERS) // _FILES_PER_FOLDER:03d}"
        sub.mkdir(parents=True, exist_ok=True)
        (sub / f"note-{n:05d}.md").write_text(f"note {n}\n")


_CHILD = """
import json, os, sys, time
from pathlib import Path

def rss_kb():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0

root = Path(sys.argv[2])
if sys.argv[1] == "ours":
    from protocol.names import WorkerName
    from services.file_watcher import FileWatcher
    from services.inprocess import make_context
    context, _ = make_context(root, WorkerName.FILE_WATCHER)
    worker = FileWatcher(context)
    before = rss_kb(); started = time.perf_counter()
    worker.start()
    elapsed = time.perf_counter() - started; after = rss_kb()
    worker.stop()
else:
    from watchdog.observers import Observer
    from watchdog.events import FileSystemEventHandler
    before = rss_kb(); started = time.perf_counter()
    observer = Observer(); observer.start()
    handler = FileSystemEventHandler()
    observer.schedule(handler, str(root), recursive=False)
    for folder in ("manuscript", "reference", "planning", "output"):
        observer.schedule(handler, str(root / folder), recursive=True)
    elapsed = time.perf_counter() - started; after = rss_kb()
    observer.stop(); observer.join()
print(json.dumps({"start_s": elapsed, "rss_kb": after - before}))
"""


def _start_child(kind: str, root: Path) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, kind, str(root)],
        capture_output=True,
        check=True,
        timeout=60,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
    )
    result: dict[str, float] = json.loads(done.stdout.decode().strip().splitlines()[-1])
    return result


def _start_cost(ctx: BenchContext) -> tuple[list[float], list[float], list[float], list[float]]:
    root = ctx.workdir / "tree"
    make_tree(root)
    rounds = ctx.rounds(6, 2)
    ours_s: list[float] = []
    raw_s: list[float] = []
    ours_kb: list[float] = []
    raw_kb: list[float] = []
    for index in range(rounds):
        order = ("ours", "raw") if index % 2 == 0 else ("raw", "ours")
        for kind in order:
            result = _start_child(kind, root)
            (ours_s if kind == "ours" else raw_s).append(result["start_s"])
            (ours_kb if kind == "ours" else raw_kb).append(result["rss_kb"])
    return ours_s, raw_s, ours_kb, raw_kb


@benchmark("watch")
def watch(ctx: BenchContext) -> list[Row]:
    """File watcher: save-to-event latency vs raw watchdog; start time on 10,000 files."""
    writes = ctx.rounds(200, 40)
    in_place, in_place_raw = _latency(ctx, writes, _in_place, "in-place")
    safe, safe_raw = _latency(ctx, ctx.rounds(50, 10), _safe_write, "safe-write")
    budget = [LATENCY_BUDGET_S] * len(in_place)
    ours_s, raw_s, ours_kb, raw_kb = _start_cost(ctx)
    p50 = percentile(in_place, 0.5)
    ctx.notes.append(
        f"latency p50 {p50 * 1e3:.1f} ms for {len(in_place)} in-place saves "
        f"(bound: < {LATENCY_BUDGET_S * 1e3:.0f} ms; includes the 20 ms settle window); "
        "raw watchdog = its first event for the same save, duplicates not counted"
    )
    ctx.notes.append(
        f"start on {TREE_FILES:,} files: RSS added p50 {percentile(ours_kb, 0.5) / 1024:.1f} MiB "
        f"(watchdog alone {percentile(raw_kb, 0.5) / 1024:.1f} MiB); each start in a fresh "
        "interpreter, imports done before timing"
    )
    return [
        Row("save->event, in-place", in_place, "raw watchdog 1st event", in_place_raw),
        Row("save->event, in-place", in_place, "60 ms bound", budget, Target("p50", 1.0)),
        Row("save->event, safe write", safe, "raw watchdog 1st event", safe_raw),
        Row("start, 10k files", ours_s, "watchdog schedule only", raw_s),
    ]
