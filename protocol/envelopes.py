"""Request, reply and event envelopes, and the bytes <-> model functions.

Pure: bytes in, models out, and the reverse. Every way a frame can be wrong
ends in one `ProtocolError` carrying the contract's code and a sentence a
person understands; nothing here raises anything else on bad input.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, NamedTuple

import orjson
from pydantic import Field, ValidationError

from protocol.base import Document, Message, Timestamp
from protocol.codec import dumps, loads, loads_exact
from protocol.errors import ErrorCode, ProtocolError
from protocol.idscan import scan_top_level_id
from protocol.names import PROTOCOL_VERSION

__all__ = [
    "DEFAULT_MAX_FRAME_BYTES",
    "CurveKeyFiles",
    "EndpointsFile",
    "ErrorBody",
    "ErrorReply",
    "Event",
    "OkReply",
    "Reply",
    "Request",
    "RequestParts",
    "decode_event",
    "decode_reply",
    "decode_request",
    "describe_validation_error",
    "encode_error",
    "encode_event",
    "encode_ok",
    "encode_ok_json",
    "encode_request",
    "peek_id",
    "read_request",
]

DEFAULT_MAX_FRAME_BYTES = 1_048_576
"""Frames over 1 MiB are refused with `bad_request` (docs/protocol.md)."""

RequestId = Annotated[str, Field(min_length=1, max_length=256)]


class Request(Message):
    """`{"v": 1, "id": "c1-000017", "op": "session.set_stage", "args": {...}}`."""

    v: Literal[1] = PROTOCOL_VERSION
    id: RequestId
    op: Annotated[str, Field(min_length=1, max_length=128)]
    args: dict[str, Any] = Field(default_factory=dict)


class ErrorBody(Message):
    """What went wrong: a code to branch on and a message to show."""

    code: ErrorCode
    message: str


class OkReply(Message):
    """A successful reply; for a mutating op, the change is already on disk."""

    v: Literal[1] = PROTOCOL_VERSION
    id: str
    ok: Literal[True] = True
    result: Any = None


class ErrorReply(Message):
    """A failed reply; `id` is empty only when the request's id was unreadable."""

    v: Literal[1] = PROTOCOL_VERSION
    id: str
    ok: Literal[False] = False
    error: ErrorBody


Reply = OkReply | ErrorReply


class Event(Message):
    """One published event; `seq` rises by one per `source`."""

    v: Literal[1] = PROTOCOL_VERSION
    topic: Annotated[str, Field(min_length=1, max_length=128)]
    source: Annotated[str, Field(min_length=1, max_length=128)]
    seq: Annotated[int, Field(ge=0)]
    ts: Timestamp
    data: dict[str, Any] = Field(default_factory=dict)

    @property
    def key(self) -> str:
        """What makes one published event unique: a re-delivery repeats all three.

        Stored in the session journal and the archiver's journal to apply an
        event once, so its form never changes (`+00:00`, as 0.1.0 wrote it).
        """
        return f"{self.source}:{self.seq}:{self.ts.isoformat()}"


class CurveKeyFiles(Document):
    """Where the CURVE keys of a tcp service are: absolute paths of 0600 files.

    Each file holds one key as 40 characters of Z85 text and a newline. The
    server's secret key is never written: it lives only in the supervisor.
    """

    server_public_key_file: str
    client_public_key_file: str
    client_secret_key_file: str


class EndpointsFile(Document):
    """`.session/run/endpoints.json`: its appearance means "ready".

    A Document (tolerant of unknown fields) so a newer supervisor can add
    fields without breaking older clients. `curve` is set exactly when the
    public sockets are tcp: a client must then use those keys or get no answer.
    """

    protocol: Literal[1] = PROTOCOL_VERSION
    command: str
    events: str
    supervisor_pid: int
    session_id: str
    started_at: Timestamp
    transport: Literal["ipc", "tcp"] | None = None
    runtime_dir: str | None = None
    curve: CurveKeyFiles | None = None


_REQUIRED = ("v", "id", "op")
_orjson_loads = orjson.loads
_orjson_dumps = orjson.dumps
"""`codec.loads`/`dumps` of a str without their wrapper (the per-request path)."""


def _object(
    frame: bytes, *, max_bytes: int, exact: bool, what: str, money_likely: bool = False
) -> dict[str, Any]:
    if len(frame) > max_bytes:
        raise ProtocolError(
            ErrorCode.BAD_REQUEST,
            f"{what} is {len(frame)} bytes; the limit is {max_bytes} bytes",
            request_id=peek_id(frame),
        )
    try:
        value = _parse_once(frame) if exact and money_likely else _parse(frame, exact=exact)
    except (ValueError, UnicodeDecodeError, TypeError) as exc:
        raise ProtocolError(
            ErrorCode.BAD_REQUEST,
            f"{what} is not valid UTF-8 JSON: {exc}",
            request_id=peek_id(frame),
        ) from None
    if not isinstance(value, dict):
        raise ProtocolError(
            ErrorCode.BAD_REQUEST, f"{what} must be a JSON object, got {type(value).__name__}"
        )
    return value


def _parse(frame: bytes, *, exact: bool) -> Any:
    """Parse with orjson first: it refuses lone surrogates, which could never be
    stored. A number too large for a double (`1e400`) is still JSON: it is read
    exactly and left to the args' bounds to refuse, as the schemas do.

    `exact` re-reads the frame with Decimal numbers only when orjson found a
    number with a fraction: every other value parses the same either way, and
    most requests carry none (the exact parser is ~4x slower, measured)."""
    try:
        value = loads(frame)
    except ValueError as exc:
        if "infinity" not in str(exc):
            raise
        value = loads_exact(frame)
        dumps(value)  # TypeError for what orjson cannot write back (surrogates)
        return value
    return loads_exact(frame) if exact and _has_float(value) else value


_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89abcdefABCDEF]")
"""A `\\uD800`-`\\uDFFF` escape: half of a pair, or a lone surrogate orjson refuses."""


def _parse_once(frame: bytes) -> Any:
    """`_parse(frame, exact=True)` in one pass, for frames that nearly always hold a
    fraction (events of workers that keep money exact: `cost.logged` carries a
    dozen amounts), where `_parse` would read them twice.

    Strict UTF-8 refuses encoded surrogates, as orjson does; a frame with a
    surrogate escape takes the two-pass route, so orjson decides about it.
    """
    text = frame.decode("utf-8")
    if "\\u" in text and _SURROGATE_ESCAPE.search(text):
        return _parse(frame, exact=True)
    return loads_exact(text)


def _has_float(value: Any) -> bool:
    """Whether a parsed JSON value holds a float anywhere (no recursion: depth is free)."""
    stack = [value]
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind is float:
            return True
        if kind is dict:
            stack.extend(item.values())
        elif kind is list:
            stack.extend(item)
    return False


def peek_id(frame: bytes) -> str | None:
    """The `id` of a request that is otherwise refused, so its error can be matched.

    Falls back to a shallow scan of the top-level object when the frame does
    not parse as a whole (nested too deeply, a bad value after the id).
    """
    try:
        value = loads(frame)
    except ValueError:
        request_id = scan_top_level_id(frame)
    else:
        request_id = value.get("id") if isinstance(value, dict) else None
    return request_id if isinstance(request_id, str) and 1 <= len(request_id) <= 256 else None


class RequestParts(NamedTuple):
    """A checked request envelope without a model: what routing needs, cheaply."""

    id: str
    op: str
    args: dict[str, Any]


def read_request(
    frame: bytes, *, max_bytes: int = DEFAULT_MAX_FRAME_BYTES, exact: bool = False
) -> RequestParts:
    """Check one request frame exactly as `decode_request` does, without a model.

    The supervisor runs this on every request to route it (and to answer
    `bad_request` itself, before `unknown_op`, as the contract orders them);
    the worker runs it again to read the args. No pydantic model is built:
    these few rules are all `Request` would check.

    A well-formed request is accepted in one pass, inline (this runs twice
    per request, and each Python call saved counts); anything the pass does
    not accept outright, faults included, takes the full path below, which
    names the fault. The pass accepts nothing the full path would refuse.
    """
    if len(frame) <= max_bytes:
        try:
            raw = _orjson_loads(frame)
        except ValueError:
            raw = None
        if type(raw) is dict and _ALLOWED_KEYS.issuperset(raw):
            request_id = raw.get("id")
            op = raw.get("op")
            args = raw.get("args", _NO_ARGS)
            if (
                type(raw.get("v")) is int
                and raw["v"] == PROTOCOL_VERSION
                and type(request_id) is str
                and 1 <= len(request_id) <= 256
                and type(op) is str
                and 1 <= len(op) <= 128
                and type(args) is dict
                and not (exact and _has_float(args))
            ):
                return RequestParts(request_id, op, {} if args is _NO_ARGS else args)
    return _read_request(frame, max_bytes=max_bytes, exact=exact)


_NO_ARGS: dict[str, Any] = {}
"""Stands for an absent `args` in the one-pass check (never returned)."""


def _read_request(frame: bytes, *, max_bytes: int, exact: bool) -> RequestParts:
    """`read_request`'s full path: every rule, in order, each fault with its message."""
    raw = _object(frame, max_bytes=max_bytes, exact=exact, what="request")
    request_id = raw.get("id")
    if not isinstance(request_id, str) or not 1 <= len(request_id) <= 256:
        request_id = None
    if "v" not in raw or "id" not in raw or "op" not in raw:
        missing = [name for name in _REQUIRED if name not in raw]
        raise ProtocolError(
            ErrorCode.BAD_REQUEST,
            f"request is missing {', '.join(missing)} (a request is "
            '{"v": 1, "id": "...", "op": "...", "args": {...}})',
            request_id=request_id,
        )
    version = raw["v"]
    if version != PROTOCOL_VERSION or isinstance(version, bool):
        raise ProtocolError(
            ErrorCode.BAD_REQUEST,
            f"unsupported protocol version {version!r}; supported versions: {PROTOCOL_VERSION}",
            request_id=request_id,
        )
    args = raw.get("args")
    if args is None and "args" not in raw:
        args = {}
    elif not isinstance(args, dict):
        raise ProtocolError(
            ErrorCode.INVALID_ARGS,
            f"args must be a JSON object, got {type(args).__name__}",
            request_id=request_id,
        )
    problem = _envelope_problem(raw)
    if problem:
        raise ProtocolError(ErrorCode.BAD_REQUEST, problem, request_id=request_id)
    return RequestParts(raw["id"], raw["op"], args or {})


def decode_request(
    frame: bytes, *, max_bytes: int = DEFAULT_MAX_FRAME_BYTES, exact: bool = False
) -> Request:
    """Parse one request frame or raise `ProtocolError` with the contract's code.

    `exact=True` keeps numbers with a fraction as Decimal (money in args).
    """
    parts = read_request(frame, max_bytes=max_bytes, exact=exact)
    return Request.model_construct(v=PROTOCOL_VERSION, id=parts.id, op=parts.op, args=parts.args)


_ALLOWED_KEYS = frozenset({"v", "id", "op", "args"})


def _envelope_problem(raw: dict[str, Any]) -> str | None:
    """What is wrong with a request envelope's fields, or None (mirrors `Request`)."""
    if not _ALLOWED_KEYS.issuperset(raw):
        unknown = sorted(set(raw) - _ALLOWED_KEYS)
        return f"{', '.join(unknown)} is not a known field of a request"
    request_id, op = raw["id"], raw["op"]
    if not isinstance(request_id, str) or not 1 <= len(request_id) <= 256:
        return "id must be a string of 1 to 256 characters"
    if not isinstance(op, str) or not 1 <= len(op) <= 128:
        return "op must be a string of 1 to 128 characters"
    return None


def encode_request(request_id: str, op: str, args: dict[str, Any] | None = None) -> bytes:
    """The frame a client sends."""
    return dumps({"v": PROTOCOL_VERSION, "id": request_id, "op": op, "args": args or {}})


def encode_ok(request_id: str, result: Any) -> bytes:
    """The frame of a successful reply."""
    return dumps({"v": PROTOCOL_VERSION, "id": request_id, "ok": True, "result": result})


def encode_ok_json(request_id: str, result_json: bytes) -> bytes:
    """`encode_ok` for a result already encoded with `dumps`: the same bytes."""
    return b"".join(
        (b'{"v":1,"id":', _orjson_dumps(request_id), b',"ok":true,"result":', result_json, b"}")
    )


def encode_error(request_id: str | None, code: ErrorCode, message: str) -> bytes:
    """The frame of an error reply."""
    return dumps(
        {
            "v": PROTOCOL_VERSION,
            "id": request_id or "",
            "ok": False,
            "error": {"code": code.value, "message": message},
        }
    )


def decode_reply(frame: bytes, *, exact: bool = True) -> Reply:
    """Parse a reply frame (a client's side); money stays exact by default."""
    raw = _object(frame, max_bytes=2**31, exact=exact, what="reply")
    try:
        if raw.get("ok") is True:
            return OkReply.model_validate(raw)
        return ErrorReply.model_validate(raw)
    except ValidationError as exc:
        raise ProtocolError(ErrorCode.BAD_REQUEST, describe_validation_error(exc)) from None


def encode_event(topic: str, source: str, seq: int, ts: Any, data: Any) -> list[bytes]:
    """The two frames of an event: topic, then the JSON envelope."""
    body = dumps(
        {
            "v": PROTOCOL_VERSION,
            "topic": topic,
            "source": source,
            "seq": seq,
            "ts": ts,
            "data": data,
        }
    )
    return [topic.encode(), body]


def decode_event(frames: list[bytes], *, exact: bool = True) -> Event:
    """Parse an event's frames; the topic frame must match the envelope's."""
    if len(frames) != 2:
        raise ProtocolError(ErrorCode.BAD_REQUEST, f"an event is 2 frames, got {len(frames)}")
    raw = _object(frames[1], max_bytes=2**31, exact=exact, what="event", money_likely=True)
    try:
        event = Event.model_validate(raw)
    except ValidationError as exc:
        raise ProtocolError(ErrorCode.BAD_REQUEST, describe_validation_error(exc)) from None
    if event.topic.encode() != frames[0]:
        raise ProtocolError(ErrorCode.BAD_REQUEST, "event topic frame and envelope disagree")
    return event


def describe_validation_error(exc: ValidationError) -> str:
    """Turn pydantic's report into sentences that name the field and the rule."""
    sentences: list[str] = []
    for error in exc.errors(include_url=False):
        where = ".".join(str(part) for part in error["loc"]) or "value"
        kind = error["type"]
        if kind == "missing":
            sentences.append(f"{where} is required")
        elif kind == "extra_forbidden":
            sentences.append(f"{where} is not a known field")
        elif kind == "enum":
            expected = str(error.get("ctx", {}).get("expected", "")).replace("'", "")
            expected = expected.replace(" or ", ", ")
            sentences.append(f"{where} must be one of {expected}")
        elif kind == "literal_error":
            expected = str(error.get("ctx", {}).get("expected", ""))
            sentences.append(f"{where} must be {expected}")
        else:
            message = str(error["msg"]).removeprefix("Value error, ")
            sentences.append(f"{where}: {message}")
    return "; ".join(sentences)
