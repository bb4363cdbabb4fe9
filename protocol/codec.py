"""Bytes to and from JSON values, with money kept exact.

Money is `Decimal` in memory and a JSON *number* on disk and on the wire,
written with its exact decimal digits (`0.00000007`, never `7e-08` and never a
rounded float). orjson does the work (12-33x faster than `json` with indent);
`orjson.Fragment` lets a Decimal be written as a number without a float ever
existing. Readers that need exact money parse numbers with `loads_exact`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from decimal import Decimal
from enum import Enum
from functools import lru_cache
from pathlib import PurePath
from typing import Any

import orjson
from pydantic import BaseModel

__all__ = [
    "Prewritten",
    "decimal_text",
    "dumps",
    "dumps_line",
    "dumps_pretty",
    "loads",
    "loads_exact",
    "to_jsonable",
]

_OPTIONS = orjson.OPT_UTC_Z | orjson.OPT_NON_STR_KEYS


def decimal_text(value: Decimal) -> str:
    """Render a Decimal as plain positional digits with no exponent.

    Trailing zeros are dropped (`0.150` -> `0.15`) so equal amounts always read
    the same in a file a person opens. `format(value, "f")` writes every digit
    (no rounding, whatever the context's precision), so only the zeros after
    the point are trimmed here: ~0.5 us instead of ~3 us for the digit-tuple
    route, and every ledger line, reply and event writes several amounts.
    """
    if not value.is_finite():
        raise ValueError(f"money must be finite, got {value}")
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


@lru_cache(maxsize=1024)
def _money_fragment(value: Decimal) -> orjson.Fragment:
    """A finite amount as a JSON number, cached: equal amounts are written alike
    (see `decimal_text`), and a `cost.log` writes each of its totals three
    times (ledger line, reply, event)."""
    return orjson.Fragment(decimal_text(value).encode())


class Prewritten(Mapping[str, Any]):
    """A JSON object whose bytes are already written: a read-only mapping in
    process, and exactly those bytes wherever `dumps` writes it (at the top or
    nested). For values written more than once: the cost ledger encodes a
    call's view and totals once and reuses them in its line, reply and event.

    `json` must be what `dumps` writes for `dict(items)` (the writer's promise,
    tested where it is kept); `items` must not change afterwards.
    """

    __slots__ = ("_fragment", "_items", "json")

    def __init__(self, items: dict[str, Any], json: bytes) -> None:
        self._items = items
        self.json = json
        self._fragment = orjson.Fragment(json)

    def __getitem__(self, key: str) -> Any:
        return self._items[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def get(self, key: str, default: Any = None) -> Any:
        """The value of `key`, or `default` (the dict's own lookup, not `Mapping`'s)."""
        return self._items.get(key, default)

    def __repr__(self) -> str:
        return f"Prewritten({self._items!r})"


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        if not value.is_finite():  # refused with its own message, never cached
            raise ValueError(f"money must be finite, got {value}")
        return _money_fragment(value)
    if type(value) is Prewritten:
        return value._fragment
    if isinstance(value, BaseModel):
        return value.model_dump(mode="python", exclude_none=False)
    if isinstance(value, PurePath):
        return value.as_posix()
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    if isinstance(value, Enum):
        return value.value
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")


def to_jsonable(value: Any) -> Any:
    """Return `value` with models dumped to plain Python, ready for `dumps`."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="python")
    return value


def dumps(value: Any) -> bytes:
    """Compact JSON bytes (one wire frame)."""
    kind = type(value)
    if kind is Prewritten:
        return value.json  # type: ignore[no-any-return]
    if kind is not dict:  # a plain dict needs no look for a model (~0.3 us)
        value = to_jsonable(value)
    return orjson.dumps(value, default=_default, option=_OPTIONS)


def dumps_line(value: Any) -> bytes:
    """One JSON Lines record: compact JSON and a newline."""
    if type(value) is not dict:
        value = to_jsonable(value)
    return orjson.dumps(value, default=_default, option=_OPTIONS | orjson.OPT_APPEND_NEWLINE)


def dumps_pretty(value: Any) -> bytes:
    """Indented JSON with a final newline, for data files a person may open."""
    return orjson.dumps(
        to_jsonable(value),
        default=_default,
        option=_OPTIONS | orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE,
    )


def loads(data: bytes | str) -> Any:
    """Parse JSON fast; numbers with a fraction become floats (not for money)."""
    return orjson.loads(data)


def loads_exact(data: bytes | str) -> Any:
    """Parse JSON keeping every number with a fraction as an exact Decimal.

    Slower than `loads`; used for the files that hold money and for anything
    whose totals must equal the exact sum of their parts.
    """
    if isinstance(data, bytes):  # as `json.loads` reads bytes
        text = data.decode(json.detect_encoding(data), "surrogatepass")
    else:
        text = data
    if text.startswith("\ufeff"):  # as `json.loads` refuses it
        raise json.JSONDecodeError("Unexpected UTF-8 BOM (decode using utf-8-sig)", text, 0)
    try:
        return _EXACT_DECODER.decode(text)
    except RecursionError:
        raise ValueError("JSON is nested too deeply") from None


def _refuse_constant(name: str) -> Any:
    # NaN and Infinity are not JSON; accepting them would turn into null on save.
    raise ValueError(f"{name} is not a valid JSON number")


_EXACT_DECODER = json.JSONDecoder(parse_float=Decimal, parse_constant=_refuse_constant)
"""Built once: `json.loads` with keyword arguments builds a decoder (and its
scanner) on every call, a cost every delivered event and ledger line paid."""
