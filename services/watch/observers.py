"""The watchdog observers behind the file watcher, and the fall back to polling.

inotify needs one kernel watch per folder, limited per user
(`fs.inotify.max_user_watches`, often 8,192 to 128k, shared with every IDE and
sync client the writer runs). When adding a watch fails with ENOSPC ("inotify
watch limit reached") or EMFILE (instance limit), the folder and every folder
watched after it get watchdog's polling observer instead: changes are then
seen within `POLL_INTERVAL_S` rather than at once, and the worker says so in
its health and its log. Polling uses `lstat`, so symlinks are never followed.

An idle watcher sleeps: watchdog 6's native observer blocks without a
timeout in each of its threads (the dispatcher on its event queue, the
emitter on the inotify buffer's delayed queue, the buffer's reader in
`poll()` of the inotify descriptor), and `stop()` wakes each of them at
once (a stop event in the queue, a closed queue, a byte on the reader's
kill pipe), so no timeout needs
configuring and a stop never waits one out (`python -m bench idle` shows
the watcher waking only for its idle heartbeat). Only the polling fallback
wakes on its own, every `POLL_INTERVAL_S`, by its nature.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Literal

from config import default_value

__all__ = [
    "LIMIT_ERRNOS",
    "POLL_INTERVAL_S",
    "Backend",
    "ObserverFactory",
    "WatchSet",
    "default_observer",
]

POLL_INTERVAL_S: Final = int(default_value("watch", "poll_interval_s"))
"""How often the polling fallback lists the tree (one stat per file; watchdog takes whole s)."""

LIMIT_ERRNOS: Final = frozenset({errno.ENOSPC, errno.EMFILE})
"""inotify's "watch limit reached" and "instance limit reached"."""

Backend = Literal["native", "polling"]

ObserverFactory = Callable[[Backend], Any]
"""Makes an unstarted watchdog observer of the asked kind (injectable for tests)."""


def default_observer(kind: Backend, poll_interval_s: int = POLL_INTERVAL_S) -> Any:
    """watchdog's native observer (inotify on Linux), or an lstat-based poller listing
    the tree every `poll_interval_s` (the run's `watch.poll_interval_s`)."""
    if kind == "native":
        from watchdog.observers import Observer

        return Observer()
    from watchdog.observers.polling import PollingObserverVFS

    return PollingObserverVFS(stat=os.lstat, listdir=os.scandir, polling_interval=poll_interval_s)


def _event_filter() -> list[type[Any]]:
    # Leaving out DirModifiedEvent also drops IN_OPEN/IN_CLOSE_NOWRITE/IN_ACCESS
    # from the inotify mask: reads of a chapter never wake us.
    from watchdog.events import (
        DirCreatedEvent,
        DirDeletedEvent,
        DirMovedEvent,
        FileClosedEvent,
        FileCreatedEvent,
        FileDeletedEvent,
        FileModifiedEvent,
        FileMovedEvent,
    )

    return [
        FileCreatedEvent,
        FileModifiedEvent,
        FileDeletedEvent,
        FileMovedEvent,
        FileClosedEvent,
        DirCreatedEvent,
        DirDeletedEvent,
        DirMovedEvent,
    ]


@dataclass
class _Watch:
    backend: Backend
    observer: Any
    handle: Any


class WatchSet:
    """Folders being watched, each by the native observer or, past the limit, by polling."""

    def __init__(
        self,
        handler: Any,
        *,
        factory: ObserverFactory = default_observer,
        log: Any,
        poll_interval_s: int = POLL_INTERVAL_S,
    ) -> None:
        self.handler = handler
        self.factory = factory
        self.log = log
        self.poll_interval_s = poll_interval_s
        """What the polling fallback's interval is, for the log (the factory sets it)."""
        self.limit_reached = False
        self.limit_error: str | None = None
        self._observers: dict[Backend, Any] = {}
        self._watches: dict[str, _Watch] = {}
        self._filter = _event_filter()

    def _observer(self, kind: Backend) -> Any:
        observer = self._observers.get(kind)
        if observer is None:
            observer = self.factory(kind)
            # Started before scheduling, so each schedule() adds its watches now
            # and a limit error surfaces here, synchronously.
            observer.start()
            self._observers[kind] = observer
        return observer

    def backend_of(self, key: str) -> Backend | None:
        """How `key` is watched, or None if it is not."""
        watch = self._watches.get(key)
        return watch.backend if watch else None

    def keys_watched(self) -> list[str]:
        """Every watched key."""
        return list(self._watches)

    def watch(self, key: str, path: str, *, recursive: bool) -> Backend | None:
        """Watch `path` under `key`; None if the folder vanished meanwhile."""
        self.unwatch(key)
        if not self.limit_reached:
            try:
                handle = self._observer("native").schedule(
                    self.handler, path, recursive=recursive, event_filter=self._filter
                )
            except OSError as exc:
                if exc.errno not in LIMIT_ERRNOS:
                    self.log.warning("watch.failed", path=path, error=str(exc))
                    return None
                self.note_limit(f"{exc.strerror or exc} while watching {path}")
            else:
                self._watches[key] = _Watch("native", self._observers["native"], handle)
                return "native"
        try:
            handle = self._observer("polling").schedule(
                self.handler, path, recursive=recursive, event_filter=self._filter
            )
        except OSError as exc:
            self.log.warning("watch.failed", path=path, error=str(exc))
            return None
        self._watches[key] = _Watch("polling", self._observers["polling"], handle)
        return "polling"

    def natively_covers(self, key: str, folder: str) -> bool | None:
        """Whether `key`'s inotify watch also watches `folder` (a subfolder made later).

        watchdog adds a watch for each new subfolder itself and, at the
        limit, silently skips it (`except OSError: continue`); this looks at
        its bookkeeping to find out. None when it cannot tell (not inotify,
        or a watchdog whose internals differ).
        """
        watch = self._watches.get(key)
        if watch is None or watch.backend != "native":
            return None
        try:
            emitter = watch.observer._emitter_for_watch[watch.handle]
            known: dict[bytes, int] = emitter._inotify._inotify._wd_for_path
            return os.fsencode(folder) in known
        except (AttributeError, KeyError, TypeError):
            return None

    def note_limit(self, error: str) -> None:
        """Record that the watch limit was reached (seen after the fact)."""
        if not self.limit_reached:
            self.limit_reached = True
            self.limit_error = error
            self.log.warning(
                "watch.limit_reached",
                error=error,
                fallback="polling",
                poll_interval_s=self.poll_interval_s,
                hint="raise fs.inotify.max_user_watches (sysctl) to get instant events back",
            )

    def unwatch(self, key: str) -> None:
        """Stop watching `key` (its folder was removed or renamed)."""
        watch = self._watches.pop(key, None)
        if watch is None:
            return
        try:
            watch.observer.unschedule(watch.handle)
        except (KeyError, RuntimeError, OSError) as exc:
            self.log.debug("watch.unschedule_failed", key=key, error=str(exc))

    def stop(self) -> None:
        """Stop every observer and wait for its threads."""
        for observer in self._observers.values():
            observer.stop()
        for observer in self._observers.values():
            observer.join(timeout=2.0)
        self._observers.clear()
        self._watches.clear()
