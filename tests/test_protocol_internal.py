"""Frames between the supervisor and its workers: typed, round-tripped, refused when wrong."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_schemas import SCHEMAS, _validate

from protocol.codec import loads_exact
from protocol.internal import (
    EventAck,
    EventDelivery,
    ForkReply,
    ForkRequest,
    Heartbeat,
    InternalFrame,
    MalformedFrame,
    StopRequest,
    WorkerAssignment,
    WorkerHello,
    WorkerPublish,
    WorkerReply,
    WorkerRequest,
    ack_numbers,
    decode_from_worker,
    decode_to_worker,
    plain_publish,
)
from protocol.names import WorkerName

FROM_WORKER: list[InternalFrame] = [
    WorkerHello(pid=41, name=WorkerName.COST_LEDGER, health={"lines": 3}),
    Heartbeat(health={"backend": "polling"}),
    WorkerReply(token=(7).to_bytes(8, "big"), reply=b'{"v":1,"id":"a","ok":true,"result":null}'),
    WorkerPublish(topic="file.modified", ts="2026-11-30T18:00:00Z", data=b'{"path":"a.md"}'),
    WorkerPublish(topic="cost.logged", ts="2026-11-30T18:00:00Z", data=b"{}", minor=True),
    EventAck(numbers=(1, 2, 2**40)),
]

TO_WORKER: list[InternalFrame] = [
    WorkerRequest(token=(9).to_bytes(8, "big"), request=b'{"v":1,"id":"r","op":"session.get"}'),
    EventDelivery(number=12, topic=b"file.created", event=b'{"v":1}'),
    StopRequest(),
]


@pytest.mark.parametrize("frame", FROM_WORKER, ids=lambda f: type(f).__name__)
def test_what_a_worker_sends_reads_back_equal(frame: InternalFrame) -> None:
    """Every kind a worker sends decodes, on the supervisor's side, to the frame it was."""
    assert decode_from_worker(frame.frames()) == frame


@pytest.mark.parametrize("frame", TO_WORKER, ids=lambda f: type(f).__name__)
def test_what_the_supervisor_sends_reads_back_equal(frame: InternalFrame) -> None:
    """Every kind the supervisor sends decodes, on the worker's side, to the frame it was."""
    assert decode_to_worker(frame.frames()) == frame


BAD_FROM_WORKER: list[list[bytes]] = [
    [],
    [b"NOPE", b"x"],
    [b"REP", b"token"],
    [b"REP", b"", b"reply"],
    [b"PUB", b"file.created", b"ts", b"{}", b"major"],
    [b"PUB", b"\xff", b"ts", b"{}"],
    [b"ACK"],
    [b"ACK", b"123"],
    [b"HB", b"not json"],
    [b"READY", b'{"pid": 1, "name": "nobody"}'],
    [b"READY", b'{"pid": 1, "name": "cost_ledger", "surprise": true}'],
]


@pytest.mark.parametrize("frames", BAD_FROM_WORKER, ids=repr)
def test_a_malformed_frame_from_a_worker_is_refused_with_a_reason(frames: list[bytes]) -> None:
    """Wrong kinds, counts, sizes or bodies raise MalformedFrame, never anything else."""
    with pytest.raises(MalformedFrame) as caught:
        decode_from_worker(frames)
    assert str(caught.value)


@pytest.mark.parametrize(
    "frames", [[], [b"REQ", b"t"], [b"EVT", b"1", b"t", b"e"], [b"STOP", b"now"]], ids=repr
)
def test_a_malformed_frame_to_a_worker_is_refused(frames: list[bytes]) -> None:
    """A worker refuses frames it does not understand instead of guessing."""
    with pytest.raises(MalformedFrame):
        decode_to_worker(frames)


def test_the_assignment_line_round_trips_and_satisfies_its_schema() -> None:
    """The stdin line a worker host reads is one JSON line its committed schema accepts."""
    assignment = WorkerAssignment(
        name=WorkerName.SESSION_WRITER,
        project="/home/writer/novel",
        session_id="s-1",
        backend="ipc:///tmp/run/workers.sock",
        settings={"supervisor": {"heartbeat_interval_s": 0.1}},
        options={"resume": True, "supervisor_pid": 12},
    )
    line = assignment.line()
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert WorkerAssignment.parse(line) == assignment
    schema = SCHEMAS["internal.assignment"]
    _validate(loads_exact(line), schema, schema)
    with pytest.raises(MalformedFrame):
        WorkerAssignment.parse(b'{"name": "session_writer"}\n')


def test_hello_and_heartbeat_bodies_satisfy_their_schemas() -> None:
    """READY and HB carry JSON bodies that the committed internal schemas accept."""
    hello = WorkerHello(pid=5, name=WorkerName.FILE_WATCHER, health={"polling": ["notes"]})
    beat = Heartbeat(health={"revision": 3})
    for frame, stem in ((hello, "internal.hello"), (beat, "internal.heartbeat")):
        schema = SCHEMAS[stem]
        _validate(loads_exact(frame.frames()[1]), schema, schema)


def test_fork_server_messages_round_trip_and_refuse_garbage() -> None:
    """The fork server's request and replies read back equal; anything else is MalformedFrame."""
    assert ForkRequest.model_validate_json(ForkRequest(token=3).datagram()) == ForkRequest(token=3)
    for reply in (ForkReply(ready=True), ForkReply(token=3, pid=77), ForkReply(token=4, error="x")):
        assert ForkReply.parse(reply.datagram()) == reply
    with pytest.raises(MalformedFrame):
        ForkReply.parse(b'{"token": "three"}')


_kinds = st.sampled_from([b"PUB", b"ACK", b"REP", b"PUBX", b""])
_parts = st.one_of(
    st.binary(max_size=10),
    st.sampled_from([b"minor", b"major", b"cost.logged", "é.changed".encode(), b"x" * 129]),
    st.integers(0, 2**64 - 1).map(lambda number: number.to_bytes(8, "big")),
)


@given(kind=_kinds, parts=st.lists(_parts, max_size=5))
def test_events_and_acks_forwarded_without_a_model_read_as_the_model_reads_them(
    kind: bytes, parts: list[bytes]
) -> None:
    """What the supervisor's per-event path accepts, the models accept with the same bytes."""
    frames = [kind, *parts]
    if plain_publish(frames):
        frame = decode_from_worker(frames)
        assert isinstance(frame, WorkerPublish)
        assert (frame.topic.encode(), frame.ts.encode(), frame.data) == tuple(frames[1:4])
        assert frame.minor == (len(frames) == 5)
    numbers = ack_numbers(frames)
    if numbers is not None:
        frame = decode_from_worker(frames)
        assert isinstance(frame, EventAck)
        assert frame.numbers == tuple(numbers)


@pytest.mark.parametrize("frame", FROM_WORKER, ids=lambda f: type(f).__name__)
def test_every_event_and_ack_a_worker_sends_takes_the_per_event_path(frame: InternalFrame) -> None:
    """The workers' own PUB and ACK frames never need the model on the supervisor's side."""
    if isinstance(frame, WorkerPublish):
        assert plain_publish(frame.frames())
    elif isinstance(frame, EventAck):
        assert ack_numbers(frame.frames()) == list(frame.numbers)
    else:
        assert not plain_publish(frame.frames()) and ack_numbers(frame.frames()) is None
