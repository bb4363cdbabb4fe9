"""The file watcher worker: what the writer did to their files, as events.

It owns no file and only publishes `file.created`, `file.modified`,
`file.deleted` and `file.moved` (docs/protocol.md) for the four
watched folders, with paths relative to the project root.

The pipeline, each stage in its own module:

* watchdog observers (`services.watch.observers`) on the project root (not
  recursive: to notice a watched folder being created, removed or renamed)
  and on each watched folder (recursive); past the inotify watch limit, a
  polling observer for the rest.
* `services.watch.intake` hands their events to the main thread.
* `services.watch.coalesce` turns an editor's save dance into one change per
  path once it settles (20 ms), ignoring editors' litter (`services.readonly.filters`).
* Each change is confirmed against the last known tree (`services.watch.scan`)
  before it is published: a change that leaves size, mtime and inode as last
  reported is not published twice, and a delete plus a create of one inode in
  two watched folders is one move.
* When the kernel's queue overflowed (`services.watch.overflow`), the tree is
  rescanned and the difference published, so nothing is silently missed.
"""

from __future__ import annotations

import functools
import os
import time
from typing import Any, ClassVar, Final

from config import default_value
from protocol.names import WorkerName
from services.readonly.filters import top_folder
from services.readonly.tree import Tree, scan_folder, scan_project, stat_file
from services.runtime.paths import WATCHED_FOLDERS
from services.runtime.worker import Worker, WorkerContext
from services.watch import overflow
from services.watch.coalesce import Coalescer, FileChange
from services.watch.intake import Intake, RawEvent
from services.watch.observers import ObserverFactory, WatchSet, default_observer
from services.watch.scan import GONE, diff_trees

__all__ = ["BLIND_RESCAN_INTERVAL_S", "FileWatcher"]

BLIND_RESCAN_INTERVAL_S: Final = float(default_value("watch", "blind_rescan_interval_s"))
"""The shipped `watch.blind_rescan_interval_s`: without a way to notice queue
overflows, rescan this often instead (a run uses its own settings' value)."""

_ROOT_KEY: Final = ""


class FileWatcher(Worker):
    """Publishes the writer's file changes in the four watched folders."""

    name: ClassVar[WorkerName] = WorkerName.FILE_WATCHER

    def __init__(
        self,
        ctx: WorkerContext,
        *,
        observer_factory: ObserverFactory | None = None,
        settle_s: float | None = None,
        max_hold_s: float | None = None,
    ) -> None:
        """Timings come from the run's settings (`[watch]`, so `--config` changes
        them); tests may pass their own observers and grouping times."""
        super().__init__(ctx)
        timing = ctx.settings.watch
        self._poll_interval_s = timing.poll_interval_s
        self._blind_rescan_s = timing.blind_rescan_interval_s
        if observer_factory is None:
            observer_factory = functools.partial(
                default_observer, poll_interval_s=timing.poll_interval_s
            )
        settle_s = timing.settle_s if settle_s is None else settle_s
        max_hold_s = timing.max_hold_s if max_hold_s is None else max_hold_s
        self.root = ctx.paths.project
        self._prefix = f"{self.root}{os.sep}"
        self.tree = Tree()
        self.coalescer = Coalescer(
            existed=lambda path: path in self.tree, settle_s=settle_s, max_hold_s=max_hold_s
        )
        self.intake = Intake()
        self.watches = WatchSet(
            self.intake,
            factory=observer_factory,
            log=self.log,
            poll_interval_s=timing.poll_interval_s,
        )
        self.missing: set[str] = set()
        self.skipped: dict[str, str] = {}
        self.overflow_detection = False
        self.published = 0
        self.suppressed = 0
        self.overflows = 0
        self.rescans = 0
        self._next_blind_rescan: float | None = None

    # -- lifecycle -----------------------------------------------------------------

    def start(self) -> None:
        """Watch the root and the four folders, then record the tree as it is."""
        started = time.monotonic()
        self.overflow_detection = overflow.install()
        overflow.add_listener(self.intake.put_overflow)
        self.watches.watch(_ROOT_KEY, str(self.root), recursive=False)
        for folder in WATCHED_FOLDERS:
            self._watch_folder(folder, appeared=False)
        # Scanned after the watches exist: a change in between is seen twice
        # (scan and event) and the confirmation step drops the repeat.
        self.tree = scan_project(self.root, self._watched_folders())
        if not self.overflow_detection:
            self._next_blind_rescan = time.monotonic() + self._blind_rescan_s
        self.log.info(
            "watch.started",
            files=len(self.tree),
            start_ms=round((time.monotonic() - started) * 1000, 1),
            **self.health(),
        )

    def stop(self) -> None:
        """Publish what is still settling, then stop the observers."""
        self._take_all(self.intake.drain())
        for change in self.coalescer.flush_all():
            self._confirm_and_publish(change)
        overflow.remove_listener(self.intake.put_overflow)
        self.watches.stop()
        self.intake.close()

    def health(self) -> dict[str, Any]:
        """How the watching goes: backends, limits, missing folders, rescans."""
        backends = {key or ".": self.watches.backend_of(key) for key in self.watches.keys_watched()}
        polling = sorted(key for key, backend in backends.items() if backend == "polling")
        return {
            "backend": "polling"
            if polling and len(polling) == len(backends)
            else ("native+polling" if polling else "native"),
            "watch_limit_reached": self.watches.limit_reached,
            "watch_limit_error": self.watches.limit_error,
            "polling": polling,
            "poll_interval_s": self._poll_interval_s if polling else None,
            "watched": sorted(key for key in backends if key != "."),
            "missing": sorted(self.missing),
            "skipped": dict(self.skipped),
            "overflow_detection": self.overflow_detection,
            "overflows": self.overflows,
            "rescans": self.rescans,
            "files_known": len(self.tree),
            "published": self.published,
        }

    # -- the loop ------------------------------------------------------------------

    def pollables(self) -> list[tuple[int, Any]]:
        """The intake's wake-up pipe."""
        return [(self.intake.fileno(), self._on_intake)]

    def next_deadline(self) -> float | None:
        """When the next pending path settles (or the blind rescan is due)."""
        settle = self.coalescer.next_deadline()
        if self._next_blind_rescan is None:
            return settle
        return self._next_blind_rescan if settle is None else min(settle, self._next_blind_rescan)

    def tick(self, now: float) -> None:
        """Publish every path that has settled."""
        if self._next_blind_rescan is not None and now >= self._next_blind_rescan:
            self._next_blind_rescan = now + self._blind_rescan_s
            self.rescan("periodic")
        for change in self.coalescer.flush(now):
            self._confirm_and_publish(change)

    def _on_intake(self) -> None:
        self._take_all(self.intake.drain())

    # -- raw events to coalescer input ---------------------------------------------

    def _relative(self, absolute: str) -> str | None:
        if not absolute.startswith(self._prefix):
            return None
        rel = absolute[len(self._prefix) :]
        return rel.replace(os.sep, "/") if os.sep != "/" else rel

    def _take_all(self, events: list[RawEvent]) -> None:
        for event in events:
            self._take(event)

    def _take(self, event: RawEvent) -> None:
        if event.kind == "overflow":
            self.overflows += 1
            self.rescan("overflow")
            return
        if event.kind == "other":
            return
        src = self._relative(event.src)
        dest = self._relative(event.dest) if event.kind == "moved" else None
        if event.is_directory:
            self._take_folder_event(event, src, dest)
            return
        if event.kind == "moved":
            if src is not None and dest is not None:
                self.coalescer.feed("moved", src, dest, at=event.at)
            elif dest is not None:
                self.coalescer.feed("created", dest, at=event.at)
            elif src is not None:
                self.coalescer.feed("deleted", src, at=event.at)
        elif src is not None:
            kind = "modified" if event.kind == "closed" else event.kind
            self.coalescer.feed(kind, src, at=event.at)

    def _take_folder_event(self, event: RawEvent, src: str | None, dest: str | None) -> None:
        if src in WATCHED_FOLDERS or dest in WATCHED_FOLDERS:
            # A watched folder itself appeared, vanished or was renamed.
            if event.kind in {"deleted", "moved"} and src in WATCHED_FOLDERS:
                self._forget_folder(src, at=event.at)
            if event.kind == "created" and src in WATCHED_FOLDERS:
                self._watch_folder(src, appeared=True, at=event.at)
            if event.kind == "moved" and dest in WATCHED_FOLDERS:
                self._watch_folder(dest, appeared=True, at=event.at)
            return
        if event.kind in {"deleted", "moved"} and src is not None:
            for key in self.watches.keys_watched():
                if key == src or key.startswith(f"{src}/"):
                    self.watches.unwatch(key)  # a subfolder we were polling
        if event.kind == "deleted" and src is not None:
            # A folder moved out of the project arrives as one folder deletion.
            for path in self.tree.under(src):
                self.coalescer.feed("deleted", path, at=event.at)
        arrived = dest if event.kind == "moved" else src if event.kind == "created" else None
        if arrived is not None:
            self._check_subfolder_watched(arrived, at=event.at)
        # Otherwise watchdog reports each file inside created and moved folders.

    def _check_subfolder_watched(self, folder: str, *, at: float) -> None:
        top = top_folder(folder)
        if top is None or self.watches.natively_covers(top, str(self.root / folder)) is not False:
            return
        # watchdog could not add an inotify watch for it (limit): poll it.
        self.watches.note_limit(f"inotify watch limit reached while watching {folder}")
        if self.watches.watch(folder, str(self.root / folder), recursive=True) is None:
            return
        for rel in scan_folder(self.root, folder).files:
            if rel not in self.tree:
                self.coalescer.feed("created", rel, at=at)

    # -- watched folders -----------------------------------------------------------

    def _watched_folders(self) -> list[str]:
        return [key for key in self.watches.keys_watched() if key in WATCHED_FOLDERS]

    def _watch_folder(self, folder: str, *, appeared: bool, at: float = 0.0) -> None:
        path = self.root / folder
        if path.is_symlink():
            try:
                target = path.resolve()
            except (OSError, RuntimeError):  # a symlink loop
                self.skipped[folder] = "symlink that does not resolve: not followed"
                return
            if not target.is_relative_to(self.root):
                self.skipped[folder] = f"symlink to {target}, outside the project: not followed"
                self.log.warning("watch.symlink_skipped", folder=folder, target=str(target))
                return
        if not path.is_dir():
            self.missing.add(folder)
            return
        if self.watches.watch(folder, str(path), recursive=True) is None:
            self.missing.add(folder)
            return
        self.missing.discard(folder)
        self.skipped.pop(folder, None)
        if appeared:
            # Files written into it before our watch existed have no event.
            self.log.info("watch.folder_appeared", folder=folder)
            for rel in scan_folder(self.root, folder).files:
                if rel not in self.tree:
                    self.coalescer.feed("created", rel, at=at or time.monotonic())

    def _forget_folder(self, folder: str, *, at: float) -> None:
        self.watches.unwatch(folder)
        self.missing.add(folder)
        self.log.info("watch.folder_gone", folder=folder)
        for path in self.tree.under(folder):
            self.coalescer.feed("deleted", path, at=at)

    # -- rescans -------------------------------------------------------------------

    def rescan(self, reason: str) -> list[FileChange]:
        """Compare the disk with the last known tree and publish the difference.

        Pending (unsettled) changes are dropped first: the rescan sees their
        result on disk, and events still queued for them are confirmed
        against the new tree, so none is published twice.
        """
        self.coalescer.discard()
        fresh = scan_project(self.root, self._watched_folders())
        changes = diff_trees(self.tree, fresh)
        self.tree = fresh
        self.rescans += 1
        self.log.warning("watch.rescan", reason=reason, changes=len(changes), files=len(fresh))
        for change in changes:
            self._publish(change)
        return changes

    # -- confirmation against the tree ---------------------------------------------

    def _confirm_and_publish(self, change: FileChange) -> None:
        if change.kind == "deleted":
            if change.path not in self.tree or stat_file(self.root / change.path) is not None:
                # Never reported, or already back (its creation is on its way
                # and will read as a save).
                self.suppressed += 1
                return
            self.tree.remove(change.path)
            self._publish(change)
            return
        if change.kind == "moved" and change.dest_path is not None:
            if change.path not in self.tree:
                self._confirm_and_publish(FileChange("created", change.dest_path))
                return
            self.tree.remove(change.path)
            self.tree.set(change.dest_path, stat_file(self.root / change.dest_path) or GONE)
            self._publish(change)
            return
        self._confirm_write(change.path)

    def _confirm_write(self, path: str) -> None:
        stat = stat_file(self.root / path)
        if stat is None:
            # Gone again already: its deletion is queued and will be reported.
            self.suppressed += 1
            return
        known = self.tree.get(path)
        if known == stat:
            self.suppressed += 1  # nothing new since we last reported it
            return
        if known is None:
            source = self.tree.path_with_inode(stat.ino)
            source_stat = self.tree.get(source) if source is not None else None
            if (
                source is not None
                and source_stat is not None
                and (source_stat.mtime_ns, source_stat.size) == (stat.mtime_ns, stat.size)
                and stat_file(self.root / source) is None
            ):
                # Renamed between two watched folders: two watches, two halves.
                self.tree.remove(source)
                self.tree.set(path, stat)
                self._publish(FileChange("moved", source, path))
                return
        self.tree.set(path, stat)
        self._publish(FileChange("created" if known is None else "modified", path))

    def _publish(self, change: FileChange) -> None:
        self.published += 1
        self.ctx.publish(change.topic, change.data())
