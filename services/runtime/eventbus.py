"""The event channel: stamp each event, publish it, hand it to subscribed workers.

The supervisor stamps `seq` per source (so it keeps rising across a worker's
restarts), publishes on the public PUB socket (bounded high-water mark: a
slow client loses events, and its `seq` shows the gap), and delivers subscribed
topics to workers over their own link, at least once: an event stays in the
worker's `unacked` until it acknowledges it, and is buffered while the worker
is not running.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable
from typing import Any

import zmq
from pydantic import BaseModel

from protocol.base import utc_text
from protocol.codec import dumps
from protocol.internal import EVT, MAX_EVENTS_PER_EVT, NUMBER_BYTES
from protocol.names import SIGNIFICANT_ONLY, WORKER_SUBSCRIPTIONS, Topic, WorkerState
from services.runtime.delivery import Delivered
from services.runtime.frames import NOBLOCK, SNDMORE, frame_sender
from services.runtime.liveness import note_nothing
from services.runtime.slots import WorkerSlot

__all__ = ["MAX_SUBSCRIPTION_BYTES", "MAX_TOPIC_PREFIX_BYTES", "SOURCE", "EventBus", "stamp_event"]

SOURCE = "supervisor"

MAX_TOPIC_PREFIX_BYTES = 1023
"""Longest subscription prefix a client may send (every topic is under 32 bytes)."""

MAX_SUBSCRIPTION_BYTES = 1 + MAX_TOPIC_PREFIX_BYTES
"""MAXMSGSIZE of the event socket: one subscribe/unsubscribe byte plus the prefix.

libzmq keeps each subscription in a trie at ~80 bytes of memory per byte
(measured: +190-450 MiB for one 4 MiB subscription). With this bound a
longer message is refused at its size header, before any allocation, and its
sender is disconnected; the service goes on. The bound also applies to the
ZMTP handshake, so it must leave room for a CURVE INITIATE command (~300
bytes with a routing id): 256 bytes broke every CURVE subscriber.
"""
_MAX_BUFFERED_EVENTS = 100_000
_MORE = SNDMORE | NOBLOCK


_ENVELOPE = b'{"v":1,"topic":"%b","source":"%b","seq":%d,"ts":"%b","data":%b}'


def stamp_event(topic: bytes, source: bytes, seq: int, ts: bytes, data: bytes) -> bytes:
    """The event envelope, built from bytes (no parse of `data`, which is JSON), in one
    C call (~0.5 us; a join of its eleven parts took ~0.7)."""
    return _ENVELOPE % (topic, source, seq, ts, data)


class EventBus:
    """Fan-out of every event to clients and subscribed workers."""

    def __init__(
        self,
        events: zmq.Socket[bytes],
        backend: zmq.Socket[bytes],
        slots: Iterable[WorkerSlot],
        log: Any,
        *,
        began_owing: Callable[[WorkerSlot], None] = note_nothing,
    ) -> None:
        self.events = events
        self.backend = backend
        self._to_clients = frame_sender(events)
        self._to_worker = frame_sender(backend)
        self.slots = tuple(slots)
        self.log = log
        self._began_owing = began_owing
        self._seq: dict[bytes, int] = {}
        self._number = 0
        self._subscribers: dict[bytes, tuple[WorkerSlot, ...]] = {}
        self._significant: dict[bytes, tuple[WorkerSlot, ...]] = {}
        self._receiving: dict[tuple[bytes, bytes, bool], tuple[WorkerSlot, ...]] = {}

    def tend(self) -> None:
        """Let the event socket act on what clients sent it (new subscribers,
        subscriptions, hang-ups) while nothing is published: a PUB does that
        only on a send (at most once a millisecond), and is never polled."""
        self.events.getsockopt(zmq.EVENTS)

    def publish_own(self, topic: Topic, data: BaseModel) -> None:
        """An event of the supervisor itself (`worker.*`, data a `WorkerEventData`)."""
        self.fan_out(topic.value.encode(), SOURCE.encode(), utc_text().encode(), dumps(data))

    def fan_out(
        self, topic: bytes, source: bytes, ts: bytes, data: bytes, *, minor: bool = False
    ) -> None:
        """Stamp, publish, and deliver to every subscribed worker but the source.

        A `minor` event skips the workers that want only significant ones of
        its topic (`SIGNIFICANT_ONLY`).
        """
        self.fan_out_many(((topic, source, ts, data, minor),))

    def fan_out_many(self, events: Iterable[tuple[bytes, bytes, bytes, bytes, bool]]) -> None:
        """`fan_out` of each `(topic, source, ts, data, minor)` in order, each worker's
        share sent as one `EVT` message (`EventBatch`) rather than one per event.

        Clients get each event at once, as from `fan_out`. A worker gets the same
        events, numbers and order; only the messages are fewer (one `send`, one
        wake-up of each side's I/O thread and one receive per batch).
        """
        shares: dict[WorkerSlot, list[Delivered]] = {}
        for topic, source, ts, data, minor in events:
            body = self._publish(topic, source, ts, data)
            for slot in self._receivers(topic, source, minor=minor):
                self._number += 1
                share = shares.get(slot)
                if share is None:
                    shares[slot] = [(self._number, topic, body)]
                else:
                    share.append((self._number, topic, body))
        for slot, share in shares.items():
            for start in range(0, len(share), MAX_EVENTS_PER_EVT):
                self._deliver(slot, share[start : start + MAX_EVENTS_PER_EVT])

    def _publish(self, topic: bytes, source: bytes, ts: bytes, data: bytes) -> bytes:
        """Stamp the event's `seq` and send it to clients; its envelope."""
        seq = self._seq.get(source, 0)
        self._seq[source] = seq + 1
        body = stamp_event(topic, source, seq, ts, data)
        try:
            self._to_clients(topic, _MORE)
            self._to_clients(body, NOBLOCK)
        except zmq.Again:  # never with a PUB (it drops above its high-water mark)
            pass
        return body

    def _receivers(self, topic: bytes, source: bytes, *, minor: bool) -> tuple[WorkerSlot, ...]:
        """The workers an event of `topic` from `source` goes to, memoised."""
        key = (topic, source, minor)
        found = self._receiving.get(key)
        if found is None:
            found = tuple(
                slot
                for slot in self._subscribers_of(topic)
                if slot.identity != source and not (minor and slot in self._significant_only(topic))
            )
            if len(self._receiving) < 4096:  # topics and sources are closed sets; stay bounded
                self._receiving[key] = found
        return found

    def _deliver(self, slot: WorkerSlot, deliveries: list[Delivered]) -> None:
        """Send events to `slot`'s worker, or buffer them while it cannot take them."""
        if slot.state is WorkerState.RUNNING:
            if self._hand(slot, deliveries):
                return
        elif slot.state is WorkerState.FAILED:
            return
        slot.events.extend(deliveries)
        if len(slot.events) > _MAX_BUFFERED_EVENTS:
            while len(slot.events) > _MAX_BUFFERED_EVENTS:
                slot.events.popleft()
            self.log.error("events.buffer_overflow", worker=slot.name.value)

    def flush(self, slot: WorkerSlot) -> None:
        """Deliver what waited for `slot` while it was not running (in order, in
        messages of up to `MAX_EVENTS_PER_EVT`).

        Stops at the first message the worker cannot take (it died after its
        READY; its exit restarts it): the rest stay buffered, in order, for the
        next READY. Going on would buffer those events again and retry them
        forever, and the supervisor's loop would never turn again.
        """
        while slot.events:
            share = list(itertools.islice(slot.events, MAX_EVENTS_PER_EVT))
            if not self._hand(slot, share):
                return
            for _ in share:
                slot.events.popleft()

    def send(self, slot: WorkerSlot, number: int, topic: bytes, body: bytes) -> None:
        """One event to one worker; kept until acknowledged, buffered if it cannot take it."""
        if not self._hand(slot, [(number, topic, body)]):
            slot.events.append((number, topic, body))

    def _hand(self, slot: WorkerSlot, deliveries: list[Delivered]) -> bool:
        """Send events to `slot`'s worker as one `EVT` message; False when its
        connection is gone (then none was sent)."""
        send = self._to_worker
        try:  # `EVT number topic event...` (`EventDelivery`, `EventBatch`), frame by frame
            send(slot.identity, _MORE)  # refused here when the worker is gone
            send(EVT, _MORE)
            last = len(deliveries) - 1
            for index, (number, topic, body) in enumerate(deliveries):
                send(number.to_bytes(NUMBER_BYTES, "big"), _MORE)
                send(topic, _MORE)
                send(body, _MORE if index < last else NOBLOCK)
        except zmq.ZMQError:
            return False
        if not slot.unacked and not slot.inflight:
            self._began_owing(slot)
        unacked = slot.unacked
        for number, topic, body in deliveries:
            unacked[number] = (topic, body)
        return True

    def _significant_only(self, topic: bytes) -> tuple[WorkerSlot, ...]:
        """Workers that want only significant events of `topic`, memoised per topic."""
        found = self._significant.get(topic)
        if found is None:
            text = topic.decode(errors="replace")
            found = tuple(
                slot for slot in self.slots if text in SIGNIFICANT_ONLY.get(slot.name, frozenset())
            )
            if len(self._significant) < 1024:  # topics are a closed set; stay bounded anyway
                self._significant[topic] = found
        return found

    def _subscribers_of(self, topic: bytes) -> tuple[WorkerSlot, ...]:
        """Workers subscribed to `topic` (docs/protocol.md), memoised per topic."""
        found = self._subscribers.get(topic)
        if found is None:
            text = topic.decode(errors="replace")
            found = tuple(
                slot
                for slot in self.slots
                if any(text.startswith(prefix) for prefix in WORKER_SUBSCRIPTIONS[slot.name])
            )
            if len(self._subscribers) < 1024:  # topics are a closed set; stay bounded anyway
                self._subscribers[topic] = found
        return found
