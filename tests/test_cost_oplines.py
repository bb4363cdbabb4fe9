"""A logged call written once (`services.cost.oplines`): the same bytes as the model path."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from protocol.codec import Prewritten, dumps, dumps_line, loads_exact
from protocol.costs import CostTotals
from protocol.ledger import LedgerOperation
from services.cost.oplines import WrittenLine, written_call
from services.cost.records import line_form, op_record

AT = datetime(2026, 11, 30, 21, 0, 0, 123456, tzinfo=UTC)

_money = st.one_of(
    st.decimals(allow_nan=False, allow_infinity=False, places=8, min_value=0, max_value=10**6),
    st.decimals(allow_nan=False, allow_infinity=False),
    st.sampled_from([Decimal("0.08535"), Decimal("30"), Decimal("1E+2"), Decimal("0.000000007")]),
    st.builds(lambda digits: Decimal("0." + "1" * digits), st.integers(35, 45)),
)
_text = st.one_of(st.text(max_size=20), st.sampled_from(["x" * 10_000, "y" * 10_001]))
_count = st.one_of(st.integers(0, 10**6), st.sampled_from([10**12, 10**12 + 1, -1]))
_moment = st.one_of(
    st.just(AT),
    st.builds(lambda hours: AT.astimezone(timezone(timedelta(hours=hours))), st.integers(-12, 12)),
    st.just(AT.replace(microsecond=0)),
)


@st.composite
def _views(draw: st.DrawFn) -> dict[str, Any]:
    cost = draw(st.one_of(st.none(), _money))
    return {
        "timestamp": draw(_moment),
        "operation": draw(_text),
        "model": draw(_text),
        "input_tokens": draw(_count),
        "output_tokens": draw(_count),
        "cost": cost,
        "priced": cost is not None,
        "session_id": draw(st.sampled_from(["2026-11-30-210000", "s"])),
        "request_id": draw(st.text(min_size=1, max_size=30)),
        "price_source": None if cost is None else draw(st.sampled_from(["override", "g@1"])),
        "cache_read_tokens": draw(_count),
        "cache_write_tokens": draw(_count),
        "reasoning_tokens": draw(_count),
        "provider": draw(st.one_of(st.none(), st.sampled_from(["anthropic", "openai"]))),
    }


@st.composite
def _totals(draw: st.DrawFn) -> dict[str, Any]:
    amount = st.decimals(allow_nan=False, allow_infinity=False, places=6, min_value=0)
    return {
        "session_total": draw(amount),
        "daily_total": draw(amount),
        "weekly_total": draw(amount),
        "monthly_total": draw(amount),
        "by_model": draw(st.dictionaries(st.text(max_size=8), amount, max_size=3)),
        "unpriced_operations": draw(st.integers(0, 9)),
        "daily_unpriced": draw(st.integers(0, 9)),
        "weekly_unpriced": draw(st.integers(0, 9)),
        "monthly_unpriced": draw(st.integers(0, 9)),
        "monthly_projection": draw(st.one_of(st.none(), amount)),
    }


def _line_bytes(line: WrittenLine | LedgerOperation) -> bytes:
    return dumps_line(line.fragment() if isinstance(line, WrittenLine) else line_form(line))


@settings(max_examples=400, deadline=None)
@given(view=_views(), totals=_totals(), warning=st.one_of(st.none(), st.text(max_size=40)))
def test_a_written_call_is_the_model_paths_bytes(
    view: dict[str, Any], totals: dict[str, Any], warning: str | None
) -> None:
    """Line, reply and event are byte for byte what the validated model path writes,
    and a line the model refuses is refused the same way."""
    try:
        record = op_record(view, totals=totals, warning=warning)
    except ValidationError:
        with pytest.raises(ValidationError):
            written_call(view, totals=totals, warning=warning)
        return
    written = written_call(view, totals=totals, warning=warning)
    assert _line_bytes(written.line) == dumps_line(line_form(record))
    model_totals = CostTotals.model_construct(**totals)
    reply = {"operation": view, "totals": model_totals, "warning": warning}
    event = {"operation": view, "totals": totals, "cost": view["cost"]}
    assert dumps(written.reply) == dumps(reply) == dumps(dict(written.reply))
    assert dumps(written.event) == dumps(event) == dumps(dict(written.event))
    assert dumps({"result": written.reply}) == dumps({"result": reply})


def test_a_call_the_hand_check_cannot_vouch_for_goes_through_the_model() -> None:
    """A cost of more than 40 digits, a local time, a long name: the model decides."""
    base = {
        "timestamp": AT,
        "operation": "scene_generation",
        "model": "m",
        "input_tokens": 1,
        "output_tokens": 1,
        "cost": Decimal("0.5"),
        "priced": True,
        "session_id": "s",
        "request_id": "r",
        "price_source": "override",
        "cache_read_tokens": 0,
        "cache_write_tokens": 0,
        "reasoning_tokens": 0,
        "provider": None,
    }
    totals = CostTotals().model_dump()
    assert isinstance(written_call(base, totals=totals, warning=None).line, WrittenLine)
    local = {**base, "timestamp": AT.astimezone(timezone(timedelta(hours=2)))}
    line = written_call(local, totals=totals, warning=None).line
    assert not isinstance(line, WrittenLine)
    assert loads_exact(_line_bytes(line))["ts"] == "2026-11-30T21:00:00.123456Z"
    with pytest.raises(ValidationError):
        written_call({**base, "cost": Decimal("0." + "1" * 41)}, totals=totals, warning=None)
    with pytest.raises(ValidationError):
        written_call({**base, "model": "m" * 10_001}, totals=totals, warning=None)


def test_a_prewritten_value_reads_as_its_mapping() -> None:
    """In process a reply is read like the dict it stands for; written, it is its bytes."""
    value = Prewritten({"a": Decimal("1.50")}, b'{"a":1.5}')
    assert value["a"] == Decimal("1.50")
    assert value == {"a": Decimal("1.50")}
    assert list(value) == ["a"]
    assert dumps(value) == b'{"a":1.5}'
    assert dumps([value, {"b": value}]) == b'[{"a":1.5},{"b":{"a":1.5}}]'


@settings(max_examples=200, deadline=None)
@given(
    view=_views(),
    amount=st.sampled_from(
        [
            Decimal("1.5"),
            Decimal("1.50"),
            Decimal("10"),
            Decimal("1E+1"),
            Decimal("0"),
            Decimal("0.00"),
            Decimal("-0"),
            Decimal("0.08535"),
            Decimal("59.74500"),
        ]
    ),
    spelled=st.lists(
        st.sampled_from(["1.5", "1.50", "10", "1E+1", "10.000", "0", "0.00", "-0", "0.08535"]),
        min_size=5,
        max_size=5,
    ),
)
def test_equal_totals_are_written_as_the_model_path_writes_them(
    view: dict[str, Any], amount: Decimal, spelled: list[str]
) -> None:
    """Totals that are equal (or equal amounts spelled differently) read the same in the
    line, reply and event as the model path writes them."""
    a, b, c, d, e = (Decimal(text) for text in spelled)
    totals = {
        "session_total": amount,
        "daily_total": a,
        "weekly_total": b,
        "monthly_total": b,
        "by_model": {"m": c, "n": c},
        "unpriced_operations": 0,
        "daily_unpriced": 0,
        "weekly_unpriced": 0,
        "monthly_unpriced": 0,
        "monthly_projection": d if e > 1 else amount,
    }
    try:
        record = op_record(view, totals=totals, warning=None)
    except ValidationError:
        return
    written = written_call(view, totals=totals, warning=None)
    assert _line_bytes(written.line) == dumps_line(line_form(record))
    event = {"operation": view, "totals": totals, "cost": view["cost"]}
    assert dumps(written.event) == dumps(event)
