"""The Writers Factory session protocol: models, names, codecs, schemas.

Pure: no sockets, no files (the reference client in `protocol.client` is the
one module that does I/O, and nothing here imports it).
"""

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
