"""The service's event stream for the terminal commands (`events`, `watch`).

A plain (synchronous) SUB socket subscribed to everything: `seq` rises by one
per *source* across all its topics, so filtering by topic must happen here,
after the gap check, or every filtered-out topic would look like a lost
event. The first event of a source sets its baseline; a `seq` that does not
rise means a new supervisor (it starts again at 0) and resets the baseline.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import zmq

from protocol.envelopes import EndpointsFile, Event, decode_event
from protocol.errors import ProtocolError

__all__ = ["EventFeed", "Gap", "NotServing", "open_feed"]


class NotServing(Exception):
    """No endpoints.json: the service is not running (or not ready yet)."""


@dataclass(frozen=True)
class Gap:
    """Events of `source` that never arrived: seq `first` to `last`."""

    source: str
    first: int
    last: int

    @property
    def missed(self) -> int:
        """How many events were lost."""
        return self.last - self.first + 1


class EventFeed:
    """Events and gaps, one at a time, with a timeout so callers can do other work."""

    def __init__(
        self, endpoint: str, *, max_message_bytes: int, curve: dict[int, bytes] | None = None
    ) -> None:
        self._context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        self._socket = self._context.socket(zmq.SUB)
        for option, value in (curve or {}).items():  # over tcp: the run's CURVE keys
            self._socket.setsockopt(option, value)
        self._socket.setsockopt(zmq.LINGER, 0)
        # Unbounded: the default 1000 drops ~20% of a burst, silently (measured).
        self._socket.setsockopt(zmq.RCVHWM, 0)
        self._socket.setsockopt(zmq.MAXMSGSIZE, max_message_bytes)
        self._socket.setsockopt(zmq.SUBSCRIBE, b"")
        self._socket.connect(endpoint)
        self._last_seq: dict[str, int] = {}
        self.malformed = 0
        """Frames that were not a valid event (skipped)."""

    def next(self, timeout_s: float) -> tuple[Event, Gap | None] | None:
        """The next event and the gap before it (if any); None after `timeout_s` of quiet."""
        while self._socket.poll(int(timeout_s * 1000)):
            frames = self._socket.recv_multipart()
            try:
                event = decode_event(frames)
            except ProtocolError:
                self.malformed += 1
                continue
            return event, self._track(event)
        return None

    def _track(self, event: Event) -> Gap | None:
        last = self._last_seq.get(event.source)
        self._last_seq[event.source] = event.seq
        if last is not None and event.seq > last + 1:
            return Gap(event.source, last + 1, event.seq - 1)
        return None

    def close(self) -> None:
        """Close the socket and its context."""
        self._socket.close(linger=0)
        self._context.term()


def open_feed(project: Path) -> EventFeed:
    """A feed connected to the service of `project`; NotServing when none runs."""
    from config import load_settings
    from protocol.client import ClientError, curve_options
    from services.runtime.paths import ProjectPaths
    from services.store import read_document

    outcome = read_document(ProjectPaths.of(project).endpoints, EndpointsFile)
    if outcome.value is None:
        raise NotServing(f"nothing is running for {project.resolve()}")
    try:
        curve = curve_options(outcome.value)
    except ClientError as exc:
        raise NotServing(str(exc)) from None
    limit = load_settings().protocol.hard_frame_bytes
    return EventFeed(outcome.value.events, max_message_bytes=limit, curve=curve)
