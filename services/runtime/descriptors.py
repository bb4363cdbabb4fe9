"""The supervisor's plain descriptors behind one: an epoll set its poller watches.

The loop's `zmq.Poller` wakes twice per request. Each `zmq_poll` hands the
kernel every descriptor it holds, twice (a check, then the wait), and the
wait hooks onto and off each one's wait queue. A dozen of them are the
children's (pidfd and stderr, which change state only when a child writes a
line or exits) plus the signal wake-up socket. Kept in one epoll set, the
poller holds three items, as a minimal broker's would hold two, and the set
is read only when one of them is ready.
"""

from __future__ import annotations

import contextlib
import select
from typing import Any

import zmq

__all__ = ["DescriptorSet"]


class DescriptorSet(zmq.Poller):
    """Plain descriptors in one epoll set: a `zmq.Poller` of descriptors only
    (what `ChildTable` registers into), whose own descriptor goes into the
    loop's poller."""

    def __init__(self) -> None:
        super().__init__()
        self._epoll = select.epoll()

    def fileno(self) -> int:
        """Readable while any registered descriptor is ready (level-triggered)."""
        return self._epoll.fileno()

    def register(self, socket: Any, flags: int = zmq.POLLIN) -> None:
        """Watch descriptor `socket` for input (again: no change)."""
        fd = socket if isinstance(socket, int) else socket.fileno()
        if not flags & zmq.POLLIN:
            raise ValueError("a descriptor set watches input only")
        with contextlib.suppress(FileExistsError):
            self._epoll.register(fd, select.EPOLLIN)

    def unregister(self, socket: Any) -> None:
        """Stop watching `socket` (KeyError when it was not watched, as `zmq.Poller`)."""
        fd = socket if isinstance(socket, int) else socket.fileno()
        try:
            self._epoll.unregister(fd)
        except (OSError, ValueError):
            raise KeyError(fd) from None

    def poll(self, timeout: int | None = None) -> list[tuple[Any, int]]:
        """The ready descriptors, each as `(fd, zmq.POLLIN)`; `timeout` in ms (None: wait)."""
        seconds = -1.0 if timeout is None or timeout < 0 else timeout / 1000
        return [(fd, zmq.POLLIN) for fd, _ in self._epoll.poll(seconds)]

    def close(self) -> None:
        """Close the epoll descriptor."""
        self._epoll.close()
