"""A `cost.logged` operation already in the form the archiver's journal keeps.

The archiver keeps each operation as `loads_exact(dumps(CostOperation))` of
it (`history_archiver._as_json`): validated, then converted back to JSON
values. The cost ledger publishes operations in exactly that form (every
field, in the model's order, the timestamp as orjson writes it, amounts as
exact numbers), so for those `canonical_operation` checks the values against
the model's bounds by hand and keeps the event's own dict: a fifth of the
archiver's CPU per event was the model's validation, dump and conversion.
Anything else (an older writer, a missing or extra field, another timestamp
form) returns None and takes the model's way, which gives the same result.
"""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal
from typing import Any, Final

from protocol.base import MAX_TEXT_CHARS
from protocol.costs import CostOperation

__all__ = ["canonical_operation", "real_utc_time"]

_FIELDS: Final = tuple(CostOperation.model_fields)
_TOKENS: Final = (
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
)
_MAX_TOKENS: Final = 10**12
_MAX_MONEY_DIGITS: Final = 40
_MONEY_BOUND: Final[int] = 10**_MAX_MONEY_DIGITS
_OPTIONAL_TEXT: Final = ("session_id", "request_id", "price_source", "provider")
_ORJSON_UTC: Final = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.(?!000000)\d{6})?Z")
"""A UTC time as orjson writes it with `OPT_UTC_Z`: microseconds only when not zero."""


def canonical_operation(raw: Any) -> dict[str, Any] | None:
    """`raw` itself when it is already what `_as_json` would make of it, else None.

    Never more permissive than `CostOperation`: a value it would refuse, or
    would write differently, sends the operation the model's way. Written
    as plain loops and comparisons (no generator per check): this runs once
    per `cost.logged`, and was 7 us of the archiver's CPU per event.
    """
    if type(raw) is not dict or tuple(raw) != _FIELDS:
        return None
    for name in _TOKENS:
        count = raw[name]
        if type(count) is not int or count < 0 or count > _MAX_TOKENS:
            return None
    for name in _OPTIONAL_TEXT:
        text = raw[name]
        if text is not None and type(text) is not str:
            return None
    operation, model = raw["operation"], raw["model"]
    fits = (
        type(operation) is str
        and len(operation) <= MAX_TEXT_CHARS
        and type(model) is str
        and len(model) <= MAX_TEXT_CHARS
        and type(raw["priced"]) is bool
        and _exact_amount(raw["cost"])
        and real_utc_time(raw["timestamp"], _ORJSON_UTC)
    )
    return raw if fits else None


def real_utc_time(stamp: Any, shape: re.Pattern[str]) -> bool:
    """Whether `stamp` is text of `shape` (a UTC time as one writer writes it) and a real
    time: the shape alone lets month 13 through."""
    if type(stamp) is not str or not shape.fullmatch(stamp):
        return False
    try:
        datetime.fromisoformat(stamp)
    except ValueError:
        return False
    return True


def _exact_amount(cost: Any) -> bool:
    """None, or an amount `Money` takes and `_as_json` keeps as it is."""
    if cost is None:
        return True
    if type(cost) is int:
        return bool(abs(cost) < _MONEY_BOUND)
    if type(cost) is not Decimal or not cost.is_finite():
        return False
    _sign, digits, exponent = cost.as_tuple()
    if not isinstance(exponent, int) or exponent >= 0 or digits[-1] == 0:
        return False  # `_as_json` cuts trailing zeros (a whole amount becomes an int)
    return max(len(digits), -exponent) <= _MAX_MONEY_DIGITS
