"""Reading and sending frames on the hot path (`services.runtime.frames`)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest
import zmq

from services.runtime.frames import messages, readable, send_frames

_ENDPOINTS = itertools.count()


@pytest.fixture
def link() -> Iterator[tuple[zmq.Socket[bytes], zmq.Socket[bytes]]]:
    """A ROUTER and a DEALER (routing id `w`) connected in process, as the workers' link."""
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context.instance()
    router: zmq.Socket[bytes] = context.socket(zmq.ROUTER)
    dealer: zmq.Socket[bytes] = context.socket(zmq.DEALER)
    dealer.setsockopt(zmq.ROUTING_ID, b"w")
    endpoint = f"inproc://frames-{next(_ENDPOINTS)}"
    router.bind(endpoint)
    dealer.connect(endpoint)
    try:
        yield router, dealer
    finally:
        router.close(linger=0)
        dealer.close(linger=0)


def _wait_readable(sock: zmq.Socket[bytes]) -> None:
    assert sock.poll(5000), "nothing arrived"


def test_every_waiting_message_is_read_whole_and_in_order(
    link: tuple[zmq.Socket[bytes], ...],
) -> None:
    """A drain yields each queued message with all its frames, in the order sent, then stops."""
    router, dealer = link
    sent = [[b"PUB", b"cost.logged", str(n).encode(), b"{}"] for n in range(5)] + [[b"ACK"]]
    for frames in sent:
        send_frames(dealer, frames)
    _wait_readable(router)
    read: list[list[bytes]] = []
    while len(read) < len(sent):  # the rest may still be on its way through libzmq
        read.extend(messages(router, 1024, polled=not read))
        if len(read) < len(sent):
            _wait_readable(router)
    assert read == [[b"w", *frames] for frames in sent]
    assert not readable(router)


def test_a_drain_stops_at_its_limit_and_leaves_the_rest_queued(
    link: tuple[zmq.Socket[bytes], ...],
) -> None:
    """Messages beyond `limit` stay queued for the next drain; none is lost or split."""
    router, dealer = link
    for n in range(4):
        send_frames(dealer, [b"HB", str(n).encode()])
    read: list[list[bytes]] = []
    while len(read) < 4:
        _wait_readable(router)
        batch = list(messages(router, 2, polled=True))
        assert 1 <= len(batch) <= 2
        read.extend(batch)
    assert read == [[b"w", b"HB", str(n).encode()] for n in range(4)]


def test_a_polled_drain_with_nothing_waiting_yields_nothing(
    link: tuple[zmq.Socket[bytes], ...],
) -> None:
    """A poller's stale readiness does not block the loop: the drain just ends."""
    router, _dealer = link
    assert list(messages(router, 1024, polled=True)) == []
    assert list(messages(router, 1024, polled=False)) == []
    assert not readable(router)
