"""From watchdog's threads to the worker's main thread, in order.

watchdog calls its handlers on its own observer thread; the worker's state
(the tree, the coalescer) belongs to the main thread, which also does all the
publishing. `Intake` is the handler: it copies each event into a plain record
stamped with its arrival time, queues it, and writes one byte to a pipe the
host polls (`Worker.pollables`). An overflow notice travels the same queue, so
it is handled in order with the events around it.
"""

from __future__ import annotations

import contextlib
import os
import queue
import time
from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["Intake", "RawEvent"]

RawKind = Literal["created", "modified", "deleted", "moved", "closed", "overflow", "other"]

_KINDS: dict[str, RawKind] = {
    "created": "created",
    "modified": "modified",
    "deleted": "deleted",
    "moved": "moved",
    "closed": "closed",
}


@dataclass(frozen=True, slots=True)
class RawEvent:
    """One watchdog event as the main thread sees it (absolute paths)."""

    kind: RawKind
    src: str = ""
    dest: str = ""
    is_directory: bool = False
    is_synthetic: bool = False
    at: float = 0.0


class Intake:
    """The handler watchdog calls; a queue and a wake-up pipe for the main thread."""

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[RawEvent] = queue.SimpleQueue()
        self._read_fd, self._write_fd = os.pipe()
        os.set_blocking(self._read_fd, False)
        os.set_blocking(self._write_fd, False)
        self.received = 0

    def fileno(self) -> int:
        """The fd that becomes readable when events wait."""
        return self._read_fd

    def dispatch(self, event: Any) -> None:
        """watchdog's handler entry point (observer thread)."""
        src = event.src_path
        dest = event.dest_path
        self.put(
            RawEvent(
                kind=_KINDS.get(event.event_type, "other"),
                src=os.fsdecode(src) if isinstance(src, bytes) else src,
                dest=os.fsdecode(dest) if isinstance(dest, bytes) else (dest or ""),
                is_directory=bool(event.is_directory),
                is_synthetic=bool(getattr(event, "is_synthetic", False)),
                at=time.monotonic(),
            )
        )

    def put_overflow(self) -> None:
        """Queue an overflow notice (any thread)."""
        self.put(RawEvent(kind="overflow", at=time.monotonic()))

    def put(self, event: RawEvent) -> None:
        """Queue one record and wake the main thread (any thread)."""
        self._queue.put(event)
        with contextlib.suppress(BlockingIOError, OSError):
            os.write(self._write_fd, b"\x00")

    def drain(self) -> list[RawEvent]:
        """Everything queued so far (main thread)."""
        with contextlib.suppress(BlockingIOError, OSError):
            while os.read(self._read_fd, 65536):
                pass
        events: list[RawEvent] = []
        while True:
            try:
                events.append(self._queue.get_nowait())
            except queue.Empty:
                break
        self.received += len(events)
        return events

    def close(self) -> None:
        """Close the pipe (after the observers stopped)."""
        for fd in (self._read_fd, self._write_fd):
            with contextlib.suppress(OSError):
                os.close(fd)
