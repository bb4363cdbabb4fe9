"""Notice when the kernel's inotify queue overflowed, which watchdog hides.

When more events pile up than `fs.inotify.max_queued_events`, the kernel drops
the rest and queues one `IN_Q_OVERFLOW` event with watch descriptor -1.
watchdog (4 to 6) parses it in `Inotify.read_events` and throws it away
(`if wd == -1: continue`), so a watcher built on it silently misses changes.

We wrap the one static method every read goes through,
`Inotify._parse_event_buffer`, so each overflow calls our listeners before
watchdog drops it; the file watcher then rescans and publishes what changed
against its last known tree. The wrapper passes every event through
unchanged. If a future watchdog renames that method, `install()` returns
False, the watcher says so in its health, and it rescans on a timer instead.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Generator
from typing import Any

__all__ = ["IN_Q_OVERFLOW", "add_listener", "install", "notify_overflow", "remove_listener"]

IN_Q_OVERFLOW = 0x00004000
"""inotify(7): the event queue overflowed and events were dropped."""

_lock = threading.Lock()
_listeners: list[Callable[[], None]] = []
_installed: dict[str, bool] = {}  # "inotify" -> whether the wrapper is in place


def notify_overflow() -> None:
    """Tell every listener that events were lost (also how tests simulate it)."""
    with _lock:
        listeners = list(_listeners)
    for listener in listeners:
        listener()


def add_listener(listener: Callable[[], None]) -> None:
    """Call `listener` (from watchdog's reader thread) on every overflow."""
    with _lock:
        _listeners.append(listener)


def remove_listener(listener: Callable[[], None]) -> None:
    """Stop calling `listener`."""
    with _lock:
        if listener in _listeners:
            _listeners.remove(listener)


def install() -> bool:
    """Wrap watchdog's inotify parser once per process; True if overflows will be seen."""
    with _lock:
        if "inotify" not in _installed:
            _installed["inotify"] = _wrap_parser()
        return _installed["inotify"]


def _wrap_parser() -> bool:
    try:
        from watchdog.observers import inotify_c
    except (ImportError, OSError):  # not Linux: no inotify, nothing to wrap
        return False
    inotify: Any = getattr(inotify_c, "Inotify", None)
    original = inotify.__dict__.get("_parse_event_buffer") if inotify is not None else None
    if not isinstance(original, staticmethod):
        return False
    parse: Callable[[bytes], Any] = original.__func__

    def parse_noticing_overflow(event_buffer: bytes) -> Generator[tuple[int, int, int, bytes]]:
        for wd, mask, cookie, name in parse(event_buffer):
            if mask & IN_Q_OVERFLOW:
                notify_overflow()
            yield wd, mask, cookie, name

    parse_noticing_overflow.__wrapped__ = parse  # type: ignore[attr-defined]
    inotify._parse_event_buffer = staticmethod(parse_noticing_overflow)
    return True
