"""A `cost.logged` delivery read straight from its bytes: the archiver's hot path.

Every `cost.log` reaches the archiver as one delivered envelope, and the
general way to take one (`services.runtime.delivery.read_event`: an exact
parse with the standard library, the `Event` model, the key, then
`canonical_operation` and an encoding of the journal line) was about half of
the archiver's CPU per call. The only number the archiver keeps exact is the
operation's `cost`; everything else reads the same with orjson. So
`read_cost_logged` parses the envelope with orjson, takes the cost's digits
from the bytes themselves, checks everything the general way would check
(the envelope's fields and order, `canonical_operation`'s bounds, the
timestamp's form), and re-encodes the operation once: those bytes must equal
the event's own, which proves the cost's digits were the operation's. The
journal line is then spliced from the pieces (`CostLine.journal_line`), the
bytes `dumps_line(event_line(...))` writes (tested against the real writer).

Anything unusual (another envelope form, a field added or missing, escapes in
the source, an amount written another way, bytes orjson refuses) returns None,
and the caller takes the general way, which decides as it always did.
"""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal
from typing import Any, Final, NamedTuple

import orjson

from protocol.codec import decimal_text
from services.history.operation import canonical_operation, real_utc_time

__all__ = ["COST_LOGGED", "CostLine", "read_cost_logged", "utc_stamp"]

COST_LOGGED: Final = b"cost.logged"
"""The topic frame of the deliveries read here."""

_PREFIX: Final = b'{"v":1,"topic":"cost.logged","source":"'
_ENVELOPE_FIELDS: Final = ("v", "topic", "source", "seq", "ts", "data")
"""`protocol.envelopes.Event`'s fields in the order the supervisor stamps them."""
_SOURCE: Final = re.compile(r"[a-z_]{1,128}")
"""A worker's name: nothing a JSON string escapes, within `Event.source`'s bound."""
_STAMP: Final = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{6})?Z")
"""The envelope's time as the publishing host writes it (`protocol.base.utc_text`)."""
_WHOLE_SECOND: Final = ".000000Z"
_COST_KEY: Final = b',"cost":'
_AMOUNT: Final = re.compile(rb"-?(?:0|[1-9]\d*)(?:\.\d+)?")
"""An amount as `decimal_text` writes it (checked exactly afterwards); no exponent."""


class CostLine(NamedTuple):
    """One `cost.logged` delivery, read: what the archiver applies and journals."""

    key: str
    """`Event.key` of the envelope (`source:seq:ts` with `+00:00`)."""
    operation: dict[str, Any]
    """The operation as the journal keeps it (`canonical_operation`: exact cost)."""
    operation_json: bytes
    """The operation's JSON, as `dumps` writes it (and as it came)."""

    def journal_line(self, ts: bytes) -> bytes:
        """The journal's `event` line (no newline) for this operation, applied at `ts`
        (`utc_stamp`): the bytes of `dumps_line(event_line(key, "cost.logged",
        {"operation": operation}, ts))` without the newline."""
        return b"".join(
            (
                b'{"kind":"event","key":"',
                self.key.encode(),
                b'","topic":"cost.logged","data":{"operation":',
                self.operation_json,
                b'},"ts":"',
                ts,
                b'"}',
            )
        )


def utc_stamp(moment: datetime) -> bytes:
    """A UTC time as `dumps` writes it, without the quotes."""
    return orjson.dumps(moment, option=orjson.OPT_UTC_Z)[1:-1]


def read_cost_logged(body: bytes) -> CostLine | None:
    """The `cost.logged` envelope `body` as the archiver takes it, or None when it is
    anything but the plain form (the general way then decides, and says why).

    Never more permissive than `read_event` followed by `canonical_operation`:
    what it returns is what they give, with the same key and operation.
    """
    plain = _plain_envelope(body)
    if plain is None:
        return None
    source, seq, ts, operation = plain
    # The operation starts right after this head (`data` is the envelope's last field).
    head = b'%s%s","seq":%d,"ts":"%s","data":{"operation":' % (
        _PREFIX,
        source.encode(),
        seq,
        ts.encode(),
    )
    written = _operation_json(body, len(head), operation) if body.startswith(head) else None
    if written is None:
        return None
    # `Event.key` writes the time with `isoformat`: `+00:00`, no zero microseconds.
    moment = ts[:-8] if ts.endswith(_WHOLE_SECOND) else ts[:-1]
    return CostLine(f"{source}:{seq}:{moment}+00:00", operation, written)


def _plain_envelope(body: bytes) -> tuple[str, int, str, dict[str, Any]] | None:
    """The source, seq, time and operation of an envelope `Event` takes as it is,
    with a source that needs no escape and a time as `utc_text` writes it; else None."""
    if not body.startswith(_PREFIX):
        return None
    try:
        envelope = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None  # not UTF-8, a lone surrogate, a number orjson cannot hold...
    if type(envelope) is not dict or tuple(envelope) != _ENVELOPE_FIELDS:
        return None
    v, source, seq, ts, data = (
        envelope["v"],
        envelope["source"],
        envelope["seq"],
        envelope["ts"],
        envelope["data"],
    )
    operation = data.get("operation") if type(data) is dict else None
    if (
        type(v) is int
        and v == 1
        and envelope["topic"] == "cost.logged"
        and type(source) is str
        and _SOURCE.fullmatch(source)
        and type(seq) is int
        and seq >= 0
        and _stamp(ts)
        and type(operation) is dict
    ):
        return source, seq, ts, operation
    return None


def _operation_json(body: bytes, start: int, operation: dict[str, Any]) -> bytes | None:
    """The JSON of `operation`, which `body` holds from `start`, once its cost is the
    exact amount written there and it is in the journal's form; else None."""
    found = body.find(_COST_KEY, start)
    digits_at = found + len(_COST_KEY)
    digits = body[digits_at : body.find(b",", digits_at)]
    try:
        cost = _amount(digits) if found != -1 else _amount(b"")
    except ValueError:
        return None
    operation["cost"] = cost
    if canonical_operation(operation) is None:
        return None
    # Written again with the digits as found: equal to the event's own bytes only
    # when those digits were this operation's cost, and every other field reads
    # back as it was written.
    operation["cost"] = orjson.Fragment(digits)
    written = orjson.dumps(operation)
    operation["cost"] = cost
    return written if body.startswith(written, start) else None


def _stamp(ts: Any) -> bool:
    """Whether `ts` is a real UTC time as `utc_text` (or orjson) writes it."""
    return real_utc_time(ts, _STAMP)


def _amount(digits: bytes) -> Decimal | int | None:
    """The amount `digits` stand for, exactly as `loads_exact` reads it, when `dumps`
    writes that amount back as the same digits; ValueError for anything else."""
    if digits == b"null":
        return None
    if not _AMOUNT.fullmatch(digits):
        raise ValueError(f"not an amount as written: {digits[:40]!r}")
    text = digits.decode()
    amount: Decimal | int = Decimal(text) if "." in text else int(text)
    if (decimal_text(amount) if type(amount) is Decimal else str(amount)) != text:
        raise ValueError(f"not written as its amount would be: {text[:40]}")
    return amount
