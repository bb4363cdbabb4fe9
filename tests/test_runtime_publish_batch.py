"""Several events in one `PUBS` message: built, read and fanned out as if sent one by one."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import zmq
from hypothesis import given
from hypothesis import strategies as st
from service import running_service

from protocol.internal import (
    MAX_EVENTS_PER_PUBLISH,
    MAX_PUBLISH_BATCH_BYTES,
    MINOR,
    PUB,
    PUBS,
    REP,
    MalformedFrame,
    Published,
    WorkerPublish,
    WorkerPublishBatch,
    decode_from_worker,
    plain_publish,
    plain_publish_batch,
    publish_messages,
)
from tests.host_harness import (
    FakeSupervisor,
    cost_log_request,
    gated_ledger_host,
    host_signals,
    play,
)

_TS = b"2026-12-01T02:00:00.123456Z"


def _events(count: int, size: int = 8) -> list[Published]:
    return [
        (b"cost.logged", _TS, b'{"n":%d,"pad":"%s"}' % (n, b"x" * size), n % 3 == 0)
        for n in range(count)
    ]


def _unpacked(messages: list[list[bytes]]) -> list[Published]:
    """The events the supervisor reads out of `messages`, in order."""
    events: list[Published] = []
    for frames in messages:
        if frames[0] == PUB:
            assert plain_publish(frames)
            events.append((frames[1], frames[2], frames[3], len(frames) == 5))
        else:
            batch = plain_publish_batch(frames)
            assert batch is not None
            events.extend(batch)
    return events


@pytest.mark.parametrize(
    "count", [1, 2, 8, MAX_EVENTS_PER_PUBLISH, MAX_EVENTS_PER_PUBLISH + 1, 300]
)
def test_a_batch_of_events_is_carried_whole_in_order_within_the_limits(count: int) -> None:
    """However many events a batch published, they arrive all, once, in order, and no
    message holds more than the limit; an event alone is a plain `PUB`."""
    events = _events(count)
    messages = list(publish_messages(events))
    assert _unpacked(messages) == events
    assert all((len(frames) - 1) // 4 <= MAX_EVENTS_PER_PUBLISH for frames in messages)
    assert all(frames[0] == PUBS for frames in messages[:-1])
    if count == 1:
        assert messages == [WorkerPublish.pack(*events[0])]


def test_big_events_are_split_by_size_so_no_message_holds_much_more_than_the_limit() -> None:
    """Events of 400 KiB go two or three to a message (closed once past the byte limit)."""
    events = _events(7, size=400 * 1024)
    messages = list(publish_messages(events))
    assert _unpacked(messages) == events
    assert len(messages) == 3
    for frames in messages:
        data = sum(len(frame) for frame in frames[3::4]) if frames[0] == PUBS else len(frames[3])
        assert data < MAX_PUBLISH_BATCH_BYTES + 400 * 1024 + 64


def test_a_batch_model_and_its_frames_read_back_equal() -> None:
    """`WorkerPublishBatch` round-trips through its frames, flags and all."""
    batch = WorkerPublishBatch(
        events=(
            WorkerPublish(topic="cost.logged", ts="2026-12-01T02:00:00Z", data=b"{}"),
            WorkerPublish(topic="file.modified", ts="2026-12-01T02:00:01Z", data=b"[]", minor=True),
        )
    )
    frames = batch.frames()
    assert frames[0] == PUBS and frames[4] == b"" and frames[8] == MINOR
    assert decode_from_worker(frames) == batch


@pytest.mark.parametrize(
    "frames",
    [
        [PUBS],
        [PUBS, b"cost.logged", _TS, b"{}", b""],  # one event: that is a PUB
        [PUBS, b"cost.logged", _TS, b"{}", b"", b"cost.logged", _TS],
        [PUBS, b"cost.logged", _TS, b"{}", b"major", b"cost.logged", _TS, b"{}", b""],
        [PUBS, b"\xff", _TS, b"{}", b"", b"cost.logged", _TS, b"{}", b""],
        [PUBS, b"", _TS, b"{}", b"", b"cost.logged", _TS, b"{}", b""],
        [PUBS, *[b"t", _TS, b"{}", b""] * (MAX_EVENTS_PER_PUBLISH + 1)],
    ],
    ids=lambda frames: f"{len(frames)} frames",
)
def test_a_malformed_batch_is_refused_with_a_reason(frames: list[bytes]) -> None:
    """A `PUBS` of a wrong size, flag or topic is MalformedFrame, and never forwarded as bytes."""
    assert plain_publish_batch(frames) is None
    with pytest.raises(MalformedFrame) as caught:
        decode_from_worker(frames)
    assert str(caught.value)


_parts = st.one_of(
    st.binary(max_size=6),
    st.sampled_from([b"", MINOR, b"major", b"cost.logged", "é.changed".encode(), b"x" * 129]),
)


@given(parts=st.lists(_parts, min_size=8, max_size=16))
def test_what_is_forwarded_as_bytes_is_what_the_model_reads(parts: list[bytes]) -> None:
    """Whenever the per-event path accepts a `PUBS`, the model accepts it with the same events."""
    frames = [PUBS, *parts]
    events = plain_publish_batch(frames)
    if events is not None:
        batch = decode_from_worker(frames)
        assert isinstance(batch, WorkerPublishBatch)
        assert [
            (event.topic.encode(), event.ts.encode(), event.data, event.minor)
            for event in batch.events
        ] == events


def test_a_ledger_batch_sends_its_replies_then_its_events_in_one_message(tmp_path: Path) -> None:
    """Three `cost.log`s read together get three replies, then one `PUBS` with their
    three `cost.logged` events in the order of the requests; one alone gets a `PUB`."""
    entered, gate = threading.Event(), threading.Event()
    with host_signals() as lifeline:
        endpoint = "inproc://ledger-publish-batch"
        # The first batch waits for `gate`: what comes meanwhile queues.
        host, supervisor = gated_ledger_host(str(tmp_path), lifeline, endpoint, gate, entered)

        def script(supervisor: FakeSupervisor) -> list[list[bytes]]:
            supervisor.send(cost_log_request(1, "alone"))
            assert entered.wait(10.0)
            for n in (2, 3, 4):  # inproc: queued on the host's side once sent
                supervisor.send(cost_log_request(n, f"batch-{n}"))
            gate.set()
            seen: list[list[bytes]] = []
            while sum(len(_published(frames)) for frames in seen) < 4:
                frames = supervisor.next_message(10.0)[1:]
                if frames[0] in (REP, PUB, PUBS):
                    seen.append(frames)
            return seen

        seen = play(host, supervisor, script)
    assert [frames[0] for frames in seen] == [REP, PUB, REP, REP, REP, PUBS]
    ids = [
        json.loads(data)["operation"]["request_id"]
        for frames in seen
        for _topic, _ts, data, _minor in _published(frames)
    ]
    assert ids == ["alone", "batch-2", "batch-3", "batch-4"]


def _published(frames: list[bytes]) -> list[Published]:
    """The events in one message from a worker (none in a reply)."""
    if frames[0] == PUB:
        return [(frames[1], frames[2], frames[3], len(frames) == 5)]
    if frames[0] == PUBS:
        return plain_publish_batch(frames) or []
    return []


@pytest.fixture
def subscriber() -> Iterator[zmq.Socket[bytes]]:
    """A SUB socket for `cost.logged`, closed afterwards."""
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context.instance()
    sock: zmq.Socket[bytes] = context.socket(zmq.SUB)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.SUBSCRIBE, b"cost.logged")
    try:
        yield sock
    finally:
        sock.close(linger=0)


@pytest.mark.slow
def test_concurrent_cost_logs_reach_subscribers_once_each_with_seq_in_order(
    tmp_path: Path, subscriber: zmq.Socket[bytes]
) -> None:
    """Eight clients' `cost.log`s at once: eight `cost.logged` events of two frames each,
    one per request, their `seq` consecutive, whether the ledger batched them or not."""
    args = {
        "operation": "scene_generation",
        "model": "claude-sonnet-3.5",
        "input_tokens": 12450,
        "output_tokens": 3200,
    }
    with running_service(tmp_path / "novel") as service:
        subscriber.connect(service.endpoints["events"])
        deadline = time.monotonic() + 20
        while not subscriber.poll(100):  # the SUB joins asynchronously: poke until it sees one
            assert time.monotonic() < deadline, "no cost.logged event reached the subscriber"
            assert service.request("cost.log", args)["ok"]
        clients = [service.socket() for _ in range(8)]
        ids = [f"concurrent-{n}" for n in range(8)]
        for sock, request_id in zip(clients, ids, strict=True):
            request = {"v": 1, "id": request_id, "op": "cost.log", "args": args}
            sock.send_multipart([b"", json.dumps(request).encode()])
        for sock in clients:
            assert sock.poll(10_000), "a cost.log got no reply"
            assert json.loads(sock.recv_multipart()[-1])["ok"]
        events: list[list[bytes]] = []
        while len(events) < 8:  # after those of the pokes, which came first
            assert subscriber.poll(10_000), f"only {len(events)} of 8 events arrived"
            frames = subscriber.recv_multipart()
            if b'"request_id":"concurrent-' in frames[-1]:
                events.append(frames)
    assert all(len(frames) == 2 and frames[0] == b"cost.logged" for frames in events)
    envelopes = [json.loads(frames[1]) for frames in events]
    assert sorted(e["data"]["operation"]["request_id"] for e in envelopes) == sorted(ids)
    seqs = [e["seq"] for e in envelopes]
    assert seqs == list(range(seqs[0], seqs[0] + 8))
    assert {e["source"] for e in envelopes} == {"cost_ledger"}
