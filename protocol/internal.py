"""Frames between the supervisor and its workers: one frozen model per kind.

Not the public protocol: both ends are the same version of this code. Still
typed, so a frame built on one side and read on the other cannot drift apart
unnoticed, and each kind has a JSON Schema (`internal.*`).

Each worker holds one DEALER connected to the supervisor's backend ROUTER,
with its worker name as routing id. A message is a list of frames whose first
frame is the kind (the ROUTER adds the routing id in front on its side):

    worker -> supervisor
        READY  hello                          `WorkerHello` (JSON)
        HB     beat                           `Heartbeat` (JSON)
        REP    token reply                    `WorkerReply`
        PUB    topic ts data [minor]          `WorkerPublish`
        PUBS   (topic ts data flag)...        `WorkerPublishBatch` (2 or more events)
        ACK    number...                      `EventAck`
    supervisor -> worker
        REQ    token request                  `WorkerRequest`
        EVT    number topic event             `EventDelivery`
        EVT    (number topic event){2,64}     `EventBatch`
        STOP                                  `StopRequest`

Before any of that, the supervisor writes one JSON line on the worker's stdin:
the `WorkerAssignment` (which worker to become, and where). A worker forked
by the fork server was asked for with a `ForkRequest` on the fork server's
control socket (with the child's stdin and stderr attached) and announced
with a `ForkReply`.

`PUBS` carries several events in one message, each as the four frames
topic, ts, data and a flag (`minor`, or empty): a worker that answers a
batch of requests before publishing what they caused (`replies_first`, the
cost ledger) sends that batch's events as one message instead of one each,
up to `MAX_EVENTS_PER_PUBLISH` events and about `MAX_PUBLISH_BATCH_BYTES`
of data a message. The supervisor fans them out one by one, in order, as
if each had come in its own `PUB`: seq per source, the public event
socket (two frames per event) and the events' numbers are unchanged.

Bodies that are already JSON (a client's request, a reply, an event) travel
as bytes and are never parsed here: validation of a request happens once, in
the worker that answers it. Tokens and event numbers are 8-byte big-endian.

An `EVT` may carry several events for one worker (`EventBatch`: the events a
supervisor's turn fanned out to it, in order), each still three frames of
its own, numbered and acknowledged as if it had come alone: a batch only
saves messages, and no frame grows.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from protocol.codec import dumps
from protocol.names import WorkerName

__all__ = [
    "ACK",
    "EVT",
    "HB",
    "MAX_EVENTS_PER_EVT",
    "MAX_EVENTS_PER_PUBLISH",
    "MAX_PUBLISH_BATCH_BYTES",
    "MAX_TOPIC_CHARS",
    "MINOR",
    "NUMBER_BYTES",
    "PUB",
    "PUBS",
    "READY",
    "REP",
    "REQ",
    "STOP",
    "TOKEN_BYTES",
    "EventAck",
    "EventBatch",
    "EventDelivery",
    "ForkReply",
    "ForkRequest",
    "FromWorker",
    "Heartbeat",
    "InternalFrame",
    "MalformedFrame",
    "Published",
    "StopRequest",
    "ToWorker",
    "WorkerAssignment",
    "WorkerHello",
    "WorkerPublish",
    "WorkerPublishBatch",
    "WorkerReply",
    "WorkerRequest",
    "ack_numbers",
    "decode_from_worker",
    "decode_to_worker",
    "plain_publish",
    "plain_publish_batch",
    "publish_batch_frames",
    "publish_messages",
]

READY = b"READY"
HB = b"HB"
REP = b"REP"
PUB = b"PUB"
PUBS = b"PUBS"
ACK = b"ACK"
REQ = b"REQ"
EVT = b"EVT"
STOP = b"STOP"
MINOR = b"minor"
"""Optional last frame of PUB (the flag of an event in PUBS): skip workers in
`protocol.names.SIGNIFICANT_ONLY`."""

_NUMBER_BYTES = 8
NUMBER_BYTES = _NUMBER_BYTES
"""An event number's frame (`EVT`, `ACK`): 8 bytes, big-endian."""
MAX_TOPIC_CHARS = 128
"""The longest event topic a worker publishes (`WorkerPublish.topic`)."""
MAX_EVENTS_PER_PUBLISH = 64
"""The most events one `PUBS` message carries (a batch of more is split)."""
MAX_PUBLISH_BATCH_BYTES = 1024 * 1024
"""A `PUBS` message is closed once its events' data reach this many bytes, so
one message stays far below the supervisor's frame limit and its memory."""
TOKEN_BYTES = _NUMBER_BYTES
"""The longest token; hot paths check a REQ/REP frame against it without a model."""

MAX_EVENTS_PER_EVT = 64
"""The most events one `EVT` message carries (`EventBatch`)."""

Number = Annotated[int, Field(ge=0, le=2**63 - 1)]
Token = Annotated[bytes, Field(min_length=1, max_length=_NUMBER_BYTES)]
Health = dict[str, Any]
"""What a worker says about itself (free-form per worker, shown by `supervisor.status`)."""


class MalformedFrame(ValueError):
    """A frame that no kind matches: a bug on the other end, logged and dropped."""


class InternalFrame(BaseModel):
    """Base of every internal frame: frozen, strict about unknown fields."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: ClassVar[bytes] = b""

    def frames(self) -> list[bytes]:
        """The multipart message, kind first."""
        raise NotImplementedError


class WorkerAssignment(InternalFrame):
    """The one JSON line on a worker host's stdin: which worker to be and where."""

    name: WorkerName
    project: str
    session_id: str
    backend: str
    settings: dict[str, Any] = {}
    """Overrides of `config/defaults.toml`, the same the supervisor runs with."""
    options: dict[str, Any] = {}
    """Start options, e.g. `resume`, `interval_s`, `supervisor_pid`."""

    def line(self) -> bytes:
        """The stdin line (JSON and a newline)."""
        return dumps(self) + b"\n"

    @classmethod
    def parse(cls, line: bytes) -> WorkerAssignment:
        """Decode the stdin line; `MalformedFrame` when it is not an assignment."""
        try:
            return cls.model_validate_json(line)
        except ValidationError as exc:
            raise MalformedFrame(f"bad assignment: {exc}") from None


class WorkerHello(InternalFrame):
    """READY: the worker loaded its state and serves from now on."""

    kind: ClassVar[bytes] = READY
    pid: int
    name: WorkerName
    health: Health = {}

    def frames(self) -> list[bytes]:
        """`READY hello`."""
        return [READY, dumps(self)]


class Heartbeat(InternalFrame):
    """HB: the worker's loop turns; carries its latest health."""

    kind: ClassVar[bytes] = HB
    health: Health = {}

    def frames(self) -> list[bytes]:
        """`HB beat`."""
        return [HB, dumps(self)]


class WorkerReply(InternalFrame):
    """REP: the encoded reply to the request handed over with `token`, passed through."""

    kind: ClassVar[bytes] = REP
    token: Token
    reply: bytes

    def frames(self) -> list[bytes]:
        """`REP token reply`."""
        return self.pack(self.token, self.reply)

    @staticmethod
    def pack(token: bytes, reply: bytes) -> list[bytes]:
        """The frames of a reply without building the model (the per-request path)."""
        return [REP, token, reply]


class WorkerPublish(InternalFrame):
    """PUB: an event the worker publishes; the supervisor stamps `seq` and fans it out."""

    kind: ClassVar[bytes] = PUB
    topic: Annotated[str, Field(min_length=1, max_length=MAX_TOPIC_CHARS)]
    ts: str
    """The event's time, ISO 8601 UTC with `Z` (copied into the envelope as is)."""
    data: bytes
    """The event's `data`, a JSON object."""
    minor: bool = False
    """Skip workers that want only significant events of this topic."""

    def frames(self) -> list[bytes]:
        """`PUB topic ts data [minor]`."""
        return self.pack(self.topic.encode(), self.ts.encode(), self.data, self.minor)

    @staticmethod
    def pack(topic: bytes, ts: bytes, data: bytes, minor: bool) -> list[bytes]:
        """The frames of an event without building the model (the per-event path)."""
        return [PUB, topic, ts, data, MINOR] if minor else [PUB, topic, ts, data]


class WorkerPublishBatch(InternalFrame):
    """PUBS: several events of one worker in one message, fanned out in order."""

    kind: ClassVar[bytes] = PUBS
    events: Annotated[
        tuple[WorkerPublish, ...], Field(min_length=2, max_length=MAX_EVENTS_PER_PUBLISH)
    ]

    def frames(self) -> list[bytes]:
        """`PUBS (topic ts data flag)...`."""
        return publish_batch_frames(
            [
                (event.topic.encode(), event.ts.encode(), event.data, event.minor)
                for event in self.events
            ]
        )


class EventAck(InternalFrame):
    """ACK: the worker made these delivered events durable; no re-delivery."""

    kind: ClassVar[bytes] = ACK
    numbers: tuple[Number, ...]

    def frames(self) -> list[bytes]:
        """`ACK number...`."""
        return [ACK, *(number.to_bytes(_NUMBER_BYTES, "big") for number in self.numbers)]


class WorkerRequest(InternalFrame):
    """REQ: a client's request frame, handed to the worker that owns its op."""

    kind: ClassVar[bytes] = REQ
    token: Token
    request: bytes
    """The client's frame as received (the worker decodes and validates it)."""

    def frames(self) -> list[bytes]:
        """`REQ token request`."""
        return self.pack(self.token, self.request)

    @staticmethod
    def pack(token: bytes, request: bytes) -> list[bytes]:
        """The frames of a request without building the model (the per-request path)."""
        return [REQ, token, request]


class EventDelivery(InternalFrame):
    """EVT: one stamped event for a subscribed worker, kept until it is acknowledged."""

    kind: ClassVar[bytes] = EVT
    number: Number
    topic: bytes
    event: bytes
    """The stamped envelope, exactly as clients get it."""

    def frames(self) -> list[bytes]:
        """`EVT number topic event`."""
        return self.pack(self.number, self.topic, self.event)

    @staticmethod
    def pack(number: int, topic: bytes, event: bytes) -> list[bytes]:
        """The frames of a delivery without building the model (once per event and worker)."""
        return [EVT, number.to_bytes(_NUMBER_BYTES, "big"), topic, event]


class EventBatch(InternalFrame):
    """EVT with several events for one subscribed worker, in the order they were
    fanned out; each is kept until acknowledged, as if it had come alone."""

    kind: ClassVar[bytes] = EVT
    deliveries: Annotated[
        tuple[EventDelivery, ...], Field(min_length=2, max_length=MAX_EVENTS_PER_EVT)
    ]

    def frames(self) -> list[bytes]:
        """`EVT number topic event number topic event ...`."""
        return self.pack([(one.number, one.topic, one.event) for one in self.deliveries])

    @staticmethod
    def pack(deliveries: Sequence[tuple[int, bytes, bytes]]) -> list[bytes]:
        """The frames of deliveries (`(number, topic, event)`) without building the model."""
        frames = [EVT]
        for number, topic, event in deliveries:
            frames += (number.to_bytes(_NUMBER_BYTES, "big"), topic, event)
        return frames


class StopRequest(InternalFrame):
    """STOP: finish what was handed over, flush, exit."""

    kind: ClassVar[bytes] = STOP

    def frames(self) -> list[bytes]:
        """`STOP`."""
        return [STOP]


class ForkRequest(InternalFrame):
    """To the fork server: fork one worker host on the two descriptors sent along."""

    token: Number

    def datagram(self) -> bytes:
        """The control socket's message."""
        return dumps(self)


class ForkReply(InternalFrame):
    """From the fork server: ready (imports done), or a fork's pid, or why it failed."""

    ready: bool = False
    """Sent once, when the server has imported everything and serves."""
    token: Number | None = None
    """The `ForkRequest` this answers."""
    pid: int | None = None
    error: str | None = None

    def datagram(self) -> bytes:
        """The control socket's message."""
        return dumps(self)

    @classmethod
    def parse(cls, data: bytes) -> ForkReply:
        """Decode a control message; `MalformedFrame` when it is not a reply."""
        try:
            return cls.model_validate_json(data)
        except ValidationError as exc:
            raise MalformedFrame(f"bad fork server reply: {exc}") from None


FromWorker = WorkerHello | Heartbeat | WorkerReply | WorkerPublish | WorkerPublishBatch | EventAck
Published = tuple[bytes, bytes, bytes, bool]
"""One event as a worker publishes it: topic, ts, data, minor."""
ToWorker = WorkerRequest | EventDelivery | EventBatch | StopRequest


def _number(frame: bytes) -> int:
    if len(frame) != _NUMBER_BYTES:
        raise MalformedFrame(f"a number is {_NUMBER_BYTES} bytes, got {len(frame)}")
    return int.from_bytes(frame, "big")


def plain_publish(frames: list[bytes]) -> bool:
    """Whether `PUB topic ts data [minor]` is one `decode_from_worker` accepts as is,
    with the topic and time in ASCII: then its frames are the event's bytes and
    the supervisor forwards them without building `WorkerPublish` (the
    per-event path). False sends a frame through the model, which decides."""
    count = len(frames)
    return (
        (count == 4 or (count == 5 and frames[4] == MINOR))
        and frames[0] == PUB
        and 1 <= len(frames[1]) <= MAX_TOPIC_CHARS
        and frames[1].isascii()
        and frames[2].isascii()
    )


def publish_batch_frames(events: list[Published]) -> list[bytes]:
    """The frames of `WorkerPublishBatch` without building the model (once per batch);
    the caller keeps to `MAX_EVENTS_PER_PUBLISH`."""
    frames = [PUBS]
    for topic, ts, data, minor in events:
        frames += (topic, ts, data, MINOR if minor else b"")
    return frames


def publish_messages(events: list[Published]) -> Iterator[list[bytes]]:
    """The messages that carry `events`, in order: `PUBS` of up to
    `MAX_EVENTS_PER_PUBLISH` events, closed once their data reach
    `MAX_PUBLISH_BATCH_BYTES`; a `PUB` for an event left alone."""
    start = size = 0
    for end, event in enumerate(events, 1):
        size += len(event[2])
        full = end - start == MAX_EVENTS_PER_PUBLISH or size >= MAX_PUBLISH_BATCH_BYTES
        if end < len(events) and not full:
            continue
        if end - start == 1:
            yield WorkerPublish.pack(*event)
        else:
            yield publish_batch_frames(events[start:end])
        start, size = end, 0


def plain_publish_batch(frames: list[bytes]) -> list[Published] | None:
    """The events of `PUBS (topic ts data flag)...`, as `decode_from_worker` reads
    them, when each is what `plain_publish` accepts (topic and time in ASCII):
    forwarded without building `WorkerPublishBatch`. None for anything else
    (the model then decides, and says why)."""
    count = len(frames) - 1
    if frames[0] != PUBS or count % 4 or not 8 <= count <= 4 * MAX_EVENTS_PER_PUBLISH:
        return None
    events = []
    for at in range(1, count, 4):
        topic, ts, data, flag = frames[at : at + 4]
        if not (0 < len(topic) <= MAX_TOPIC_CHARS and topic.isascii() and ts.isascii()):
            return None
        if flag and flag != MINOR:
            return None
        events.append((topic, ts, data, bool(flag)))
    return events


def ack_numbers(frames: list[bytes]) -> list[int] | None:
    """The numbers of `ACK number...` as `EventAck` reads them, without the model;
    None for anything else (the model then decides, and says why)."""
    if len(frames) < 2 or frames[0] != ACK:
        return None
    numbers = []
    for frame in frames[1:]:
        if len(frame) != _NUMBER_BYTES or frame[0] >= 0x80:  # above 2**63 - 1
            return None
        numbers.append(int.from_bytes(frame, "big"))
    return numbers


def decode_from_worker(frames: list[bytes]) -> FromWorker:
    """The frame a worker sent (without the routing id), or `MalformedFrame`."""
    if not frames:
        raise MalformedFrame("empty message")
    kind, count = frames[0], len(frames)
    try:
        # Replies and events are the hot path: a length check and the model.
        if kind == REP and count == 3:
            return WorkerReply(token=frames[1], reply=frames[2])
        if kind == PUB and count in (4, 5):
            if count == 5 and frames[4] != MINOR:
                raise MalformedFrame("the optional last frame of PUB is 'minor'")
            return WorkerPublish(
                topic=frames[1].decode(), ts=frames[2].decode(), data=frames[3], minor=count == 5
            )
        if kind == PUBS and count > 1 and (count - 1) % 4 == 0:
            return WorkerPublishBatch(
                events=tuple(_published(frames, at) for at in range(1, count, 4))
            )
        if kind == ACK and count >= 2:
            return EventAck(numbers=tuple(_number(frame) for frame in frames[1:]))
        if kind == HB and count == 2:
            return Heartbeat.model_validate_json(frames[1])
        if kind == READY and count == 2:
            return WorkerHello.model_validate_json(frames[1])
    except (ValidationError, UnicodeDecodeError) as exc:
        raise MalformedFrame(f"bad {kind[:16]!r} frame: {exc}") from None
    raise MalformedFrame(f"unknown frame {kind[:16]!r} of {count} parts")


def _published(frames: list[bytes], at: int) -> WorkerPublish:
    """The event at `frames[at:at + 4]` of a `PUBS` message."""
    flag = frames[at + 3]
    if flag not in (b"", MINOR):
        raise MalformedFrame("an event's flag in PUBS is 'minor' or empty")
    return WorkerPublish(
        topic=frames[at].decode(), ts=frames[at + 1].decode(), data=frames[at + 2], minor=bool(flag)
    )


def decode_to_worker(frames: list[bytes]) -> ToWorker:
    """The frame the supervisor sent to a worker, or `MalformedFrame`."""
    if not frames:
        raise MalformedFrame("empty message")
    kind, count = frames[0], len(frames)
    try:
        if kind == REQ and count == 3:
            return WorkerRequest(token=frames[1], request=frames[2])
        if kind == EVT and count == 4:
            return EventDelivery(number=_number(frames[1]), topic=frames[2], event=frames[3])
        if kind == EVT and count > 4 and count % 3 == 1:
            return EventBatch(
                deliveries=tuple(
                    EventDelivery(number=_number(number), topic=topic, event=event)
                    for number, topic, event in zip(
                        frames[1::3], frames[2::3], frames[3::3], strict=True
                    )
                )
            )
        if kind == STOP and count == 1:
            return StopRequest()
    except ValidationError as exc:
        raise MalformedFrame(f"bad {kind[:16]!r} frame: {exc}") from None
    raise MalformedFrame(f"unknown frame {kind[:16]!r} of {count} parts")
