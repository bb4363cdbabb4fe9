"""Keeping a fork server: use it while it answers, replace it when it does not.

The fork server (`services.runtime.forkserver`) makes a restart cost ms
instead of an interpreter start. It is a convenience, never a dependency: a
fork that fails or times out drops it (killed, since it may be stuck rather
than dead) and the worker is spawned cold instead. A replacement is started
after `fork_server_retry_s` times the failures so far, at most
`fork_server_max_failures` times; after that every worker is spawned cold.

With `spare_worker`, one worker host is forked ahead and waits (blocked on
its stdin, no wake-ups) to be told which worker to become: a restart then
skips the fork round trip. The spare is forked again only when every worker
runs, so forking it never delays a worker that is starting.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from config import SupervisorSettings
from services.runtime.children import ChildProcess
from services.runtime.childtable import ChildTable
from services.runtime.forkserver import ForkServer, ForkServerError

__all__ = ["ForkServerKeeper"]


class ForkServerKeeper:
    """The supervisor's fork server, its failures, and when to start another."""

    def __init__(
        self,
        children: ChildTable,
        settings: SupervisorSettings,
        *,
        cwd: Path,
        touch_timers: Callable[[], None],
        log: Any,
        start_server: Callable[[Path], ForkServer] = lambda cwd: ForkServer.start(cwd=cwd),
    ) -> None:
        self._children = children
        self._settings = settings
        self._cwd = cwd
        self._touch_timers = touch_timers
        self._start_server = start_server
        self.log = log
        self.server: ForkServer | None = None
        self.retry_at: float | None = None
        """Monotonic time to start a replacement; None when none is planned."""
        self.failures = 0
        self.spare: ChildProcess | None = None
        """A forked worker host waiting for its assignment, or None."""
        self.spare_wanted = settings.spare_worker
        """A spare should be forked once every worker runs (see `refill`)."""

    def adopt(self, server: ForkServer) -> None:
        """Use `server` from now on (its exit is watched like a worker's)."""
        self.server = server
        self._children.add(server.child, None)

    def fork(self, now: float) -> ChildProcess | None:
        """A worker host (the spare, or forked now), or None: the caller spawns one cold."""
        spare = self._take_spare()
        if spare is not None:
            return spare
        server = self.server
        if server is None:
            return None
        try:
            return server.fork()
        except ForkServerError as exc:
            self.log.warning("fork_server.unusable", error=str(exc))
            self.drop(now, retry=True)
            return None

    def _take_spare(self) -> ChildProcess | None:
        spare, self.spare = self.spare, None
        if spare is None:
            return None
        self.spare_wanted = self._settings.spare_worker
        self._children.remove(spare)  # the caller watches it again, as its worker's
        if spare.reap() is not None:  # it died while waiting: fork another instead
            spare.close()
            return None
        return spare

    def refill(self, now: float) -> None:
        """Fork the spare now (the caller checks that no worker is starting)."""
        self.spare_wanted = False
        server = self.server
        if server is None or self.spare is not None or not self._settings.spare_worker:
            return
        try:
            spare = server.fork()
        except ForkServerError as exc:
            self.log.warning("fork_server.unusable", error=str(exc))
            self.drop(now, retry=True)
            return
        self.spare = spare
        self._children.add(spare, None)

    def forget(self, child: ChildProcess) -> None:
        """A child exited: if it was the spare, there is none now (no new one until used)."""
        if child is self.spare:
            self.log.warning("fork_server.spare_exited", pid=child.pid)
            self.spare = None

    def owns(self, child: ChildProcess) -> bool:
        """Whether `child` is the fork server itself."""
        return self.server is not None and child is self.server.child

    def on_exit(self, returncode: int, now: float, *, retry: bool) -> None:
        """The fork server exited: drop it, and plan a replacement if `retry`."""
        self.log.warning("fork_server.exited", returncode=returncode)
        self.drop(now, retry=retry)

    def drop(self, now: float, *, retry: bool) -> None:
        """Stop using the server (kill and reap it); plan a replacement if `retry`."""
        server, self.server = self.server, None
        if server is None:
            return
        self._children.remove(server.child)
        server.close(kill=True)  # it may be stuck, not dead: never leave it behind
        self.failures += 1
        if retry and self.failures <= self._settings.fork_server_max_failures:
            self.retry_at = now + self._settings.fork_server_retry_s * self.failures
            self._touch_timers()

    def cancel_retry(self) -> None:
        """No replacement any more (the service is stopping)."""
        self.retry_at = None

    def run_timer(self, now: float) -> None:
        """Start the planned replacement when it is due."""
        if self.retry_at is None or now < self.retry_at:
            return
        self.retry_at = None
        if self.server is None:
            self.adopt(self._start_server(self._cwd))

    def release(self) -> None:
        """At shutdown: close the control socket (the child table reaps the process)."""
        if self.server is not None:
            with contextlib.suppress(OSError):
                self.server.control.close()
