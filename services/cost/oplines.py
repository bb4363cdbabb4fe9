"""A `cost.log` written once: its ledger line, its reply and its event from one encoding.

Each call is written three times: the `op` line (with its reply, so a re-sent
id is answered exactly after a restart), the reply, and the `cost.logged`
event. All three hold the same totals and the last two the same view of the
call, so `written_call` encodes the view and the totals once and composes the
three from those bytes. The line is checked by hand against `LedgerOperation`'s
bounds instead of being built as the model (pydantic was ~10 us of the ~100 a
call costs in process); a line the check does not vouch for is built and
validated as the model, as before, and fails the batch the same way when it is
invalid. The bytes are those the model path writes (`records.op_record`, then
`records.line_form`), tested in `tests/test_cost_oplines.py`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, NamedTuple

import orjson

from protocol.base import MAX_TEXT_CHARS
from protocol.codec import Prewritten, decimal_text, dumps
from protocol.ledger import LedgerOperation
from services.cost.records import op_record

__all__ = ["WrittenCall", "WrittenLine", "written_call"]

_MAX_TOKENS = 10**12
"""`LedgerOperation`'s bound on every token count (`protocol.ledger.Tokens`)."""
_MAX_DIGITS = 40
"""`protocol.base.Money`'s `max_digits`."""
_COUNTS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens",
           "reasoning_tokens")  # fmt: skip


class WrittenLine(NamedTuple):
    """An `op` line already encoded (no newline): what `JsonLinesLog` appends as is."""

    json: bytes

    def fragment(self) -> orjson.Fragment:
        """The line for `dumps_line`, which writes a fragment's bytes unchanged."""
        return orjson.Fragment(self.json)


class WrittenCall(NamedTuple):
    """A logged call's three outputs: the ledger line, the reply, the event's data."""

    line: WrittenLine | LedgerOperation
    """Encoded, or the validated model when the hand check did not vouch for it."""
    reply: Prewritten
    """`{"operation": view, "totals": totals, "warning": warning}`."""
    event: Prewritten
    """`cost.logged`'s data: `{"operation": view, "totals": totals, "cost": cost}`."""


def written_call(
    view: dict[str, Any], *, totals: dict[str, Any], warning: str | None
) -> WrittenCall:
    """The line, reply and event of a call (`records.op_view`) with the totals just after it.

    Raises pydantic's `ValidationError` exactly when `records.op_record` would.
    """
    cost = view["cost"]
    line: WrittenLine | LedgerOperation | None = None
    if _vouched(view) and (warning is None or type(warning) is str):
        # What `_default` writes for them, without a call back from orjson for each
        cost_json = b"null" if cost is None else decimal_text(cost).encode()
        warning_json = b"null" if warning is None else orjson.dumps(warning)
    else:
        line = op_record(view, totals=totals, warning=warning)  # raises as it always did
        cost_json, warning_json = dumps(cost), dumps(warning)
    # The view's one amount as written above, not through orjson's callback again
    view_json = dumps({**view, "cost": orjson.Fragment(cost_json)} if line is None else view)
    totals_json = dumps(_with_fragments(totals))
    if line is None:
        line = WrittenLine(
            orjson.dumps(
                {
                    "kind": "op",
                    "id": view["request_id"],
                    "ts": view["timestamp"],
                    "session_id": view["session_id"],
                    "operation": view["operation"],
                    "model": view["model"],
                    "input_tokens": view["input_tokens"],
                    "output_tokens": view["output_tokens"],
                    "cache_read_tokens": view["cache_read_tokens"],
                    "cache_write_tokens": view["cache_write_tokens"],
                    "reasoning_tokens": view["reasoning_tokens"],
                    "provider": view["provider"],
                    "cost": orjson.Fragment(cost_json),
                    "priced": view["priced"],
                    "price_source": view["price_source"],
                    "totals": orjson.Fragment(totals_json),
                    "warning": warning,
                },
                option=orjson.OPT_UTC_Z,
            )
        )
    head = b'{"operation":' + view_json + b',"totals":' + totals_json
    reply = Prewritten(
        {"operation": view, "totals": totals, "warning": warning},
        head + b',"warning":' + warning_json + b"}",
    )
    event = Prewritten(
        {"operation": view, "totals": totals, "cost": cost},
        head + b',"cost":' + cost_json + b"}",
    )
    return WrittenCall(line, reply, event)


def _vouched(view: dict[str, Any]) -> bool:
    """Whether `LedgerOperation` would take the view's fields exactly as they are
    (types, text lengths, token bounds, an aware UTC time, finite money of at most
    40 digits); False sends the line through the model, which decides."""
    ts, operation, model = view["timestamp"], view["operation"], view["model"]
    provider, source = view["provider"], view["price_source"]
    if not (
        type(ts) is datetime
        and ts.tzinfo is UTC
        and type(view["request_id"]) is str
        and type(view["session_id"]) is str
        and type(operation) is str
        and len(operation) <= MAX_TEXT_CHARS
        and type(model) is str
        and len(model) <= MAX_TEXT_CHARS
        and (provider is None or type(provider) is str)
        and (source is None or type(source) is str)
        and type(view["priced"]) is bool
    ):
        return False
    for key in _COUNTS:
        count = view[key]
        if type(count) is not int or not 0 <= count <= _MAX_TOKENS:
            return False
    cost = view["cost"]
    if cost is None:
        return True
    if type(cost) is not Decimal or not cost.is_finite():
        return False
    # At most 40 digits however pydantic counts them (with or without the zeros
    # `tidy` already cut): digits + |exponent| bounds both ways of counting.
    _sign, digits, exponent = cost.as_tuple()
    return len(digits) + abs(int(exponent)) <= _MAX_DIGITS


def _with_fragments(totals: dict[str, Any]) -> dict[str, Any]:
    """`totals` with every amount (also in `by_model`) as the JSON `dumps` writes for it.

    A call's totals are new amounts each time, so `dumps`' cache of amounts
    only misses; writing them here is half the time and the same bytes. An
    amount equal to the one written just before (the session's, day's, week's
    and month's totals are often the same, and so is a lone model's) reuses its
    bytes: equal Decimals are written alike (`decimal_text`).
    """
    written: dict[str, Any] = {}
    last: Any = None
    last_json: orjson.Fragment | None = None
    for key, value in totals.items():
        kind = type(value)
        if kind is Decimal:
            if last_json is None or value != last:
                last, last_json = value, orjson.Fragment(decimal_text(value).encode())
            written[key] = last_json
        elif kind is dict:
            by_name: dict[str, Any] = {}
            for name, amount in value.items():
                if type(amount) is Decimal:
                    if last_json is None or amount != last:
                        last, last_json = amount, orjson.Fragment(decimal_text(amount).encode())
                    by_name[name] = last_json
                else:
                    by_name[name] = amount
            written[key] = by_name
        else:
            written[key] = value
    return written
