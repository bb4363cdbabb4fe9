"""Multipart send and receive on the hot path, with no Python between us and libzmq.

pyzmq's constants are `enum.IntFlag`s, and `getsockopt` turns every option
into a `SocketOption` first: two Python calls of `enum.py` for each
RCVMORE check, one per frame received (measured: 9 of the supervisor's
~105 Python calls per `session.get` went there, 18 counting `__new__`).
A frame received without copy (`zmq.Frame`) carries its own "more" flag,
read in C. Sending goes straight to the backend's `send`, without
`zmq.Socket.send`'s Python wrapper (routing ids and groups of draft
sockets, which we never use). Same frames, same flags, same errors.

In a loaded tree each process runs a short burst between the others on
shared cores, with cold caches, so every Python call left out of the
per-message path counts more than it does in a warm loop.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import cast

import zmq
import zmq.backend

__all__ = [
    "NOBLOCK",
    "SNDMORE",
    "frame_sender",
    "messages",
    "readable",
    "recv_frames",
    "send_frames",
]

_EVENTS = int(zmq.EVENTS)
_POLLIN = int(zmq.POLLIN)
SNDMORE = int(zmq.SNDMORE)
NOBLOCK = int(zmq.NOBLOCK)

_BACKEND_SEND = cast(Callable[..., None], zmq.backend.Socket.send)


def frame_sender(sock: zmq.Socket[bytes]) -> Callable[[bytes, int], None]:
    """`sock`'s `send(frame, flags)` without `zmq.Socket.send`'s Python wrapper.

    A real socket gets the backend's `send` (C) bound to it, which raises the
    same `ZMQError`s; anything else (a test's fake) its own `send`.
    """
    if isinstance(sock, zmq.backend.Socket):
        return cast(Callable[[bytes, int], None], _BACKEND_SEND.__get__(sock))
    return sock.send


def readable(sock: zmq.Socket[bytes]) -> bool:
    """Whether a message waits (~1 us; a NOBLOCK recv raising zmq.Again is ~12 us)."""
    return bool(int(sock.getsockopt(_EVENTS)) & _POLLIN)


def recv_frames(sock: zmq.Socket[bytes]) -> list[bytes]:
    """Every frame of the next message (call only when `readable`)."""
    frame = sock.recv(0, copy=False)
    frames = [frame.bytes]
    while frame.more:
        frame = sock.recv(0, copy=False)
        frames.append(frame.bytes)
    return frames


def messages(sock: zmq.Socket[bytes], limit: int, *, polled: bool) -> Iterator[list[bytes]]:
    """The messages waiting on `sock`, up to `limit`, each as its frames.

    `polled`: a poller has just said `sock` is readable, so the first read
    skips the check. That check (ZMQ_EVENTS) makes libzmq look at its command
    mailbox, a poll(2) and a getpid(2) each time: counted with strace, the
    supervisor made 8 more of each per request than a minimal broker.
    """
    if polled:
        try:
            frame = sock.recv(NOBLOCK, copy=False)
        except zmq.Again:  # someone read it first: nothing is lost, nothing waits
            return
        frames = [frame.bytes]
        while frame.more:
            frame = sock.recv(0, copy=False)
            frames.append(frame.bytes)
        yield frames
        limit -= 1
    for _ in range(limit):
        if not readable(sock):
            return
        yield recv_frames(sock)


def send_frames(sock: zmq.Socket[bytes], frames: list[bytes], flags: int = 0) -> None:
    """Send `frames` as one message."""
    send = frame_sender(sock)
    last = len(frames) - 1
    more = flags | SNDMORE
    for index, frame in enumerate(frames):
        send(frame, more if index < last else flags)
