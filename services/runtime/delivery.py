"""How a worker host reads and acknowledges the events the supervisor delivers.

Every delivered event used to cost a worker three pydantic models (the `EVT`
frame's, the envelope's, the `ACK`'s) and a fresh JSON decoder (`json.loads`
with keyword arguments builds one per call). Here the `EVT` and `ACK` frames
are read and written by hand, as their models would, and `read_event` parses
with `protocol.codec.loads_exact` and validates the envelope once. Anything out of
the ordinary goes through `protocol.envelopes.decode_event`, which gives the
same `Event` or the same `ProtocolError` (property tests hold them together).

An `EVT` may carry several events (`protocol.internal.EventBatch`: what one
turn of the supervisor fanned out to this worker); `deliveries_of` gives
them in order, each with its own number, and they are held, handed over and
acknowledged exactly as if each had come alone.
"""

from __future__ import annotations

import re
from typing import Any, Final

from pydantic import ValidationError

from protocol.codec import loads_exact
from protocol.envelopes import Event, decode_event
from protocol.internal import ACK, EVT, MAX_EVENTS_PER_EVT, NUMBER_BYTES

__all__ = ["Delivered", "EventWindow", "ack_frames", "deliveries_of", "read_event"]

Delivered = tuple[int, bytes, bytes]
"""One delivered event's number, topic and envelope (the fields of `EventDelivery`)."""

_MAX_FIRST_BYTE: Final = 0x7F
"""`protocol.internal.Number`'s bound (2**63 - 1) as the first byte of 8, big-endian."""
_MAX_FRAMES: Final = 1 + 3 * MAX_EVENTS_PER_EVT
_SURROGATE_ESCAPE: Final = re.compile(r"\\u[dD][89abcdefABCDEF]")
"""Half of a surrogate pair: such frames are orjson's to judge (`decode_event`)."""


def deliveries_of(frames: list[bytes]) -> list[Delivered] | None:
    """An `EVT (number topic event)...` message (`EventDelivery`, `EventBatch`) as
    `decode_to_worker` would take it, without the models: its events in order; None
    for any other message (or an odd one, which takes the models' way)."""
    count = len(frames)
    if count % 3 != 1 or count == 1 or count > _MAX_FRAMES or frames[0] != EVT:
        return None
    deliveries = []
    for at in range(1, count, 3):
        number = frames[at]
        if len(number) != NUMBER_BYTES or number[0] > _MAX_FIRST_BYTE:
            return None
        deliveries.append((int.from_bytes(number, "big"), frames[at + 1], frames[at + 2]))
    return deliveries


def read_event(topic: bytes, body: bytes) -> Event:
    """`decode_event([topic, body], exact=True)`: the same `Event`, or the same
    `ProtocolError` for a frame that is not one, parsed once with `loads_exact`."""
    value = _envelope(body)
    if value is None:
        return decode_event([topic, body], exact=True)
    try:
        event = Event.model_validate(value)
    except ValidationError:
        return decode_event([topic, body], exact=True)  # its error, worded as ever
    if event.topic.encode() != topic:
        return decode_event([topic, body], exact=True)
    return event


def _envelope(body: bytes) -> dict[str, Any] | None:
    """`body` parsed as `decode_event` parses it, when that is plain (a JSON object,
    no surrogate escape for orjson to judge); None for anything left to `decode_event`."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if text.startswith("\ufeff") or ("\\u" in text and _SURROGATE_ESCAPE.search(text)):
        return None
    try:
        value = loads_exact(text)
    except ValueError:  # JSONDecodeError, a constant, too deep
        return None
    return value if type(value) is dict else None


def ack_frames(numbers: tuple[int, ...] | list[int]) -> list[bytes]:
    """The frames of `EventAck(numbers=...)` without building the model (once per batch)."""
    return [ACK, *(number.to_bytes(NUMBER_BYTES, "big") for number in numbers)]


class EventWindow:
    """Delivered events a worker host holds for its worker's `event_window_s`.

    A worker that batches its events well (the archiver: one journal write
    and one ACK per batch) spends most of its CPU per wake-up, not per event,
    when events come one at a time. So the first event read opens a window;
    the host leaves its dealer unread until the window ends, then reads
    everything that came meanwhile and hands it over as one batch (~5-10x
    larger under the 8-client `cost.log` load). Held events are not
    acknowledged, so nothing is lost if the worker dies.
    """

    def __init__(self, seconds: float, *, limit: int) -> None:
        """Hold up to `limit` events for `seconds` (0: never hold)."""
        self.seconds = seconds
        self.limit = limit
        self.held: list[Delivered] = []
        self.until: float | None = None
        """When the open window ends (monotonic), or None when none is open."""

    def keep(self, pending: list[Delivered], now: float) -> bool:
        """Take `pending` into the window (emptied; True), or False when they and
        what is held go to the worker now: no window, this one is over, or full."""
        if self.seconds <= 0 or len(self.held) + len(pending) >= self.limit or self.due(now):
            return False
        if pending:
            self.held.extend(pending)
            pending.clear()
            if self.until is None:
                self.until = now + self.seconds
        return True

    def due(self, now: float) -> bool:
        """Whether an open window is over."""
        return self.until is not None and now >= self.until

    def release(self, pending: list[Delivered]) -> bool:
        """Put what is held before `pending` and close the window; True if one was open."""
        if self.held:
            pending[:0] = self.held
            self.held = []
        was_open, self.until = self.until is not None, None
        return was_open
