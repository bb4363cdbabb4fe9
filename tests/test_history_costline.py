"""A `cost.logged` delivery read from its bytes is taken exactly as the general way takes it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from protocol.codec import dumps, dumps_line
from protocol.errors import ProtocolError
from protocol.history_journal import HistoryEvent, decode_history_journal_line
from services.cost.oplines import written_call
from services.cost.rates import Price
from services.cost.records import op_view
from services.history.costline import read_cost_logged, utc_stamp
from services.history.journal import event_line
from services.history_archiver import _kept_operation
from services.runtime.delivery import read_event
from services.runtime.eventbus import stamp_event

AT = datetime(2026, 11, 30, 21, 0, 0, 123456, tzinfo=UTC)
TOTALS = {
    "session_total": Decimal("0.08535"),
    "by_model": {"claude-sonnet-3.5": Decimal("0.08535")},
    "unpriced_operations": 0,
    "monthly_projection": Decimal("2.65"),
}


def delivered(
    *,
    cost: Decimal | None = Decimal("0.08535"),
    request_id: str = "r-1",
    operation: str = "scene_generation",
    model: str = "claude-sonnet-3.5",
    moment: datetime = AT,
    source: bytes = b"cost_ledger",
    seq: int = 7,
    stamped: bytes = b"2026-11-30T21:00:01.500000Z",
) -> bytes:
    """A `cost.logged` envelope as the ledger writes its data and the supervisor stamps it."""
    price = None if cost is None else Price(cost=cost, source="genai-prices@0.2.3", model_id=model)
    view = op_view(
        request_id=request_id,
        ts=moment,
        session_id="2026-11-30-210000",
        operation=operation,
        model=model,
        input_tokens=12450,
        output_tokens=3200,
        price=price,
    )
    event = written_call(view, totals=TOTALS, warning=None).event
    return stamp_event(b"cost.logged", source, seq, stamped, dumps(event))


def general(topic: bytes, body: bytes) -> tuple[str, dict[str, Any], bytes] | None:
    """What the general way makes of a delivery: key, kept operation, journal line."""
    try:
        event = read_event(topic, body)
        kept = _kept_operation(event.data.get("operation"))
    except (ProtocolError, ValidationError):
        return None
    if event.topic != "cost.logged":
        return None
    return event.key, kept["operation"], dumps_line(event_line(event.key, event.topic, kept, AT))


def assert_read_alike(body: bytes) -> bool:
    """`read_cost_logged` gives what the general way gives, or leaves it to it (False)."""
    line = read_cost_logged(body)
    if line is None:
        return False
    expected = general(b"cost.logged", body)
    assert expected is not None
    key, operation, journal = expected
    assert line.key == key
    assert line.operation == operation
    assert [type(value) for value in line.operation.values()] == [
        type(value) for value in operation.values()
    ]
    assert line.journal_line(utc_stamp(AT)) + b"\n" == journal
    return True


def test_the_ledgers_event_is_read_from_its_bytes() -> None:
    """The ledger's own event takes the quick way, with the key and the exact cost."""
    line = read_cost_logged(delivered())
    assert line is not None
    assert line.key == "cost_ledger:7:2026-11-30T21:00:01.500000+00:00"
    assert line.operation["cost"] == Decimal("0.08535")
    assert type(line.operation["cost"]) is Decimal
    assert line.operation["request_id"] == "r-1"
    assert assert_read_alike(delivered())


def test_the_spliced_line_is_the_journals_own_line() -> None:
    """The journal line built from the event's bytes reads back as its model, byte for byte."""
    line = read_cost_logged(delivered(cost=None, stamped=b"2026-11-30T21:00:01.000000Z"))
    assert line is not None
    written = line.journal_line(utc_stamp(AT)) + b"\n"
    record = decode_history_journal_line(written)
    assert isinstance(record, HistoryEvent)
    assert record.key == "cost_ledger:7:2026-11-30T21:00:01+00:00"
    assert record.ts == AT
    assert record.data["operation"]["cost"] is None
    assert dumps_line(record) == written


@pytest.mark.parametrize(
    "body",
    [
        delivered().replace(b'"v":1', b'"v":2'),
        delivered().replace(b'"seq":7', b'"seq":-7'),
        delivered().replace(b'"seq":7', b'"seq":7.0'),
        delivered().replace(b"0.08535,", b"0.085350,", 1),
        delivered().replace(b"0.08535,", b"8.535E-2,", 1),
        delivered().replace(b'"input_tokens":12450', b'"input_tokens":12450, '),
        delivered().replace(b'"provider":null', b'"provider":null,"newer":1'),
        delivered().replace(b',"provider":null', b""),
        delivered().replace(b'"data":{', b'"data":{"x":1,'),
        delivered().replace(b'"scene_generation"', b'"scene\\u005fgeneration"'),
        delivered().replace(b'"r-1"', b'"\\ud800"'),
        delivered().replace(
            b'"model":"claude-sonnet-3.5"', b'"model":"claude-sonnet-3.5","model":"x"'
        ),
        delivered(source=b"cost-ledger"),
        delivered(source=b"cost\\u005fledger"),
        delivered(stamped=b"2026-11-30T21:00:01.5Z"),
        delivered(stamped=b"2026-13-30T21:00:01Z"),
        delivered(stamped=b"2026-11-30T21:00:01+00:00"),
        delivered(moment=AT.replace(microsecond=0)).replace(b"T21:00:00Z", b"T21:00:00.000000Z"),
        delivered().replace(b'"input_tokens":12450', b'"input_tokens":1000000000001'),
        delivered().replace(b"0.08535,", b"0." + b"1" * 41 + b",", 1),
        delivered().replace(b'"scene_generation"', b'"' + b"x" * 10_001 + b'"'),
        delivered()[:-1],
        delivered().replace(b'"cost.logged"', b'"cost.loggedx"', 1),
    ],
)
def test_anything_unusual_is_left_to_the_general_way(body: bytes) -> None:
    """An envelope in any other form than the plain one is not read quickly."""
    assert read_cost_logged(body) is None


@settings(max_examples=300, deadline=None)
@given(
    cost=st.one_of(
        st.none(),
        st.decimals(allow_nan=False, allow_infinity=False, places=8, min_value=-1, max_value=10**6),
        st.sampled_from([Decimal(30), Decimal("1E+2"), Decimal("0.000000007"), Decimal("-0")]),
    ),
    request_id=st.text(min_size=1, max_size=20),
    operation=st.text(max_size=20),
    model=st.text(max_size=20),
    moment=st.one_of(
        st.just(AT),
        st.just(AT.replace(microsecond=0)),
        st.integers(-12, 12).map(lambda h: AT.astimezone(timezone(timedelta(hours=h)))),
    ),
    seq=st.integers(min_value=0, max_value=2**63),
)
def test_any_ledger_event_reads_alike_either_way(
    *,
    cost: Decimal | None,
    request_id: str,
    operation: str,
    model: str,
    moment: datetime,
    seq: int,
) -> None:
    """Whatever the ledger logged, the quick way gives the general way's key, operation and line."""
    try:
        body = delivered(
            cost=cost,
            request_id=request_id,
            operation=operation,
            model=model,
            moment=moment,
            seq=seq,
        )
    except ValidationError:
        assume(False)  # the ledger logs no such call
    taken = assert_read_alike(body)
    plain = seq < 2**63 and "\ud800" not in request_id + operation + model
    assert taken or not plain or general(b"cost.logged", body) is None


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=16), st.integers(min_value=0, max_value=len(delivered())))
def test_a_damaged_event_is_never_read_otherwise(junk: bytes, at: int) -> None:
    """Bytes spliced anywhere into a real event give the general way's answer or none."""
    original = delivered()
    assert_read_alike(original[:at] + junk + original[at:])
