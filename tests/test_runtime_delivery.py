"""A worker host reads delivered events and writes ACKs by hand exactly as the models would."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import json_values, names, timestamps

from protocol.codec import dumps
from protocol.envelopes import Event, decode_event, encode_event
from protocol.errors import ProtocolError
from protocol.internal import (
    MAX_EVENTS_PER_EVT,
    EventAck,
    EventBatch,
    EventDelivery,
    MalformedFrame,
    StopRequest,
    WorkerRequest,
    decode_to_worker,
)
from services.runtime.delivery import EventWindow, ack_frames, deliveries_of, read_event

COST_LOGGED = (
    b'{"v":1,"topic":"cost.logged","source":"cost_ledger","seq":7,'
    b'"ts":"2026-11-30T23:21:28.623568Z","data":{"operation":{"cost":0.08535,'
    b'"request_id":"b1"},"totals":{"session_total":0.08535}}}'
)


def _either(topic: bytes, body: bytes) -> tuple[Any, Any]:
    """What `read_event` and `decode_event` make of one delivery: an Event or an error text."""
    results: list[Any] = []
    for read in (read_event, lambda t, b: decode_event([t, b], exact=True)):
        try:
            results.append(read(topic, body))
        except ProtocolError as exc:
            results.append((exc.code, exc.message))
    return results[0], results[1]


def test_a_cost_logged_delivery_reads_as_the_model_reads_it() -> None:
    """The ledger's event is the same envelope, its money exact Decimals."""
    fast, model = _either(b"cost.logged", COST_LOGGED)
    assert isinstance(fast, Event)
    assert fast == model
    assert fast.data["operation"]["cost"] == Decimal("0.08535")
    assert type(fast.data["totals"]["session_total"]) is Decimal


@settings(max_examples=300)
@given(
    topic=names,
    source=names,
    seq=st.integers(min_value=0, max_value=2**64 - 1),
    ts=timestamps(),
    data=st.dictionaries(names, json_values(), max_size=3),
)
def test_any_envelope_reads_the_same_either_way(
    topic: str, source: str, seq: int, ts: datetime, data: dict[str, Any]
) -> None:
    """Any envelope the supervisor could stamp gives the same Event by hand as by the model."""
    frames = encode_event(topic, source, seq, ts, data)
    fast, model = _either(frames[0], frames[1])
    assert fast == model


_MUTATIONS = [
    b"",
    b"[]",
    b"not json",
    b"\xef\xbb\xbf{}",
    b'{"v":1}',
    b'{"v":true,"topic":"a","source":"s","seq":1,"ts":"2026-01-01T00:00:00Z","data":{}}',
    b'{"v":1,"topic":"a","source":"s","seq":-1,"ts":"2026-01-01T00:00:00Z","data":{}}',
    b'{"v":1,"topic":"a","source":"s","seq":1,"ts":"2026-13-01T00:00:00Z","data":{}}',
    b'{"v":1,"topic":"a","source":"s","seq":1,"ts":"2026-01-01T00:00:00Z","data":{},"x":1}',
    b'{"v":1,"topic":"a","source":"s","seq":1,"ts":"2026-01-01T00:00:00Z","data":[]}',
    b'{"v":1,"topic":"b","source":"s","seq":1,"ts":"2026-01-01T00:00:00Z","data":{}}',
    b'{"v":1,"topic":"a","source":"s","seq":1,"ts":"2026-01-01T00:00:00Z","data":{"x":"\\ud800"}}',
    b'{"v":1,"topic":"a","source":"s","seq":1,"ts":"2026-01-01T00:00:00Z","data":{"x":NaN}}',
    b'{"v":1,"topic":"a","source":"s","seq":1,"ts":"2026-01-01T00:00:00Z","data":{"x":1e400}}',
    b'{"v":1,"topic":"a","source":"s","seq":1,"ts":"2026-01-01T00:00:00Z","data":{}} x',
    b"[" * 100_000,
    b'{"v":1,"topic":"a","source":"s","seq":1,"ts":"2026-01-01T00:00:00Z","data":{"\xff":1}}',
]


@pytest.mark.parametrize("body", _MUTATIONS)
def test_an_odd_delivery_gets_the_models_answer(body: bytes) -> None:
    """A frame that is not a plain envelope gets the same Event or the same error as before."""
    fast, model = _either(b"a", body)
    assert fast == model


@settings(max_examples=200)
@given(st.binary(max_size=64), st.integers(min_value=0, max_value=len(COST_LOGGED) - 1))
def test_a_damaged_delivery_gets_the_models_answer(junk: bytes, at: int) -> None:
    """Bytes spliced anywhere into a real event are judged as `decode_event` judges them."""
    body = COST_LOGGED[:at] + junk + COST_LOGGED[at:]
    fast, model = _either(b"cost.logged", body)
    assert fast == model


@pytest.mark.parametrize(
    "frames",
    [
        EventDelivery.pack(0, b"cost.logged", COST_LOGGED),
        EventDelivery.pack(2**63 - 1, b"file.created", b"{}"),
        [b"EVT", (2**63).to_bytes(8, "big"), b"t", b"{}"],
        [b"EVT", b"\x00" * 7, b"t", b"{}"],
        [b"EVT", b"\x00" * 8, b"t"],
        WorkerRequest.pack(b"\x00\x01", b"{}"),
        StopRequest().frames(),
        [b"ACK", b"\x00" * 8],
        EventBatch.pack([(3, b"cost.logged", COST_LOGGED), (4, b"file.created", b"{}")]),
        EventBatch.pack([(n, b"t", b"{}") for n in range(MAX_EVENTS_PER_EVT)]),
        EventBatch.pack([(n, b"t", b"{}") for n in range(MAX_EVENTS_PER_EVT + 1)]),
        [*EventBatch.pack([(1, b"t", b"{}"), (2, b"t", b"{}")]), b"\x00" * 8],
        [*EventBatch.pack([(1, b"t", b"{}")]), b"\x00" * 7, b"t", b"{}"],
        [*EventBatch.pack([(1, b"t", b"{}")]), (2**63).to_bytes(8, "big"), b"t", b"{}"],
        [b"EVT"],
    ],
)
def test_a_delivery_is_taken_exactly_when_the_model_takes_it(frames: list[bytes]) -> None:
    """`deliveries_of` reads an EVT message as `decode_to_worker` does, and nothing else."""
    try:
        model: object = decode_to_worker(frames)
    except MalformedFrame:
        model = None
    fast = deliveries_of(frames)
    if isinstance(model, EventDelivery):
        assert fast == [(model.number, model.topic, model.event)]
    elif isinstance(model, EventBatch):
        assert fast == [(one.number, one.topic, one.event) for one in model.deliveries]
        assert model.frames() == frames
    else:
        assert fast is None


@given(
    st.lists(
        st.tuples(st.integers(0, 2**63 - 1), st.binary(max_size=8), st.binary(max_size=8)),
        min_size=1,
        max_size=MAX_EVENTS_PER_EVT,
    )
)
def test_several_events_in_one_evt_read_in_order(
    deliveries: list[tuple[int, bytes, bytes]],
) -> None:
    """Events sent together in one EVT come out as they went in, as the models read them."""
    frames = EventBatch.pack(deliveries)
    assert deliveries_of(frames) == deliveries
    model = decode_to_worker(frames)
    if len(deliveries) == 1:
        assert model == EventDelivery(
            number=deliveries[0][0], topic=deliveries[0][1], event=deliveries[0][2]
        )
    else:
        assert isinstance(model, EventBatch)
        assert [(one.number, one.topic, one.event) for one in model.deliveries] == deliveries


@given(st.lists(st.integers(min_value=0, max_value=2**63 - 1), min_size=1, max_size=20))
def test_an_ack_is_written_as_its_model_writes_it(numbers: list[int]) -> None:
    """The ACK frames built by hand are the bytes of `EventAck(numbers=...)`."""
    assert ack_frames(numbers) == EventAck(numbers=tuple(numbers)).frames()
    assert ack_frames(tuple(numbers)) == ack_frames(numbers)


def test_a_supervisor_stamped_envelope_round_trips() -> None:
    """An envelope as the supervisor writes it (`dumps`) reads back whole."""
    event = Event(
        topic="file.created",
        source="file_watcher",
        seq=3,
        ts=datetime.fromisoformat("2026-11-30T23:00:00Z"),
        data={"path": "manuscript/ch1.md"},
    )
    assert read_event(b"file.created", dumps(event)) == event


def test_the_event_window_holds_until_it_ends_then_hands_over_in_order() -> None:
    """Events kept in an open window come out, oldest first, once it is released."""
    window = EventWindow(0.005, limit=8)
    first, second = [(1, b"t", b"a")], [(2, b"t", b"b")]
    assert window.keep(first, now=100.0) and first == []
    assert window.until == 100.005
    assert window.keep(second, now=100.004) and window.until == 100.005  # not extended
    assert not window.due(100.004) and window.due(100.005)
    late = [(3, b"t", b"c")]
    assert not window.keep(late, now=100.006)  # over: everything goes now
    assert window.release(late) and [number for number, _, _ in late] == [1, 2, 3]
    assert window.until is None and not window.release([])


def test_no_window_or_a_full_one_hands_events_over_at_once() -> None:
    """A window of 0 never holds, and one at its limit refuses more."""
    assert not EventWindow(0.0, limit=8).keep([(1, b"t", b"a")], now=1.0)
    window = EventWindow(1.0, limit=2)
    assert window.keep([(1, b"t", b"a")], now=1.0)
    assert not window.keep([(2, b"t", b"b")], now=1.1)
