"""The Writers Factory session protocol: models, names, codecs, schemas.

Pure: no sockets, no files (the reference client in `protocol.client` is the
one module that does I/O, and nothing here imports it).

The names below load on first use (PEP 562): `import protocol.names` alone
must not build every model of the protocol (~80 ms of pydantic schema
building), since the supervisor and the fork server import only a few of
them before the service is ready (docs/benchmarks.md, "Cold start").
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from protocol.base import Document, Message, Money, ProjectPath, Timestamp, utc_now
    from protocol.codec import decimal_text, dumps, dumps_line, dumps_pretty, loads, loads_exact
    from protocol.costs import Budget, BudgetWarning, CostOperation, CostsDocument, CostTotals
    from protocol.envelopes import (
        DEFAULT_MAX_FRAME_BYTES,
        EndpointsFile,
        ErrorReply,
        Event,
        OkReply,
        Reply,
        Request,
        decode_event,
        decode_reply,
        decode_request,
        encode_error,
        encode_event,
        encode_ok,
        encode_request,
    )
    from protocol.errors import ErrorCode, ProtocolError
    from protocol.events import TOPIC_DATA, parse_event_data
    from protocol.history import HistoryDocument, HistoryEntry
    from protocol.names import (
        MUTATING_OPS,
        OP_OWNER,
        PROTOCOL_VERSION,
        WORKER_SUBSCRIPTIONS,
        Op,
        Stage,
        Topic,
        WorkerName,
        WorkerState,
        owner_of,
    )
    from protocol.ops import OP_ARGS, parse_args
    from protocol.session import Preferences, SessionDocument

_SOURCE: dict[str, str] = {
    "Budget": "protocol.costs",
    "BudgetWarning": "protocol.costs",
    "CostOperation": "protocol.costs",
    "CostTotals": "protocol.costs",
    "CostsDocument": "protocol.costs",
    "DEFAULT_MAX_FRAME_BYTES": "protocol.envelopes",
    "Document": "protocol.base",
    "EndpointsFile": "protocol.envelopes",
    "ErrorCode": "protocol.errors",
    "ErrorReply": "protocol.envelopes",
    "Event": "protocol.envelopes",
    "HistoryDocument": "protocol.history",
    "HistoryEntry": "protocol.history",
    "MUTATING_OPS": "protocol.names",
    "Message": "protocol.base",
    "Money": "protocol.base",
    "OP_ARGS": "protocol.ops",
    "OP_OWNER": "protocol.names",
    "OkReply": "protocol.envelopes",
    "Op": "protocol.names",
    "PROTOCOL_VERSION": "protocol.names",
    "Preferences": "protocol.session",
    "ProjectPath": "protocol.base",
    "ProtocolError": "protocol.errors",
    "Reply": "protocol.envelopes",
    "Request": "protocol.envelopes",
    "SessionDocument": "protocol.session",
    "Stage": "protocol.names",
    "TOPIC_DATA": "protocol.events",
    "Timestamp": "protocol.base",
    "Topic": "protocol.names",
    "WORKER_SUBSCRIPTIONS": "protocol.names",
    "WorkerName": "protocol.names",
    "WorkerState": "protocol.names",
    "decimal_text": "protocol.codec",
    "decode_event": "protocol.envelopes",
    "decode_reply": "protocol.envelopes",
    "decode_request": "protocol.envelopes",
    "dumps": "protocol.codec",
    "dumps_line": "protocol.codec",
    "dumps_pretty": "protocol.codec",
    "encode_error": "protocol.envelopes",
    "encode_event": "protocol.envelopes",
    "encode_ok": "protocol.envelopes",
    "encode_request": "protocol.envelopes",
    "loads": "protocol.codec",
    "loads_exact": "protocol.codec",
    "owner_of": "protocol.names",
    "parse_args": "protocol.ops",
    "parse_event_data": "protocol.events",
    "utc_now": "protocol.base",
}
"""Each public name to the module that defines it."""

__all__ = [
    "DEFAULT_MAX_FRAME_BYTES",
    "MUTATING_OPS",
    "OP_ARGS",
    "OP_OWNER",
    "PROTOCOL_VERSION",
    "TOPIC_DATA",
    "WORKER_SUBSCRIPTIONS",
    "Budget",
    "BudgetWarning",
    "CostOperation",
    "CostTotals",
    "CostsDocument",
    "Document",
    "EndpointsFile",
    "ErrorCode",
    "ErrorReply",
    "Event",
    "HistoryDocument",
    "HistoryEntry",
    "Message",
    "Money",
    "OkReply",
    "Op",
    "Preferences",
    "ProjectPath",
    "ProtocolError",
    "Reply",
    "Request",
    "SessionDocument",
    "Stage",
    "Timestamp",
    "Topic",
    "WorkerName",
    "WorkerState",
    "decimal_text",
    "decode_event",
    "decode_reply",
    "decode_request",
    "dumps",
    "dumps_line",
    "dumps_pretty",
    "encode_error",
    "encode_event",
    "encode_ok",
    "encode_request",
    "loads",
    "loads_exact",
    "owner_of",
    "parse_args",
    "parse_event_data",
    "utc_now",
]


def __getattr__(name: str) -> Any:
    """Import the module defining `name` on first use, and keep the name here."""
    module = _SOURCE.get(name)
    if module is None:
        raise AttributeError(f"module 'protocol' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
